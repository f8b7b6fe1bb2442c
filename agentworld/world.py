"""`World`: the public face of the event-sourced kernel.

The world is made of parts that each own one thing: the ledger (clock, journal, state, state
root; `agentworld.ledger`), the action queue (`agentworld.action_queue`), the world services
(config, plugins, module store, executor; `agentworld.services`), the decider that turns an
action into events (`agentworld.decide`) and the router that runs module calls
(`agentworld.routing`). `World` wires them together and offers the public API; persistence
reads and writes a `WorldImage` (`agentworld.image`), never the parts.

Nothing but `apply_event` writes the state, and nothing but appended events reach it, so
replaying the journal from genesis always rebuilds the same `state_root()`. A step is all or
nothing: if it raises, the world is exactly as it was before it.

Every queued action keeps its submitter (None: the world's system actor), and every event an
action causes names it in `caused_by`, so the journal says who did what.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import agentworld.module_actions  # noqa: F401  (registers the module action types)
from agentworld.action_queue import ActionQueue, Queued
from agentworld.actions import envelope_of, parse_action
from agentworld.authority import submitter_refusal
from agentworld.config import MAX_LIMITS, WorldConfig
from agentworld.convert import json_problems
from agentworld.decide import Decider
from agentworld.domain import Rejected
from agentworld.errors import InvalidInputError
from agentworld.executor import Executor, ExecutorConfig
from agentworld.gcpause import paused_gc
from agentworld.image import WorldImage
from agentworld.journal import Journal, event_from_json, event_to_json
from agentworld.ledger import Ledger, copy_state, rebuild_state
from agentworld.manager import PluginManager, default_manager
from agentworld.model import EffectIntent, Event, ModuleInstance, WorldState
from agentworld.persistence import (
    SaveMark,
    check_artifacts,
    read_saved,
    read_world,
    save_image,
    saved_store_uri,
    wanted_artifacts,
)
from agentworld.policy import POLICY_SET, InstalledRule, creation_policy, policy_data
from agentworld.routing import Router
from agentworld.services import WorldServices
from agentworld.store import ModuleStore, OverlayStore

__all__ = ["MAX_LIMITS", "Journal", "Queued", "World", "WorldConfig", "event_from_json",
           "event_to_json", "load_world_detached", "rebuild_state"]


# Directories a world remembers having saved to or loaded from (for saves that write only new
# events): the most recent ones, so that a live driver's checkpoints do not pile up.
_MARKS_KEPT = 8


def _describe(exc: Exception) -> str:
    """`Type: message` of an exception raised by user code (whose `__str__` may fail too)."""
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:
        return type(exc).__name__


class World:
    """An agent world: submit actions, step time, read the journal and the state root."""

    def __init__(
        self,
        *,
        executor: str | Executor | None = None,
        store: str | ModuleStore | None = None,
        plugins: PluginManager | None = None,
        config: WorldConfig | None = None,
        executor_config: ExecutorConfig | None = None,
    ) -> None:
        self._services = WorldServices(
            config=config or WorldConfig(), executor=executor or "wasmtime",
            store=store or "memory://", plugins=plugins,
            executor_config=executor_config or ExecutorConfig())
        self._ledger = Ledger()
        self._queue = ActionQueue()
        self._wire()
        # True when the store is the `modules/` store of the directory this world was loaded
        # from: saving elsewhere then copies it, so every saved directory is self-contained.
        self._store_is_dir_local = False
        # What this world remembers of the directories it saved to or loaded from, so that
        # saving there again writes only the new events.
        self._marks: dict[Path, SaveMark] = {}
        # The rules installed now judge this world's upgrades from now on: unless they are the
        # standard policy, which needs no event, the first event pins them.
        pinned = creation_policy(self.installed_rules())
        if pinned is not None:
            self._ledger.append(POLICY_SET, policy_data(pinned), None)

    def _wire(self) -> None:
        """Connect the decider and the router to the ledger and the services."""
        self._decider = Decider(self._ledger, self._services)
        self._router = Router(self._ledger, self._services, self._decider)
        self._ledger.watch(self._router.observe)

    # -- services -----------------------------------------------------------------------------

    @property
    def config(self) -> WorldConfig:
        """The world's settings (fixed for its life: their hash is in every call's context)."""
        return self._services.config

    @property
    def plugins(self) -> PluginManager:
        """The plugin manager this world asks for executors and stores (default if unset)."""
        return self._services.plugins

    @property
    def store(self) -> ModuleStore:
        """The world's module store, opened through the store plugins on first use."""
        return self._services.store

    @property
    def executor(self) -> Executor:
        """The world's executor: built once through the executor plugins and shared by every
        world of the same plugin manager that asks for the same engine and config."""
        return self._services.executor

    def installed_rules(self) -> list[InstalledRule]:
        """The compatibility rules installed here, each with its plugin and version (the
        world's pinned policy picks from them)."""
        return self._services.installed_rules()

    # -- reading ------------------------------------------------------------------------------

    @property
    def time(self) -> int:
        """The world's clock: 0 at first, one more after every step."""
        return self._ledger.time

    @property
    def journal(self) -> Journal:
        """Every event so far, oldest first."""
        return self._ledger.journal

    @property
    def state(self) -> WorldState:
        """The current state (read it; only events change it)."""
        return self._ledger.state

    @property
    def instances(self) -> Mapping[str, ModuleInstance]:
        """Installed module instances by id, in install order (read-only)."""
        return MappingProxyType(self._ledger.state.instances)

    def module_state(self, instance_id: str) -> bytes:
        """An instance's state bytes (empty before its first update)."""
        state = self._ledger.state
        if instance_id not in state.instances:
            raise KeyError(f"no instance {instance_id!r}")
        return state.module_states.get(instance_id, b"")

    def pending_effects(self) -> list[EffectIntent]:
        """Accepted effect intents awaiting a receipt, oldest first."""
        return list(self._ledger.state.pending_effects.values())

    def missing_artifacts(self) -> list[str]:
        """Hashes of deployed or registered artifacts whose bytes the module store lacks (or
        holds corrupted: see `corrupt_artifacts`)."""
        corrupt, store = self._services.corrupt, self._services.store
        return [h for h in wanted_artifacts(self._ledger.state)
                if h in corrupt or not store.has_blob(h)]

    def corrupt_artifacts(self) -> dict[str, str]:
        """Artifacts whose stored bytes failed verification when the world was loaded, with the
        reason; deploying an artifact's genuine bytes repairs it."""
        return dict(self._services.corrupt)

    @property
    def pending_action_ids(self) -> list[int]:
        """Ids of queued actions not yet applied, in order."""
        return self._queue.ids

    def state_root(self) -> str:
        """Lowercase hex SHA-256 of the canonical encoding of the state."""
        return self._ledger.state_root()

    # -- writing ------------------------------------------------------------------------------

    def submit(self, action: Any, submitter: str | None = None) -> int:
        """Queue an action (typed class or `{"type", "data"}` mapping); return its action id.

        `submitter` is the agent the host vouches for; None is the host itself, the world's
        system actor, which may submit anything. An action acting as another agent than its
        submitter, or a system-only action from an agent, is refused when stepped
        (`actor_mismatch`, `not_system_actor`). Submitting never raises for a malformed
        action: it is queued and, when stepped, recorded as `domain.action_rejected` with code
        `invalid_action` and every problem. A submitter that is not a non-blank string is the
        host's mistake and raises `InvalidInputError`.
        """
        if submitter is not None and (not isinstance(submitter, str) or not submitter.strip()
                                      or json_problems(submitter)):
            raise InvalidInputError("submitter", [f"must be None or an agent id, got "
                                                  f"{submitter!r}"])
        try:
            parsed: Any = parse_action(envelope_of(action))
        except InvalidInputError as exc:
            parsed = Rejected("invalid_action", tuple(exc.problems))
        except Exception as exc:  # a user-defined mapping that fails when it is read
            parsed = Rejected("invalid_action", (f"the action cannot be read: {_describe(exc)}",))
        else:
            parsed = submitter_refusal(parsed, submitter) or parsed
        return self._queue.submit(parsed, submitter)

    def step(self) -> list[Event]:
        """Advance time by 1 and apply every queued action, without module routing.

        All or nothing: if deciding an action raises (say, the module store is unreachable
        during a deploy), the world is left exactly as before the step (time, journal, state,
        queue) and the error propagates; stepping again retries the whole step.
        """
        return self._step(self._decider.apply, ticks=False)

    def step_with_modules(self, executor: Executor | None = None) -> list[Event]:
        """Advance time by 1 and run queued actions and due ticks through modules.

        `executor` overrides the world's executor for this step. With no modules installed this
        is exactly `step()`. All or nothing, as `step`: a store outage, an engine error or, in
        a world with `halt_on_module_failure`, a failing call (`ModuleHaltError`, which carries
        the `module.call_failed` event it would have recorded) leaves the world as before.
        """
        with self._services.executor_override(executor):
            return self._step(self._router.route_action, ticks=True)

    def _step(self, handle: Callable[[int, Any, str | None], None], *, ticks: bool
              ) -> list[Event]:
        ledger, queue = self._ledger, self._queue
        start = len(ledger.journal)
        taken = queue.take()
        ledger.begin()
        try:
            with paused_gc():
                ledger.time += 1
                for action_id, action, submitter in taken:
                    handle(action_id, action, submitter)
                if ticks:
                    self._router.route_ticks()
        except BaseException:
            ledger.rollback()
            queue.put_back(taken)
            self._router.invalidate()  # its tables and tick schedule follow the state again
            raise
        ledger.commit()
        return list(ledger.journal[start:])

    # -- persistence (agentworld.persistence does the file work) --------------------------------

    def image(self) -> WorldImage:
        """The world as it is now, as persistence saves it; later steps do not change it."""
        ledger, queue = self._ledger, self._queue
        return WorldImage(
            config=self.config, time=ledger.time,
            journal=ledger.journal_so_far(),
            state=copy_state(ledger.state), state_root=ledger.state_root(),
            next_action_id=queue.next_action_id, pending=queue.pending,
            store_is_dir_local=self._store_is_dir_local,
            corrupt_artifacts=dict(self._services.corrupt))

    def save_to_dir(
        self, path: str | os.PathLike[str], *, overwrite: bool = False,
        journal_from: str | os.PathLike[str] | None = None,
    ) -> None:
        """Save the world and its module store to directory `path`, crash-safely and under the
        directory's lock; `overwrite` replaces a world in `path` this one does not continue.

        `journal_from` names another directory this world was saved to or loaded from: a save
        to a new directory then links its journal segments instead of writing every event.
        """
        mark = save_image(self.image(), path, store=self.store,
                          open_store=self.plugins.open_store, overwrite=overwrite,
                          known=self._marks, journal_from=journal_from)
        self._remember(mark)

    def _remember(self, mark: SaveMark) -> None:
        marks = self._marks
        marks.pop(mark.root, None)
        marks[mark.root] = mark
        while len(marks) > _MARKS_KEPT:  # the oldest: a directory saved to long ago
            del marks[next(iter(marks))]

    save_to_dir_with_modules = save_to_dir

    @classmethod
    def load_from_dir(cls, path: str | os.PathLike[str], **kwargs: Any) -> World:
        """Load a world saved with `save_to_dir`; `kwargs` (executor=, plugins=...) go to `cls`.

        Artifacts whose stored bytes are corrupt do not stop the load: the world lists them in
        `corrupt_artifacts()` (and `missing_artifacts()`), and deploying the genuine bytes
        repairs them.
        """
        loaded = read_world(path)
        image = loaded.image
        kwargs.setdefault("config", image.config)
        explicit_store = kwargs.pop("store", None)
        world = cls(store=explicit_store if explicit_store is not None else loaded.store_uri,
                    **kwargs)
        _, corrupt = check_artifacts(world.store, wanted_artifacts(image.state))
        world._ledger = Ledger(time=image.time, events=list(image.journal), state=image.state,
                               root=loaded.root)
        world._queue = ActionQueue(image.next_action_id, image.pending)
        world._services.corrupt = corrupt
        world._store_is_dir_local = explicit_store is None and loaded.store_is_dir_local
        if loaded.mark is not None:
            world._remember(loaded.mark)
        world._wire()
        return world

    load_from_dir_with_modules = load_from_dir


def load_world_detached(path: str | os.PathLike[str], **kwargs: Any) -> World:
    """Load the world saved in `path` with its module store wrapped in an `OverlayStore`: reads
    go to the saved store, writes (deploys included) stay in memory, so nothing the loaded world
    does reaches the directory or its store. For dry runs and rehearsals; never save it back.

    `kwargs` go to the `World` constructor (`store=` is not allowed: the overlay is the store).
    """
    if "store" in kwargs:
        raise TypeError("load_world_detached wraps the saved store; do not pass store=")
    plugins = kwargs.get("plugins") or default_manager()
    store = OverlayStore(plugins.open_store(saved_store_uri(read_saved(path))))
    return World.load_from_dir(path, store=store, **kwargs)
