"""Saving and loading worlds with their module store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentworld import World
from agentworld.canonical import canonical_json, sha256_hex
from agentworld.persistence import (
    GENERATIONS,
    JOURNAL,
    LOCK,
    METADATA,
    POINTER,
    SEGMENTS,
    SNAPSHOT,
    CorruptWorldError,
    NotAWorldError,
    StateRootMismatchError,
    UnsupportedSchemaError,
    journal_files,
    read_pointer,
    verify_dir,
)
from agentworld.testing.guests import guest_wasm
from worldkit import counter_value, deploy, events, install, manifest, world_with_agents

TESTS = Path(__file__).parent


def run_python(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `script` in a fresh interpreter that can import the test helpers."""
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args],
                          capture_output=True, text=True, timeout=120, env=env)


def modular_world() -> tuple[World, str]:
    """Agents, two counter instances and a sleeper, stepped a few times; and the counter hash."""
    world = world_with_agents("ada", "bob", "cy")
    counter = deploy(world, guest_wasm("counter"))
    sleeper = deploy(world, guest_wasm("sleeper"))
    install(world, "ada", manifest("m.counter", counter))
    install(world, "bob", manifest("m.counter", counter),
            target={"type": "location", "location_id": "hub"})
    install(world, "cy", manifest("m.sleeper", sleeper))
    world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [4, 2]}})
    for _ in range(4):
        world.step_with_modules()
    return world, counter


def generation_dir(root: Path) -> Path:
    return root / GENERATIONS / f"{read_pointer(root):08d}"


def rewrite_snapshot(root: Path, edit: object) -> None:
    """Rewrite the snapshot with `edit(json)` and fix its checksum, as a writer would."""
    gen = generation_dir(root)
    value = json.loads((gen / SNAPSHOT).read_bytes())
    edit(value)  # type: ignore[operator]
    data = canonical_json(value)
    (gen / SNAPSHOT).write_bytes(data)
    meta = json.loads((gen / METADATA).read_bytes())
    meta["snapshot_sha256"] = sha256_hex(data)
    (gen / METADATA).write_bytes(canonical_json(meta))


def journal_bytes(root: Path) -> bytes:
    return b"".join(path.read_bytes() for path in journal_files(root))


def test_saved_world_resumes_in_a_fresh_process(tmp_path: Path) -> None:
    world, _ = modular_world()
    world.save_to_dir(tmp_path / "w")
    result = run_python("""
        import sys
        from agentworld import World
        from worldkit import counter_value
        world = World.load_from_dir(sys.argv[1])
        print(world.state_root(), counter_value(world, "m.counter#1"))
        world.step_with_modules()
        print(world.state_root(), counter_value(world, "m.counter#1"))
    """, str(tmp_path / "w"))
    assert result.returncode == 0, result.stderr
    loaded, stepped = [line.split() for line in result.stdout.splitlines()]
    assert loaded == [world.state_root(), str(counter_value(world, "m.counter#1"))]
    world.step_with_modules()
    assert stepped == [world.state_root(), str(counter_value(world, "m.counter#1"))]
    assert int(stepped[1]) == int(loaded[1]) + 1


def test_layout_holds_journal_snapshot_metadata_and_the_module_store(tmp_path: Path) -> None:
    world, counter = modular_world()
    world.save_to_dir(tmp_path)
    gen = generation_dir(tmp_path)
    meta = json.loads((gen / METADATA).read_bytes())
    assert meta["state_root"] == world.state_root()
    assert (meta["journal_length"], meta["time"], meta["store"]) == (
        len(world.journal), world.time, "modules")
    assert [segment["first_id"] for segment in meta["segments"]] == [1]
    assert [path.parent.name for path in journal_files(tmp_path)] == [SEGMENTS]
    lines = journal_bytes(tmp_path).splitlines()
    assert [json.loads(line)["id"] for line in lines] == list(range(1, len(world.journal) + 1))
    registry = json.loads((tmp_path / "modules" / "registry.json").read_bytes())
    assert {m["key"] for m in registry["modules"]} == {"m.counter@1.0.0", "m.sleeper@1.0.0"}
    assert {a["wasm_hash"] for a in registry["artifacts"]} == set(world.state.artifacts)
    assert (tmp_path / "modules" / "blobs" / "sha256" / counter).read_bytes() == guest_wasm(
        "counter")
    stored = tmp_path / "modules" / "manifests" / "m.counter" / "1.0.0.json"
    assert json.loads(stored.read_bytes())["wasm_hash"] == counter


