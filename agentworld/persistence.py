"""Saving and loading worlds with their module store, crash-safely, one writer at a time.

A world directory holds a pointer file, `world.json`, naming the current *generation*; each save
writes a complete new generation (`generations/<n>/`: journal, snapshot, metadata, all fsynced)
and only then switches the pointer with an atomic rename. A save killed at any moment therefore
leaves the previous generation current, or the new one: never a mixture. Module blobs and
manifests are content-addressed (immutable per hash or `module_id@version`), so they are written
to the module store before the switch; the default store is a `file` store at `<dir>/modules`.

A save holds an exclusive lock on `<dir>/world.lock` and refuses a directory whose world is not
an ancestor of the one being saved, so two writers never lose each other's work. Loading and
`verify_dir` read the directory through one strict reader: files must be the directory's own
regular files (no links, devices or pipes, no names leading elsewhere), and what the reader
finds wrong is raised at once (loading) or collected (verification).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from attrs import frozen

from agentworld.actions import envelope_of, parse_action
from agentworld.apply import apply_event
from agentworld.canonical import canonical_hash, canonical_json, ordered_json, sha256_hex
from agentworld.config import WorldConfig
from agentworld.convert import structure, unstructure
from agentworld.domain import Rejected
from agentworld.durable import LockHeld, fsync_dir, replace_atomic, take_lock, write_new
from agentworld.errors import AgentWorldError, InvalidInputError, StoreError, StoreUnavailableError
from agentworld.gcpause import paused_gc
from agentworld.image import WorldImage
from agentworld.journal import event_to_json
from agentworld.model import Event, WorldState
from agentworld.stateroot import StateRoot, flat_root, state_root
from agentworld.store import ModuleStore

SCHEMA_VERSION = 3
# Schema 1 kept the whole journal in each generation; schema 2 keeps it in shared segments.
# Schema 3 is schema 2 with state roots of format 2 (a hash tree, `agentworld.stateroot`);
# the older schemas recorded format 1 (one hash over the whole state).
READABLE_SCHEMAS = (1, 2, 3)
REGISTRY_SCHEMA_VERSION = 1
FORMAT = "agentworld.world"
REGISTRY_FORMAT = "agentworld.registry"
POINTER = "world.json"
LOCK = "world.lock"
GENERATIONS = "generations"
SEGMENTS = "journal"
LOCAL_STORE = "modules"
SNAPSHOT = "snapshot.json"
JOURNAL = "journal.jsonl"
METADATA = "metadata.json"
SEGMENT_EVENTS = 8192
"""A save adds its new events to the last journal segment while that holds fewer events than
this (rewriting it), and starts a new segment otherwise: a save writes at most this many old
events again, and a journal of n events has about n / SEGMENT_EVENTS segments."""
# The names a world directory may hold; anything else makes a directory "not a world".
_OWN_NAMES = frozenset({POINTER, LOCK, GENERATIONS, SEGMENTS, LOCAL_STORE})
# A journal segment: first event id, event count, the start of its SHA-256.
_SEGMENT_NAME = re.compile(r"(\d{12})-(\d{1,12})-([0-9a-f]{16})\.jsonl")
_EVENT_KEYS = frozenset({"id", "time", "caused_by", "kind", "data"})
# State fields that came with authority (module namespaces, registrants, roles, pinned hooks).
# A snapshot without them was written before: its recorded state root covers the other fields.
_AUTHORITY_FIELDS = ("manifest_registrants", "modules", "roles")
_AUTHORITY_INSTANCE_FIELDS = ("policy_hooks",)
# A file name inside a generation: one plain path segment, never ".", "..", hidden or a path.
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# The pointer and the metadata are small; a bigger file is not one of ours.
_MAX_POINTER_BYTES = 4096
_MAX_METADATA_BYTES = 1 << 20


class PersistenceError(AgentWorldError):
    """Saving or loading a world directory failed."""


class NotAWorldError(PersistenceError):
    """The path is not a saved world (or, for a save, a non-empty directory that is not one)."""


class UnsupportedSchemaError(PersistenceError):
    """A saved world was written in a format version this agentworld cannot read."""


class CorruptWorldError(PersistenceError):
    """A saved world's files disagree with each other or with their recorded checksums."""


class StateRootMismatchError(CorruptWorldError):
    """The loaded state's root differs from the root recorded when the world was saved."""


class CorruptArtifactError(CorruptWorldError):
    """An artifact's stored bytes do not hash to its name; the message names hash and location."""

    def __init__(self, wasm_hash: str, detail: str) -> None:
        self.wasm_hash = wasm_hash
        super().__init__(f"artifact {wasm_hash} is corrupt: {detail}")


class WorldLockedError(PersistenceError):
    """Another writer is saving the same world directory right now."""


class DifferentWorldError(PersistenceError):
    """The directory holds a world the one being saved does not descend from."""


class SaveError(PersistenceError):
    """A save could not be completed (disk full, read-only, a store failure); nothing changed."""


# -- the saved data ---------------------------------------------------------------------------


@frozen(kw_only=True)
class QueuedAction:
    """A queued action as saved: its envelope, or the refusal it will be recorded as, and its
    submitter (None: the world's system actor, and every action queued before submitters)."""

    action_id: int
    action: dict[str, Any] | None = None
    rejected: Rejected | None = None
    submitter: str | None = None


@frozen(kw_only=True)
class Snapshot:
    """The world after its first `journal_length` events, with its clock and action queue."""

    schema_version: int
    journal_length: int
    time: int
    next_action_id: int
    config: WorldConfig
    state: WorldState
    pending: tuple[QueuedAction, ...] = ()


@frozen(kw_only=True)
class Segment:
    """One file of the journal (in `journal/`): `events` consecutive events from `first_id`."""

    name: str
    first_id: int
    events: int
    sha256: str


