"""The live execution driver: committed heights through `step_with_modules`, durably.

One driver owns one live directory (see `agentworld.live_dir` for its files) and one world. For
each height it checks the commit, submits its actions in order with their submitters, runs
exactly one `step_with_modules` on the one executor it holds, chains the height's `block_hash`
and writes the height's record before answering. Every `checkpoint_every` heights it saves the
whole world as a checkpoint; a restart loads the newest checkpoint and re-executes the records
after it, checking each against the hashes recorded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from attrs import frozen

from agentworld.commits import GENESIS, Commit, CommitAction, CommitResult, block_hash, parse_commit
from agentworld.errors import (
    DivergenceError,
    HeightConflictError,
    HeightFailedError,
    HeightGapError,
    HeightPrunedError,
    InvalidInputError,
    LiveDirectoryError,
    LiveError,
    WorldMismatchError,
)
from agentworld.executor import Executor, ExecutorConfig
from agentworld.live_dir import CheckpointInfo, LiveDirectory, Record, root_in_format
from agentworld.manager import PluginManager, default_manager
from agentworld.stateroot import ROOT_FORMAT
from agentworld.world import World, WorldConfig

DEFAULT_CHECKPOINT_EVERY = 64
DEFAULT_KEEP_CHECKPOINTS = 3


def submit_committed(world: World, action: CommitAction) -> None:
    """Queue one committed action in `world`, as submitted by its submitter."""
    world.submit(action.payload, submitter=action.submitter)


def execute_commit(
    world: World, commit: Commit, prev_block_hash: str, executor: Executor,
    root_format: int = ROOT_FORMAT,
) -> CommitResult:
    """Apply one height to `world`: its actions, then exactly one `step_with_modules`.

    `root_format` 1 gives the state root as live directories of schema 1 recorded it.
    """
    start = len(world.journal)
    for action in commit.actions:
        submit_committed(world, action)
    world.step_with_modules(executor)
    state_root = root_in_format(world, root_format)
    journal_len = len(world.journal)
    return CommitResult(
        height=commit.height,
        block_hash=block_hash(commit.world_id, commit.height, prev_block_hash, state_root,
                              journal_len),
        prev_block_hash=prev_block_hash,
        state_root=state_root,
        journal_len=journal_len,
        events=journal_len - start,
    )


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError("driver option", [f"{name} must be a positive integer"])


class ExecutionDriver:
    """Applies committed heights to the world of one live directory, durably (one writer).

    Opening takes the directory's lock for the driver's lifetime and restores the world: the
    newest checkpoint plus the re-execution of every later record. A directory that does not
    exist yet is created from `genesis` (a world at height 0) or, failing that, from an empty
    world named `world_id`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        engine: str = "wasmtime",
        world_id: str | None = None,
        genesis: World | None = None,
        plugins: PluginManager | None = None,
        executor_config: ExecutorConfig | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        keep_checkpoints: int = DEFAULT_KEEP_CHECKPOINTS,
        archive: bool = False,
    ) -> None:
        _positive("checkpoint_every", checkpoint_every)
        _positive("keep_checkpoints", keep_checkpoints)
        if genesis is not None and world_id is not None and genesis.config.world_id != world_id:
            raise WorldMismatchError(f"the genesis world is {genesis.config.world_id!r}, "
                                     f"not {world_id!r}")
        self._plugins = plugins or default_manager()
        self._executor = self._plugins.shared_executor(engine, executor_config)
        self._every = checkpoint_every
        self._keep = keep_checkpoints
        self._archive = archive
        self._dir = LiveDirectory(path)
        self._world: World | None = None
        self._closed = False
        self._height = 0
        self._block_hash = GENESIS
        self._state_root = ""
        self._records_from = 1
        self._checkpoints: list[int] = []
        self._dir.check_place()
        self._dir.lock()
        try:
            if not self._dir.exists():
                if genesis is None and world_id is None:
                    raise LiveDirectoryError(
                        f"{self._dir.root}: not a live directory (give a world id or a genesis "
                        "world to create one)")
                self._dir.create(genesis or World(config=WorldConfig(world_id=world_id or "")),
                                 self._plugins)
            self.world_id = self._dir.world_id()
            wanted = genesis.config.world_id if genesis is not None else world_id
            if wanted is not None and wanted != self.world_id:
                raise WorldMismatchError(f"{self._dir.root} runs world {self.world_id!r}, "
                                         f"not {wanted!r}")
            self._restore()
        except BaseException:
            self._dir.unlock()
            raise

    # -- reading --------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The live directory."""
        return str(self._dir.root)

    @property
    def executor(self) -> Executor:
        """The one executor every height runs on."""
        return self._executor

    @property
    def world(self) -> World:
        """The world at the current height (read it; changing it breaks the chain)."""
        return self._ensure_world()

    @property
    def height(self) -> int:
        """The last applied height (0 before the first commit)."""
        self._ensure_world()
        return self._height

    @property
    def block_hash(self) -> str:
        """The block hash of the last applied height ("genesis" at height 0)."""
        self._ensure_world()
        return self._block_hash

    @property
    def state_root(self) -> str:
        """The state root at the last applied height."""
        self._ensure_world()
        return self._state_root

    @property
    def checkpoints(self) -> list[int]:
        """The heights of the checkpoints kept, ascending."""
        return list(self._checkpoints)

    @property
    def records_from(self) -> int:
        """The lowest height whose record is kept (records run from here to `height`)."""
        return self._records_from

    # -- applying -------------------------------------------------------------------------------

    def on_commit(self, commit: Commit | Mapping[str, Any]) -> CommitResult:
        """Apply the next height, or answer for an applied one.

        A commit for an applied height with the same `action_root` returns the recorded result
        without executing anything; with another root it is a `HeightConflictError`. A height
        beyond the next is a `HeightGapError` naming the missing heights, another world's
        commit a `WorldMismatchError`. None of these changes anything on disk. If executing
        the height raises (a module halt, a store outage), `HeightFailedError` is raised and the
        height is not applied.
        """
        commit = parse_commit(commit)
        if commit.world_id != self.world_id:
            raise WorldMismatchError(f"commit for height {commit.height} names world "
                                     f"{commit.world_id!r}; this driver runs {self.world_id!r}")
        world = self._ensure_world()
        if commit.height <= self._height:
            return self._recorded(commit)
        if commit.height > self._height + 1:
            first, last = self._height + 1, commit.height - 1
            span = f"height {first} is" if first == last else f"heights {first}..{last} are"
            raise HeightGapError(f"commit for height {commit.height} arrived, but {span} "
                                 f"missing (the driver stands at height {self._height})",
                                 (first, last))
        try:
            result = execute_commit(world, commit, self._block_hash, self._executor)
        except Exception as exc:
            # The world may hold part of the height; the next call rebuilds it from disk.
            self._world = None
            raise HeightFailedError(f"height {commit.height} was not applied: {exc}") from exc
        except BaseException:
            self._world = None
            raise
        try:
            self._dir.write_record(commit, result)
        except BaseException:
            self._world = None  # whether the record landed is for the disk to say
            raise
        self._advance(result)
        if result.height % self._every == 0:
            self.checkpoint()
        return result

    def recorded(self, height: int) -> CommitResult:
        """The recorded result of an applied height whose record is still kept."""
        if not 1 <= height <= self.height:
            raise InvalidInputError("height", [f"height {height} is not applied (the driver "
                                               f"stands at height {self._height})"])
        return self._record(height).result

    def checkpoint(self) -> None:
        """Checkpoint the current height (unless it has one), then apply retention.

        Retention keeps the newest `keep_checkpoints` checkpoints and the records from the oldest
        of them on (with `archive`, the genesis checkpoint and every record too).
        """
        world = self._ensure_world()
        if self._height not in self._checkpoints:
            try:
                self._dir.write_checkpoint(world, self._height, self._block_hash)
            except Exception as exc:
                raise LiveDirectoryError(f"height {self._height} is applied, but writing its "
                                         f"checkpoint failed: {exc}") from exc
            self._checkpoints.append(self._height)
        self._retain()

    def close(self) -> None:
        """Release the directory's lock; the driver is unusable afterwards."""
        self._closed = True
        self._world = None
        self._dir.unlock()

    def __enter__(self) -> ExecutionDriver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _advance(self, result: CommitResult) -> None:
        self._height = result.height
        self._block_hash = result.block_hash
        self._state_root = result.state_root

    def _recorded(self, commit: Commit) -> CommitResult:
        record = self._record(commit.height)
        if record.commit.action_root != commit.action_root:
            raise HeightConflictError(
                f"height {commit.height} was applied with action_root "
                f"{record.commit.action_root}; this commit has {commit.action_root}")
        return record.result

    def _record(self, height: int) -> Record:
        if height < self._records_from:
            raise HeightPrunedError(
                f"height {height} was applied, but its record is no longer kept (records "
                f"are kept from height {self._records_from}), so this commit cannot be compared")
        return self._dir.read_record(height)

    def _ensure_world(self) -> World:
        if self._closed:
            raise LiveError(f"the driver of {self._dir.root} is closed")
        if self._world is None:
            self._restore()
        assert self._world is not None
        return self._world

    def _restore(self) -> None:
        """Rebuild the world from disk: the newest checkpoint, then every later record."""
        directory = self._dir
        directory.remove_leftovers()
        self._checkpoints = directory.checkpoint_heights()
        if not self._checkpoints:
            raise LiveDirectoryError(f"{directory.checkpoints}: no checkpoint is left (the live "
                                     "directory is damaged)")
        base = self._checkpoints[-1]
        world, info = directory.load_checkpoint(base, self._plugins, self._executor)
        if info.world_id != self.world_id:
            raise LiveDirectoryError(f"checkpoint {directory.checkpoint_path(base)} holds world "
                                     f"{info.world_id!r}, not {self.world_id!r}")
        present = set(directory.record_heights())
        top = max(max(present, default=base), base)
        for height in range(base + 1, top + 1):
            if height not in present:
                raise LiveDirectoryError(
                    f"{directory.record_path(height)}: the record of height {height} is missing "
                    f"(restarting from checkpoint {base} needs every record up to {top})")
        if base in present:
            _check_agrees(directory.read_record(base), info, str(directory.checkpoint_path(base)))
        self._world = None
        self._height, self._block_hash, self._state_root = base, info.block_hash, info.state_root
        for height in range(base + 1, top + 1):
            record = directory.read_record(height)
            where = str(directory.record_path(height))
            if record.commit.world_id != self.world_id:
                raise LiveDirectoryError(f"{where}: the record is for world "
                                         f"{record.commit.world_id!r}")
            result = execute_commit(world, record.commit, self._block_hash, self._executor,
                                    record.root_format)
            if result != record.result:
                raise DivergenceError(
                    f"{where}: re-executing height {height} gives block_hash {result.block_hash} "
                    f"and state_root {result.state_root}; the record says "
                    f"{record.result.block_hash} and {record.result.state_root}")
            self._advance(result)
        self._records_from = top + 1
        while self._records_from - 1 in present:
            self._records_from -= 1
        self._world = world
        if self._height % self._every == 0:
            self.checkpoint()
        else:
            self._retain()

    def _retain(self) -> None:
        """Apply retention: the newest checkpoints (and, archiving, genesis) and their records."""
        keep = self._checkpoints[-self._keep:]
        if self._archive and 0 in self._checkpoints and 0 not in keep:
            keep = [0, *keep]
        for height in self._checkpoints:
            if height not in keep:
                self._dir.remove_checkpoint(height)
        self._checkpoints = keep
        if not self._archive and keep[0] > self._records_from:
            self._dir.prune_records_below(keep[0])
            self._records_from = keep[0]


