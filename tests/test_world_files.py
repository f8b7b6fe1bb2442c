"""The one reader of world directories, shared by load and `verify`: only the directory's own
regular files are read (no links, devices, pipes or names leading elsewhere), and what is wrong
is a clear error (load) or a listed problem (verify), never a hang, a `RecursionError` or a
`MemoryError`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from agentworld import World
from agentworld.canonical import canonical_json, sha256_hex
from agentworld.persistence import (
    GENERATIONS,
    METADATA,
    SEGMENTS,
    SNAPSHOT,
    CorruptWorldError,
    journal_files,
    read_pointer,
    verify_dir,
)
from agentworld.testing.guests import guest_wasm
from worldkit import deploy, world_with_agents

TESTS = Path(__file__).parent
DATA = TESTS / "data" / "worlds"


def saved_world(root: Path) -> World:
    world = world_with_agents("ada", "bob")
    world.save_to_dir(root)
    return world


def generation(root: Path) -> Path:
    return root / GENERATIONS / f"{read_pointer(root):08d}"


def edit_metadata(root: Path, **changes: object) -> None:
    path = generation(root) / METADATA
    meta = json.loads(path.read_bytes())
    meta.update(changes)
    path.write_bytes(canonical_json(meta))


def segment(root: Path) -> Path:
    """The (only) journal segment of a small saved world."""
    (path,) = journal_files(root)
    return path


def rewrite_segment(root: Path, data: bytes) -> None:
    """Replace the segment's bytes, naming and recording it as a writer would."""
    old = segment(root)
    meta = json.loads((generation(root) / METADATA).read_bytes())
    (entry,) = meta["segments"]
    digest = sha256_hex(data)
    entry["name"] = f"{entry['first_id']:012d}-{entry['events']}-{digest[:16]}.jsonl"
    entry["sha256"] = digest
    (old.parent / entry["name"]).write_bytes(data)
    old.unlink()
    edit_metadata(root, segments=meta["segments"])


def load_and_verify_refuse(root: Path, fragment: str) -> None:
    """Load raises `CorruptWorldError` and verify reports a problem, both with `fragment`, in a
    child process with a deadline (a reader that blocks or runs out of memory fails here)."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import json, sys
        from agentworld import World
        from agentworld.persistence import CorruptWorldError, verify_dir
        try:
            World.load_from_dir(sys.argv[1])
        except CorruptWorldError as exc:
            loaded = str(exc)
        else:
            loaded = "loaded"
        report = verify_dir(sys.argv[1])
        print(json.dumps({"load": loaded, "ok": report.ok, "problems": report.problems}))
    """), str(root)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout)
    assert fragment in outcome["load"], outcome
    assert not outcome["ok"] and any(fragment in p for p in outcome["problems"]), outcome