@frozen(kw_only=True)
class Metadata:
    """What one generation holds, with checksums that bind its files together."""

    schema_version: int
    generation: int
    world_id: str
    time: int
    journal_length: int
    state_root: str
    # "modules" for the directory's own store, otherwise the URI of the world's store.
    store: str
    snapshot: str
    snapshot_sha256: str
    # Schema 1: the generation's own journal file. Schema 2: the journal's segments, in order.
    journal: str | None = None
    journal_sha256: str | None = None
    segments: tuple[Segment, ...] | None = None


@frozen
class SaveMark:
    """What a world knows of a directory it saved to or loaded from: the generation then
    current and the segments holding its first `journal_length` events. While the directory
    still is at that generation, the next save writes only the events after them."""

    root: Path
    generation: int
    segments: tuple[Segment, ...]
    journal_length: int


@frozen
class SavedWorld:
    """One generation of a world directory as the reader found it.

    Loading gets every part or an error; verification gets None for a part it could not read
    (the reason is among its problems).
    """

    root: Path
    generation: int
    metadata: Metadata | None
    snapshot: Snapshot | None
    snapshot_raw: dict[str, Any] | None
    events: list[Event] | None

    @property
    def predates_authority(self) -> bool:
        """Written before authority existed: the state lacks its fields, the roots do not
        cover them."""
        return self.snapshot_raw is not None and _predates_authority(self.snapshot_raw.get("state"))

    def root_of(self) -> Callable[[WorldState], str]:
        """How the state root this generation recorded is computed from a state."""
        if self.predates_authority:
            return pre_authority_root
        if self.metadata is not None and self.metadata.schema_version < 3:
            return flat_root
        return state_root


# -- saving -------------------------------------------------------------------------------------


def _queued_json(action_id: int, action: Any, submitter: str | None) -> QueuedAction:
    if isinstance(action, Rejected):
        return QueuedAction(action_id=action_id, rejected=action, submitter=submitter)
    return QueuedAction(action_id=action_id, action=envelope_of(action), submitter=submitter)


def _predates_authority(raw_state: Any) -> bool:
    return isinstance(raw_state, dict) and not any(f in raw_state for f in _AUTHORITY_FIELDS)


def pre_authority_root(state: WorldState) -> str:
    """The state root as computed before authority existed: without its fields.

    Worlds saved then recorded this root; loading and verifying them checks it.
    """
    data = unstructure(state)
    for name in _AUTHORITY_FIELDS:
        del data[name]
    for instance in data["instances"].values():
        for name in _AUTHORITY_INSTANCE_FIELDS:
            del instance[name]
    return canonical_hash(data)


def wanted_artifacts(state: WorldState) -> list[str]:
    """Every artifact hash the state refers to (deployed or named by a registered manifest)."""
    return sorted(set(state.artifacts) | {m.wasm_hash for m in state.manifests.values()})


def registry_document(state: WorldState) -> bytes:
    """The registry document: every `module_id@version` and every deployed artifact."""
    return canonical_json({
        "format": REGISTRY_FORMAT,
        "schema_version": REGISTRY_SCHEMA_VERSION,
        "modules": [
            {"key": key, "module_id": m.module_id, "version": m.version,
             "manifest_hash": m.manifest_hash(), "wasm_hash": m.wasm_hash}
            for key, m in sorted(state.manifests.items())
        ],
        "artifacts": [
            {"wasm_hash": record.wasm_hash, "size": record.size,
             "publisher_agent_id": record.publisher_agent_id}
            for _, record in sorted(state.artifacts.items())
        ],
    })


def local_store_uri(root: Path) -> str:
    """The URI of a world directory's own module store."""
    return (root / LOCAL_STORE).as_uri()


def _store_ref(image: WorldImage, store: ModuleStore, root: Path) -> str:
    """"modules" when the world's store is (or is copied to) `<root>/modules`, else its URI."""
    uri = store.uri
    if "://" not in uri:  # a bare path is a file store: record it absolutely
        uri = Path(uri).expanduser().absolute().as_uri()
    if image.store_is_dir_local or uri.startswith("memory:") or uri == local_store_uri(root):
        return LOCAL_STORE
    return uri


def _sync_store(image: WorldImage, source: ModuleStore, target: ModuleStore) -> None:
    """Put the world's artifacts, manifests and registry document into `target`."""
    state = image.state
    unusable = image.corrupt_artifacts
    if target is not source:
        for wasm_hash in wanted_artifacts(state):
            # An artifact the world lacks (absent or corrupt) stays missing; present bytes are
            # put again so the target verifies, or repairs, its own copy.
            if wasm_hash not in unusable and source.has_blob(wasm_hash):
                target.put_blob(wasm_hash, source.get_blob(wasm_hash))
    for manifest in state.manifests.values():
        document = canonical_json(manifest.to_json())
        try:
            current: bytes | None = target.get_manifest(manifest.module_id, manifest.version)
        except StoreUnavailableError:
            raise
        except StoreError:
            current = None
        if current != document:
            target.put_manifest(manifest.module_id, manifest.version, document)
    registry = registry_document(state)
    if target.read_registry() != registry:
        target.write_registry(registry)


def _generation_numbers(root: Path) -> list[int]:
    directory = root / GENERATIONS
    if not directory.is_dir():
        return []
    return sorted(int(entry.name) for entry in directory.iterdir() if entry.name.isdigit())


