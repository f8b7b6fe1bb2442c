"""Worlds saved before authority existed (tests/data/worlds, written by commit 4f1c8e6) still
load and verify; module owners, registrants and pinned hooks are derived from their journals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentworld import World
from agentworld.canonical import canonical_json, sha256_hex
from agentworld.persistence import (
    GENERATIONS,
    METADATA,
    SNAPSHOT,
    CorruptWorldError,
    pre_authority_root,
    read_pointer,
    verify_dir,
)
from agentworld.world import event_to_json, rebuild_state

WORLDS = Path(__file__).parent / "data" / "worlds"


def old_world(name: str, tmp_path: Path) -> Path:
    """A copy of a saved old world (loading never writes, saving would)."""
    return Path(shutil.copytree(WORLDS / name, tmp_path / name))


def saved_root(path: Path) -> str:
    metadata = path / GENERATIONS / f"{read_pointer(path):08d}" / METADATA
    root: str = json.loads(metadata.read_bytes())["state_root"]
    return root


def test_the_modules_world_loads_verifies_and_gets_its_owners_from_the_journal(
    tmp_path: Path,
) -> None:
    path = old_world("v1-modules", tmp_path)
    report = verify_dir(path)
    assert report.ok and report.problems == () and report.missing_artifacts == ()
    assert report.state_root == saved_root(path)
    world = World.load_from_dir(path)
    assert {m: n.owner_agent_id for m, n in world.state.modules.items()} == {
        "g.counter": "ada", "g.rule": "ada", "g.observer": "cy", "g.suspender": "cy"}
    assert world.state.modules["g.counter"].last_version == "2.0.0"
    assert set(world.state.manifest_registrants.values()) == {"ada", "cy"}
    assert world.state.roles == {}
    # Nothing else changed: the journal is the saved one, the old root still describes it.
    saved = (path / GENERATIONS / f"{read_pointer(path):08d}" / "journal.jsonl").read_bytes()
    assert b"".join(event_to_json(e) + b"\n" for e in world.journal) == saved
    assert pre_authority_root(world.state) == saved_root(path)
    assert pre_authority_root(rebuild_state(world.journal)) == saved_root(path)


def test_a_loaded_old_world_keeps_running_under_the_authority_rules(tmp_path: Path) -> None:
    path = old_world("v1-modules", tmp_path)
    world = World.load_from_dir(path)
    stolen = world.submit({"type": "module.set_active", "data": {
        "agent_id": "bob", "instance_id": "g.counter#1", "active": False}}, submitter="bob")
    world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [13, 13]}},
                 submitter="ada")
    world.step_with_modules()
    codes = {e.data["action_id"]: e.data["code"] for e in world.journal
             if e.kind == "domain.action_rejected" and e.time == world.time}
    assert codes[stolen] == "not_instance_owner"
    assert "rule_denied" in codes.values()  # ada's old rule keeps running
    world.save_to_dir(path)
    assert verify_dir(path).ok
    again = World.load_from_dir(path)
    assert again.state_root() == world.state_root() == saved_root(path)
    assert again.state.modules == world.state.modules


def test_old_hooks_are_pinned_to_their_owners_version_and_old_queues_are_the_hosts(
    tmp_path: Path,
) -> None:
    path = old_world("v1-hooks", tmp_path)
    assert verify_dir(path).ok
    world = World.load_from_dir(path)
    # In that world bob registered p.guard@9.9.9 (always allow) after ada's effector was
    # installed, and its effects were queued through it. Loaded, the hook is ada's again.
    assert world.state.modules["p.guard"].owner_agent_id == "ada"
    assert world.state.manifest_registrants["p.guard@9.9.9"] == "bob"
    assert world.instances["g.effector#2"].policy_hooks == ["p.guard@1.0.0"]
    queued_before = len(world.pending_effects())
    assert queued_before == 2
    (queued,) = world.pending_action_ids
    for _ in range(2):
        world.step_with_modules()
    failures = [e.data for e in world.journal if e.kind == "module.call_failed"]
    assert failures and all(f["code"] == "policy_denied" and "p.guard@1.0.0" in f["detail"]
                            for f in failures)
    assert len(world.pending_effects()) == queued_before
    # The action queued before submitters existed was the host's to queue.
    (moved,) = [e for e in world.journal if e.kind == "domain.agent_moved"]
    assert moved.caused_by == {"action": queued}


def test_an_edited_old_snapshot_is_still_caught(tmp_path: Path) -> None:
    path = old_world("v1-modules", tmp_path)
    generation = path / GENERATIONS / f"{read_pointer(path):08d}"
    snapshot = json.loads((generation / SNAPSHOT).read_bytes())
    snapshot["state"]["agents"]["bob"]["resources"]["ore"] += 1
    data = json.dumps(snapshot, separators=(",", ":")).encode()
    (generation / SNAPSHOT).write_bytes(data)
    metadata = json.loads((generation / METADATA).read_bytes())
    metadata["snapshot_sha256"] = sha256_hex(data)
    (generation / METADATA).write_bytes(canonical_json(metadata))
    with pytest.raises(CorruptWorldError, match="snapshot differs from its journal"):
        World.load_from_dir(path)
    report = verify_dir(path)
    assert not report.ok and any("snapshot's state" in p for p in report.problems)


def test_the_cli_verifies_and_shows_an_old_world(tmp_path: Path) -> None:
    path = old_world("v1-hooks", tmp_path)

    def agentworld(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agentworld", *args], capture_output=True,
                              text=True, timeout=120, env=dict(os.environ))

    verified = agentworld("world", "verify", str(path), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    info = json.loads(agentworld("world", "info", str(path), "--json").stdout)
    assert info["module_owners"] == {"g.effector": "ada", "p.guard": "ada"}