def _check_agrees(record: Record, info: CheckpointInfo, where: str) -> None:
    # A record of schema 1 may sit beside a checkpoint written later of the same height: their
    # roots are of different formats, and the block hash (which covers the record's) decides.
    same_format = record.root_format == info.root_format
    if (record.result.block_hash != info.block_hash
            or (same_format and record.result.state_root != info.state_root)):
        raise LiveDirectoryError(
            f"{where}: the checkpoint's block_hash {info.block_hash} and state_root "
            f"{info.state_root} differ from the record of its height "
            f"({record.result.block_hash}, {record.result.state_root})")


# -- replay and status --------------------------------------------------------------------------


@frozen(kw_only=True)
class Divergence:
    """The first height whose re-execution disagrees with its record."""

    height: int
    record: str
    recorded_block_hash: str
    recorded_state_root: str
    replayed_block_hash: str | None
    replayed_state_root: str | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The divergence as JSON data."""
        return {"height": self.height, "record": self.record,
                "recorded": {"block_hash": self.recorded_block_hash,
                             "state_root": self.recorded_state_root},
                "replayed": {"block_hash": self.replayed_block_hash,
                             "state_root": self.replayed_state_root},
                "error": self.error}


@frozen(kw_only=True)
class ReplayReport:
    """What `replay` found: the heights it re-executed and the first divergence, if any."""

    world_id: str
    engine: str
    from_height: int
    to_height: int
    divergence: Divergence | None

    @property
    def ok(self) -> bool:
        """True when every re-executed height gave the recorded hashes."""
        return self.divergence is None

    def to_json(self) -> dict[str, Any]:
        """The report as JSON data."""
        return {"ok": self.ok, "world_id": self.world_id, "engine": self.engine,
                "from_height": self.from_height, "to_height": self.to_height,
                "divergence": None if self.divergence is None else self.divergence.to_json()}


def replay(
    path: str | os.PathLike[str],
    *,
    engine: str = "wasmtime",
    plugins: PluginManager | None = None,
    executor_config: ExecutorConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Re-execute a live directory's records in a scratch world and compare every height.

    The replay starts at genesis when the directory still holds it with every record after it,
    otherwise at the oldest checkpoint from which every later record is kept. Nothing in the
    directory is written. `progress(done, total)` is called after each height.
    """
    directory = LiveDirectory(path)
    world_id = directory.world_id()
    plugins = plugins or default_manager()
    executor = plugins.shared_executor(engine, executor_config)
    checkpoints = directory.checkpoint_heights()
    records = directory.record_heights()
    present = set(records)
    top = max(max(records, default=0), max(checkpoints, default=0))
    first = top + 1
    while first - 1 in present:
        first -= 1
    usable = [height for height in checkpoints if height >= first - 1]
    if not usable:
        raise LiveDirectoryError(f"{directory.root}: no checkpoint from which every later record "
                                 f"is kept (records run from height {first} to {top})")
    base = usable[0]
    world, info = directory.load_checkpoint(base, plugins, executor)
    prev = info.block_hash
    for height in range(base + 1, top + 1):
        record = directory.read_record(height)
        where = str(directory.record_path(height))
        try:
            result: CommitResult | None = execute_commit(world, record.commit, prev, executor,
                                                         record.root_format)
            error = None
        except Exception as exc:
            result, error = None, f"{type(exc).__name__}: {exc}"
        if result is None or (result.block_hash, result.state_root) != (
                record.result.block_hash, record.result.state_root):
            divergence = Divergence(
                height=height, record=where, recorded_block_hash=record.result.block_hash,
                recorded_state_root=record.result.state_root,
                replayed_block_hash=None if result is None else result.block_hash,
                replayed_state_root=None if result is None else result.state_root, error=error)
            return ReplayReport(world_id=world_id, engine=engine, from_height=base,
                                to_height=height, divergence=divergence)
        prev = result.block_hash
        if progress is not None:
            progress(height - base, top - base)
    return ReplayReport(world_id=world_id, engine=engine, from_height=base, to_height=top,
                        divergence=None)