@pytest.mark.parametrize("name", ["../../../dev/zero", "/dev/zero", "..", ".hidden", "a/b"])
def test_names_in_metadata_never_lead_outside_the_world(tmp_path: Path, name: str) -> None:
    saved_world(tmp_path)
    meta = json.loads((generation(tmp_path) / METADATA).read_bytes())
    meta["segments"][0]["name"] = name
    edit_metadata(tmp_path, segments=meta["segments"])
    load_and_verify_refuse(tmp_path, "journal segment name")
    edit_metadata(tmp_path, snapshot=name)
    load_and_verify_refuse(tmp_path, "unsafe snapshot file name")
    if name.startswith(".."):
        verify = subprocess.run([sys.executable, "-m", "agentworld", "world", "verify",
                                 str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert verify.returncode == 1 and "unsafe snapshot file name" in verify.stdout


@pytest.mark.parametrize("name", ["../../../dev/zero", "/dev/zero", ".hidden"])
def test_a_first_release_journal_name_never_leads_outside_its_generation(
    tmp_path: Path, name: str
) -> None:
    root = tmp_path / "world"
    shutil.copytree(DATA / "v1-counter", root)
    edit_metadata(root, journal=name)
    load_and_verify_refuse(root, "unsafe journal file name")


def _symlink_journal(root: Path) -> None:
    journal = segment(root)
    outside = root.parent / "elsewhere.jsonl"
    shutil.copyfile(journal, outside)  # the same bytes: the checksum would match
    journal.unlink()
    journal.symlink_to(outside)


def _fifo_journal(root: Path) -> None:
    journal = segment(root)
    journal.unlink()
    os.mkfifo(journal)  # opening it for reading would wait for a writer forever


def _device_snapshot(root: Path) -> None:
    snapshot = generation(root) / SNAPSHOT
    snapshot.unlink()
    snapshot.symlink_to("/dev/zero")


def _linked_generations(root: Path) -> None:
    moved = root.parent / "moved-generations"
    (root / GENERATIONS).rename(moved)
    (root / GENERATIONS).symlink_to(moved)


def _linked_segments(root: Path) -> None:
    moved = root.parent / "moved-journal"
    (root / SEGMENTS).rename(moved)
    (root / SEGMENTS).symlink_to(moved)


def test_a_swapped_in_older_generation_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "world"
    world = saved_world(root)
    old = tmp_path / "old-generation"
    shutil.copytree(generation(root), old)
    world.submit({"type": "register_agent", "data": {"agent_id": "cy", "position": [2, 0]}})
    world.step()
    world.save_to_dir(root)
    current = generation(root)
    shutil.rmtree(current)
    shutil.copytree(old, current)  # every checksum inside still matches
    load_and_verify_refuse(root, "generation 1's, but world.json names generation 2")


def _deep_snapshot(root: Path) -> None:
    path = generation(root) / SNAPSHOT
    data = path.read_bytes().replace(b'"grants":{}', b'"grants":' + b"[" * 200_000
                                     + b"]" * 200_000)
    path.write_bytes(data)
    edit_metadata(root, snapshot_sha256=sha256_hex(data))


def _deep_journal(root: Path) -> None:
    lines = segment(root).read_bytes().splitlines(keepends=True)
    event = json.loads(lines[-1])
    event["data"]["resources"] = "@"
    line = canonical_json(event).replace(b'"@"', b"[" * 200_000 + b"]" * 200_000) + b"\n"
    rewrite_segment(root, b"".join([*lines[:-1], line]))


@pytest.mark.parametrize(("damage", "fragment"), [
    (_symlink_journal, "journal segment is a symbolic link"),
    (_fifo_journal, "journal segment is not a regular file"),
    (_device_snapshot, "snapshot is a symbolic link"),
    (_linked_generations, "generations directory is a symbolic link"),
    (_linked_segments, "journal directory is a symbolic link"),
    (_deep_snapshot, "nested too deeply"),
    (_deep_journal, "nested too deeply"),
])
def test_only_regular_files_of_sane_depth_are_read(
    tmp_path: Path, damage: Callable[[Path], None], fragment: str
) -> None:
    """Only the directory's own regular files are read, and deeply nested ones are corrupt,
    not a RecursionError."""
    root = tmp_path / "world"
    saved_world(root)
    damage(root)
    load_and_verify_refuse(root, fragment)


def test_one_reader_collects_every_problem_for_verify(tmp_path: Path) -> None:
    root = tmp_path / "world"
    saved_world(root)
    (generation(root) / SNAPSHOT).write_bytes(b"{}")
    _symlink_journal(root)
    with pytest.raises(CorruptWorldError, match="snapshot does not match the checksum"):
        World.load_from_dir(root)
    problems = verify_dir(root).problems
    assert any("snapshot does not match the checksum" in p for p in problems)
    assert any("journal segment is a symbolic link" in p for p in problems)


def test_a_world_saved_by_the_first_release_loads_steps_and_saves(tmp_path: Path) -> None:
    # Written by agentworld 0.1.0 (commit 4f1c8e6), before saves were locked: a counter
    # instance, a few steps, one queued action, saved twice (generation 2).
    root = tmp_path / "world"
    shutil.copytree(DATA / "v1-counter", root)
    world = World.load_from_dir(root)
    assert read_pointer(root) == 2 and world.pending_action_ids == [5]
    assert verify_dir(root).ok
    world.step_with_modules()
    world.save_to_dir(root)  # it continues the saved world: no overwrite needed
    again = World.load_from_dir(root)
    assert again.state_root() == world.state_root()
    assert "cy" in again.state.agents and verify_dir(root).ok


def test_a_blob_linked_to_a_huge_file_is_a_corrupt_artifact_naming_its_hash(
    tmp_path: Path,
) -> None:
    root = tmp_path / "world"
    world = world_with_agents("ada")
    counter = deploy(world, guest_wasm("counter"))
    world.save_to_dir(root)
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as handle:
        handle.truncate(40 * 1024**3)
    blob = root / "modules" / "blobs" / "sha256" / counter
    blob.unlink()
    blob.symlink_to(huge)
    loaded = World.load_from_dir(root)
    assert list(loaded.corrupt_artifacts()) == [counter]
    assert "symbolic link" in loaded.corrupt_artifacts()[counter]
    assert any(counter in problem for problem in verify_dir(root).problems)
