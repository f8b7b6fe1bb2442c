"""The saved journal is append-only segments: saving a world that was saved (or loaded) before
writes only its new events, never the older segments again, and worlds saved before segments
still load and save."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agentworld import World
from agentworld.persistence import (
    GENERATIONS,
    METADATA,
    SCHEMA_VERSION,
    SEGMENTS,
    DifferentWorldError,
    journal_files,
    read_pointer,
    verify_dir,
)
from agentworld.world import event_to_json
from worldkit import world_with_agents

DATA = Path(__file__).parent / "data" / "worlds"


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> int:
    """Segments of 4 events, so a small world has several."""
    monkeypatch.setattr("agentworld.persistence.SEGMENT_EVENTS", 4)
    return 4


def move(world: World, agent: str, times: int) -> None:
    for step in range(times):
        world.submit({"type": "move_agent", "data": {"agent_id": agent, "to": [step, 1]}})
        world.step()


def files(root: Path) -> dict[str, tuple[int, int]]:
    """Every segment file with its inode and modification time."""
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns)
            for path in (root / SEGMENTS).iterdir()}


def journal_text(root: Path) -> bytes:
    return b"".join(path.read_bytes() for path in journal_files(root))


def test_a_second_save_writes_only_the_new_events(tmp_path: Path, small_segments: int) -> None:
    world = world_with_agents("ada", "bob", "cy", "dee", "eve")
    move(world, "ada", 12)
    world.save_to_dir(tmp_path)
    before = files(tmp_path)
    full = [path.name for path in journal_files(tmp_path)]
    assert len(full) == 5  # 17 events: four full segments and a short one
    move(world, "bob", 2)
    world.save_to_dir(tmp_path)
    after = files(tmp_path)
    # The four full segments are the very same files; the short one was extended into a new file.
    assert {name: after[name] for name in full[:4]} == {name: before[name] for name in full[:4]}
    assert full[4] not in after and len(after) == 5
    assert journal_text(tmp_path) == b"".join(event_to_json(e) + b"\n" for e in world.journal)
    assert verify_dir(tmp_path).ok
    loaded = World.load_from_dir(tmp_path)
    assert loaded.state_root() == world.state_root()

    # A loaded world saving back also writes only what it added.
    move(loaded, "cy", 3)
    kept = files(tmp_path)
    loaded.save_to_dir(tmp_path)
    unchanged = [name for name in kept if name in files(tmp_path)]
    assert len(unchanged) == 4  # the full segments; the short one was extended again
    assert all(files(tmp_path)[name] == kept[name] for name in unchanged)
    assert World.load_from_dir(tmp_path).state_root() == loaded.state_root()


def test_a_save_with_nothing_new_writes_no_segment(tmp_path: Path, small_segments: int) -> None:
    world = world_with_agents("ada")
    move(world, "ada", 6)
    world.save_to_dir(tmp_path)
    before = files(tmp_path)
    world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [9, 9]}})
    world.save_to_dir(tmp_path)  # a queued action, no new event
    assert files(tmp_path) == before
    assert World.load_from_dir(tmp_path).pending_action_ids == world.pending_action_ids


def test_another_writers_save_in_between_is_never_lost(tmp_path: Path) -> None:
    first = world_with_agents("ada")
    first.save_to_dir(tmp_path)
    second = World.load_from_dir(tmp_path)
    move(second, "ada", 2)
    second.save_to_dir(tmp_path)
    move(first, "ada", 1)
    with pytest.raises(DifferentWorldError, match="does not continue"):
        first.save_to_dir(tmp_path)  # what it remembers of the directory is out of date
    assert World.load_from_dir(tmp_path).state_root() == second.state_root()


def test_the_same_world_in_two_directories_keeps_each_up_to_date(tmp_path: Path,
                                                                  small_segments: int) -> None:
    world = world_with_agents("ada")
    move(world, "ada", 5)
    world.save_to_dir(tmp_path / "a")
    move(world, "ada", 5)
    world.save_to_dir(tmp_path / "b")
    move(world, "ada", 5)
    world.save_to_dir(tmp_path / "a")
    world.save_to_dir(tmp_path / "b")
    for name in ("a", "b"):
        assert World.load_from_dir(tmp_path / name).state_root() == world.state_root()
        assert journal_text(tmp_path / name) == journal_text(tmp_path / "a")


def test_a_world_saved_before_segments_is_saved_as_segments(tmp_path: Path) -> None:
    root = tmp_path / "world"
    shutil.copytree(DATA / "v1-counter", root)
    world = World.load_from_dir(root)
    world.step_with_modules()
    world.save_to_dir(root)
    metadata = json.loads(
        (root / GENERATIONS / f"{read_pointer(root):08d}" / METADATA).read_bytes())
    assert metadata["schema_version"] == SCHEMA_VERSION and "journal" not in metadata
    assert [path.parent.name for path in journal_files(root)] == [SEGMENTS]
    assert verify_dir(root).ok
    assert World.load_from_dir(root).state_root() == world.state_root()


def inodes(root: Path) -> dict[str, int]:
    return {path.name: path.stat().st_ino for path in journal_files(root)}


def test_a_save_to_a_new_directory_links_the_segments_of_one_it_saved(
    tmp_path: Path, small_segments: int
) -> None:
    world = world_with_agents("ada", "bob")
    move(world, "ada", 12)
    world.save_to_dir(tmp_path / "a")
    move(world, "bob", 3)
    world.save_to_dir(tmp_path / "b", journal_from=tmp_path / "a")
    linked, ours = inodes(tmp_path / "a"), inodes(tmp_path / "b")
    full = [name for name in linked if name in ours]
    assert len(full) == 3  # 14 events in a: three full segments shared, the short tail not
    assert all(linked[name] == ours[name] for name in full)
    assert verify_dir(tmp_path / "b").ok
    assert World.load_from_dir(tmp_path / "b").state_root() == world.state_root()
    assert journal_text(tmp_path / "b") == b"".join(event_to_json(e) + b"\n"
                                                    for e in world.journal)


def test_segments_of_a_directory_the_world_does_not_know_are_written_not_linked(
    tmp_path: Path, small_segments: int
) -> None:
    other = world_with_agents("ada", "bob")
    move(other, "bob", 12)
    other.save_to_dir(tmp_path / "other")
    world = world_with_agents("ada", "bob")  # the same first events, but never saved there
    move(world, "bob", 12)
    world.save_to_dir(tmp_path / "b", journal_from=tmp_path / "other")
    assert set(inodes(tmp_path / "b").values()).isdisjoint(inodes(tmp_path / "other").values())
    world.save_to_dir(tmp_path / "c", journal_from=tmp_path / "missing")
    assert verify_dir(tmp_path / "b").ok and verify_dir(tmp_path / "c").ok
