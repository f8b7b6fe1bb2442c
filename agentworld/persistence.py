"""Saving and loading worlds with their module store, crash-safely (SPEC §10).

A world directory holds a pointer file, `world.json`, naming the current *generation*; each save
writes a complete new generation (`generations/<n>/`: journal, snapshot, metadata, all fsynced)
and only then switches the pointer with an atomic rename. A save killed at any moment therefore
leaves the previous generation current, or the new one: never a mixture. Module blobs and
manifests are content-addressed (immutable per hash or `module_id@version`), so they are written
to the module store before the switch; the default store is a `file` store at `<dir>/modules`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

from attrs import frozen

from agentworld.actions import envelope_of, parse_action
from agentworld.apply import apply_event
from agentworld.canonical import canonical_hash, canonical_json, ordered_json, sha256_hex
from agentworld.convert import structure, unstructure
from agentworld.domain import Rejected
from agentworld.durable import fsync_dir, replace_atomic, write_new
from agentworld.errors import AgentWorldError, InvalidInputError, StoreError
from agentworld.model import Event, WorldState
from agentworld.store import ModuleStore
from agentworld.world import World, WorldConfig, event_to_json

SCHEMA_VERSION = 1
FORMAT = "agentworld.world"
REGISTRY_FORMAT = "agentworld.registry"
POINTER = "world.json"
GENERATIONS = "generations"
LOCAL_STORE = "modules"
SNAPSHOT = "snapshot.json"
JOURNAL = "journal.jsonl"
METADATA = "metadata.json"
# The names a world directory may hold; anything else makes a directory "not a world".
_OWN_NAMES = frozenset({POINTER, GENERATIONS, LOCAL_STORE})
_EVENT_KEYS = frozenset({"id", "time", "caused_by", "kind", "data"})
# State fields that came with authority (module namespaces, registrants, roles, pinned hooks).
# A snapshot without them was written before: its recorded state root covers the other fields.
_AUTHORITY_FIELDS = ("manifest_registrants", "modules", "roles")
_AUTHORITY_INSTANCE_FIELDS = ("policy_hooks",)


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
    journal: str
    journal_sha256: str


@frozen
class SavedWorld:
    """One generation of a world directory, read and checked but not yet applied."""

    root: Path
    generation: int
    metadata: Metadata
    snapshot: Snapshot
    snapshot_state_root: str
    events: list[Event]
    # Written before authority existed: the state lacks its fields, the roots do not cover them.
    predates_authority: bool = False


# -- durable file writing -----------------------------------------------------------------------


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
        "schema_version": SCHEMA_VERSION,
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


def _store_ref(world: World, root: Path) -> str:
    """"modules" when the world's store is (or is copied to) `<root>/modules`, else its URI."""
    store = world.store
    uri = store.uri
    if "://" not in uri:  # a bare path is a file store: record it absolutely
        uri = Path(uri).expanduser().absolute().as_uri()
    if world._store_is_dir_local or uri.startswith("memory:") or uri == local_store_uri(root):
        return LOCAL_STORE
    return uri


def _sync_store(world: World, target: ModuleStore) -> None:
    """Put the world's artifacts, manifests and registry document into `target`."""
    source = world.store
    state = world.state
    if target is not source:
        for wasm_hash in wanted_artifacts(state):
            # An artifact the world already lacks stays missing; corrupt source bytes raise.
            # Putting present bytes again lets the target verify, or repair, its own copy.
            if source.has_blob(wasm_hash):
                target.put_blob(wasm_hash, source.get_blob(wasm_hash))
    for manifest in state.manifests.values():
        document = canonical_json(manifest.to_json())
        try:
            current: bytes | None = target.get_manifest(manifest.module_id, manifest.version)
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


