"""The live execution driver through its Python API: heights, refusals, durability, recovery."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit import WORLD_ID, action, deploy, scenario, tick_manifest
from test_wasmer_executor import PYTHON as WASMER_PYTHON
from test_wasmer_executor import needs_host

from agentworld import World, WorldConfig
from agentworld.canonical import canonical_hash, canonical_json, sha256_hex
from agentworld.commits import GENESIS, Commit, block_hash, make_commit
from agentworld.errors import (
    DivergenceError,
    HeightConflictError,
    HeightFailedError,
    HeightGapError,
    HeightPrunedError,
    LiveDirectoryError,
    LiveDirectoryLockedError,
    LiveError,
    WorldMismatchError,
)
from agentworld.executor import ExecutorConfig
from agentworld.live import ExecutionDriver, live_status, replay
from agentworld.live_dir import LiveDirectory
from agentworld.manager import PluginManager
from agentworld.persistence import journal_files, verify_dir
from agentworld.testing.guests import guest_wasm


def commits(heights: int, world_id: str = WORLD_ID) -> list[Commit]:
    """The livekit scenario as commits with their roots."""
    return [make_commit(c["world_id"], c["height"], c["actions"], c["committed_at_ms"])
            for c in scenario(heights, world_id)]


def tree(root: Path) -> dict[str, str]:
    """Every file under `root` with the hash of its bytes (directories as themselves)."""
    return {str(path.relative_to(root)): (hashlib.sha256(path.read_bytes()).hexdigest()
                                          if path.is_file() else "dir")
            for path in sorted(root.rglob("*"))}


def run(path: Path, heights: int, **options: Any) -> ExecutionDriver:
    """A driver on `path` that has applied the scenario's first `heights` heights."""
    driver = ExecutionDriver(path, world_id=WORLD_ID, **options)
    for commit in commits(heights):
        driver.on_commit(commit)
    return driver


def test_each_height_is_one_step_with_modules_even_without_actions(tmp_path: Path) -> None:
    with run(tmp_path / "live", 14) as driver:
        world = driver.world
        assert world.time == driver.height == 14
        # Height 14 commits nothing, yet both instances ticked in it.
        assert commits(14)[-1].actions == ()
        ticked = sorted(e.data["instance_id"] for e in world.journal
                        if e.time == 14 and e.kind == "module.emitted")
        assert ticked == ["m.tick#1", "m.tick#2"]


def test_block_hashes_chain_from_genesis(tmp_path: Path) -> None:
    with ExecutionDriver(tmp_path / "live", world_id=WORLD_ID) as driver:
        assert (driver.height, driver.block_hash) == (0, GENESIS)
        prev = GENESIS
        for commit in commits(6):
            result = driver.on_commit(commit)
            world = driver.world
            assert result.state_root == world.state_root() == driver.state_root
            assert result.block_hash == block_hash(WORLD_ID, commit.height, prev,
                                                   world.state_root(), len(world.journal))
            prev = result.block_hash


def test_the_driver_holds_one_executor_from_the_registry(tmp_path: Path) -> None:
    plugins = PluginManager(entrypoints=False, environ={})
    with ExecutionDriver(tmp_path / "live", world_id=WORLD_ID, plugins=plugins) as driver:
        assert driver.executor is plugins.shared_executor("wasmtime")
        assert driver.world.executor is driver.executor
    with pytest.raises(Exception, match="no executor named 'nope'"):
        ExecutionDriver(tmp_path / "other", world_id=WORLD_ID, engine="nope")


def test_refusals_change_nothing_on_disk(tmp_path: Path) -> None:
    root = tmp_path / "live"
    driver = run(root, 5)
    before, journal = tree(root), len(driver.world.journal)
    later = commits(8)
    with pytest.raises(HeightGapError, match=r"heights 6\.\.7 are missing") as gap:
        driver.on_commit(later[7])
    assert gap.value.missing == (6, 7)
    with pytest.raises(HeightGapError, match="height 6 is missing"):
        driver.on_commit(later[6])
    with pytest.raises(WorldMismatchError, match="'elsewhere'"):
        driver.on_commit(commits(6, world_id="elsewhere")[5])
    wrong_root = {**later[5].to_json(), "action_root": "0" * 64}
    with pytest.raises(Exception, match="does not match its actions"):
        driver.on_commit(wrong_root)
    other = make_commit(WORLD_ID, 3, [action("x", None, "register_agent", agent_id="zed",
                                             position=[9, 9])])
    with pytest.raises(HeightConflictError, match="height 3 was applied"):
        driver.on_commit(other)
    assert driver.on_commit(later[2]) == driver.recorded(3)  # the recorded answer, not a re-run
    assert tree(root) == before and len(driver.world.journal) == journal
    assert driver.height == 5
    driver.on_commit(later[5])
    driver.close()


