"""The state root: a hash tree over the state, so that a change costs what it changed.

Root format 2 (worlds saved with metadata schema 3 or later):

- Each entry `key: value` of a map of the state has the entry hash
  `SHA-256(0x00 || canonical_json(key) || ":" || canonical_json(value))`.
- A map's entries sit in a 16-way trie keyed by `SHA-256(key as UTF-8)`, high nibble first.
  A node that holds at most `LEAF` (16) entries, or sits at depth 64, is a leaf; its hash is
  `SHA-256(0x01 || its entries' hashes in order of key digest)`. A node that holds more is a
  branch; its hash is `SHA-256(0x02 || the hashes of its 16 children, nibble 0 first)`. The
  map's root is its top node's hash (an empty map is the leaf with no entries).
- The state root is the SHA-256 of the canonical JSON of an object with the same field names
  as the state's canonical encoding: a map's value is its root in lowercase hex, any other
  field's value is the lowercase hex SHA-256 of its canonical JSON.

The tree's shape depends only on which keys a map holds, so replaying a journal and loading a
snapshot give the same root. A change costs encoding the entry that changed and hashing the
nodes above it: a few levels (log base 16 of the map's size), never the rest of the state.
Keys whose digests share a long prefix only make a path deeper; lengthening it by one level
takes sixteen times more tries to find such keys.

Root format 1, the SHA-256 of the state's whole canonical JSON (`flat_root`), is what worlds
saved before format 2 recorded; loading and verifying them checks it.

The appliers declare what each event changes (`agentworld.apply.changes`); the world passes
those changes to `touch` as it applies events.
"""

from __future__ import annotations

import hashlib
from typing import Any

import attrs

from agentworld.canonical import canonical_hash, canonical_json
from agentworld.convert import unstructure
from agentworld.model import WorldState

ROOT_FORMAT = 2
"""The format of the roots `StateRoot` computes."""

LEAF = 16
"""Most entries a leaf holds (a node with more is a branch)."""

_DEPTH = 64  # nibbles in a SHA-256 digest
_sha256 = hashlib.sha256


def flat_root(state: WorldState) -> str:
    """Root format 1: the lowercase hex SHA-256 of the whole state's canonical JSON."""
    return canonical_hash(unstructure(state))


def entry_hash(key: str, value: Any) -> bytes:
    """The hash of one map entry (its value unstructured)."""
    return _sha256(b"\x00" + canonical_json(key) + b":" + canonical_json(value)).digest()


def _nibble(digest: bytes, depth: int) -> int:
    byte = digest[depth >> 1]
    return byte & 15 if depth & 1 else byte >> 4


class _Node:
    """A trie node: a leaf (`entries`, key digest -> entry hash) or a branch (`children`)."""

    __slots__ = ("children", "count", "entries", "hash")

    def __init__(self, entries: dict[bytes, bytes] | None = None) -> None:
        self.entries = entries
        self.children: list[_Node] | None = None
        self.count = 0 if entries is None else len(entries)
        self.hash: bytes | None = None

    def digest(self) -> bytes:
        """This node's hash, computing what changed below it."""
        found = self.hash
        if found is None:
            entries = self.entries
            if entries is not None:
                found = _sha256(b"\x01" + b"".join(
                    entries[key] for key in sorted(entries))).digest()
            else:
                assert self.children is not None
                found = _sha256(b"\x02" + b"".join(
                    child.digest() for child in self.children)).digest()
            self.hash = found
        return found


def _build(entries: dict[bytes, bytes], depth: int) -> _Node:
    """The node holding `entries` at `depth` (split into a branch when there are too many)."""
    if len(entries) <= LEAF or depth == _DEPTH:
        return _Node(entries)
    parts: list[dict[bytes, bytes]] = [{} for _ in range(16)]
    for key, value in entries.items():
        parts[_nibble(key, depth)][key] = value
    node = _Node()
    node.children = [_build(part, depth + 1) for part in parts]
    node.count = len(entries)
    return node


def _gather(node: _Node, into: dict[bytes, bytes]) -> dict[bytes, bytes]:
    if node.entries is not None:
        into.update(node.entries)
    else:
        assert node.children is not None
        for child in node.children:
            _gather(child, into)
    return into


