"""The files of a live directory: its marker, its lock, one record per height, checkpoints.

    DIR/live.json                      marker: format, schema_version, world_id
    DIR/lock                           held (flock) by the one driver running on DIR
    DIR/records/000000000042.json      height 42: its commit and its result, checksummed
    DIR/checkpoints/000000000064/      the world after height 64:
        checkpoint.json                  height, block_hash, state_root, journal_len, time
        world/                           an ordinary saved world, module store included

Every file appears whole or not at all: a record is written beside its final name and renamed
(fsynced before and after), a checkpoint is built in a hidden directory and renamed into place,
and an old checkpoint is renamed away before it is deleted. Names starting with "." are
leftovers of a killed writer and are removed when a driver opens the directory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from contextlib import suppress
from pathlib import Path
from typing import Any

from attrs import frozen

from agentworld.canonical import canonical_hash, canonical_json
from agentworld.commits import GENESIS, Commit, CommitResult, parse_commit
from agentworld.convert import structure, unstructure
from agentworld.durable import LockHeld, fsync_dir, replace_atomic, take_lock, write_new
from agentworld.errors import (
    AgentWorldError,
    InvalidInputError,
    LiveDirectoryError,
    LiveDirectoryLockedError,
    LiveError,
)
from agentworld.executor import Executor
from agentworld.manager import PluginManager
from agentworld.persistence import POINTER, local_store_uri
from agentworld.stateroot import ROOT_FORMAT, flat_root
from agentworld.world import World

FORMAT = "agentworld.live"
RECORD_FORMAT = "agentworld.live.record"
CHECKPOINT_FORMAT = "agentworld.live.checkpoint"
SCHEMA_VERSION = 2
# Schema 1 recorded state roots of format 1 (one hash over the whole state), schema 2 records
# format 2 (`agentworld.stateroot`); a directory of schema 1 goes on with records of schema 2.
READABLE_SCHEMAS = (1, 2)
MARKER = "live.json"
LOCK = "lock"
RECORDS = "records"
CHECKPOINTS = "checkpoints"
CHECKPOINT_INFO = "checkpoint.json"
CHECKPOINT_WORLD = "world"
_OWN_NAMES = frozenset({MARKER, LOCK, RECORDS, CHECKPOINTS})
_DIGITS = 12


@frozen(kw_only=True)
class CheckpointInfo:
    """Where a checkpoint stands: its height and the hashes of that height."""

    world_id: str
    height: int
    block_hash: str
    state_root: str
    journal_len: int
    time: int
    # The format of `state_root` (1 in checkpoints of schema 1, which leave it out).
    root_format: int = ROOT_FORMAT


@frozen
class Record:
    """One height as recorded: the commit, what applying it gave, and its root's format."""

    commit: Commit
    result: CommitResult
    root_format: int = ROOT_FORMAT


def root_in_format(world: World, root_format: int) -> str:
    """The state root of `world` in `root_format` (1: what schema 1 recorded)."""
    return world.state_root() if root_format == ROOT_FORMAT else flat_root(world.state)


def _schema(value: Any) -> int | None:
    """The schema version of a document this version reads, or None."""
    version = value.get("schema_version") if isinstance(value, dict) else None
    return version if version in READABLE_SCHEMAS and not isinstance(version, bool) else None


def _name(height: int) -> str:
    return f"{height:0{_DIGITS}d}"


def _height_of(name: str, suffix: str = "") -> int | None:
    if not name.endswith(suffix):
        return None
    stem = name[: len(name) - len(suffix)]
    return int(stem) if len(stem) == _DIGITS and stem.isascii() and stem.isdigit() else None


