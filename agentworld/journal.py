"""The journal: the world's events, oldest first, and their one JSON encoding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from agentworld.canonical import canonical_json
from agentworld.convert import structure, unstructure
from agentworld.model import Event


class Journal(Sequence[Event]):
    """A read-only view of the world's events, oldest first (event ids start at 1).

    With `length`, a view of the first `length` events only: the journal only ever grows
    between steps, so such a view never changes.
    """

    __slots__ = ("_events", "_length")

    def __init__(self, events: list[Event], length: int | None = None) -> None:
        self._events = events
        self._length = length

    @overload
    def __getitem__(self, index: int) -> Event: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Event]: ...
    def __getitem__(self, index: int | slice) -> Event | Sequence[Event]:
        if self._length is None:
            return self._events[index]
        if isinstance(index, slice):
            return self._events[: self._length][index]
        position = index + self._length if index < 0 else index
        if not 0 <= position < self._length:
            raise IndexError("journal index out of range")
        return self._events[position]

    def __len__(self) -> int:
        return len(self._events) if self._length is None else self._length

    def __iter__(self) -> Iterator[Event]:
        if self._length is None:
            return iter(self._events)
        return (self._events[index] for index in range(self._length))

    def __repr__(self) -> str:
        return f"<Journal of {len(self)} events>"


def event_to_json(event: Event) -> bytes:
    """The canonical JSON line of one event."""
    return canonical_json(unstructure(event))


def event_from_json(value: Any) -> Event:
    """An event from its JSON form (strictly checked)."""
    return structure(value, Event, "event")