class MapRoot:
    """The trie of one map of the state, kept up to date entry by entry."""

    __slots__ = ("pending", "top")

    def __init__(self, values: dict[str, Any]) -> None:
        self.top = _build({_sha256(key.encode()).digest(): entry_hash(key, unstructure(value))
                           for key, value in values.items()}, 0)
        self.pending: set[str] = set()

    def touch(self, key: str) -> None:
        """The entry `key` was added, replaced or removed."""
        self.pending.add(key)

    def digest(self, values: dict[str, Any]) -> bytes:
        """The map's root, now that it holds `values`."""
        if self.pending:
            for key in self.pending:
                digest = _sha256(key.encode()).digest()
                if key in values:
                    self._put(digest, entry_hash(key, unstructure(values[key])))
                else:
                    self._drop(digest)
            self.pending.clear()
        return self.top.digest()

    def _leaf(self, key: bytes) -> tuple[list[_Node], _Node, int]:
        """The branches above the leaf where `key` belongs, the leaf and its depth."""
        path = []
        node, depth = self.top, 0
        while node.children is not None:
            path.append(node)
            node = node.children[_nibble(key, depth)]
            depth += 1
        return path, node, depth

    def _put(self, key: bytes, value: bytes) -> None:
        path, node, depth = self._leaf(key)
        entries = node.entries
        assert entries is not None
        added = key not in entries
        entries[key] = value
        node.hash = None
        for above in path:
            above.hash = None
            if added:
                above.count += 1
        if added:
            node.count += 1
            if node.count > LEAF and depth < _DEPTH:
                split = _build(entries, depth)
                node.entries, node.children, node.count = None, split.children, split.count

    def _drop(self, key: bytes) -> None:
        path, node, _ = self._leaf(key)
        entries = node.entries
        assert entries is not None
        if entries.pop(key, None) is None:
            return
        node.count -= 1
        node.hash = None
        for above in path:
            above.hash = None
            above.count -= 1
        # The highest branch left holding few enough entries becomes a leaf again (the shape
        # depends only on the keys, as it would had the entry never been there).
        for above in path:
            if above.count <= LEAF:
                above.entries, above.children = _gather(above, {}), None
                break


class StateRoot:
    """The root of one `WorldState`, updated as events change it (see the module docstring).

    The fields that are not maps are few and small: when one changes, they are encoded again
    together, through the state's own unstructuring with its maps left empty, so a field the
    state leaves out while it has its default (the standard compat policy) is left out here too.
    """

    def __init__(self, state: WorldState) -> None:
        self.state = state
        self._maps: dict[str, MapRoot] | None = None  # None: built from the state when asked
        self._map_names = frozenset(
            field.name for field in attrs.fields(WorldState)
            if isinstance(getattr(state, field.name), dict))
        self._fields: dict[str, bytes] = {}  # field name -> its '"name":"hex"' member
        self._scalars_stale = True
        self._root: str | None = None

    def touch(self, name: str, key: str | None = None) -> None:
        """The state's field `name` (its entry `key`, for a map) changed."""
        self._root = None
        if name not in self._map_names:
            self._scalars_stale = True
        elif self._maps is not None:
            assert key is not None
            self._maps[name].touch(key)

    def touch_all(self) -> None:
        """Anything may have changed: recompute everything on the next `hexdigest`."""
        self._maps = None
        self._scalars_stale = True
        self._root = None

    def _lay_out(self) -> None:
        """Hash the fields that are not maps; note which fields the encoding has."""
        emptied: dict[str, Any] = {name: {} for name in self._map_names}
        probe = unstructure(attrs.evolve(self.state, **emptied))
        missing = self._map_names - set(probe)
        if missing:
            raise AssertionError(f"state maps left out of the canonical encoding: {missing}")
        self._fields = {
            name: canonical_json(name) + b':"' + (
                b"" if name in self._map_names else canonical_hash(value).encode()) + b'"'
            for name, value in sorted(probe.items())}
        self._scalars_stale = False

    def hexdigest(self) -> str:
        """The lowercase hex state root (format 2)."""
        if self._root is None:
            if self._scalars_stale:
                self._lay_out()
            maps = self._maps
            if maps is None:
                state = self.state
                maps = self._maps = {name: MapRoot(getattr(state, name))
                                     for name in self._map_names}
            members = []
            for name, member in self._fields.items():
                part = maps.get(name)
                if part is not None:
                    root = part.digest(getattr(self.state, name))
                    member = member[:-1] + root.hex().encode() + b'"'
                members.append(member)
            self._root = _sha256(b"{" + b",".join(members) + b"}").hexdigest()
        return self._root


def state_root(state: WorldState) -> str:
    """The state root of `state` (format 2), computed from scratch."""
    return StateRoot(state).hexdigest()
