"""The state root, kept up to date change by change instead of recomputed from scratch.

The root is the SHA-256 of the state's canonical JSON, `{"agents":{...},"artifacts":{...},...}`
with every map's keys sorted. That text is kept in pieces: each entry of each map is encoded
once and its bytes cached until an event changes that entry; a map's entries are grouped into
chunks of consecutive keys whose joined bytes are cached too; and the SHA-256 state before
every chunk is kept, so the hash resumes at the first chunk that changed. A change therefore
costs encoding what changed and hashing the bytes that follow it, never re-encoding the state.

The appliers declare what each event changes (`agentworld.apply.changes`); the world passes
those changes to `touch` as it applies events.
"""

from __future__ import annotations

import bisect
import hashlib
from typing import Any

import attrs

from agentworld.canonical import canonical_json
from agentworld.convert import unstructure
from agentworld.model import WorldState

CHUNK = 128
"""Entries per chunk (a chunk splits in two at twice this)."""



class _Map:
    """One map of the state: sorted keys in chunks, cached entry and chunk bytes, checkpoints."""

    __slots__ = ("before", "chunks", "encoded", "entries", "firsts", "header", "members",
                 "name", "opened", "size", "stale_from", "start")

    def __init__(self, name: str, values: dict[str, Any], size: int) -> None:
        self.name = name
        self.size = size
        self.header = b""
        keys = sorted(values)
        self.chunks = [keys[i:i + size] for i in range(0, len(keys), size)]
        self.firsts = [chunk[0] for chunk in self.chunks]
        self.members = set(keys)
        self.entries: dict[str, bytes] = {}
        self.encoded: list[bytes | None] = [None] * len(self.chunks)
        self.before: list[Any] = [None] * len(self.chunks)
        self.start: Any = None
        self.opened: Any = None
        self.stale_from: int | None = 0

    def touch(self, key: str, values: dict[str, Any]) -> None:
        """Forget `key`'s bytes; add it to or drop it from the chunks as the map now has it."""
        self.entries.pop(key, None)
        present, listed = key in values, key in self.members
        if not self.chunks:
            if present:
                self.chunks, self.firsts = [[key]], [key]
                self.encoded, self.before = [None], [None]
                self.members.add(key)
                self._stale(0)
            return
        at = max(bisect.bisect_right(self.firsts, key) - 1, 0)
        chunk = self.chunks[at]
        if present and not listed:
            bisect.insort(chunk, key)
            self.members.add(key)
            self.firsts[at] = chunk[0]
            if len(chunk) > 2 * self.size:
                half = len(chunk) // 2
                self.chunks[at:at + 1] = [chunk[:half], chunk[half:]]
                self.firsts[at:at + 1] = [chunk[0], chunk[half]]
                self.encoded[at:at + 1] = [None, None]
                self.before[at + 1:at + 1] = [None]
        elif listed and not present:
            chunk.remove(key)
            self.members.discard(key)
            if not chunk:
                del self.chunks[at], self.firsts[at], self.encoded[at], self.before[at]
                if at < len(self.before):  # its successor now follows what preceded it
                    self.before[at] = None
                self._stale(at)
                return
            self.firsts[at] = chunk[0]
        self.encoded[at] = None
        self._stale(at)

    def _stale(self, at: int) -> None:
        self.stale_from = at if self.stale_from is None else min(self.stale_from, at)

    def feed(self, digest: Any, values: dict[str, Any]) -> Any:
        """Hash this map into `digest` (None: resume from the checkpoint before the change)."""
        if digest is None:
            # The first chunk that changed, or the last one when the changed one was removed.
            at = min(self.stale_from or 0, max(len(self.chunks) - 1, 0))
            while at and self.before[at] is None:
                at -= 1
            digest = (self.before[at] if at else self.opened).copy()
        else:
            at = 0
            self.start = digest.copy()
            digest.update(self.header)
            self.opened = digest.copy()
        entries = self.entries
        for index in range(at, len(self.chunks)):
            self.before[index] = digest.copy()
            if index:
                digest.update(b",")
            encoded = self.encoded[index]
            if encoded is None:
                parts = []
                for key in self.chunks[index]:
                    entry = entries.get(key)
                    if entry is None:
                        entry = entries[key] = (canonical_json(key) + b":"
                                                + canonical_json(unstructure(values[key])))
                    parts.append(entry)
                encoded = self.encoded[index] = b",".join(parts)
            digest.update(encoded)
        digest.update(b"}")
        self.stale_from = None
        return digest

    def resumable(self) -> bool:
        """True when the map was hashed before (so its checkpoints exist)."""
        return self.opened is not None

    def place(self, first: bool) -> None:
        """Put the map first in the encoding or after another field (its checkpoints go, the
        bytes of its entries and chunks stay)."""
        self.header = (b"" if first else b",") + canonical_json(self.name) + b":{"
        self.start = self.opened = None
        self.before = [None] * len(self.chunks)
        self.stale_from = 0