class LiveDirectory:
    """Reads and writes the files of one live directory (the driver owns the policy)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(path).expanduser().absolute()
        self.records = self.root / RECORDS
        self.checkpoints = self.root / CHECKPOINTS
        self._lock_fd: int | None = None

    # -- the directory as a whole ---------------------------------------------------------------

    def exists(self) -> bool:
        """True when the directory holds a live directory's marker."""
        return (self.root / MARKER).is_file()

    def world_id(self) -> str:
        """The world id the marker names (the directory must exist)."""
        marker = self.root / MARKER
        if not self.root.is_dir():
            raise LiveDirectoryError(f"{self.root}: no such live directory")
        if not marker.is_file():
            hint = (" (it is a saved world: start a live directory from it with --genesis)"
                    if (self.root / POINTER).is_file() else "")
            raise LiveDirectoryError(f"{self.root}: not a live directory (no {MARKER}){hint}")
        value = _read_json(marker, "the live directory marker")
        if (not isinstance(value, dict) or value.get("format") != FORMAT
                or _schema(value) is None
                or not isinstance(value.get("world_id"), str) or not value["world_id"]):
            raise LiveDirectoryError(f"{marker}: not a live directory marker of schema_version "
                                     f"{_versions()}")
        return str(value["world_id"])

    def check_place(self) -> None:
        """Raise unless the path is a live directory or a place to make one (nothing written).

        A place is absent, empty, or holds only what a killed creation left.
        """
        if self.root.exists() and not self.root.is_dir():
            raise LiveDirectoryError(f"{self.root}: not a directory")
        if not self.root.is_dir() or self.exists():
            return
        foreign = sorted(entry.name for entry in self.root.iterdir()
                         if entry.name not in _OWN_NAMES)
        if foreign:
            hint = (" (it is a saved world: use it as the genesis instead)"
                    if POINTER in foreign else "")
            raise LiveDirectoryError(
                f"{self.root}: not a live directory, and not empty (it holds "
                f"{', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}){hint}")

    def create(self, genesis: World, plugins: PluginManager) -> None:
        """Make a new live directory whose height 0 is `genesis` (a checkpoint of it)."""
        self.check_place()
        # Without a marker no record was ever written: leftovers of a killed creation go.
        for part in (self.records, self.checkpoints):
            shutil.rmtree(part, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        self.records.mkdir()
        self.checkpoints.mkdir()
        fsync_dir(self.root)
        scratch = self.checkpoints / f".genesis.{secrets.token_hex(8)}.tmp"
        try:
            self.write_checkpoint(_in_memory(genesis, plugins, scratch), 0, GENESIS)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        replace_atomic(self.root / MARKER, canonical_json({
            "format": FORMAT, "schema_version": SCHEMA_VERSION,
            "world_id": genesis.config.world_id}) + b"\n")

    def lock(self) -> None:
        """Take the directory's exclusive lock for this process, or raise naming the holder."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK
        try:
            fd = take_lock(path)
        except LockHeld as held:
            by = f" (pid {held.holder})" if held.holder else ""
            raise LiveDirectoryLockedError(
                f"{self.root}: another live driver{by} is running on this directory") from None
        except OSError as exc:  # unopenable, or no locks here: one writer cannot be ensured
            raise LiveDirectoryError(f"{self.root}: cannot lock {path}: "
                                     f"{exc.strerror or exc}") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the lock (closing its file releases it)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove_leftovers(self) -> None:
        """Delete what killed writers left: hidden temporary records and checkpoints."""
        for part in (self.records, self.checkpoints):
            if not part.is_dir():
                continue
            for entry in part.iterdir():
                if entry.name.startswith("."):
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        with suppress(OSError):
                            entry.unlink()

    # -- records --------------------------------------------------------------------------------

    def record_path(self, height: int) -> Path:
        """Where the record of `height` lives."""
        return self.records / f"{_name(height)}.json"

    def record_heights(self) -> list[int]:
        """The heights whose records are present, ascending."""
        if not self.records.is_dir():
            return []
        heights = (_height_of(entry.name, ".json") for entry in self.records.iterdir())
        return sorted(height for height in heights if height is not None)

    def write_record(self, commit: Commit, result: CommitResult) -> None:
        """Write the record of one height atomically and durably."""
        body = {"commit": commit.to_json(), "result": result.to_json()}
        document = {"format": RECORD_FORMAT, "schema_version": SCHEMA_VERSION,
                    "sha256": canonical_hash(body), **body}
        replace_atomic(self.record_path(commit.height), canonical_json(document) + b"\n")

    def read_record(self, height: int) -> Record:
        """The record of `height`, checked; a missing or damaged one raises naming the file."""
        path = self.record_path(height)
        value = _read_json(path, "the record")
        schema = _schema(value)
        if (not isinstance(value, dict) or value.get("format") != RECORD_FORMAT or schema is None
                or set(value) != {"format", "schema_version", "sha256", "commit", "result"}):
            raise LiveDirectoryError(f"{path}: not a record of schema_version {_versions()}")
        body = {"commit": value["commit"], "result": value["result"]}
        try:
            checksum = canonical_hash(body)
        except AgentWorldError as exc:
            raise LiveDirectoryError(f"{path}: the record is corrupt: {exc}") from None
        if checksum != value["sha256"]:
            raise LiveDirectoryError(f"{path}: the record is corrupt (its checksum does not "
                                     "match its contents)")
        try:
            commit = parse_commit(value["commit"])
            result = structure(value["result"], CommitResult, "record result")
        except (LiveError, InvalidInputError) as exc:
            raise LiveDirectoryError(f"{path}: the record is corrupt: {exc}") from None
        if commit.height != height or result.height != height:
            raise LiveDirectoryError(f"{path}: the record holds height {commit.height}, not "
                                     f"{height}")
        return Record(commit, result, 1 if schema == 1 else ROOT_FORMAT)

    def prune_records_below(self, height: int) -> None:
        """Delete the records of heights below `height`."""
        for record in self.record_heights():
            if record < height:
                with suppress(FileNotFoundError):
                    self.record_path(record).unlink()

    # -- checkpoints ----------------------------------------------------------------------------

    def checkpoint_path(self, height: int) -> Path:
        """The directory of the checkpoint at `height`."""
        return self.checkpoints / _name(height)

    def checkpoint_heights(self) -> list[int]:
        """The heights of the checkpoints present, ascending."""
        if not self.checkpoints.is_dir():
            return []
        heights = (_height_of(entry.name) for entry in self.checkpoints.iterdir())
        return sorted(height for height in heights if height is not None)

    def write_checkpoint(self, world: World, height: int, block_hash: str) -> None:
        """Save `world` as the checkpoint at `height` (a no-op if that checkpoint exists)."""
        final = self.checkpoint_path(height)
        if final.exists():
            return
        info = CheckpointInfo(world_id=world.config.world_id, height=height,
                              block_hash=block_hash, state_root=world.state_root(),
                              journal_len=len(world.journal), time=world.time)
        temp = self.checkpoints / f".{_name(height)}.{secrets.token_hex(8)}.tmp"
        temp.mkdir()
        before = [known for known in self.checkpoint_heights() if known < height]
        try:
            # The journal segments of the checkpoint before are linked, not written again.
            world.save_to_dir(temp / CHECKPOINT_WORLD, journal_from=(
                self.checkpoint_path(before[-1]) / CHECKPOINT_WORLD if before else None))
            write_new(temp / CHECKPOINT_INFO, canonical_json({
                "format": CHECKPOINT_FORMAT, "schema_version": SCHEMA_VERSION,
                **unstructure(info)}) + b"\n")
            fsync_dir(temp)
            os.rename(temp, final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        fsync_dir(self.checkpoints)

    def checkpoint_info(self, height: int) -> CheckpointInfo:
        """The checked `checkpoint.json` of the checkpoint at `height`."""
        path = self.checkpoint_path(height) / CHECKPOINT_INFO
        value = _read_json(path, "the checkpoint description")
        schema = _schema(value)
        if (not isinstance(value, dict) or value.pop("format", None) != CHECKPOINT_FORMAT
                or schema is None
                or value.get("root_format") != (None if schema == 1 else ROOT_FORMAT)):
            raise LiveDirectoryError(f"{path}: not a checkpoint description of schema_version "
                                     f"{_versions()}")
        del value["schema_version"]
        if schema == 1:
            value["root_format"] = 1
        try:
            info = structure(value, CheckpointInfo, "checkpoint description")
        except InvalidInputError as exc:
            raise LiveDirectoryError(f"{path}: {exc}") from None
        if info.height != height:
            raise LiveDirectoryError(f"{path}: describes height {info.height}, not {height}")
        return info

    def load_checkpoint(
        self, height: int, plugins: PluginManager, executor: Executor
    ) -> tuple[World, CheckpointInfo]:
        """The world of the checkpoint at `height`, in memory, checked against its description.

        The world gets a memory store filled from the checkpoint's own: the running world must
        not write into a checkpoint that will be pruned.
        """
        info = self.checkpoint_info(height)
        saved = self.checkpoint_path(height) / CHECKPOINT_WORLD
        try:
            store = plugins.open_store("memory://")
            world = World.load_from_dir(saved, store=store, executor=executor, plugins=plugins)
            missing = world.missing_artifacts()
            if missing:
                source = plugins.open_store(local_store_uri(saved))
                for wasm_hash in missing:
                    if source.has_blob(wasm_hash):
                        store.put_blob(wasm_hash, source.get_blob(wasm_hash))
        except AgentWorldError as exc:
            raise LiveDirectoryError(f"checkpoint {self.checkpoint_path(height)} is unusable: "
                                     f"{exc}") from None
        found = CheckpointInfo(world_id=world.config.world_id, height=height,
                               block_hash=info.block_hash,
                               state_root=root_in_format(world, info.root_format),
                               journal_len=len(world.journal), time=world.time,
                               root_format=info.root_format)
        if found != info:
            raise LiveDirectoryError(
                f"checkpoint {self.checkpoint_path(height)} is unusable: its world does not match "
                f"its {CHECKPOINT_INFO} ({unstructure(found)} != {unstructure(info)})")
        if world.pending_action_ids:
            raise LiveDirectoryError(f"checkpoint {self.checkpoint_path(height)} is unusable: "
                                     "its world has queued actions")
        return world, info

    def remove_checkpoint(self, height: int) -> None:
        """Delete a checkpoint: renamed away first, so it never lingers half-deleted."""
        trash = self.checkpoints / f".{_name(height)}.{secrets.token_hex(8)}.trash"
        try:
            os.rename(self.checkpoint_path(height), trash)
        except FileNotFoundError:
            return
        fsync_dir(self.checkpoints)
        shutil.rmtree(trash, ignore_errors=True)


def _versions() -> str:
    return " or ".join(map(str, READABLE_SCHEMAS))


def _read_json(path: Path, what: str) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LiveDirectoryError(f"{path}: {what} is missing") from None
    except OSError as exc:
        raise LiveDirectoryError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise LiveDirectoryError(f"{path}: {what} is corrupt (not JSON: {exc})") from None


def _in_memory(genesis: World, plugins: PluginManager, scratch: Path) -> World:
    """`genesis` with its artifacts in a memory store, so that its checkpoint holds them too."""
    if genesis.pending_action_ids:
        raise LiveError("the genesis world has queued actions: step it (or start from a world "
                        "without them) before making it height 0")
    if genesis.store.uri.startswith("memory:"):
        return genesis
    genesis.save_to_dir(scratch)
    store = plugins.open_store("memory://")
    world = World.load_from_dir(scratch, store=store, plugins=plugins)
    for wasm_hash in world.missing_artifacts():
        if genesis.store.has_blob(wasm_hash):
            store.put_blob(wasm_hash, genesis.store.get_blob(wasm_hash))
    return world