@frozen(kw_only=True)
class LiveStatus:
    """Where a live directory stands, read from its files (nothing is executed)."""

    path: str
    world_id: str
    height: int
    block_hash: str
    state_root: str
    checkpoints: tuple[int, ...]
    records: int
    records_from: int | None

    def to_json(self) -> dict[str, Any]:
        """The status as JSON data."""
        return {"path": self.path, "world_id": self.world_id, "height": self.height,
                "block_hash": self.block_hash, "state_root": self.state_root,
                "newest_checkpoint": self.checkpoints[-1] if self.checkpoints else None,
                "checkpoints": list(self.checkpoints), "records": self.records,
                "records_from": self.records_from}


def live_status(path: str | os.PathLike[str]) -> LiveStatus:
    """Height, hashes, checkpoints and records of a live directory."""
    directory = LiveDirectory(path)
    world_id = directory.world_id()
    checkpoints = directory.checkpoint_heights()
    records = directory.record_heights()
    if records and records[-1] >= max(checkpoints, default=0):
        result = directory.read_record(records[-1]).result
        height, block, state_root = result.height, result.block_hash, result.state_root
    elif checkpoints:
        info = directory.checkpoint_info(checkpoints[-1])
        height, block, state_root = info.height, info.block_hash, info.state_root
    else:
        raise LiveDirectoryError(f"{directory.checkpoints}: no checkpoint is left (the live "
                                 "directory is damaged)")
    return LiveStatus(path=str(directory.root), world_id=world_id, height=height,
                      block_hash=block, state_root=state_root, checkpoints=tuple(checkpoints),
                      records=len(records), records_from=records[0] if records else None)
