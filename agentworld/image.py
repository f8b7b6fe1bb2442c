"""The world image: a world at one moment, as persistence writes and reads it.

An image never changes once made. `World.image()` makes one without copying the journal (a
view of the events so far, which later steps never alter) and with a copy of the state
(`agentworld.ledger.copy_state`); persistence writes it, and reading a saved world gives one
that `World.load_from_dir` builds the world from.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import Factory, frozen

from agentworld.action_queue import Queued
from agentworld.config import WorldConfig
from agentworld.model import Event, WorldState


@frozen(kw_only=True)
class WorldImage:
    """A world's clock, journal, state, action queue and config at one moment."""

    config: WorldConfig
    time: int
    journal: Sequence[Event]
    state: WorldState
    state_root: str
    next_action_id: int
    pending: tuple[Queued, ...] = ()
    # Whether the world's module store is the `modules/` store of the directory it was loaded
    # from (saving elsewhere then copies it), and the artifacts whose stored bytes are corrupt.
    store_is_dir_local: bool = False
    corrupt_artifacts: dict[str, str] = Factory(dict)