def save_world(world: World, path: str | os.PathLike[str]) -> None:
    """Write `world` and its module store to the directory `path` as a new generation."""
    root = Path(path).expanduser().absolute()
    _check_save_target(root)
    root.mkdir(parents=True, exist_ok=True)

    # 1. The module store first: its entries are immutable, so writing them early is harmless.
    store_ref = _store_ref(world, root)
    target = world.store
    if store_ref == LOCAL_STORE and target.uri != local_store_uri(root):
        target = world.plugins.open_store(local_store_uri(root))
    _sync_store(world, target)

    # 2. A complete new generation, fsynced, that nothing points at yet.
    generation = max([0, *_generation_numbers(root), *_pointed_generation(root)]) + 1
    generations = root / GENERATIONS
    if not generations.is_dir():
        generations.mkdir()
        fsync_dir(root)
    gen_dir = generations / f"{generation:08d}"
    gen_dir.mkdir()
    next_action_id, pending = world._queue()
    journal = b"".join(event_to_json(event) + b"\n" for event in world.journal)
    snapshot = Snapshot(
        schema_version=SCHEMA_VERSION,
        journal_length=len(world.journal),
        time=world.time,
        next_action_id=next_action_id,
        config=world.config,
        state=world.state,
        pending=tuple(_queued_json(*queued) for queued in pending),
    )
    snapshot_bytes = ordered_json(unstructure(snapshot))
    metadata = Metadata(
        schema_version=SCHEMA_VERSION,
        generation=generation,
        world_id=world.config.world_id,
        time=world.time,
        journal_length=len(world.journal),
        state_root=world.state_root(),
        store=store_ref,
        snapshot=SNAPSHOT,
        snapshot_sha256=sha256_hex(snapshot_bytes),
        journal=JOURNAL,
        journal_sha256=sha256_hex(journal),
    )
    write_new(gen_dir / JOURNAL, journal)
    write_new(gen_dir / SNAPSHOT, snapshot_bytes)
    write_new(gen_dir / METADATA, canonical_json(unstructure(metadata)))
    fsync_dir(gen_dir)
    fsync_dir(generations)

    # 3. The switch: one atomic rename makes the new generation the world.
    pointer = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "generation": generation}
    replace_atomic(root / POINTER, canonical_json(pointer) + b"\n")

    # 4. Older generations and stray temp files are garbage now; removing them is best-effort.
    for number in _generation_numbers(root):
        if number != generation:
            shutil.rmtree(generations / f"{number:08d}", ignore_errors=True)
    for entry in root.iterdir():
        if entry.name.startswith(f".{POINTER}."):
            with suppress(OSError):
                entry.unlink()


# -- reading ------------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorruptWorldError(f"{path}: {what} is missing") from None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CorruptWorldError(f"{path}: {what} is not JSON: {exc}") from None


def _check_schema(value: Any, path: Path, what: str) -> None:
    version = value.get("schema_version") if isinstance(value, dict) else None
    if version != SCHEMA_VERSION:
        raise UnsupportedSchemaError(
            f"{path}: {what} has schema_version {version!r}; this agentworld reads "
            f"schema_version {SCHEMA_VERSION}"
        )


def _pointed_generation(root: Path) -> list[int]:
    try:
        pointer = json.loads((root / POINTER).read_bytes())
    except (OSError, ValueError):
        return []
    generation = pointer.get("generation") if isinstance(pointer, dict) else None
    return [generation] if isinstance(generation, int) else []


def read_pointer(root: Path) -> int:
    """The current generation of the world directory `root`."""
    if not root.is_dir():
        raise NotAWorldError(f"{root}: not a saved world (no such directory)")
    path = root / POINTER
    if not path.is_file():
        raise NotAWorldError(f"{root}: not a saved world (no {POINTER})")
    pointer = _read_json(path, "the world pointer")
    if not isinstance(pointer, dict) or pointer.get("format") != FORMAT:
        raise NotAWorldError(f"{path}: not an agentworld world pointer")
    _check_schema(pointer, path, "the world pointer")
    generation = pointer.get("generation")
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 1:
        raise CorruptWorldError(f"{path}: generation must be a positive integer")
    return generation


