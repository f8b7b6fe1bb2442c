"""Rehearsing an upgrade against a saved world (`check-upgrade --world`): the verdict of the real
action, the state before and after, the steps' failures, and a directory left byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentworld import World
from agentworld.canonical import sha256_hex
from agentworld.manager import PluginManager
from agentworld.rehearsal import RehearsalError, rehearse_upgrade
from agentworld.testing.guests import guest_wasm
from worldkit import deploy, install, manifest, migrating_guest, world_with_agents

EXPORTS = ["memory", "alloc", "reduce", "migrate"]


def agentworld(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentworld", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def snapshot(directory: Path) -> dict[str, str]:
    """Every file and directory under `directory` with the SHA-256 of its bytes."""
    return {str(path.relative_to(directory)): (
        hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir")
        for path in sorted(directory.rglob("*"))}


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A saved world where ada's counter_v1 instance has ticked; counter_v2's artifact deployed.
    Returns the directory and the v2 manifest."""
    world = world_with_agents("ada", "bob", plugins=PluginManager(entrypoints=False, environ={}))
    v1 = manifest("m.counter", deploy(world, guest_wasm("counter_v1")), exports=EXPORTS)
    v2 = manifest("m.counter", deploy(world, guest_wasm("counter_v2")), version="2.0.0",
                  exports=EXPORTS)
    install(world, "ada", v1)
    for _ in range(3):
        world.step_with_modules()
    world.save_to_dir(tmp_path / "w")
    return tmp_path / "w", v2


def test_a_rehearsal_reports_the_migration_and_saves_nothing(
    saved: tuple[Path, dict[str, Any]],
) -> None:
    directory, v2 = saved
    before = snapshot(directory)
    state = World.load_from_dir(directory).module_state("m.counter#1")
    rehearsal = rehearse_upgrade(directory, "m.counter#1", v2, steps=2)
    assert rehearsal.accepted and rehearsal.ok and rehearsal.code is None
    assert (rehearsal.from_version, rehearsal.to_version) == ("1.0.0", "2.0.0")
    assert rehearsal.state_before is not None and rehearsal.state_migrated is not None
    assert (rehearsal.state_before.size, rehearsal.state_before.sha256) == (
        4, sha256_hex(state))
    migrated = int.from_bytes(state, "little").to_bytes(8, "little") + bytes(8)
    assert rehearsal.state_migrated.sha256 == sha256_hex(migrated)
    assert rehearsal.state_after is not None and rehearsal.state_after.size == 16
    kinds = [event.kind for event in rehearsal.events]
    assert kinds[:3] == ["domain.module_registered", "domain.module_upgraded",
                         "module.state_updated"]
    assert kinds.count("module.emitted") == 3  # the upgrade's step and two more
    assert rehearsal.report is not None and rehearsal.report["violations"] == []
    assert rehearsal.to_json()["saved"] is False
    assert snapshot(directory) == before


def test_the_rehearsal_gives_the_verdict_the_real_upgrade_gives(
    saved: tuple[Path, dict[str, Any]], tmp_path: Path,
) -> None:
    directory, v2 = saved
    world = World.load_from_dir(directory)
    trapping = manifest("m.counter", deploy(world, migrating_guest("unreachable")),
                        version="2.5.0", exports=EXPORTS)
    world.save_to_dir(directory)
    files = tmp_path / "files"
    files.mkdir()
    cases = {
        "accepted": v2,
        "incompatible": {**v2, "subscriptions": []},
        "invalid": {**v2, "kind": "sideways"},
        "migration-fails": trapping,
    }
    for name, candidate in cases.items():
        (files / f"{name}.json").write_text(json.dumps(candidate))
    before = snapshot(directory)
    verdicts = {}
    for name in cases:
        result = agentworld("module", "check-upgrade", "--world", directory, "--instance",
                            "m.counter#1", files / f"{name}.json", "--json")
        assert result.returncode in {0, 1}, result.stderr
        report = json.loads(result.stdout)
        verdicts[name] = (result.returncode, report["verdict"], report["code"])
    assert snapshot(directory) == before
    assert verdicts["accepted"] == (0, "accepted", None)
    assert verdicts["incompatible"] == (1, "rejected", "incompatible_upgrade")
    assert verdicts["invalid"] == (1, "rejected", "invalid_manifest")
    assert verdicts["migration-fails"] == (1, "rejected", "migration_failed")
    for name in cases:  # the real action on the same saved world gives the same verdict
        copy = tmp_path / f"real-{name}"
        World.load_from_dir(directory).save_to_dir(copy)
        real = agentworld("world", "submit", copy, json.dumps({
            "type": "module.upgrade", "data": {
                "upgrader_agent_id": "ada", "instance_id": "m.counter#1",
                "from_version": "1.0.0", "manifest": cases[name]}}), "--json")
        outcome = [json.loads(line) for line in real.stdout.splitlines()
                   if '"domain.module_upgraded"' in line or '"domain.action_rejected"' in line]
        data = outcome[0]["data"]
        code = data["code"] if outcome[0]["kind"] == "domain.action_rejected" else None
        assert (real.returncode, code) == (verdicts[name][0], verdicts[name][2]), name


