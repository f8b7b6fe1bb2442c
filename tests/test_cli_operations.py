"""The command line as an operator uses it: dry runs, batches of actions, reading the journal,
instances and their state, pipes and machine-readable errors. Real subprocesses, real world
directories, a real S3 server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentworld.canonical import sha256_hex
from agentworld.manager import PluginManager
from agentworld.persistence import journal_files
from agentworld.testing.guests import guest_wasm
from s3_server import AWS_TEST_ENV, AWS_UNSET, new_bucket, s3_client, start_s3_server
from worldkit import deploy, install, manifest, world_with_agents


def agentworld(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentworld", *map(str, args)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def ok(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = agentworld(*args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for a directory)."""
    return {str(path.relative_to(root)): None if path.is_dir() else path.read_bytes()
            for path in sorted(root.rglob("*"))}


def saved_counters(directory: Path, steps: int = 2) -> None:
    """Save a world (built in-process: faster than the CLI) where ada runs an active counter
    and bob an inactive one at location hub, after `steps` more steps."""
    world = world_with_agents("ada", "bob", plugins=PluginManager(entrypoints=False))
    counter = manifest("m.counter", deploy(world, guest_wasm("counter")))
    install(world, "ada", counter)
    install(world, "bob", counter, target={"type": "location", "location_id": "hub"},
            activate=False)
    for _ in range(steps):
        world.step_with_modules()
    world.save_to_dir(directory)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """Artifacts and manifests for the counter (1.0.0) and sleeper (2.0.0) guests."""
    folder = tmp_path / "files"
    folder.mkdir()
    for name, version in (("counter", "1.0.0"), ("sleeper", "2.0.0")):
        wasm = guest_wasm(name)
        (folder / f"{name}.wasm").write_bytes(wasm)
        (folder / f"{name}.json").write_text(json.dumps(
            manifest("m.counter", sha256_hex(wasm), version=version)))
    return folder


@pytest.mark.slow
def test_dry_run_prints_the_events_of_every_changing_command_and_saves_nothing(
    tmp_path: Path, files: Path
) -> None:
    world = tmp_path / "world"
    fresh = tmp_path / "fresh"
    dry_init = ok("world", "init", fresh, "--agent", "ada", "--dry-run", "--json")
    assert [e["kind"] for e in json_lines(dry_init)] == ["domain.agent_registered"]
    assert not fresh.exists()
    ok("world", "init", world, "--agent", "ada", "--agent", "bob")
    ok("module", "deploy", world, "--agent", "ada", "--wasm", files / "counter.wasm")
    ok("module", "install", world, "--agent", "ada", "--manifest", files / "counter.json")

    def rehearse(*args: str | Path) -> list[str]:
        before = tree(world)
        result = agentworld(*args, "--dry-run", "--json")
        assert tree(world) == before, args  # the directory is byte for byte the same
        return [e["kind"] for e in json_lines(result)]

    assert rehearse("module", "deploy", world, "--agent", "ada", "--wasm",
                    files / "sleeper.wasm")[0] == "domain.module_artifact_deployed"
    assert rehearse("world", "submit", world, '{"type": "move_agent", "data": '
                    '{"agent_id": "bob", "to": [4, 4]}}')[0] == "domain.agent_moved"
    assert rehearse("world", "step", world, "--steps", "3").count("module.state_updated") == 3
    assert rehearse("module", "install", world, "--agent", "bob", "--manifest",
                    files / "counter.json")[:1] == ["domain.module_installed"]
    ok("module", "deploy", world, "--agent", "ada", "--wasm", files / "sleeper.wasm")
    assert "domain.module_upgraded" in rehearse(
        "module", "upgrade", world, "--agent", "ada", "--instance", "m.counter#1",
        "--from-version", "1.0.0", "--manifest", files / "sleeper.json")
    ok("module", "upgrade", world, "--agent", "ada", "--instance", "m.counter#1",
       "--from-version", "1.0.0", "--manifest", files / "sleeper.json")
    assert "domain.module_rolled_back" in rehearse(
        "module", "rollback", world, "--agent", "ada", "--instance", "m.counter#1",
        "--to-version", "1.0.0")
    # A refused action is still exit 1 in a rehearsal, and still saves nothing.
    before = tree(world)
    refused = agentworld("world", "submit", world, '{"type": "move_agent", "data": '
                         '{"agent_id": "zed", "to": [1, 1]}}', "--dry-run")
    assert refused.returncode == 1 and "agent_not_found" in refused.stdout
    assert refused.stderr.splitlines() == ["dry run: nothing was saved",
                                           "rejected: action 7: agent_not_found"]
    assert tree(world) == before
    info = json.loads(ok("world", "info", world, "--json").stdout)
    assert info["instances"][0]["module_version"] == "2.0.0"
    assert info["pending_actions"] == []