def parse_journal(data: bytes, where: str) -> list[Event]:
    """Parse journal lines into events, checking ids run 1, 2, 3, ..."""
    if data and not data.endswith(b"\n"):
        raise CorruptWorldError(f"{where}: the journal's last line is incomplete")
    lines = data.split(b"\n")[:-1]
    try:
        # One json.loads over the whole journal is several times faster than one per line.
        values = json.loads(b"[" + b",".join(lines) + b"]") if lines else []
    except ValueError:
        values = []
        for number, line in enumerate(lines, 1):
            try:
                values.append(json.loads(line))
            except ValueError as exc:
                raise CorruptWorldError(f"{where}: line {number} is not JSON: {exc}") from None
    events: list[Event] = []
    for number, value in enumerate(values, 1):
        event = _event(value, where, number)
        if event.id != number:
            raise CorruptWorldError(f"{where}: line {number} holds event id {event.id}")
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


def read_saved(path: str | os.PathLike[str]) -> SavedWorld:
    """Read and check the current generation of a world directory (no state is applied)."""
    root = Path(path).expanduser().absolute()
    # A concurrent save may switch the pointer and delete the generation we are reading: reread
    # the pointer and try again while it keeps moving.
    for _ in range(5):
        generation = read_pointer(root)
        try:
            return _read_generation(root, generation)
        except CorruptWorldError:
            if read_pointer(root) == generation:
                raise
    return _read_generation(root, read_pointer(root))


def _read_generation(root: Path, generation: int) -> SavedWorld:
    gen_dir = root / GENERATIONS / f"{generation:08d}"
    meta_path = gen_dir / METADATA
    raw_meta = _read_json(meta_path, "metadata")
    _check_schema(raw_meta, meta_path, "metadata")
    try:
        metadata = structure(raw_meta, Metadata, "world metadata")
    except InvalidInputError as exc:
        raise CorruptWorldError(f"{meta_path}: {exc}") from None
    snapshot_bytes = _read_part(gen_dir, metadata.snapshot, metadata.snapshot_sha256, "snapshot")
    journal_bytes = _read_part(gen_dir, metadata.journal, metadata.journal_sha256, "journal")
    snap_path = gen_dir / metadata.snapshot
    raw_snapshot = json.loads(snapshot_bytes)
    _check_schema(raw_snapshot, snap_path, "the snapshot")
    try:
        snapshot = structure(raw_snapshot, Snapshot, "world snapshot")
    except InvalidInputError as exc:
        raise CorruptWorldError(f"{snap_path}: {exc}") from None
    events = parse_journal(journal_bytes, str(gen_dir / metadata.journal))
    if len(events) != metadata.journal_length:
        raise CorruptWorldError(
            f"{gen_dir}: the journal holds {len(events)} events, the metadata says "
            f"{metadata.journal_length}"
        )
    if not 0 <= snapshot.journal_length <= len(events):
        raise CorruptWorldError(
            f"{snap_path}: covers {snapshot.journal_length} events of a {len(events)}-event journal"
        )
    return SavedWorld(root, generation, metadata, snapshot,
                      canonical_hash(raw_snapshot["state"]), events,
                      _predates_authority(raw_snapshot["state"]))