def test_a_corrupt_artifact_is_reported_and_the_genuine_bytes_repair_it(tmp_path: Path) -> None:
    world, counter = modular_world()
    world.save_to_dir(tmp_path)
    blob = tmp_path / "modules" / "blobs" / "sha256" / counter
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))

    # The world loads; the artifact is reported like a missing one, naming hash and file.
    loaded = World.load_from_dir(tmp_path)
    assert list(loaded.corrupt_artifacts()) == [counter]
    assert str(blob) in loaded.corrupt_artifacts()[counter]
    assert counter in loaded.missing_artifacts()
    report = verify_dir(tmp_path)
    assert not report.ok
    assert any(counter in problem and str(blob) in problem for problem in report.problems)
    start = len(loaded.journal)
    loaded.step_with_modules()
    failed = [e.data for e in loaded.journal[start:] if e.kind == "module.call_failed"]
    assert {f["instance_id"] for f in failed} == {"m.counter#1", "m.counter#2"}
    assert {f["code"] for f in failed} == {"artifact_missing"}
    loaded.save_to_dir(tmp_path)

    # Deploying the genuine bytes repairs the store; the modules run again.
    repaired = World.load_from_dir(tmp_path)
    before = counter_value(repaired, "m.counter#1")
    repaired.submit({"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": "ada", "wasm_bytes": guest_wasm("counter"), "wasm_hash": counter}})
    repaired.step_with_modules()
    assert repaired.corrupt_artifacts() == {} and repaired.missing_artifacts() == []
    assert counter_value(repaired, "m.counter#1") == before + 1
    assert blob.read_bytes() == guest_wasm("counter")
    repaired.save_to_dir(tmp_path)
    assert verify_dir(tmp_path).ok
    assert World.load_from_dir(tmp_path).corrupt_artifacts() == {}


def test_store_less_directory_loads_and_calls_fail_with_artifact_missing(tmp_path: Path) -> None:
    world, counter = modular_world()
    world.save_to_dir(tmp_path / "bare")
    world.save_to_dir(tmp_path / "full")
    shutil.rmtree(tmp_path / "bare" / "modules")
    bare = World.load_from_dir(tmp_path / "bare")
    assert bare.state_root() == world.state_root()
    assert bare.missing_artifacts() == sorted(world.state.artifacts)
    assert counter in bare.missing_artifacts()
    full = World.load_from_dir(tmp_path / "full")
    assert full.missing_artifacts() == []

    before = counter_value(world, "m.counter#1")
    start = len(world.journal)
    for each in (bare, full, world):
        each.step_with_modules()
    failed = [e.data for e in bare.journal[start:] if e.kind == "module.call_failed"]
    assert {"m.counter#1", "m.counter#2"} <= {f["instance_id"] for f in failed}
    assert {f["code"] for f in failed} == {"artifact_missing"}
    assert counter_value(bare, "m.counter#1") == before  # nothing applied for a failed call
    # Other worlds, in the same process, are unaffected.
    assert counter_value(world, "m.counter#1") == before + 1
    assert full.state_root() == world.state_root()
    assert not any(e.kind == "module.call_failed" for e in world.journal)


def test_pending_actions_survive_a_save(tmp_path: Path) -> None:
    world, _ = modular_world()
    queued = [
        world.submit({"type": "move_agent", "data": {"agent_id": "bob", "to": [9, 9]}}),
        world.submit({"type": "teleport", "data": {}}),  # queued as a refusal
        world.submit({"type": "module.deploy_artifact", "data": {
            "publisher_agent_id": "cy", "wasm_bytes": guest_wasm("observer"),
            "wasm_hash": sha256_hex(guest_wasm("observer"))}}),
        world.submit({"type": "module.set_active", "data": {
            "agent_id": "ada", "instance_id": "m.counter#1", "active": False}}),
    ]
    world.save_to_dir(tmp_path)
    loaded = World.load_from_dir(tmp_path)
    assert loaded.pending_action_ids == queued
    assert loaded.submit({"type": "move_agent", "data": {"agent_id": "cy", "to": [1, 1]}}) == (
        world.submit({"type": "move_agent", "data": {"agent_id": "cy", "to": [1, 1]}}))
    ours, theirs = world.step_with_modules(), loaded.step_with_modules()
    assert [e.kind for e in theirs] == [e.kind for e in ours]
    assert loaded.state_root() == world.state_root()
    assert [e for e in events(loaded, "domain.action_rejected")
            if e["code"] == "invalid_action"]


def test_save_load_save_is_byte_identical(tmp_path: Path) -> None:
    world, _ = modular_world()
    world.submit({"type": "move_agent", "data": {"agent_id": "bob", "to": [1, 2]}})
    world.save_to_dir(tmp_path / "a")
    World.load_from_dir(tmp_path / "a").save_to_dir(tmp_path / "b")
    first, second = generation_dir(tmp_path / "a"), generation_dir(tmp_path / "b")
    assert (first / SNAPSHOT).read_bytes() == (second / SNAPSHOT).read_bytes()
    assert journal_bytes(tmp_path / "a") == journal_bytes(tmp_path / "b")