def test_a_migration_failure_and_a_failing_new_code_are_reported(
    saved: tuple[Path, dict[str, Any]],
) -> None:
    directory, v2 = saved
    world = World.load_from_dir(directory)
    plain = manifest("m.counter", deploy(world, guest_wasm("counter")), version="1.5.0",
                     exports=["memory", "alloc", "reduce"])
    world.save_to_dir(directory)
    # counter (8-byte state) without migrate: accepted, with a warning, then its ticks trap on
    # the unconverted 4-byte state.
    failing = rehearse_upgrade(directory, "m.counter#1", plain, steps=1)
    assert failing.accepted and not failing.ok
    assert [v["rule"] for v in (failing.report or {})["violations"]] == ["migrate-kept"]
    assert failing.state_migrated == failing.state_before
    assert [(f["stage"], f["code"]) for f in failing.instance_failures] == [("tick", "trap")] * 2
    not_owner = rehearse_upgrade(directory, "m.counter#1", v2, agent="bob", submitter="bob")
    assert (not_owner.accepted, not_owner.code) == (False, "not_instance_owner")


def test_a_refused_migration_is_the_rehearsals_verdict(tmp_path: Path) -> None:
    world = world_with_agents("ada", plugins=PluginManager(entrypoints=False, environ={}))
    install(world, "ada", manifest("m.counter", deploy(world, guest_wasm("counter"))))
    world.step_with_modules()
    world.save_to_dir(tmp_path / "w")
    v2 = manifest("m.counter", sha256_hex(guest_wasm("counter_v2")), version="2.0.0",
                  exports=EXPORTS)
    rehearsal = rehearse_upgrade(tmp_path / "w", "m.counter#1", v2,
                                 wasm=guest_wasm("counter_v2"))
    assert (rehearsal.accepted, rehearsal.code) == (False, "migration_failed")
    assert rehearsal.notes[0].startswith("m.counter@2.0.0 migrate failed: trap:")
    assert rehearsal.state_migrated == rehearsal.state_before
    assert rehearsal.state_after is not None and rehearsal.state_after.size == 8  # v1 ticked on
    assert [e.kind for e in rehearsal.events][:2] == ["domain.module_artifact_deployed",
                                                      "domain.action_rejected"]
    with pytest.raises(RehearsalError, match=r"no instance 'm\.nothing#9'"):
        rehearse_upgrade(tmp_path / "w", "m.nothing#9", v2)
    assert rehearse_upgrade(tmp_path / "w", "m.nothing#9", v2, agent="ada").code == (
        "instance_not_found")


def test_the_command_prints_a_readable_rehearsal_and_refuses_unusable_input(
    saved: tuple[Path, dict[str, Any]], tmp_path: Path,
) -> None:
    directory, v2 = saved
    candidate = tmp_path / "v2.json"
    candidate.write_text(json.dumps(v2))
    result = agentworld("module", "check-upgrade", "--world", directory, "--instance",
                        "m.counter#1", candidate, "--steps", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (f"rehearsal: upgrade m.counter#1 1.0.0 -> 2.0.0 on a copy of "
                        f"{directory} (nothing is saved)")
    assert "verdict: accepted" in lines
    assert any(line.startswith("state before: 4 bytes, sha256 ") for line in lines)
    assert any(line.startswith("state migrated: 16 bytes, sha256 ") for line in lines)
    assert any(line.startswith("state after 1 more step(s): 16 bytes") for line in lines)
    assert lines[-1] == "module failures: none"
    for args, fragment in (
        (("--world", tmp_path / "nowhere", "--instance", "m.counter#1", candidate), "nowhere"),
        (("--world", directory, candidate), "--instance"),
        (("--world", directory, "--instance", "m.counter#1", candidate, candidate), "exactly"),
        (("--world", directory, "--instance", "m.counter#1", tmp_path / "none.json"),
         "cannot read"),
        (("--instance", "m.counter#1", candidate, candidate), "need --world"),
        (("--world", directory, "--instance", "m.counter#1", candidate, "--wasm",
          tmp_path / "none.wasm"), "cannot read"),
    ):
        bad = agentworld("module", "check-upgrade", *args)
        assert bad.returncode == 2, (args, bad.stdout, bad.stderr)
        assert fragment in bad.stderr and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