def _check_save_target(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise NotAWorldError(f"{root}: not a directory")
    if not root.is_dir() or (root / POINTER).is_file():
        return
    # Our own names (and the pointer's temp files) may be left by a first save that was killed.
    foreign = sorted(
        entry.name for entry in root.iterdir()
        if entry.name not in _OWN_NAMES and not entry.name.startswith(f".{POINTER}.")
    )
    if foreign:
        raise NotAWorldError(
            f"{root}: refusing to save into a non-empty directory that is not a world "
            f"(it holds {', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''})"
        )


@contextmanager
def _save_lock(root: Path) -> Iterator[None]:
    """Hold the directory's exclusive save lock, or raise `WorldLockedError` at once."""
    path = root / LOCK
    try:
        fd = take_lock(path)
    except LockHeld as held:
        by = f" by process {held.holder}" if held.holder else ""
        raise WorldLockedError(
            f"{root}: another writer is saving this world (the lock {path} is held{by}); "
            f"try again when it has finished"
        ) from None
    except OSError as exc:  # unopenable, or a file system without locks: saving is not safe
        raise SaveError(f"{root}: cannot lock {path}: {exc.strerror or exc}") from exc
    try:
        yield
    finally:
        os.close(fd)


def _different_world(root: Path, saved: Metadata) -> DifferentWorldError:
    return DifferentWorldError(
        f"{root}: refusing to save: the directory holds a world ({saved.world_id!r}, "
        f"{saved.journal_length} events) that this one does not continue: a different world, "
        f"or the same one saved by another writer since this one was loaded; load it again, "
        f"or pass overwrite=True to replace it"
    )


def _reusable_segments(
    root: Path, image: WorldImage, known: SaveMark | None
) -> tuple[tuple[Segment, ...], int]:
    """The directory's journal segments that hold this world's first events, and how many
    events they hold; `DifferentWorldError` when the directory holds a world this one does not
    continue (a different world, or the same one saved meanwhile by another writer).

    With `known`, what this world remembers of the directory: if it is still at that
    generation, its segments are ours without reading them (events are never changed).
    """
    if not os.path.lexists(root / POINTER):
        return (), 0
    try:
        generation = read_pointer(root)
        saved = _read_metadata(root, generation, _Problems(collect=False))
    except PersistenceError as exc:
        raise DifferentWorldError(
            f"{root}: refusing to save over a world that cannot be read ({exc}); "
            f"pass overwrite=True to replace it"
        ) from None
    assert saved is not None
    journal = image.journal
    if saved.world_id != image.config.world_id or saved.journal_length > len(journal):
        raise _different_world(root, saved)
    if (known is not None and known.generation == generation
            and known.segments == saved.segments and known.journal_length <= len(journal)):
        return known.segments, known.journal_length
    if saved.segments is None:  # schema 1: one journal file; rewritten as segments
        if _journal_matches(root, generation, saved, journal):
            return (), 0
        raise _different_world(root, saved)
    for segment in saved.segments:
        start = segment.first_id - 1
        ours = b"".join(event_to_json(event) + b"\n"
                        for event in journal[start:start + segment.events])
        if sha256_hex(ours) != segment.sha256 and not _same_events(
                root / SEGMENTS / segment.name, segment.first_id, ours):
            raise _different_world(root, saved)
    return saved.segments, saved.journal_length


def _journal_matches(root: Path, generation: int, saved: Metadata,
                     journal: Sequence[Event]) -> bool:
    """True when a schema-1 journal holds this world's first events."""
    assert saved.journal is not None
    ours = b"".join(event_to_json(event) + b"\n" for event in journal[:saved.journal_length])
    return sha256_hex(ours) == saved.journal_sha256 or _same_events(
        root / GENERATIONS / f"{generation:08d}" / saved.journal, 1, ours)


def _same_events(path: Path, first_id: int, ours: bytes) -> bool:
    """True when the saved journal file's events encode, today, to `ours`.

    The checksum compares the saved bytes; a journal written by an older encoder may differ in
    bytes while holding the very same events.
    """
    try:
        events = parse_journal(read_world_file(path, "journal"), str(path), first_id)
    except PersistenceError:
        return False
    return b"".join(event_to_json(event) + b"\n" for event in events) == ours


def save_image(
    image: WorldImage,
    path: str | os.PathLike[str],
    *,
    store: ModuleStore,
    open_store: Callable[[str], ModuleStore],
    overwrite: bool = False,
    known: Mapping[Path, SaveMark] | None = None,
    journal_from: str | os.PathLike[str] | None = None,
) -> SaveMark:
    """Write a world image and its module store (`store`; `open_store` opens the directory's
    own) to the directory `path` as a new generation; return what to remember of it.

    `known` is what the world remembers of directories it saved to or loaded from: a save into
    one of them that nobody changed since writes only the events that followed, so its cost
    does not grow with the journal. `journal_from` names another saved world directory whose
    journal segments `known` shows to hold this world's first events: a save into a directory
    holding none of them links those segment files instead of writing them (a live
    checkpoint from the one before it). Raises `WorldLockedError` while another writer saves
    there, `DifferentWorldError` when the directory holds a world this one does not continue
    (unless `overwrite`), and `SaveError` when writing fails; a failed save leaves the
    directory as it was.
    """
    root = Path(path).expanduser().absolute()
    _check_save_target(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SaveError(f"{root}: cannot create the world directory: "
                        f"{exc.strerror or exc}") from exc
    with _save_lock(root):
        reused, covered = ((), 0) if overwrite else _reusable_segments(
            root, image, (known or {}).get(root))
        generation = max([0, *_generation_numbers(root), *_pointed_generation(root)]) + 1
        created: list[Path] = []
        try:
            if not covered and journal_from is not None:
                reused, covered = _link_segments(
                    Path(journal_from).expanduser().absolute(), root, image, known or {},
                    created)
            segments = _write_segments(root, reused, image.journal, covered, created)
            _write_generation(image, store, open_store, root, generation, segments)
        except (OSError, StoreError) as exc:
            _discard_generation(root, generation, created)
            where = f"{exc.filename}: " if isinstance(exc, OSError) and exc.filename else ""
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise SaveError(f"{root}: cannot save the world: {where}{reason}") from exc
        _collect_garbage(root, generation, segments)
    return SaveMark(root, generation, segments, len(image.journal))


def _link_segments(
    source: Path, root: Path, image: WorldImage, known: Mapping[Path, SaveMark],
    created: list[Path],
) -> tuple[tuple[Segment, ...], int]:
    """Hard-link (or copy, across file systems) the journal segments of the saved world in
    `source` into `root` when a save this world remembers wrote or read those very segments;
    return them and how many events they hold ((), 0 when they cannot be used)."""
    try:
        saved = _read_metadata(source, read_pointer(source), _Problems(collect=False))
    except PersistenceError:
        return (), 0
    assert saved is not None
    segments = saved.segments
    if (not segments or saved.world_id != image.config.world_id
            or saved.journal_length > len(image.journal)
            or not any(mark.segments[:len(segments)] == segments for mark in known.values())):
        return (), 0
    directory = root / SEGMENTS
    directory.mkdir(exist_ok=True)
    for segment in segments:
        target = directory / segment.name
        if target.is_file():
            continue
        origin = source / SEGMENTS / segment.name
        try:
            if not stat.S_ISREG(os.lstat(origin).st_mode):
                return (), 0
            os.link(origin, target, follow_symlinks=False)
        except FileNotFoundError:
            return (), 0
        except OSError:  # another file system, or links not allowed: copy
            replace_atomic(target, read_world_file(origin, "journal segment"))
        created.append(target)
    fsync_dir(directory)
    fsync_dir(root)
    return segments, saved.journal_length


def _write_segments(
    root: Path, reused: tuple[Segment, ...], journal: Sequence[Event], covered: int,
    created: list[Path],
) -> tuple[Segment, ...]:
    """The journal's segments after writing the events from `covered` on: appended to the
    last segment while it is short (rewritten as a new file), in new segments otherwise.
    Segment files are never changed: each name says what the file holds."""
    segments = list(reused)
    if covered == len(journal):
        return tuple(segments)
    directory = root / SEGMENTS
    if not directory.is_dir():
        directory.mkdir()
        fsync_dir(root)
    parts: list[bytes] = []
    count, first = 0, covered + 1
    if segments and segments[-1].events < SEGMENT_EVENTS:
        tail = segments[-1]
        data = read_world_file(directory / tail.name, "journal segment")
        if sha256_hex(data) == tail.sha256:  # a damaged tail is left alone, not copied
            segments.pop()
            parts, count, first = [data], tail.events, tail.first_id
    for event in journal[covered:]:
        parts.append(event_to_json(event) + b"\n")
        count += 1
        if count == SEGMENT_EVENTS:
            segments.append(_write_segment(directory, first, count, b"".join(parts), created))
            parts, count, first = [], 0, first + count
    if count:
        segments.append(_write_segment(directory, first, count, b"".join(parts), created))
    return tuple(segments)


def _write_segment(directory: Path, first_id: int, events: int, data: bytes,
                   created: list[Path]) -> Segment:
    digest = sha256_hex(data)
    name = f"{first_id:012d}-{events}-{digest[:16]}.jsonl"
    path = directory / name
    # A file by that name is complete (it was renamed into place) and holds these very bytes.
    if not path.is_file():
        replace_atomic(path, data)
        created.append(path)
    return Segment(name=name, first_id=first_id, events=events, sha256=digest)


def _write_generation(
    image: WorldImage, store: ModuleStore, open_store: Callable[[str], ModuleStore], root: Path,
    generation: int, segments: tuple[Segment, ...],
) -> None:
    # 1. The module store first: its entries are immutable, so writing them early is harmless.
    store_ref = _store_ref(image, store, root)
    target = store
    if store_ref == LOCAL_STORE and target.uri != local_store_uri(root):
        target = open_store(local_store_uri(root))
    _sync_store(image, store, target)

    # 2. A complete new generation, fsynced, that nothing points at yet; its journal is the
    # segments, which are already written.
    generations = root / GENERATIONS
    if not generations.is_dir():
        generations.mkdir()
        fsync_dir(root)
    gen_dir = generations / f"{generation:08d}"
    gen_dir.mkdir()
    snapshot = Snapshot(
        schema_version=SCHEMA_VERSION,
        journal_length=len(image.journal),
        time=image.time,
        next_action_id=image.next_action_id,
        config=image.config,
        state=image.state,
        pending=tuple(_queued_json(*queued) for queued in image.pending),
    )
    snapshot_bytes = ordered_json(unstructure(snapshot))
    metadata = Metadata(
        schema_version=SCHEMA_VERSION,
        generation=generation,
        world_id=image.config.world_id,
        time=image.time,
        journal_length=len(image.journal),
        state_root=image.state_root,
        store=store_ref,
        snapshot=SNAPSHOT,
        snapshot_sha256=sha256_hex(snapshot_bytes),
        segments=segments,
    )
    write_new(gen_dir / SNAPSHOT, snapshot_bytes)
    # The fields of the other layout (schema 1's journal file) are left out, not written null.
    document = {key: value for key, value in unstructure(metadata).items() if value is not None}
    write_new(gen_dir / METADATA, canonical_json(document))
    fsync_dir(gen_dir)
    fsync_dir(generations)

    # 3. The switch: one atomic rename makes the new generation the world.
    pointer = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "generation": generation}
    replace_atomic(root / POINTER, canonical_json(pointer) + b"\n")


def _discard_generation(root: Path, generation: int, created: list[Path]) -> None:
    """Remove what a failed save wrote (its generation, its new segments), unless the pointer
    already names that generation."""
    if _pointed_generation(root) != [generation]:
        shutil.rmtree(root / GENERATIONS / f"{generation:08d}", ignore_errors=True)
        for path in created:
            with suppress(OSError):
                path.unlink()


def _collect_garbage(root: Path, generation: int, segments: tuple[Segment, ...]) -> None:
    """Remove older generations, segments the current one does not use, and stray temp files
    (best-effort: they are garbage now)."""
    for number in _generation_numbers(root):
        if number != generation:
            shutil.rmtree(root / GENERATIONS / f"{number:08d}", ignore_errors=True)
    used = {segment.name for segment in segments}
    directory = root / SEGMENTS
    if directory.is_dir():
        for entry in directory.iterdir():
            if entry.name not in used:
                with suppress(OSError):
                    entry.unlink()
    for entry in root.iterdir():
        if entry.name.startswith(f".{POINTER}."):
            with suppress(OSError):
                entry.unlink()


# -- the one reader -----------------------------------------------------------------------------


class _Problems:
    """Where the reader puts what it finds wrong: raised at once, or collected for a report."""

    def __init__(self, *, collect: bool) -> None:
        self.collect = collect
        self.found: list[str] = []

    def report(self, error: PersistenceError) -> None:
        """Raise `error`, or note it and let the reader go on."""
        if not self.collect:
            raise error
        self.found.append(str(error))


def read_world_file(path: Path, what: str, max_bytes: int | None = None) -> bytes:
    """The bytes of one file of a world directory, which must be a regular file of its own.

    Links are never followed and devices or pipes never opened for reading (a FIFO would block,
    `/dev/zero` never ends); `max_bytes` bounds what is read before anything is read.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise CorruptWorldError(f"{path}: the {what} is missing") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CorruptWorldError(f"{path}: the {what} is a symbolic link; a world "
                                    f"directory's files must be its own") from None
        raise CorruptWorldError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CorruptWorldError(f"{path}: the {what} is not a regular file")
        if max_bytes is not None and info.st_size > max_bytes:
            raise CorruptWorldError(f"{path}: the {what} is {info.st_size} bytes, more than "
                                    f"{max_bytes}")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except OSError as exc:
        raise CorruptWorldError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if max_bytes is not None and len(data) > max_bytes:
        raise CorruptWorldError(f"{path}: the {what} grew beyond {max_bytes} bytes")
    return data


def _own_directory(path: Path, what: str) -> None:
    """Raise unless `path` is a directory of the world itself (not a link leading elsewhere)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise CorruptWorldError(f"{path}: the {what} is missing") from None
    except OSError as exc:
        raise CorruptWorldError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    if stat.S_ISLNK(mode):
        raise CorruptWorldError(f"{path}: the {what} is a symbolic link; a world directory's "
                                f"files must be its own")
    if not stat.S_ISDIR(mode):
        raise CorruptWorldError(f"{path}: the {what} is not a directory")


def _parse_json(data: bytes, path: Path, what: str) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise CorruptWorldError(f"{path}: the {what} is nested too deeply") from None
    except ValueError as exc:
        raise CorruptWorldError(f"{path}: the {what} is not JSON: {exc}") from None


def _check_schema(value: Any, path: Path, what: str) -> None:
    version = value.get("schema_version") if isinstance(value, dict) else None
    if isinstance(version, bool) or version not in READABLE_SCHEMAS:
        raise UnsupportedSchemaError(
            f"{path}: {what} has schema_version {version!r}; this agentworld reads "
            f"schema_version {' or '.join(map(str, READABLE_SCHEMAS))}"
        )


def _pointed_generation(root: Path) -> list[int]:
    try:
        return [read_pointer(root)]
    except PersistenceError:
        return []


def read_pointer(root: Path) -> int:
    """The current generation of the world directory `root`."""
    if not root.is_dir():
        raise NotAWorldError(f"{root}: not a saved world (no such directory)")
    path = root / POINTER
    if not os.path.lexists(path):
        raise NotAWorldError(f"{root}: not a saved world (no {POINTER})")
    pointer = _parse_json(read_world_file(path, "world pointer", _MAX_POINTER_BYTES), path,
                          "world pointer")
    if not isinstance(pointer, dict) or pointer.get("format") != FORMAT:
        raise NotAWorldError(f"{path}: not an agentworld world pointer")
    _check_schema(pointer, path, "the world pointer")
    generation = pointer.get("generation")
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 1:
        raise CorruptWorldError(f"{path}: generation must be a positive integer")
    return generation


def parse_journal(data: bytes, where: str, first_id: int = 1) -> list[Event]:
    """Parse journal lines into events, checking ids run `first_id`, `first_id` + 1, ..."""
    if data and not data.endswith(b"\n"):
        raise CorruptWorldError(f"{where}: the journal's last line is incomplete")
    with paused_gc():
        try:
            # One json.loads over the whole journal is several times faster than one per
            # line. Lines never hold a raw newline (JSON escapes it in strings).
            values = json.loads(b"".join((b"[", data[:-1].replace(b"\n", b","), b"]")))
        except (ValueError, RecursionError):
            values = []
            for number, line in enumerate(data.split(b"\n")[:-1], 1):
                try:
                    values.append(json.loads(line))
                except RecursionError:
                    raise CorruptWorldError(
                        f"{where}: line {number} is nested too deeply") from None
                except ValueError as exc:
                    raise CorruptWorldError(
                        f"{where}: line {number} is not JSON: {exc}") from None
        events: list[Event] = []
        for number, value in enumerate(values, 1):
            event = _event(value, where, number)
            if event.id != number + first_id - 1:
                raise CorruptWorldError(f"{where}: line {number} holds event id {event.id}, "
                                        f"not {number + first_id - 1}")
            events.append(event)
    return events


def _event(value: Any, where: str, number: int) -> Event:
    # The fast path checks exactly what the strict converter would; anything unusual goes
    # through the converter, which names every problem.
    if (
        type(value) is dict
        and value.keys() == _EVENT_KEYS
        and type(value["id"]) is int
        and type(value["time"]) is int
        and type(value["kind"]) is str
        and type(value["data"]) is dict
    ):
        cause = value["caused_by"]
        # Every cause the world writes is None or {"action": id} with an optional submitter;
        # others take the slow path.
        if cause is None or (
            type(cause) is dict and type(cause.get("action")) is int and (
                len(cause) == 1 or (len(cause) == 2 and type(cause.get("submitter")) is str))
        ):
            return Event(value["id"], value["time"], cause, value["kind"], value["data"])
    try:
        return structure(value, Event, "event")
    except InvalidInputError as exc:
        raise CorruptWorldError(f"{where}: line {number}: {exc}") from None


def _read_metadata(root: Path, generation: int, problems: _Problems) -> Metadata | None:
    """The metadata of generation `generation`, checked against the pointer that named it."""
    generations = root / GENERATIONS
    gen_dir = generations / f"{generation:08d}"
    path = gen_dir / METADATA
    try:
        _own_directory(generations, "generations directory")
        _own_directory(gen_dir, f"generation {generation} named by {POINTER}")
        raw = _parse_json(read_world_file(path, "metadata", _MAX_METADATA_BYTES), path,
                          "metadata")
    except CorruptWorldError as exc:
        problems.report(exc)
        return None
    _check_schema(raw, path, "metadata")
    try:
        metadata = structure(raw, Metadata, "world metadata")
    except InvalidInputError as exc:
        problems.report(CorruptWorldError(f"{path}: {exc}"))
        return None
    if metadata.generation != generation:
        # A copy of another generation's files put in place of this one's.
        problems.report(CorruptWorldError(
            f"{path}: the metadata is generation {metadata.generation}'s, but {POINTER} names "
            f"generation {generation}"))
        return None
    problem = _shape_problem(metadata)
    if problem is not None:
        problems.report(CorruptWorldError(f"{path}: {problem}"))
        return None
    return metadata


def _shape_problem(metadata: Metadata) -> str | None:
    """Why the metadata does not describe its schema's layout, or None: file names must name
    the generation's own files or the journal's segments, and segments must run from event 1
    to the journal's length without a gap."""
    names = [(metadata.snapshot, "snapshot")]
    if metadata.schema_version == 1:
        if metadata.journal is None or metadata.journal_sha256 is None or metadata.segments:
            return "schema 1 metadata names one journal file and no segments"
        names.append((metadata.journal, "journal"))
    elif metadata.segments is None or metadata.journal is not None:
        return f"schema {metadata.schema_version} metadata lists journal segments, no journal file"
    for name, what in names:
        if not _FILE_NAME.fullmatch(name):
            return (f"unsafe {what} file name {name!r} (it must name a file of the generation "
                    f"itself)")
    expected = 1
    for segment in metadata.segments or ():
        match = _SEGMENT_NAME.fullmatch(segment.name)
        if (match is None or int(match[1]) != segment.first_id
                or int(match[2]) != segment.events or match[3] != segment.sha256[:16]):
            return f"unsafe or inconsistent journal segment name {segment.name!r}"
        if segment.first_id != expected or segment.events < 1:
            return f"journal segment {segment.name} does not start at event {expected}"
        expected += segment.events
    if metadata.segments is not None and expected != metadata.journal_length + 1:
        return (f"the journal segments hold {expected - 1} events, the metadata says "
                f"{metadata.journal_length}")
    return None


def _read_part(gen_dir: Path, name: str, digest: str, what: str,
               problems: _Problems) -> bytes | None:
    path = gen_dir / name
    try:
        data = read_world_file(path, what)
    except CorruptWorldError as exc:
        problems.report(exc)
        return None
    if sha256_hex(data) != digest:
        problems.report(CorruptWorldError(
            f"{path}: the {what} does not match the checksum recorded in {METADATA}"))
    return data


def _read_generation(root: Path, generation: int, problems: _Problems) -> SavedWorld:
    metadata = _read_metadata(root, generation, problems)
    if metadata is None:
        return SavedWorld(root, generation, None, None, None, None)
    gen_dir = root / GENERATIONS / f"{generation:08d}"
    snap_path = gen_dir / metadata.snapshot
    snapshot_bytes = _read_part(gen_dir, metadata.snapshot, metadata.snapshot_sha256,
                                "snapshot", problems)
    snapshot_raw: dict[str, Any] | None = None
    snapshot: Snapshot | None = None
    if snapshot_bytes is not None:
        try:
            value = _parse_json(snapshot_bytes, snap_path, "snapshot")
            if not isinstance(value, dict):
                raise CorruptWorldError(f"{snap_path}: the snapshot is not a JSON object")
        except CorruptWorldError as exc:
            problems.report(exc)
        else:
            if problems.collect and not isinstance(value.get("schema_version"), int):
                # Verification goes on: the snapshot is damaged, not of another format.
                problems.report(CorruptWorldError(f"{snap_path}: the snapshot has no "
                                                  f"schema_version"))
            else:
                _check_schema(value, snap_path, "the snapshot")
            snapshot_raw = value
            try:
                snapshot = structure(value, Snapshot, "world snapshot")
            except InvalidInputError as exc:
                problems.report(CorruptWorldError(f"{snap_path}: {exc}"))
    events = _read_journal(root, gen_dir, metadata, problems)
    if events is not None and len(events) != metadata.journal_length:
        problems.report(CorruptWorldError(
            f"{gen_dir}: the journal holds {len(events)} events, the metadata says "
            f"{metadata.journal_length}"))
    if snapshot is not None and events is not None and not (
        0 <= snapshot.journal_length <= len(events)
    ):
        problems.report(CorruptWorldError(
            f"{snap_path}: covers {snapshot.journal_length} events of a {len(events)}-event "
            f"journal"))
    return SavedWorld(root, generation, metadata, snapshot, snapshot_raw, events)


def _read_journal(root: Path, gen_dir: Path, metadata: Metadata,
                  problems: _Problems) -> list[Event] | None:
    """The events of the generation's journal file (schema 1) or of its segments, or None."""
    if metadata.segments is None:
        assert metadata.journal is not None and metadata.journal_sha256 is not None
        parts = [(gen_dir, metadata.journal, metadata.journal_sha256, 1, "journal")]
    else:
        try:
            if metadata.segments:  # an empty journal has none, and maybe no directory
                _own_directory(root / SEGMENTS, "journal directory")
        except CorruptWorldError as exc:
            problems.report(exc)
            return None
        parts = [(root / SEGMENTS, segment.name, segment.sha256, segment.first_id,
                  "journal segment") for segment in metadata.segments]
    events: list[Event] = []
    for directory, name, digest, first_id, what in parts:
        data = _read_part(directory, name, digest, what, problems)
        if data is None:
            return None
        try:
            events += parse_journal(data, str(directory / name), first_id)
        except CorruptWorldError as exc:
            problems.report(exc)
            return None
    return events


def journal_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files that hold the journal of the world saved in `path`, in order (its segments,
    or the one journal file of a world saved before segments)."""
    root = Path(path).expanduser().absolute()
    generation = read_pointer(root)
    metadata = _read_metadata(root, generation, _Problems(collect=False))
    assert metadata is not None
    if metadata.segments is None:
        assert metadata.journal is not None
        return [root / GENERATIONS / f"{generation:08d}" / metadata.journal]
    return [root / SEGMENTS / segment.name for segment in metadata.segments]


def _read_current(root: Path, problems: _Problems) -> SavedWorld:
    """Read the generation the pointer names, rereading while a concurrent save moves it."""
    # A concurrent save may switch the pointer and delete the generation being read: reread
    # the pointer and try again while it keeps moving.
    for _ in range(5):
        generation = read_pointer(root)
        attempt = _Problems(collect=problems.collect)
        try:
            saved = _read_generation(root, generation, attempt)
        except CorruptWorldError:
            if read_pointer(root) == generation:
                raise
            continue
        if not attempt.found or read_pointer(root) == generation:
            problems.found += attempt.found
            return saved
    return _read_generation(root, read_pointer(root), problems)


def read_saved(path: str | os.PathLike[str]) -> SavedWorld:
    """Read and check the current generation of a world directory (no state is applied)."""
    return _read_current(Path(path).expanduser().absolute(), _Problems(collect=False))


def _queued_action(entry: QueuedAction) -> tuple[int, Any, str | None]:
    if entry.rejected is not None:
        return entry.action_id, entry.rejected, entry.submitter
    try:
        return entry.action_id, parse_action(entry.action or {}), entry.submitter
    except InvalidInputError as exc:
        # It parsed when it was submitted; a refusal now means the snapshot was edited.
        raise CorruptWorldError(f"queued action {entry.action_id}: {exc}") from None


def saved_store_uri(saved: SavedWorld) -> str:
    """The URI of the module store the saved world names."""
    assert saved.metadata is not None
    if saved.metadata.store == LOCAL_STORE:
        return local_store_uri(saved.root)
    return saved.metadata.store


def check_artifacts(store: ModuleStore, hashes: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Read and verify every present artifact: `(missing hashes, {corrupt hash: why})`.

    A store outage raises `StoreUnavailableError`: an artifact that cannot be fetched right now
    is neither missing nor corrupt.
    """
    missing: list[str] = []
    corrupt: dict[str, str] = {}
    for wasm_hash in hashes:
        if not store.has_blob(wasm_hash):
            missing.append(wasm_hash)
            continue
        try:
            store.get_blob(wasm_hash)
        except StoreUnavailableError:
            raise
        except StoreError as exc:
            corrupt[wasm_hash] = str(CorruptArtifactError(wasm_hash, str(exc)))
    return missing, corrupt


@frozen
class LoadedWorld:
    """A saved world read back: its image, and the module store its directory names."""

    image: WorldImage
    store_uri: str
    # True when that store is the directory's own `modules/` store.
    store_is_dir_local: bool
    # What to remember of the directory for the next save there (None: saved before segments).
    mark: SaveMark | None
    # The root of the image's state, to keep up to date (computed already when the directory
    # recorded a root of format 2: loading checked it).
    root: StateRoot


def read_world(path: str | os.PathLike[str]) -> LoadedWorld:
    """Read a saved world: its files checked, its journal applied to its snapshot, and the
    state root checked against the one recorded (`World.load_from_dir` builds the world)."""
    saved = read_saved(path)
    assert saved.metadata is not None and saved.snapshot is not None and saved.events is not None
    snapshot = saved.snapshot
    state = snapshot.state
    with paused_gc():
        if saved.predates_authority:
            # Its state lacks module owners, registrants and pinned hooks: derive them from the
            # journal (a one-off cost; the next save writes them).
            state = WorldState()
            for event in saved.events[:snapshot.journal_length]:
                _apply_saved(saved, state, event)
            assert saved.snapshot_raw is not None
            if pre_authority_root(state) != canonical_hash(saved.snapshot_raw["state"]):
                raise CorruptWorldError(f"{saved.root}: the snapshot differs from its journal")
        for event in saved.events[snapshot.journal_length:]:
            _apply_saved(saved, state, event)
    tracker = StateRoot(state)
    try:
        root_of = saved.root_of()
        root = tracker.hexdigest() if root_of is state_root else root_of(state)
    except (AgentWorldError, RecursionError) as exc:
        raise CorruptWorldError(f"{saved.root}: the loaded state cannot be hashed: {exc!r}"
                                ) from None
    if root != saved.metadata.state_root:
        raise StateRootMismatchError(
            f"{saved.root}: the loaded state root {root} differs from the saved "
            f"{saved.metadata.state_root}"
        )
    image = WorldImage(
        config=snapshot.config, time=saved.metadata.time, journal=saved.events, state=state,
        state_root=root, next_action_id=snapshot.next_action_id,
        pending=tuple(_queued_action(entry) for entry in snapshot.pending))
    segments = saved.metadata.segments
    mark = (None if segments is None
            else SaveMark(saved.root, saved.generation, segments, len(saved.events)))
    return LoadedWorld(image, saved_store_uri(saved), saved.metadata.store == LOCAL_STORE, mark,
                       tracker)


# -- verification -------------------------------------------------------------------------------


@frozen
class VerifyReport:
    """What `verify_dir` found: every problem, and artifacts that are simply absent."""

    state_root: str | None
    saved_state_root: str | None
    journal_length: int
    problems: tuple[str, ...]
    missing_artifacts: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the journal replays to the saved root and every artifact present is intact."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """The report as JSON data."""
        return {"ok": self.ok, "state_root": self.state_root,
                "saved_state_root": self.saved_state_root,
                "journal_length": self.journal_length, "problems": list(self.problems),
                "missing_artifacts": list(self.missing_artifacts)}


Progress = Callable[[int, int], None]


def _apply_saved(saved: SavedWorld, state: WorldState, event: Event) -> None:
    try:
        apply_event(state, event)
    except (AgentWorldError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise CorruptWorldError(
            f"{saved.root}: journal event {event.id} does not apply to the snapshot: {exc!r}"
        ) from None


def verify_dir(
    path: str | os.PathLike[str],
    progress: Progress | None = None,
    open_store: Callable[[str], ModuleStore] | None = None,
) -> VerifyReport:
    """Replay a saved world from genesis; check roots, checksums and every artifact present."""
    root = Path(path).expanduser().absolute()
    problems = _Problems(collect=True)
    saved = _read_current(root, problems)
    metadata = saved.metadata
    if metadata is None or saved.events is None:
        # Without a journal to replay there is no state to check anything else against.
        saved_root = None if metadata is None else metadata.state_root
        return VerifyReport(None, saved_root, 0, tuple(problems.found), ())
    events = saved.events
    snapshot_raw = saved.snapshot_raw
    snapshot_point = snapshot_raw.get("journal_length") if snapshot_raw is not None else None
    root_of = saved.root_of()
    # The snapshot is compared with the replayed state by the hash of its whole canonical JSON.
    flat_of = pre_authority_root if saved.predates_authority else flat_root
    state = WorldState()
    replayed_root: str | None = None
    for index, event in enumerate(events):
        if index == snapshot_point:
            _compare_snapshot(flat_of(state), snapshot_raw, problems.found)
        try:
            apply_event(state, event)
        except (AgentWorldError, KeyError, TypeError, ValueError, RecursionError) as exc:
            problems.found.append(
                f"journal event {event.id} ({event.kind}) does not apply: {exc!r}")
            break
        if progress is not None and (index + 1) % 4096 == 0:
            progress(index + 1, len(events))
    else:
        if progress is not None:
            progress(len(events), len(events))
        if snapshot_point == len(events):
            _compare_snapshot(flat_of(state), snapshot_raw, problems.found)
        try:
            replayed_root = root_of(state)
        except (AgentWorldError, RecursionError) as exc:
            problems.found.append(f"the replayed state cannot be hashed: {exc!r}")
        if replayed_root is not None and replayed_root != metadata.state_root:
            problems.found.append(f"replaying the journal gives state root {replayed_root}, the "
                                  f"saved root is {metadata.state_root}")
    missing: list[str] = []
    store_uri = saved_store_uri(saved)
    try:
        store = (open_store or _default_open_store)(store_uri)
        missing, corrupt = check_artifacts(store, wanted_artifacts(state))
        problems.found.extend(corrupt.values())
        problems.found.extend(_manifest_problems(store, state))
    except StoreUnavailableError as exc:
        problems.found.append(f"module store {store_uri} is unavailable, so its artifacts "
                              f"could not be checked: {exc}")
    except StoreError as exc:
        problems.found.append(f"module store {store_uri}: {exc}")
    return VerifyReport(replayed_root, metadata.state_root, len(events),
                        tuple(problems.found), tuple(missing))


def _default_open_store(uri: str) -> ModuleStore:
    from agentworld.manager import default_manager

    return default_manager().open_store(uri)


def _compare_snapshot(expected: str, snapshot_raw: Any, problems: list[str]) -> None:
    if not isinstance(snapshot_raw, dict) or "state" not in snapshot_raw:
        problems.append("the snapshot holds no state")
        return
    try:
        actual = canonical_hash(snapshot_raw["state"])
    except (AgentWorldError, RecursionError) as exc:
        problems.append(f"the snapshot's state cannot be encoded: {exc!r}")
        return
    if actual != expected:
        problems.append(f"the snapshot's state (hash {actual}) differs from the journal replayed "
                        f"to event {snapshot_raw.get('journal_length')} (hash {expected})")


def _manifest_problems(store: ModuleStore, state: WorldState) -> list[str]:
    problems = []
    for key, manifest in state.manifests.items():
        try:
            stored = store.get_manifest(manifest.module_id, manifest.version)
        except StoreUnavailableError:
            raise
        except StoreError:
            continue  # a store-less directory: absent manifests are not tampering
        if stored != canonical_json(manifest.to_json()):
            problems.append(f"manifest {key} in the module store differs from the journal's")
    return problems