def test_a_loaded_world_saved_elsewhere_is_self_contained(tmp_path: Path) -> None:
    world, _ = modular_world()
    world.save_to_dir(tmp_path / "a")
    World.load_from_dir(tmp_path / "a").save_to_dir(tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    assert World.load_from_dir(tmp_path / "b").missing_artifacts() == []


def test_repeated_saves_keep_one_generation_and_ignore_debris(tmp_path: Path) -> None:
    world, _ = modular_world()
    world.save_to_dir(tmp_path)
    # Debris a killed save may leave: a half-written generation and a pointer temp file.
    (tmp_path / GENERATIONS / "00000999").mkdir()
    (tmp_path / GENERATIONS / "00000999" / JOURNAL).write_bytes(b'{"id": 1')
    (tmp_path / f".{POINTER}.deadbeef.tmp").write_bytes(b"{")
    (tmp_path / SEGMENTS / f"000000000001-3-{'0' * 16}.jsonl").write_bytes(b"{")
    assert World.load_from_dir(tmp_path).state_root() == world.state_root()
    world.step_with_modules()
    world.save_to_dir(tmp_path)
    assert read_pointer(tmp_path) == 1000
    assert [p.name for p in (tmp_path / GENERATIONS).iterdir()] == ["00001000"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        GENERATIONS, SEGMENTS, "modules", POINTER, LOCK]
    assert sorted((tmp_path / SEGMENTS).iterdir()) == journal_files(tmp_path)
    assert World.load_from_dir(tmp_path).state_root() == world.state_root()


def test_load_replays_journal_events_after_an_older_snapshot(tmp_path: Path) -> None:
    world, _ = modular_world()
    world.save_to_dir(tmp_path / "early")
    early_snapshot = json.loads((generation_dir(tmp_path / "early") / SNAPSHOT).read_bytes())
    for _ in range(3):
        world.step_with_modules()
    world.save_to_dir(tmp_path / "late")
    late = json.loads((generation_dir(tmp_path / "late") / SNAPSHOT).read_bytes())
    assert early_snapshot["journal_length"] < late["journal_length"]

    def use_early_state(value: dict[str, object]) -> None:
        # Keep the late clock and queue; take the state as of the early snapshot.
        value["state"], value["journal_length"] = (early_snapshot["state"],
                                                   early_snapshot["journal_length"])

    rewrite_snapshot(tmp_path / "late", use_early_state)
    loaded = World.load_from_dir(tmp_path / "late")
    assert loaded.state_root() == world.state_root()


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    world, _ = modular_world()
    world.save_to_dir(tmp_path)
    rewrite_snapshot(tmp_path, lambda value: value.update(schema_version=99))
    with pytest.raises(UnsupportedSchemaError,
                       match=r"schema_version 99.*reads schema_version 1 or 2 or 3"):
        World.load_from_dir(tmp_path)
    meta = generation_dir(tmp_path) / METADATA
    meta.write_bytes(meta.read_bytes().replace(b'"schema_version":3', b'"schema_version":4'))
    with pytest.raises(UnsupportedSchemaError, match="metadata has schema_version 4"):
        World.load_from_dir(tmp_path)


def test_tampered_journal_or_root_is_a_clear_error(tmp_path: Path) -> None:
    world, _ = modular_world()
    world.save_to_dir(tmp_path)
    (journal,) = [path for path in journal_files(tmp_path) if b'"to":[4,2]' in path.read_bytes()]
    original = journal.read_bytes()
    journal.write_bytes(original.replace(b'"to":[4,2]', b'"to":[4,3]'))
    with pytest.raises(CorruptWorldError, match=f"{journal}.*checksum"):
        World.load_from_dir(tmp_path)
    journal.write_bytes(original)
    meta = generation_dir(tmp_path) / METADATA
    meta.write_bytes(meta.read_bytes().replace(world.state_root().encode(), b"0" * 64))
    with pytest.raises(StateRootMismatchError, match=world.state_root()):
        World.load_from_dir(tmp_path)


def test_what_is_not_a_world_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("hi")
    for path, reason in [("empty", "no world.json"), ("missing", "no such directory"),
                         ("file", "no such directory")]:
        with pytest.raises(NotAWorldError, match=reason):
            World.load_from_dir(tmp_path / path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(NotAWorldError, match=r"refusing to save.*todo\.txt"):
        World().save_to_dir(tmp_path / "notes")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / POINTER).write_text("[1, 2]")
    with pytest.raises(NotAWorldError, match="not an agentworld world pointer"):
        World.load_from_dir(tmp_path / "bad")


def test_an_external_file_store_is_recorded_not_copied(tmp_path: Path) -> None:
    shared = tmp_path / "shared-store"
    world = world_with_agents("ada", store=shared.as_uri())
    counter = deploy(world, guest_wasm("counter"))
    install(world, "ada", manifest("m.counter", counter))
    world.save_to_dir(tmp_path / "w")
    assert not (tmp_path / "w" / "modules").exists()
    assert (shared / "blobs" / "sha256" / counter).is_file()
    loaded = World.load_from_dir(tmp_path / "w")
    assert loaded.store.uri == shared.as_uri() and loaded.missing_artifacts() == []
    world.step_with_modules()
    loaded.step_with_modules()
    assert loaded.state_root() == world.state_root()