def test_a_halting_world_leaves_the_failed_height_unapplied(tmp_path: Path) -> None:
    config = WorldConfig(world_id="halting", halt_on_module_failure=True)
    trap = guest_wasm("unreachable")
    trap_hash = sha256_hex(trap)
    script = [
        [action("reg", None, "register_agent", agent_id="ada", position=[0, 0])],
        [deploy("dep", "ada", "unreachable")],
        # Installed inactive; height 4 activates it and its first tick traps.
        [action("inst", "ada", "module.install", installer_agent_id="ada",
                manifest={**tick_manifest(trap_hash), "kind": "pure",
                          "exports": ["memory", "alloc", "call"]},
                activate=False)],
    ]
    failing = [action("on", "ada", "module.set_active", agent_id="ada",
                      instance_id="m.tick#1", active=True),
               action("move", "ada", "move_agent", agent_id="ada", to=[1, 1])]
    instead = [action("move", "ada", "move_agent", agent_id="ada", to=[1, 1])]
    root = tmp_path / "live"
    driver = ExecutionDriver(root, genesis=World(config=config))
    for height, actions in enumerate(script, 1):
        driver.on_commit(make_commit("halting", height, actions))
    before = tree(root)
    with pytest.raises(HeightFailedError, match=r"height 4 was not applied: halted: m\.tick#1"):
        driver.on_commit(make_commit("halting", 4, failing))
    assert tree(root) == before
    assert (driver.height, len(driver.recorded(3).block_hash)) == (3, 64)
    # The world is the one of height 3 again: the failed attempt left nothing queued or applied.
    result = driver.on_commit(make_commit("halting", 4, instead))
    driver.close()
    reference = ExecutionDriver(tmp_path / "reference", genesis=World(config=config))
    for height, actions in enumerate([*script, instead], 1):
        expected = reference.on_commit(make_commit("halting", height, actions))
    reference.close()
    assert result == expected


def test_checkpoints_retention_and_restart(tmp_path: Path) -> None:
    root = tmp_path / "live"
    driver = run(root, 50, checkpoint_every=8, keep_checkpoints=3)
    final = driver.recorded(50)
    assert driver.checkpoints == [32, 40, 48]
    assert driver.records_from == 32
    with pytest.raises(HeightPrunedError, match="kept from height 32"):
        driver.on_commit(commits(31)[-1])
    journal = list(driver.world.journal)
    driver.close()
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == [
        "000000000032", "000000000040", "000000000048"]
    assert len(list((root / "records").iterdir())) == 50 - 32 + 1
    # A checkpoint is an ordinary saved world, its module store included.
    saved = World.load_from_dir(root / "checkpoints" / "000000000048" / "world")
    assert saved.time == 48 and not saved.missing_artifacts()
    with ExecutionDriver(root, checkpoint_every=8, keep_checkpoints=3) as again:
        assert (again.height, again.block_hash, again.state_root) == (
            50, final.block_hash, final.state_root)
        assert list(again.world.journal) == journal
        for commit in commits(60)[50:]:
            again.on_commit(commit)
    with run(tmp_path / "straight", 60) as straight:
        expected = straight.recorded(60)
    assert live_status(root).block_hash == expected.block_hash
    assert live_status(root).state_root == expected.state_root