def test_a_dry_run_deploy_never_writes_to_an_s3_store(
    tmp_path: Path, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, endpoint = start_s3_server()
    try:
        for name in AWS_UNSET:
            monkeypatch.delenv(name, raising=False)
        for name, value in AWS_TEST_ENV.items():
            monkeypatch.setenv(name, value)
        bucket = new_bucket(endpoint)
        world = tmp_path / "world"
        ok("world", "init", world, "--agent", "ada", "--store",
           f"s3://{bucket}/w?endpoint_url={endpoint}")
        objects_before = s3_client(endpoint).list_objects_v2(Bucket=bucket).get("KeyCount")
        rehearsal = ok("module", "deploy", world, "--agent", "ada", "--wasm",
                       files / "counter.wasm", "--dry-run")
        assert "domain.module_artifact_deployed" in rehearsal.stdout
        listing = s3_client(endpoint).list_objects_v2(Bucket=bucket)
        assert listing.get("KeyCount") == objects_before
        assert not any("blobs/" in item["Key"] for item in listing.get("Contents", []))
    finally:
        server.stop()


def test_submit_queues_an_array_or_json_lines_for_one_step(tmp_path: Path) -> None:
    world = tmp_path / "world"
    ok("world", "init", world, "--agent", "ada", "--agent", "bob")
    moves = [{"type": "move_agent", "data": {"agent_id": agent, "to": [n, n]}}
             for n, agent in ((1, "ada"), (2, "bob"))]
    batch = json_lines(ok("world", "submit", world, json.dumps(moves), "--json"))
    assert [(e["kind"], e["time"]) for e in batch] == [("domain.agent_moved", 2)] * 2
    lines = tmp_path / "actions.jsonl"
    lines.write_text(json.dumps(moves[1]) + "\n\n" + json.dumps(
        {"type": "move_agent", "data": {"agent_id": "zed", "to": [0, 0]}}) + "\n")
    mixed = agentworld("world", "submit", world, f"@{lines}", "--json")
    assert mixed.returncode == 1  # one of the two was refused; both are in the journal
    assert [(e["kind"], e["time"]) for e in json_lines(mixed)] == [
        ("domain.agent_moved", 3), ("domain.action_rejected", 3)]
    single = tmp_path / "one.json"
    single.write_text(json.dumps(moves[0], indent=2))  # one object over several lines
    assert [e["kind"] for e in json_lines(ok("world", "submit", world, f"@{single}",
                                             "--json"))] == ["domain.agent_moved"]
    bad_line = tmp_path / "bad.jsonl"
    bad_line.write_text(json.dumps(moves[0]) + "\n{oops\n")
    for action, fragment in (("[]", "no actions"),
                             ('[{"type": "move_agent", "data": {}}, 3]',
                              "(item 1): an action must be a JSON object"),
                             (f"@{bad_line}", "line 2: not usable JSON")):
        result = agentworld("world", "submit", world, action)
        assert result.returncode == 2 and fragment in result.stderr, result.stderr
    assert json.loads(ok("world", "info", world, "--json").stdout)["time"] == 4


def test_world_events_filters_by_kind_and_id(tmp_path: Path) -> None:
    world = tmp_path / "world"
    saved_counters(world)
    everything = json_lines(ok("world", "events", world, "--json"))
    assert [e["id"] for e in everything] == list(range(1, len(everything) + 1))
    modules = json_lines(ok("world", "events", world, "--kind", "module.*", "--json"))
    assert modules and all(e["kind"].startswith("module.") for e in modules)
    both = json_lines(ok("world", "events", world, "--kind", "domain.agent_registered",
                         "--kind", "domain.module_installed", "--json"))
    assert [e["kind"] for e in both] == ["domain.agent_registered"] * 2 + [
        "domain.module_installed"] * 2
    since = json_lines(ok("world", "events", world, "--since", "3", "--json"))
    assert since == everything[3:]
    text = ok("world", "events", world, "--kind", "domain.agent_registered").stdout
    assert text.splitlines()[0] == ('#1 t=1 domain.agent_registered {"agent_id": "ada", '
                                    '"position": [0, 0], "resources": {}}')
    assert agentworld("world", "events", world, "--kind", "module.state_*").returncode == 2
    assert agentworld("world", "events", tmp_path / "nowhere").returncode == 2


def test_module_list_and_module_state(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    world_with_agents("ada", plugins=PluginManager(entrypoints=False)).save_to_dir(empty)
    assert ok("module", "list", empty).stdout == "modules: none\ninstances: none\n"
    world = tmp_path / "world"
    saved_counters(world)
    listed = json.loads(ok("module", "list", world, "--json").stdout)
    counter_hash = sha256_hex(guest_wasm("counter"))
    assert listed["modules"] == [{"module_id": "m.counter", "version": "1.0.0",
                                  "kind": "reducer", "role": "domain",
                                  "wasm_hash": counter_hash, "artifact_missing": False,
                                  "instances": ["m.counter#1", "m.counter#2"]}]
    assert [(i["instance_id"], i["owner_agent_id"], i["active"], i["state_size"])
            for i in listed["instances"]] == [("m.counter#1", "ada", True, 8),
                                              ("m.counter#2", "bob", False, 0)]
    text = ok("module", "list", world).stdout.splitlines()
    assert text[1] == (f"  m.counter 1.0.0 (reducer) artifact {counter_hash[:12]} instances: "
                       "m.counter#1, m.counter#2")
    assert text[4] == "  m.counter#2 m.counter 1.0.0 owner bob on location hub, inactive, state 0 B"

    # The counter's first tick comes a step after its install: bob's install step, then two.
    count = (3).to_bytes(8, "little")
    assert ok("module", "state", world, "m.counter#1").stdout.splitlines() == [
        "m.counter#1 (m.counter 1.0.0, owner ada): 8 bytes", count.hex()]
    raw = subprocess.run([sys.executable, "-m", "agentworld", "module", "state", str(world),
                          "m.counter#1", "--raw"], capture_output=True, timeout=120)
    assert raw.returncode == 0 and raw.stdout == count
    as_json = json.loads(ok("module", "state", world, "m.counter#1", "--json").stdout)
    assert as_json["state_base64"] == "AwAAAAAAAAA=" and as_json["module_version"] == "1.0.0"
    missing = agentworld("module", "state", world, "m.counter#9")
    assert missing.returncode == 2
    assert "no instance 'm.counter#9'" in missing.stderr and "m.counter#1" in missing.stderr


@pytest.mark.parametrize("command", [("world", "info"), ("world", "events")])
def test_a_closed_pipe_ends_output_quietly(tmp_path: Path, command: tuple[str, str]) -> None:
    world = tmp_path / "world"
    # Enough agents that the output is larger than any pipe buffer.
    world_with_agents(*(f"agent-{n:05d}" for n in range(12000)),
                      plugins=PluginManager(entrypoints=False)).save_to_dir(world)
    reader = subprocess.Popen([sys.executable, "-m", "agentworld", *command, str(world)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout is not None and reader.stderr is not None
    first = reader.stdout.readline()
    reader.stdout.close()  # what `| head -1` does
    assert reader.wait(timeout=120) == 141
    assert reader.stderr.read() == b""
    assert first.startswith(b"world world at " if command[1] == "info" else b"#1 t=1 ")


def test_json_errors_are_one_json_object_on_stdout(tmp_path: Path) -> None:
    world = tmp_path / "world"
    ok("world", "init", world, "--agent", "ada")
    cases = [
        (("world", "info", tmp_path / "nowhere", "--json"), 2, "not a saved world"),
        (("world", "info", "--json"), 2, "Missing argument 'DIRECTORY'"),
        (("world", "submit", world, "{oops", "--json"), 2, "not usable JSON"),
        (("world", "step", world, "--steps", "0", "--json"), 2, "--steps"),
        (("module", "check-upgrade", tmp_path / "a.json", tmp_path / "b.json", "--json"), 2,
         "cannot read"),
        (("module", "state", world, "m.none#1", "--json"), 2, "no instance 'm.none#1'"),
        (("plugins", "--json", "--bogus"), 2, "No such option '--bogus'"),
    ]
    for args, code, fragment in cases:
        result = agentworld(*args)
        assert result.returncode == code, (args, result)
        assert result.stderr == "", (args, result.stderr)
        (line,) = result.stdout.splitlines()
        error = json.loads(line)["error"]
        assert error["exit_code"] == code and fragment in error["message"], (args, error)
    journal = journal_files(world)[0]
    journal.write_bytes(journal.read_bytes().replace(b'"ada"', b'"eve"'))
    corrupt = agentworld("world", "info", world, "--json")
    assert corrupt.returncode == 1 and corrupt.stderr == ""
    assert "checksum" in json.loads(corrupt.stdout)["error"]["message"]


def test_init_records_a_world_id(tmp_path: Path) -> None:
    created = json.loads(ok("world", "init", tmp_path / "w", "--world-id", "alpha-7",
                            "--json").stdout)
    assert created["world_id"] == "alpha-7"
    assert json.loads(ok("world", "info", tmp_path / "w", "--json").stdout)["world_id"] == (
        "alpha-7")
    assert json.loads(ok("world", "init", tmp_path / "d", "--json").stdout)["world_id"] == "world"
    for bad in ("", "  ", "line\nbreak"):
        result = agentworld("world", "init", tmp_path / "x", "--world-id", bad)
        assert result.returncode == 2 and "--world-id" in result.stderr
        assert not (tmp_path / "x").exists()
