"""`agentworld world ...` and `agentworld module deploy|install|upgrade|rollback`, end to end in
subprocesses on a real world directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from agentworld import World
from agentworld.canonical import sha256_hex
from agentworld.persistence import GENERATIONS, SNAPSHOT, journal_files, read_pointer
from agentworld.testing.guests import guest_wasm
from worldkit import manifest


def agentworld(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentworld", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_a_cli_only_user_runs_the_whole_module_lifecycle(tmp_path: Path) -> None:
    world = tmp_path / "world"
    files = tmp_path / "files"
    files.mkdir()
    for name in ("counter", "sleeper"):
        (files / f"{name}.wasm").write_bytes(guest_wasm(name))
    counter, sleeper = sha256_hex(guest_wasm("counter")), sha256_hex(guest_wasm("sleeper"))
    (files / "v1.json").write_text(json.dumps(manifest("m.counter", counter)))
    (files / "v2.json").write_text(json.dumps(manifest("m.counter", sleeper, version="2.0.0")))

    init = agentworld("world", "init", world, "--agent", "ada", "--agent", "bob", "--json")
    assert init.returncode == 0, init.stderr
    assert json.loads(init.stdout)["agents"] == ["ada", "bob"]
    assert "already holds a world" in one_line_error(agentworld("world", "init", world), 2)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    assert "not empty" in one_line_error(agentworld("world", "init", tmp_path / "notes"), 2)

    for name, wasm_hash in (("counter", counter), ("sleeper", sleeper)):
        deployed = agentworld("module", "deploy", world, "--agent", "ada",
                              "--wasm", files / f"{name}.wasm", "--json")
        assert deployed.returncode == 0, deployed.stderr
        assert [(e["kind"], e["data"]["wasm_hash"]) for e in json_lines(deployed)] == [
            ("domain.module_artifact_deployed", wasm_hash)]

    installed = agentworld("module", "install", world, "--as", "ada",
                           "--manifest", files / "v1.json", "--json")
    assert installed.returncode == 0, installed.stderr
    kinds = [e["kind"] for e in json_lines(installed)]
    assert kinds[:2] == ["domain.module_registered", "domain.module_installed"]
    parked = agentworld("module", "install", world, "--as", "bob", "--manifest",
                        files / "v1.json", "--location", "hub", "--inactive")
    assert parked.returncode == 0, parked.stderr
    assert "domain.module_installed" in parked.stdout and '"location_id": "hub"' in parked.stdout

    stolen = agentworld("module", "upgrade", world, "--as", "bob", "--instance", "m.counter#1",
                        "--from-version", "1.0.0", "--manifest", files / "v2.json", "--json")
    assert stolen.returncode == 1
    assert json_lines(stolen)[0]["data"]["code"] == "not_instance_owner"
    upgraded = agentworld("module", "upgrade", world, "--as", "ada", "--instance",
                          "m.counter#1", "--from-version", "1.0.0", "--manifest",
                          files / "v2.json", "--json")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "domain.module_upgraded" in [e["kind"] for e in json_lines(upgraded)]
    rolled = agentworld("module", "rollback", world, "--as", "ada", "--instance",
                        "m.counter#1", "--to-version", "1.0.0")
    assert rolled.returncode == 0, rolled.stderr
    assert "domain.module_rolled_back" in rolled.stdout

    moved = agentworld("world", "submit", world, "--as", "bob",
                       '{"type": "move_agent", "data": {"agent_id": "bob", "to": [5, 5]}}')
    assert moved.returncode == 0 and "domain.agent_moved" in moved.stdout, moved.stderr
    assert agentworld("world", "step", world, "--steps", "2").returncode == 0

    info = agentworld("world", "info", world, "--json")
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert [a["agent_id"] for a in summary["agents"]] == ["ada", "bob"]
    assert {a["agent_id"]: a["position"] for a in summary["agents"]}["bob"] == [5, 5]
    instances = {i["instance_id"]: i for i in summary["instances"]}
    assert instances["m.counter#1"]["module_version"] == "1.0.0"
    assert instances["m.counter#2"]["active"] is False
    assert instances["m.counter#2"]["install_target"] == {"type": "location",
                                                          "location_id": "hub"}
    assert summary["artifacts"] == sorted([counter, sleeper])
    assert summary["missing_artifacts"] == []
    assert summary["store"] == (world / "modules").absolute().as_uri()
    loaded = World.load_from_dir(world)
    assert (summary["state_root"], summary["time"], summary["journal_length"]) == (
        loaded.state_root(), loaded.time, len(loaded.journal))
    assert "not_instance_owner" in [e.data.get("code") for e in loaded.journal]  # saved too
    assert loaded.module_state("m.counter#1") != b""  # the steps ran its ticks

    verified = agentworld("world", "verify", world, "--json")
    assert verified.returncode == 0, verified.stdout
    assert json.loads(verified.stdout)["ok"] is True
    assert json.loads(verified.stdout)["state_root"] == summary["state_root"]
    assert verified.stderr == ""  # no progress bar in a pipe
    text = agentworld("world", "info", world)
    assert text.returncode == 0 and summary["state_root"] in text.stdout

    # Tampering with the journal or the snapshot's state is caught, each problem listed.
    generation = world / GENERATIONS / f"{read_pointer(world):08d}"
    (journal,) = [path for path in journal_files(world) if b'"to":[5,5]' in path.read_bytes()]
    original = journal.read_bytes()
    journal.write_bytes(original.replace(b'"to":[5,5]', b'"to":[6,6]'))
    broken = agentworld("world", "verify", world)
    assert broken.returncode == 1
    assert "checksum" in broken.stdout and "replaying the journal gives" in broken.stdout
    report = json.loads(agentworld("world", "verify", world, "--json").stdout)
    assert report["ok"] is False and len(report["problems"]) >= 2
    assert "checksum" in one_line_error(agentworld("world", "info", world), 1)
    journal.write_bytes(original)
    snapshot = generation / SNAPSHOT
    snapshot.write_bytes(snapshot.read_bytes().replace(b'"position":[5,5]', b'"position":[0,5]'))
    broken = agentworld("world", "verify", world, "--json")
    assert broken.returncode == 1
    assert any("snapshot's state" in p for p in json.loads(broken.stdout)["problems"])


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    world = tmp_path / "world"
    assert agentworld("world", "init", world, "--agent", "ada").returncode == 0
    (tmp_path / "bad.json").write_text('{"module_id": "x"}')
    cases = [
        ("module", "install", world, "--agent", "ada", "--manifest", tmp_path / "none.json"),
        ("module", "install", world, "--agent", "ada", "--manifest", tmp_path / "bad.json"),
        ("module", "deploy", world, "--agent", "ada", "--wasm", tmp_path / "none.wasm"),
        ("module", "rollback", tmp_path, "--agent", "a", "--instance", "i", "--to-version", "1"),
        ("world", "info", tmp_path / "nowhere"),
        ("world", "verify", tmp_path),
        ("world", "submit", world, "{not json"),
        ("world", "init", tmp_path / "fresh", "--agent", "x", "--agent", "x"),
    ]
    for args in cases:
        one_line_error(agentworld(*args), 2)
    assert not (tmp_path / "fresh" / "world.json").exists()
    (tmp_path / "file.wasm").write_bytes(b"not wasm")
    refused = agentworld("module", "deploy", world, "--agent", "ada", "--wasm",
                         tmp_path / "file.wasm")
    assert refused.returncode == 1 and "invalid_artifact" in refused.stdout


def test_unusable_actions_on_the_command_line_exit_2(tmp_path: Path) -> None:
    world = tmp_path / "w"
    assert agentworld("world", "init", world, "--agent", "ada").returncode == 0
    (tmp_path / "latin1.json").write_bytes(b'{"type": "caf\xe9"}')
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    for action, fragment in (
        ('{"type": "move_agent", "data": {"agent_id": "ada", "to": [' + "9" * 5000 + ", 0]}}",
         "not usable JSON"),
        ('{"type": "move_agent", "type": "x", "data": {}}', "duplicate keys ['type']"),
        (f"@{tmp_path / 'latin1.json'}", "not UTF-8"),
        (f"@{tmp_path / 'deep.json'}", "nested too deeply"),
        ("[1, 2]", "must be a JSON object"),
    ):
        assert fragment in one_line_error(agentworld("world", "submit", world, action), 2)
    assert json.loads(agentworld("world", "info", world, "--json").stdout)["time"] == 1  # init


def test_an_object_with_many_keys_and_one_repeated_is_refused_without_stalling(
    tmp_path: Path,
) -> None:
    """Duplicate keys are found in one pass: 300 000 keys took minutes when each key was
    counted against all the others (the subprocess's timeout is what fails then)."""
    world = tmp_path / "w"
    assert agentworld("world", "init", world, "--agent", "ada").returncode == 0
    keys = ",".join(f'"k{index}": 0' for index in range(300_000))
    (tmp_path / "wide.json").write_text(
        '{"type": "move_agent", "data": {' + keys + ', "k7": 1}}')
    refused = agentworld("world", "submit", world, f"@{tmp_path / 'wide.json'}")
    assert "duplicate keys ['k7']" in one_line_error(refused, 2)


def test_as_submits_for_an_agent_and_the_world_checks_it(tmp_path: Path) -> None:
    world = tmp_path / "w"
    assert agentworld("world", "init", world, "--agent", "ada", "--agent", "bob").returncode == 0
    forged = agentworld("world", "submit", world, "--as", "bob", "--json",
                        '{"type": "move_agent", "data": {"agent_id": "ada", "to": [5, 5]}}')
    assert forged.returncode == 1
    (rejected,) = json_lines(forged)
    assert rejected["data"]["code"] == "actor_mismatch"
    assert rejected["caused_by"]["submitter"] == "bob"
    granted = agentworld("world", "submit", world, "--as", "ada",
                         '{"type": "grant_role", "data": {"agent_id": "ada", '
                         '"role": "rule_author"}}')
    assert granted.returncode == 1 and "not_system_actor" in granted.stderr
    by_host = agentworld("world", "submit", world,
                         '{"type": "grant_role", "data": {"agent_id": "ada", '
                         '"role": "rule_author"}}')
    assert by_host.returncode == 0 and "domain.role_granted" in by_host.stdout
    wasm = tmp_path / "counter.wasm"
    wasm.write_bytes(guest_wasm("counter"))
    deployed = agentworld("module", "deploy", world, "--as", "bob", "--wasm", wasm, "--json")
    assert json_lines(deployed)[0]["data"]["publisher_agent_id"] == "bob"
    assert "--agent or --as" in one_line_error(
        agentworld("module", "deploy", world, "--wasm", wasm), 2)
    assert "blank" in one_line_error(
        agentworld("module", "deploy", world, "--as", " ", "--wasm", wasm), 2)
    info = json.loads(agentworld("world", "info", world, "--json").stdout)
    assert info["roles"] == {"ada": ["rule_author"]}
def test_a_world_with_a_corrupt_blob_is_repaired_from_the_command_line(tmp_path: Path) -> None:
    world = tmp_path / "world"
    wasm = tmp_path / "counter.wasm"
    wasm.write_bytes(guest_wasm("counter"))
    counter = sha256_hex(guest_wasm("counter"))
    (tmp_path / "v1.json").write_text(json.dumps(manifest("m.counter", counter)))
    assert agentworld("world", "init", world, "--agent", "ada").returncode == 0
    assert agentworld("module", "deploy", world, "--agent", "ada", "--wasm", wasm).returncode == 0
    installed = agentworld("module", "install", world, "--agent", "ada",
                           "--manifest", tmp_path / "v1.json")
    assert installed.returncode == 0, installed.stderr
    blob = world / "modules" / "blobs" / "sha256" / counter
    blob.write_bytes(blob.read_bytes()[:-1] + b"\xff")

    info = agentworld("world", "info", world, "--json")
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert summary["missing_artifacts"] == [counter]
    assert str(blob) in summary["corrupt_artifacts"][counter]
    assert "corrupt" in agentworld("world", "info", world).stdout
    stepped = agentworld("world", "step", world, "--json")
    assert stepped.returncode == 0, stepped.stderr
    assert [e["data"]["code"] for e in json_lines(stepped) if e["kind"] == "module.call_failed"] \
        == ["artifact_missing"]
    assert agentworld("world", "verify", world).returncode == 1

    redeployed = agentworld("module", "deploy", world, "--agent", "ada", "--wasm", wasm)
    assert redeployed.returncode == 0, redeployed.stderr
    assert blob.read_bytes() == guest_wasm("counter")
    assert json.loads(agentworld("world", "info", world, "--json").stdout)[
        "corrupt_artifacts"] == {}
    assert agentworld("world", "verify", world).returncode == 0
    stepped = agentworld("world", "step", world, "--json")
    assert not [e for e in json_lines(stepped) if e["kind"] == "module.call_failed"]