def _read_part(gen_dir: Path, name: str, digest: str, what: str) -> bytes:
    path = gen_dir / name
    if name != Path(name).name or name.startswith("."):
        raise CorruptWorldError(f"{gen_dir / METADATA}: unsafe {what} file name {name!r}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorruptWorldError(f"{path}: the {what} is missing") from None
    if sha256_hex(data) != digest:
        raise CorruptWorldError(
            f"{path}: the {what} does not match the checksum recorded in {METADATA}"
        )
    return data


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
    if saved.metadata.store == LOCAL_STORE:
        return local_store_uri(saved.root)
    return saved.metadata.store


def check_artifacts(store: ModuleStore, hashes: Iterable[str]) -> list[str]:
    """Verify the bytes of every present artifact (raising on tampering); return missing ones."""
    missing = []
    for wasm_hash in hashes:
        if not store.has_blob(wasm_hash):
            missing.append(wasm_hash)
            continue
        try:
            store.get_blob(wasm_hash)
        except StoreError as exc:
            raise CorruptArtifactError(wasm_hash, str(exc)) from None
    return missing


def load_world(
    path: str | os.PathLike[str], *, world_class: type[World] | None = None, **kwargs: Any
) -> World:
    """Load the world saved in directory `path`; `kwargs` go to the `World` constructor."""
    saved = read_saved(path)
    snapshot = saved.snapshot
    state = snapshot.state
    if saved.predates_authority:
        # Its state lacks module owners, registrants and pinned hooks: derive them from the
        # journal (a one-off cost; the next save writes them).
        state = WorldState()
        for event in saved.events[:snapshot.journal_length]:
            _apply_saved(saved, state, event)
        if pre_authority_root(state) != saved.snapshot_state_root:
            raise CorruptWorldError(f"{saved.root}: the snapshot differs from its journal")
    for event in saved.events[snapshot.journal_length:]:
        _apply_saved(saved, state, event)
    pending = [_queued_action(entry) for entry in snapshot.pending]
    kwargs.setdefault("config", snapshot.config)
    explicit_store = kwargs.pop("store", None)
    store = explicit_store if explicit_store is not None else saved_store_uri(saved)
    world = (world_class or World)(store=store, **kwargs)
    world._restore(
        time=saved.metadata.time,
        events=saved.events,
        state=state,
        next_action_id=snapshot.next_action_id,
        pending=pending,
        store_is_dir_local=explicit_store is None and saved.metadata.store == LOCAL_STORE,
    )
    root = pre_authority_root(state) if saved.predates_authority else world.state_root()
    if root != saved.metadata.state_root:
        raise StateRootMismatchError(
            f"{saved.root}: the loaded state root {root} differs from the saved "
            f"{saved.metadata.state_root}"
        )
    check_artifacts(world.store, wanted_artifacts(state))
    return world


def _apply_saved(saved: SavedWorld, state: WorldState, event: Event) -> None:
    try:
        apply_event(state, event)
    except (AgentWorldError, KeyError, TypeError, ValueError) as exc:
        raise CorruptWorldError(
            f"{saved.root}: journal event {event.id} does not apply to the snapshot: {exc!r}"
        ) from None


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


def verify_dir(
    path: str | os.PathLike[str],
    progress: Progress | None = None,
    open_store: Callable[[str], ModuleStore] | None = None,
) -> VerifyReport:
    """Replay a saved world from genesis; check roots, checksums and every artifact present."""
    root = Path(path).expanduser().absolute()
    generation = read_pointer(root)
    gen_dir = root / GENERATIONS / f"{generation:08d}"
    problems: list[str] = []
    raw_meta = _read_json(gen_dir / METADATA, "metadata")
    _check_schema(raw_meta, gen_dir / METADATA, "metadata")
    try:
        metadata = structure(raw_meta, Metadata, "world metadata")
    except InvalidInputError as exc:
        return VerifyReport(None, None, 0, (f"{gen_dir / METADATA}: {exc}",), ())
    snapshot_raw: Any = None
    events: list[Event] = []
    for name, digest, what in ((metadata.snapshot, metadata.snapshot_sha256, "snapshot"),
                               (metadata.journal, metadata.journal_sha256, "journal")):
        file = gen_dir / name
        try:
            data = file.read_bytes()
        except OSError as exc:
            problems.append(f"{file}: cannot read the {what}: {exc.strerror or exc}")
            continue
        if sha256_hex(data) != digest:
            problems.append(f"{file}: the {what} does not match its recorded checksum")
        try:
            if what == "snapshot":
                snapshot_raw = json.loads(data)
            else:
                events = parse_journal(data, str(file))
        except CorruptWorldError as exc:
            problems.append(str(exc))
        except ValueError as exc:
            problems.append(f"{file}: the {what} is not JSON: {exc}")
    if isinstance(snapshot_raw, dict):
        _check_schema(snapshot_raw, gen_dir / metadata.snapshot, "the snapshot")
    elif snapshot_raw is not None:
        problems.append(f"{gen_dir / metadata.snapshot}: the snapshot is not a JSON object")
    if len(events) != metadata.journal_length:
        problems.append(f"the journal holds {len(events)} events, the metadata says "
                        f"{metadata.journal_length}")
    snapshot_point = (snapshot_raw.get("journal_length") if isinstance(snapshot_raw, dict)
                      else None)
    old = isinstance(snapshot_raw, dict) and _predates_authority(snapshot_raw.get("state"))
    root_of = pre_authority_root if old else _state_root
    state = WorldState()
    replayed_root: str | None = None
    for index, event in enumerate(events):
        if index == snapshot_point:
            _compare_snapshot(root_of(state), snapshot_raw, problems)
        try:
            apply_event(state, event)
        except (AgentWorldError, KeyError, TypeError, ValueError) as exc:
            problems.append(f"journal event {event.id} ({event.kind}) does not apply: {exc!r}")
            break
        if progress is not None and (index + 1) % 4096 == 0:
            progress(index + 1, len(events))
    else:
        if progress is not None:
            progress(len(events), len(events))
        if snapshot_point == len(events):
            _compare_snapshot(root_of(state), snapshot_raw, problems)
        replayed_root = root_of(state)
        if replayed_root != metadata.state_root:
            problems.append(f"replaying the journal gives state root {replayed_root}, the "
                            f"saved root is {metadata.state_root}")
    missing: list[str] = []
    store_uri = local_store_uri(root) if metadata.store == LOCAL_STORE else metadata.store
    try:
        store = (open_store or _default_open_store)(store_uri)
        for wasm_hash in wanted_artifacts(state):
            try:
                if store.has_blob(wasm_hash):
                    store.get_blob(wasm_hash)
                else:
                    missing.append(wasm_hash)
            except StoreError as exc:
                problems.append(str(CorruptArtifactError(wasm_hash, str(exc))))
        problems.extend(_manifest_problems(store, state))
    except StoreError as exc:
        problems.append(f"module store {store_uri}: {exc}")
    return VerifyReport(replayed_root, metadata.state_root, len(events), tuple(problems),
                        tuple(missing))


def _default_open_store(uri: str) -> ModuleStore:
    from agentworld.manager import default_manager

    return default_manager().open_store(uri)


def _state_root(state: WorldState) -> str:
    return canonical_hash(unstructure(state))


def _compare_snapshot(expected: str, snapshot_raw: Any, problems: list[str]) -> None:
    if not isinstance(snapshot_raw, dict) or "state" not in snapshot_raw:
        problems.append("the snapshot holds no state")
        return
    try:
        actual = canonical_hash(snapshot_raw["state"])
    except AgentWorldError as exc:
        problems.append(f"the snapshot's state cannot be encoded: {exc}")
        return
    if actual != expected:
        problems.append(f"the snapshot's state (root {actual}) differs from the journal replayed "
                        f"to event {snapshot_raw.get('journal_length')} (root {expected})")


def _manifest_problems(store: ModuleStore, state: WorldState) -> list[str]:
    problems = []
    for key, manifest in state.manifests.items():
        try:
            stored = store.get_manifest(manifest.module_id, manifest.version)
        except StoreError:
            continue  # a store-less directory: absent manifests are not tampering
        if stored != canonical_json(manifest.to_json()):
            problems.append(f"manifest {key} in the module store differs from the journal's")
    return problems