def test_a_checkpoint_links_the_journal_segments_of_the_one_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint writes the events since the checkpoint before, not the whole journal:
    across a restart too (the restored world knows the checkpoint it was loaded from)."""
    monkeypatch.setattr("agentworld.persistence.SEGMENT_EVENTS", 8)
    root = tmp_path / "live"
    run(root, 20, checkpoint_every=8, keep_checkpoints=3).close()
    with ExecutionDriver(root, checkpoint_every=8, keep_checkpoints=3) as driver:
        for commit in commits(40)[20:]:
            driver.on_commit(commit)
        assert driver.checkpoints == [24, 32, 40]

    def segments(height: int) -> dict[str, int]:
        world = root / "checkpoints" / f"{height:012d}" / "world"
        return {path.name: path.stat().st_ino for path in journal_files(world)}

    for before, after in ((24, 32), (32, 40)):
        shared = set(segments(before)) & set(segments(after))
        assert len(shared) >= len(segments(before)) - 1  # all but the short tail
        assert all(segments(before)[name] == segments(after)[name] for name in shared)
    for height in (24, 32, 40):
        assert verify_dir(root / "checkpoints" / f"{height:012d}" / "world").ok


def test_archive_keeps_genesis_and_every_record_for_a_replay_from_genesis(tmp_path: Path) -> None:
    root = tmp_path / "live"
    run(root, 30, checkpoint_every=8, keep_checkpoints=2, archive=True).close()
    status = live_status(root)
    assert status.checkpoints == (0, 16, 24) and status.records_from == 1
    report = replay(root)
    assert report.ok and (report.from_height, report.to_height) == (0, 30)


def test_a_second_driver_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "live"
    with ExecutionDriver(root, world_id=WORLD_ID):
        with pytest.raises(LiveDirectoryLockedError, match="another live driver"):
            ExecutionDriver(root)
    driver = ExecutionDriver(root)
    driver.close()
    with pytest.raises(LiveError, match="is closed"):
        driver.on_commit(commits(1)[0])


def test_a_saved_world_becomes_height_zero(tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    world = World(store=str(tmp_path / "store"), config=WorldConfig(world_id="from-saved"))
    wasm = guest_wasm("counter")
    world.submit({"type": "register_agent", "data": {"agent_id": "ada", "position": [0, 0]}})
    world.submit({"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": "ada", "wasm_bytes": wasm, "wasm_hash": sha256_hex(wasm)}})
    world.submit({"type": "module.install", "data": {
        "installer_agent_id": "ada", "manifest": tick_manifest(sha256_hex(wasm))}})
    world.step_with_modules()
    world.save_to_dir(saved)
    genesis = World.load_from_dir(saved)
    root = tmp_path / "live"
    with ExecutionDriver(root, genesis=genesis) as driver:
        assert driver.world.state_root() == genesis.state_root()
        driver.on_commit(make_commit("from-saved", 1, []))
        assert driver.world.time == 2
        assert [e.kind for e in driver.world.journal if e.time == 2] == [
            "module.state_updated", "module.emitted"]
    # The genesis checkpoint holds the artifact itself, not a reference to the other store.
    shutil.rmtree(tmp_path / "store")
    checkpoint = World.load_from_dir(root / "checkpoints" / "000000000000" / "world")
    assert not checkpoint.missing_artifacts()
    with pytest.raises(WorldMismatchError):
        ExecutionDriver(root, world_id="another")
    before = tree(saved)
    with pytest.raises(LiveDirectoryError, match="it is a saved world: use it as the genesis"):
        ExecutionDriver(saved, world_id="from-saved")
    assert tree(saved) == before  # not even a lock file


def _rewrite_record(path: Path, change: Any) -> None:
    document = json.loads(path.read_bytes())
    change(document)
    body = {"commit": document["commit"], "result": document["result"]}
    document["sha256"] = canonical_hash(body)
    path.write_bytes(canonical_json(document) + b"\n")


def test_damage_is_an_error_naming_the_file(tmp_path: Path) -> None:
    root = tmp_path / "live"
    run(root, 20, checkpoint_every=8).close()
    records = root / "records"
    pristine = tmp_path / "pristine"
    shutil.copytree(root, pristine)

    def reset() -> None:
        shutil.rmtree(root)
        shutil.copytree(pristine, root)

    record = records / "000000000018.json"
    record.write_bytes(record.read_bytes().replace(b'"move_agent"', b'"move_agEnt"'))
    with pytest.raises(LiveDirectoryError, match=f"{record}: the record is corrupt"):
        ExecutionDriver(root)
    reset()
    record.write_bytes(record.read_bytes()[:40])
    with pytest.raises(LiveDirectoryError, match=f"{record}: the record is corrupt"):
        ExecutionDriver(root)
    reset()
    record.unlink()
    with pytest.raises(LiveDirectoryError, match=f"{record}: the record of height 18 is missing"):
        ExecutionDriver(root)
    reset()
    # A well-formed record whose recorded hashes are not what its commit gives.
    _rewrite_record(record, lambda doc: doc["result"].update(state_root="ab" * 32))
    with pytest.raises(DivergenceError, match=f"{record}: re-executing height 18"):
        ExecutionDriver(root)
    reset()
    info = root / "checkpoints" / "000000000016" / "checkpoint.json"
    info.write_bytes(info.read_bytes().replace(b'"height":16', b'"height":15'))
    with pytest.raises(LiveDirectoryError, match=f"{info}: describes height 15"):
        ExecutionDriver(root)
    reset()
    journal = journal_files(root / "checkpoints" / "000000000016" / "world")[0]
    journal.write_bytes(journal.read_bytes().replace(b"ada", b"eve", 1))
    with pytest.raises(LiveDirectoryError, match=r"checkpoint .*000000000016 is unusable"):
        ExecutionDriver(root)
    reset()
    with ExecutionDriver(root) as driver:
        assert driver.height == 20


def test_replay_finds_the_first_divergent_height(tmp_path: Path) -> None:
    root = tmp_path / "live"
    run(root, 20, checkpoint_every=8).close()
    assert replay(root).ok
    _rewrite_record(root / "records" / "000000000019.json",
                    lambda doc: doc["result"].update(block_hash="cd" * 32))
    report = replay(root)
    assert not report.ok and report.divergence is not None
    assert report.divergence.height == 19
    assert report.divergence.recorded_block_hash == "cd" * 32
    assert report.divergence.replayed_state_root == report.divergence.recorded_state_root


def test_each_action_is_submitted_with_its_submitter(tmp_path: Path) -> None:
    with ExecutionDriver(tmp_path / "live", world_id=WORLD_ID) as driver:
        driver.on_commit(commits(1)[0])
        driver.on_commit(make_commit(WORLD_ID, 2, [
            action("bob-moves-ada", "bob", "move_agent", agent_id="ada", to=[5, 5]),
            action("ada-moves-ada", "ada", "move_agent", agent_id="ada", to=[6, 6]),
        ]))
        events = [e for e in driver.world.journal if e.time == 2]
        assert [e.kind for e in events] == ["domain.action_rejected", "domain.agent_moved"]
        assert events[0].data["code"] == "actor_mismatch"
        assert driver.world.state.agents["ada"].position == (6, 6)
        # A system-only action from an agent is refused; from the host (null) it is not.
        driver.on_commit(make_commit(WORLD_ID, 3, [
            action("by-ada", "ada", "grant_role", agent_id="ada", role="rule_author"),
            action("by-host", None, "grant_role", agent_id="bob", role="rule_author"),
        ]))
        codes = [e.data.get("code") for e in driver.world.journal if e.time == 3]
        assert codes == ["not_system_actor", None]



@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The record of a height with a deploy (bytes in its payload) and a tick."""
    root = tmp_path_factory.mktemp("records") / "live"
    run(root, 2).close()
    return (root / "records" / "000000000002.json").read_bytes()


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1,
                      max_size=3),
       cut=st.none() | st.integers(0, 10**6))
