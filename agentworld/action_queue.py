"""The pending-action queue: actions submitted and not yet stepped, and the action id counter."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Queued = tuple[int, Any, str | None]
"""A queued action: its id, the parsed action (or the `Rejected` it will be recorded as), and
its submitter (None for the world's system actor)."""


class ActionQueue:
    """Queued actions in submission order; ids count from 1 and are never reused."""

    __slots__ = ("_next_id", "_pending")

    def __init__(self, next_action_id: int = 1, pending: Iterable[Queued] = ()) -> None:
        self._next_id = next_action_id
        self._pending: list[Queued] = list(pending)

    @property
    def next_action_id(self) -> int:
        """The id the next submitted action gets."""
        return self._next_id

    @property
    def pending(self) -> tuple[Queued, ...]:
        """The queued actions, in order."""
        return tuple(self._pending)

    @property
    def ids(self) -> list[int]:
        """Ids of the queued actions, in order."""
        return [action_id for action_id, _, _ in self._pending]

    def submit(self, action: Any, submitter: str | None) -> int:
        """Queue a parsed action (or its refusal); return its id."""
        action_id = self._next_id
        self._next_id += 1
        self._pending.append((action_id, action, submitter))
        return action_id

    def take(self) -> list[Queued]:
        """Remove and return every queued action (a step takes them all)."""
        taken, self._pending = self._pending, []
        return taken

    def put_back(self, taken: list[Queued]) -> None:
        """Requeue actions a step took and then undid, ahead of any queued since."""
        self._pending[:0] = taken
