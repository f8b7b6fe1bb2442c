"""The ledger: the world's clock, journal and state, and the one place events are appended.

Appending an event gives it its id and time, applies it to the state, keeps the state root up
to date (the appliers declare what each event changes) and tells the observers (routing keeps
its tables in step). Nothing else writes the state.

A step is a transaction: `begin` notes the clock and the journal's length, and every change an
event makes is logged with the entry as it was (a copy, for the maps whose appliers change
entries in place: `agentworld.apply.ENTRY_COPY`). `rollback` undoes them newest first and
truncates the journal, so the world is exactly as before the step; `commit` drops the log.
Both cost what the step changed, never the size of the world; outside a step (replaying a
journal) nothing is logged or copied.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from agentworld.apply import ENTRY_COPY, ENTRY_ORDER, FACT_KINDS, apply_event, changes
from agentworld.gcpause import paused_gc
from agentworld.journal import Journal
from agentworld.model import Event, WorldState
from agentworld.stateroot import StateRoot

_MISSING = object()

Observer = Callable[[Event], None]
"""Called with every state-changing event right after it is applied."""


class _Undo:
    """What a transaction changed: enough to put everything back."""

    __slots__ = ("entries", "length", "orders", "time", "whole", "whole_at")

    def __init__(self, time: int, length: int) -> None:
        self.time = time
        self.length = length
        # (field, key or None for a counter, the value before the change or _MISSING)
        self.entries: list[tuple[str, str | None, Any]] = []
        # Maps that lose entries (`ENTRY_ORDER`) the transaction changed, with their key order
        # before its first change when that order is history's (None: it follows the keys).
        self.orders: dict[str, list[str] | None] = {}
        # Set when an event did not say what it changes: the whole state as it was then, and
        # how many entries had been logged before.
        self.whole: WorldState | None = None
        self.whole_at = 0


class Ledger:
    """The clock, the journal and the state of one world, with its state root."""

    def __init__(
        self, *, time: int = 0, events: list[Event] | None = None,
        state: WorldState | None = None, root: StateRoot | None = None,
    ) -> None:
        self.time = time
        self._events: list[Event] = events if events is not None else []
        self.journal = Journal(self._events)
        self.state = state if state is not None else WorldState()
        # `root`: the root of `state`, when the caller already has it (a loaded world's).
        assert root is None or root.state is self.state
        self._root = root if root is not None else StateRoot(self.state)
        self._observers: list[Observer] = []
        self._undo: _Undo | None = None

    def journal_so_far(self) -> Journal:
        """The events so far, as a view later appends do not change (steps only append)."""
        return Journal(self._events, len(self._events))

    def watch(self, observer: Observer) -> None:
        """Call `observer` with every state-changing event once it is applied."""
        self._observers.append(observer)

    def state_root(self) -> str:
        """Lowercase hex SHA-256 of the canonical encoding of the state."""
        return self._root.hexdigest()

    def append(self, kind: str, data: dict[str, Any], cause: dict[str, int | str] | None
               ) -> Event:
        """Give an event its id and the current time, apply it, and add it to the journal."""
        event = Event(len(self._events) + 1, self.time, cause, kind, data)
        if kind not in FACT_KINDS:  # most events (module emits) change nothing
            state = self.state
            changed = changes(state, event)
            undo = self._undo
            if undo is not None:
                self._log(undo, changed)
            apply_event(state, event)
            root = self._root
            if changed is None:
                root.touch_all()
            else:
                for name, key in changed:
                    root.touch(name, key)
            for observer in self._observers:
                observer(event)
        self._events.append(event)
        return event

    # -- transactions ---------------------------------------------------------------------------

    def begin(self) -> None:
        """Start logging changes so that `rollback` can undo them."""
        if self._undo is not None:
            raise RuntimeError("a transaction is already open")
        self._undo = _Undo(self.time, len(self._events))

    def commit(self) -> None:
        """Keep everything since `begin`."""
        self._undo = None

    def rollback(self) -> list[Event]:
        """Undo everything since `begin` (clock, journal, state); return the undone events."""
        undo = self._undo
        if undo is None:
            raise RuntimeError("no transaction is open")
        self._undo = None
        state = self.state
        logged = undo.entries
        if undo.whole is not None:
            for name in _FIELDS:
                setattr(state, name, getattr(undo.whole, name))
            self._root.touch_all()
            logged = logged[:undo.whole_at]
        for name, key, old in reversed(logged):
            if key is None:
                setattr(state, name, old)
            else:
                entries = getattr(state, name)
                if old is _MISSING:
                    entries.pop(key, None)
                else:
                    entries[key] = old
            self._root.touch(name, key)
        self._reorder(undo)
        undone = self._events[undo.length:]
        del self._events[undo.length:]
        self.time = undo.time
        return undone

    def _log(self, undo: _Undo, changed: list[tuple[str, str | None]] | None) -> None:
        state = self.state
        if changed is None:
            if undo.whole is None:
                # Never for events the world makes; a copy of every map is the safe answer.
                undo.whole = copy_state(state)
                undo.whole_at = len(undo.entries)
            return
        for name, key in changed:
            if key is None:
                undo.entries.append((name, None, getattr(state, name)))
                continue
            entries = getattr(state, name)
            if name in ENTRY_ORDER and name not in undo.orders:
                undo.orders[name] = None if ENTRY_ORDER[name] is not None else list(entries)
            old = entries.get(key, _MISSING)
            if old is not _MISSING and name in ENTRY_COPY:
                old = ENTRY_COPY[name](old)
            undo.entries.append((name, key, old))

    def _reorder(self, undo: _Undo) -> None:
        """Put back the key order of maps whose deleted entries were restored at their end."""
        for name, before in undo.orders.items():
            entries = getattr(self.state, name)
            if before is None:
                by_key = ENTRY_ORDER[name]
                assert by_key is not None
                restored = sorted(entries.items(), key=lambda item: by_key(item[0]))
            else:  # after the undo the map holds exactly the keys it held before
                restored = [(key, entries[key]) for key in before]
            entries.clear()
            entries.update(restored)


_FIELDS = tuple(field.name for field in attrs.fields(WorldState))


def copy_state(state: WorldState) -> WorldState:
    """A copy of `state` that later events do not change: its maps copied, and the entries
    appliers change in place copied too (O(state), not O(journal))."""
    copied = copy.copy(state)
    for name in _FIELDS:
        value = getattr(state, name)
        if isinstance(value, dict):
            entry_copy = ENTRY_COPY.get(name)
            setattr(copied, name, dict(value) if entry_copy is None
                    else {key: entry_copy(entry) for key, entry in value.items()})
    return copied


def rebuild_state(events: Iterable[Event]) -> WorldState:
    """Replay `events` from genesis into a fresh state."""
    state = WorldState()
    with paused_gc():
        for event in events:
            apply_event(state, event)
    return state
