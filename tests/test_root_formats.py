"""Directories written before state roots became a hash tree (root format 1, one SHA-256 over
the whole state) still load, verify, replay and go on (tests/data/worlds/v2-*, written by
commit 5b2ae4e; see the README there)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from livekit import scenario
from test_state_root import reference_root

from agentworld import World
from agentworld.commits import make_commit
from agentworld.live import ExecutionDriver, live_status, replay
from agentworld.live_dir import LiveDirectory
from agentworld.persistence import GENERATIONS, METADATA, read_pointer, verify_dir
from agentworld.stateroot import flat_root
from golden_scenarios import GOLDEN_DIR

WORLDS = Path(__file__).parent / "data" / "worlds"


def copy_of(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(WORLDS / name, tmp_path / name))


def metadata(path: Path) -> dict[str, object]:
    found: dict[str, object] = json.loads(metadata_file(path).read_bytes())
    return found


def metadata_file(path: Path) -> Path:
    return path / GENERATIONS / f"{read_pointer(path):08d}" / METADATA


def test_a_world_saved_with_flat_roots_loads_verifies_and_saves_with_tree_roots(
    tmp_path: Path,
) -> None:
    path = copy_of("v2-modules", tmp_path)
    old = metadata(path)
    assert old["schema_version"] == 2
    report = verify_dir(path)
    assert report.ok, report.problems
    assert report.state_root == old["state_root"]

    world = World.load_from_dir(path)
    assert flat_root(world.state) == old["state_root"]
    # The world now has the tree root: the golden modules scenario's, which wrote it.
    assert world.state_root() == reference_root(world.state) != old["state_root"]
    assert world.state_root() + "\n" == (GOLDEN_DIR / "modules.root").read_text()

    world.save_to_dir(path)
    new = metadata(path)
    assert (new["schema_version"], new["state_root"]) == (3, world.state_root())
    report = verify_dir(path)
    assert report.ok and report.state_root == world.state_root(), report.problems
    assert World.load_from_dir(path).state_root() == world.state_root()


def test_a_flat_root_that_does_not_match_is_still_caught(tmp_path: Path) -> None:
    path = copy_of("v2-modules", tmp_path)
    file = metadata_file(path)
    document = json.loads(file.read_bytes())
    document["state_root"] = "ab" * 32
    file.write_text(json.dumps(document))
    report = verify_dir(path)
    assert not report.ok and any("ab" * 32 in problem for problem in report.problems)


def _commits(first: int, last: int) -> list[object]:
    return [make_commit(c["world_id"], c["height"], c["actions"], c["committed_at_ms"])
            for c in scenario(last)[first - 1:]]


def test_a_live_directory_of_flat_roots_replays_and_goes_on(tmp_path: Path) -> None:
    path = copy_of("v2-live", tmp_path)
    assert replay(path).ok
    assert live_status(path).height == 44
    with ExecutionDriver(path, checkpoint_every=8, keep_checkpoints=2) as driver:
        assert driver.height == 44
        for commit in _commits(45, 50):
            driver.on_commit(commit)  # type: ignore[arg-type]
        world_root = driver.world.state_root()
        assert driver.state_root == world_root == reference_root(driver.world.state)
    records = LiveDirectory(path)
    assert [records.read_record(h).root_format for h in (44, 45)] == [1, 2]
    assert json.loads(records.record_path(45).read_bytes())["schema_version"] == 2
    assert records.checkpoint_info(48).root_format == 2
    # Records of both formats replay; a restart goes on from the new checkpoint.
    report = replay(path)
    assert report.ok and report.to_height == 50, report.divergence
    with ExecutionDriver(path, checkpoint_every=8, keep_checkpoints=2) as driver:
        assert (driver.height, driver.state_root) == (50, world_root)


def test_a_checkpoint_written_now_beside_a_flat_record_of_its_height(tmp_path: Path) -> None:
    """An old driver recorded height 40 and died before checkpointing it: the new one writes
    the checkpoint (a tree root) beside the record (a flat root), and both agree."""
    path = copy_of("v2-live", tmp_path)
    directory = LiveDirectory(path)
    shutil.rmtree(directory.checkpoint_path(40))
    for height in range(41, 45):
        directory.record_path(height).unlink()
    with ExecutionDriver(path, checkpoint_every=8, keep_checkpoints=2) as driver:
        assert driver.height == 40
    assert directory.checkpoint_info(40).root_format == 2
    assert directory.read_record(40).root_format == 1
    with ExecutionDriver(path, checkpoint_every=8, keep_checkpoints=2) as driver:
        assert driver.height == 40
        driver.on_commit(_commits(41, 41)[0])  # type: ignore[arg-type]
    assert replay(path).ok