def test_a_damaged_record_is_refused_by_name(
    recorded: bytes, flips: list[tuple[int, int]], cut: int | None
) -> None:
    damaged = bytearray(recorded)
    for position, value in flips:
        damaged[position % len(damaged)] = value
    if cut is not None:
        damaged = damaged[:cut % (len(damaged) + 1)]
    with tempfile.TemporaryDirectory() as scratch:
        directory = LiveDirectory(scratch)
        directory.records.mkdir()
        directory.record_path(2).write_bytes(recorded)
        original = directory.read_record(2)
        directory.record_path(2).write_bytes(bytes(damaged))
        try:
            record = directory.read_record(2)
        except LiveDirectoryError as exc:
            assert str(directory.record_path(2)) in str(exc)
            return
    # Only a change the checksum cannot see survives: then it is the very same record.
    assert record == original


@needs_host
def test_a_run_recorded_on_wasmtime_replays_on_wasmer(tmp_path: Path) -> None:
    root = tmp_path / "live"
    run(root, 60, checkpoint_every=16, archive=True).close()
    report = replay(root, engine="wasmer",
                    executor_config=ExecutorConfig(options={"python": WASMER_PYTHON}))
    assert report.ok, report.divergence
    assert (report.engine, report.from_height, report.to_height) == ("wasmer", 0, 60)