class _Scalar:
    """One field of the state that is not a map (a counter, the pinned compat policy)."""

    __slots__ = ("encoded", "header", "name", "stale_from", "start")

    def __init__(self, name: str) -> None:
        self.name = name
        self.header = b""
        self.encoded = b""
        self.start: Any = None
        self.stale_from: int | None = 0

    def place(self, first: bool) -> None:
        """Put the field first in the encoding or after another field."""
        self.header = (b"" if first else b",") + canonical_json(self.name) + b":"
        self.start = None
        self.stale_from = 0

    def feed(self, digest: Any, values: Any) -> Any:
        """Hash this field into `digest` (None: resume from the checkpoint before it)."""
        if digest is None:
            digest = self.start.copy()
        else:
            self.start = digest.copy()
        digest.update(self.header + self.encoded)
        self.stale_from = None
        return digest

    def resumable(self) -> bool:
        """True when the field was hashed before."""
        return self.start is not None


class StateRoot:
    """The root of one `WorldState`, updated as events change it (see the module docstring).

    The fields that are not maps are few and small: when one changes, they are encoded again
    together, through the state's own unstructuring with its maps left empty, so a field the
    state leaves out while it has its default (the standard compat policy) is left out here too.
    """

    def __init__(self, state: WorldState, chunk: int = CHUNK) -> None:
        self.state = state
        self._chunk = chunk
        self._maps: dict[str, _Map] = {}
        self._scalars: dict[str, _Scalar] = {}
        self._parts: list[_Map | _Scalar] = []
        self._scalars_stale = True
        self._root: str | None = None
        self._last = ""
        self.touch_all()

    def touch(self, name: str, key: str | None = None) -> None:
        """The state's field `name` (its entry `key`, for a map) changed."""
        part = self._maps.get(name)
        if part is not None:
            assert key is not None
            part.touch(key, getattr(self.state, name))
        else:
            self._scalars_stale = True
        self._root = None

    def touch_all(self) -> None:
        """Anything may have changed: recompute everything on the next `hexdigest`."""
        self._maps = {
            field.name: _Map(field.name, getattr(self.state, field.name), self._chunk)
            for field in attrs.fields(WorldState)
            if isinstance(getattr(self.state, field.name), dict)}
        self._scalars = {}
        self._parts = []
        self._scalars_stale = True
        self._root = None

    def _lay_out(self) -> None:
        """Encode the fields that are not maps; place every field where the encoding has it."""
        emptied: dict[str, Any] = {name: {} for name in self._maps}
        probe = unstructure(attrs.evolve(self.state, **emptied))
        names = sorted(probe)
        missing = set(self._maps) - set(names)
        if missing:
            raise AssertionError(f"state maps left out of the canonical encoding: {missing}")
        scalars = {}
        for name in names:
            if name in self._maps:
                continue
            part = self._scalars.get(name) or _Scalar(name)
            encoded = canonical_json(probe[name])
            if encoded != part.encoded:
                part.encoded = encoded
                part.stale_from = 0
            scalars[name] = part
        self._scalars = scalars
        parts: list[_Map | _Scalar] = [
            self._maps[name] if name in self._maps else scalars[name] for name in names]
        if [part.name for part in parts] != [part.name for part in self._parts]:
            for position, placed in enumerate(parts):
                placed.place(position == 0)
            self._parts = parts
        self._scalars_stale = False

    def hexdigest(self) -> str:
        """Lowercase hex SHA-256 of the canonical encoding of the state."""
        if self._root is not None:
            return self._root
        if self._scalars_stale:
            self._lay_out()
        digest: Any = None
        for part in self._parts:
            if digest is None:
                if part.stale_from is None:
                    continue
                if not part.resumable():
                    digest = hashlib.sha256(b"{") if part.start is None else part.start.copy()
            digest = part.feed(digest, getattr(self.state, part.name))
        if digest is None:  # nothing changed since the last root
            self._root = self._last
            return self._root
        digest.update(b"}")
        self._root = self._last = digest.hexdigest()
        return self._root
