"""`World`: the event-sourced kernel. Actions are queued, decided into events, and applied.

The world owns the clock, the journal, the pending-action queue, the state, its module store and
its executor. Nothing but `apply_event` writes the state, and nothing but appended events reach
it, so replaying the journal from genesis always rebuilds the same `state_root()`.

Every queued action keeps its submitter (None: the world's system actor), and every event an
action causes names it in `caused_by`, so the journal says who did what.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, overload

import attrs
from attrs import Factory, field, frozen

import agentworld.module_actions  # noqa: F401  (registers the module action types)
from agentworld.actions import envelope_of, parse_action
from agentworld.apply import apply_event
from agentworld.authority import cause_of, submitter_refusal
from agentworld.canonical import canonical_hash, canonical_json
from agentworld.compat import CompatRule
from agentworld.convert import json_problems, structure, unstructure
from agentworld.domain import DOMAIN_DECIDERS, DecisionContext, Draft, Rejected
from agentworld.errors import ExecutorUnavailableError, InvalidInputError
from agentworld.executor import (
    CallLimits,
    Executor,
    ExecutorConfig,
    ModuleCallError,
    ModuleOutput,
)
from agentworld.manager import PluginManager, default_manager
from agentworld.manifest import Manifest
from agentworld.metering import CURRENT_GAS_SCHEDULE, GAS_SCHEDULES
from agentworld.model import EffectIntent, Event, ModuleInstance, WorldState
from agentworld.policy import (
    POLICY_SET,
    InstalledRule,
    creation_policy,
    installed_rules,
    policy_data,
)
from agentworld.routing import Router
from agentworld.store import ModuleStore

# Events after which the routing table (active instances and their manifests) is rebuilt.
ROUTING_KINDS = frozenset({
    "domain.module_installed",
    "domain.module_active_set",
    "domain.module_upgraded",
    "domain.module_rolled_back",
})


# The largest limits a manifest may ask for unless the world says otherwise.
MAX_LIMITS = CallLimits(
    max_mem_bytes=256 * 1024 * 1024,
    max_gas=1_000_000_000,
    max_output_bytes=4 * 1024 * 1024,
    max_effects=256,
    max_emits=1024,
    max_call_ms=10_000,
)


@frozen(kw_only=True)
class WorldConfig:
    """World-wide settings that shape results; their hash is in every module call's context.

    Engine and store choices are deliberately not here: a store never changes a result, and
    engines must not either. Executor options that bound resources (wasmtime's native stack
    size, its memory ceiling) decide which calls fail, so machines that must agree run the
    same engine version with the same options.
    """

    world_id: str = "world"
    default_limits: CallLimits = Factory(CallLimits)
    max_limits: CallLimits = Factory(lambda: MAX_LIMITS)
    halt_on_module_failure: bool = False
    gas_schedule: int = field(default=CURRENT_GAS_SCHEDULE)
    """The version of the gas cost schedule every module call of this world is metered with."""
    max_artifact_bytes: int = 2 * 1024 * 1024
    """The largest artifact a deploy accepts (bounds deploy-time instrumentation and compiling)."""

    @gas_schedule.validator
    def _known_schedule(self, _attribute: Any, value: int) -> None:
        if value not in GAS_SCHEDULES:
            raise ValueError(f"gas_schedule {value!r} is unknown to this version of agentworld "
                             f"(known: {', '.join(map(str, GAS_SCHEDULES))})")

    def __attrs_post_init__(self) -> None:
        problems = _config_problems(self)
        if problems:
            raise InvalidInputError("world config", problems)


# A queued action: its id, the parsed action (or the refusal it will be recorded as), and its
# submitter (None for the world's system actor).
Queued = tuple[int, Any, str | None]


def _config_problems(config: WorldConfig) -> list[str]:
    """Why `config` cannot run a world: every limit a positive 64-bit integer, no default above
    its maximum (a negative gas limit would mean none, an oversized default stalls a step)."""
    problems = []
    if not isinstance(config.world_id, str) or not config.world_id:
        problems.append("world_id must be a non-empty string")
    if not isinstance(config.halt_on_module_failure, bool):
        problems.append("halt_on_module_failure must be true or false")
    if type(config.max_artifact_bytes) is not int or not 1 <= config.max_artifact_bytes < 2**63:
        problems.append(f"max_artifact_bytes must be a positive integer below 2**63, "
                        f"got {config.max_artifact_bytes!r}")
    limits = {"default_limits": config.default_limits, "max_limits": config.max_limits}
    for name, value in limits.items():
        if not isinstance(value, CallLimits):
            problems.append(f"{name} must be call limits, got {type(value).__name__}")
    if problems:
        return problems
    for limit in attrs.fields(CallLimits):
        default = getattr(config.default_limits, limit.name)
        maximum = getattr(config.max_limits, limit.name)
        for name, value in (("default_limits", default), ("max_limits", maximum)):
            if type(value) is not int or not 1 <= value < 2**63:
                problems.append(f"{name}.{limit.name} must be a positive integer below 2**63, "
                                f"got {value!r}")
        if type(default) is int and type(maximum) is int and default > maximum:
            problems.append(f"default_limits.{limit.name} ({default}) is above "
                            f"max_limits.{limit.name} ({maximum})")
    return problems


class Journal(Sequence[Event]):
    """A read-only view of the world's events, oldest first (event ids start at 1)."""

    __slots__ = ("_events",)

    def __init__(self, events: list[Event]) -> None:
        self._events = events

    @overload
    def __getitem__(self, index: int) -> Event: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Event]: ...
    def __getitem__(self, index: int | slice) -> Event | Sequence[Event]:
        return self._events[index]

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def __repr__(self) -> str:
        return f"<Journal of {len(self._events)} events>"


def event_to_json(event: Event) -> bytes:
    """The canonical JSON line of one event."""
    return canonical_json(unstructure(event))


def event_from_json(value: Any) -> Event:
    """An event from its JSON form (strictly checked)."""
    return structure(value, Event, "event")


def _describe(exc: Exception) -> str:
    """`Type: message` of an exception raised by user code (whose `__str__` may fail too)."""
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:
        return type(exc).__name__


def rebuild_state(events: Iterable[Event]) -> WorldState:
    """Replay `events` from genesis into a fresh state."""
    state = WorldState()
    for event in events:
        apply_event(state, event)
    return state


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
        self.config = config or WorldConfig()
        self._plugins = plugins
        self._executor_choice: str | Executor = executor or "wasmtime"
        self._executor_config = executor_config or ExecutorConfig()
        self._executor: Executor | None = executor if not isinstance(executor, str | None) else None
        self._store_choice: str | ModuleStore = store or "memory://"
        self._store: ModuleStore | None = store if not isinstance(store, str | None) else None
        self.time = 0
        self._events: list[Event] = []
        self._journal = Journal(self._events)
        self._state = WorldState()
        # (action_id, parsed action or the Rejected it will be recorded as, submitter)
        self._pending: list[Queued] = []
        self._next_action_id = 1
        self._router = Router(self)
        self._available: set[str] = set()  # artifact hashes seen in the store
        self._applied: int | None = None  # the last action whose events were all appended
        # True when the store is the `modules/` store of the directory this world was loaded
        # from: saving elsewhere then copies it, so every saved directory is self-contained.
        self._store_is_dir_local = False
        # Artifacts whose stored bytes failed verification at load: hash -> why. They count as
        # missing (calls fail with artifact_missing) until their genuine bytes are deployed.
        self._corrupt_artifacts: dict[str, str] = {}
        # The rules installed now judge this world's upgrades from now on: unless they are the
        # standard policy, which needs no event, the first event pins them.
        pinned = creation_policy(self.installed_rules())
        if pinned is not None:
            self.append(Draft(POLICY_SET, policy_data(pinned)), None)

    # -- services -----------------------------------------------------------------------------

    @property
    def plugins(self) -> PluginManager:
        """The plugin manager this world asks for executors and stores (default if unset)."""
        if self._plugins is None:
            self._plugins = default_manager()
        return self._plugins

    @property
    def store(self) -> ModuleStore:
        """The world's module store, opened through the store plugins on first use."""
        if self._store is None:
            assert isinstance(self._store_choice, str)
            self._store = self.plugins.open_store(self._store_choice)
        return self._store

    @property
    def executor(self) -> Executor:
        """The world's executor: built once through the executor plugins and shared by every
        world of the same plugin manager that asks for the same engine and config."""
        if self._executor is None:
            assert isinstance(self._executor_choice, str)
            self._executor = self.plugins.shared_executor(
                self._executor_choice, self._executor_config
            )
        return self._executor

    def executor_for_calls(self) -> Executor:
        """The executor, or a `ModuleCallError("engine_unavailable")` for the call at hand."""
        try:
            return self.executor
        except ExecutorUnavailableError as exc:
            raise ModuleCallError("engine_unavailable", str(exc)) from None

    @property
    def default_limits(self) -> CallLimits:
        """Call limits for manifests that do not set their own."""
        return self.config.default_limits

    @property
    def max_limits(self) -> CallLimits:
        """The largest limits a manifest may ask for."""
        return self.config.max_limits

    def store_blob(self, wasm_hash: str, data: bytes) -> None:
        """Put verified artifact bytes into the module store."""
        self.store.put_blob(wasm_hash, data)
        self._corrupt_artifacts.pop(wasm_hash, None)

    def has_blob(self, wasm_hash: str) -> bool:
        """True when the module store holds the artifact's bytes."""
        return self.store.has_blob(wasm_hash)

    def artifact_available(self, wasm_hash: str) -> bool:
        """True when the module store holds the artifact (a positive answer is remembered)."""
        if wasm_hash in self._available:
            return True
        if wasm_hash in self._corrupt_artifacts:
            return False
        if self.store.has_blob(wasm_hash):
            self._available.add(wasm_hash)
            return True
        return False

    def load_blob(self, wasm_hash: str) -> bytes:
        """The artifact's verified bytes from the module store."""
        return self.store.get_blob(wasm_hash)

    @property
    def max_artifact_bytes(self) -> int:
        """The largest artifact a deploy accepts."""
        return self.config.max_artifact_bytes

    def check_artifact(self, wasm: bytes) -> list[str]:
        """The module's exports; raises unless `wasm` is a module the executor's ABI accepts
        and the world's gas schedule can meter."""
        return self.executor.check_artifact(wasm, self.config.gas_schedule)

    def compat_rules(self) -> list[CompatRule]:
        """Every compatibility rule installed here (the world's policy pins which ones judge
        its upgrades: `state.compat_policy`)."""
        return self.plugins.compat_rules()

    def installed_rules(self) -> list[InstalledRule]:
        """The compatibility rules installed here, each with its plugin and version."""
        return installed_rules(self.plugins)

    def call_module(
        self, manifest: Manifest, instance_id: str, entrypoint: str, payload: bytes
    ) -> ModuleOutput:
        """Run `entrypoint` of `manifest`'s artifact once for `instance_id` under the manifest's
        limits, outside routing (a migration); raise `ModuleCallError` on any failure."""
        limits = manifest.limits.resolve(self.config.default_limits)
        return self._router._execute(manifest, limits, instance_id, payload, entrypoint)

    def config_hash(self) -> str:
        """SHA-256 of the canonical world config, passed to modules as `world_config_hash`."""
        return canonical_hash(unstructure(self.config))

    # -- reading ------------------------------------------------------------------------------

    @property
    def journal(self) -> Journal:
        """Every event so far, oldest first."""
        return self._journal

    @property
    def state(self) -> WorldState:
        """The current state (read it; only events change it)."""
        return self._state

    @property
    def instances(self) -> Mapping[str, ModuleInstance]:
        """Installed module instances by id, in install order (read-only)."""
        return MappingProxyType(self._state.instances)

    def module_state(self, instance_id: str) -> bytes:
        """An instance's state bytes (empty before its first update)."""
        if instance_id not in self._state.instances:
            raise KeyError(f"no instance {instance_id!r}")
        return self._state.module_states.get(instance_id, b"")

    def pending_effects(self) -> list[EffectIntent]:
        """Accepted effect intents awaiting a receipt, oldest first."""
        return list(self._state.pending_effects.values())

    def missing_artifacts(self) -> list[str]:
        """Hashes of deployed or registered artifacts whose bytes the module store lacks (or
        holds corrupted: see `corrupt_artifacts`)."""
        wanted = set(self._state.artifacts) | {m.wasm_hash for m in self._state.manifests.values()}
        return sorted(h for h in wanted
                      if h in self._corrupt_artifacts or not self.store.has_blob(h))

    def corrupt_artifacts(self) -> dict[str, str]:
        """Artifacts whose stored bytes failed verification when the world was loaded, with the
        reason; deploying an artifact's genuine bytes repairs it."""
        return dict(self._corrupt_artifacts)

    @property
    def pending_action_ids(self) -> list[int]:
        """Ids of queued actions not yet applied, in order."""
        return [action_id for action_id, _, _ in self._pending]

    def state_root(self) -> str:
        """Lowercase hex SHA-256 of the canonical encoding of the state."""
        return canonical_hash(unstructure(self._state))

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
        action_id = self._next_action_id
        self._next_action_id += 1
        self._pending.append((action_id, parsed, submitter))
        return action_id

    def step(self) -> list[Event]:
        """Advance time by 1 and apply every queued action, without module routing.

        If deciding an action raises (say, the module store is unreachable during a deploy),
        the step stops there: that action and the later ones stay queued, and the error
        propagates. Time has advanced; events of the actions before it stand.
        """
        self.time += 1
        start = len(self._events)
        self._drain(self._apply_queued)
        return list(self._events[start:])

    def step_with_modules(self, executor: Executor | None = None) -> list[Event]:
        """Advance time by 1 and run queued actions and due ticks through modules.

        `executor` overrides the world's executor for this step. With no modules installed this
        is exactly `step()`. In a world with `halt_on_module_failure`, a failing call raises
        `ModuleHaltError` after recording it: an action not yet applied (its pre_action call
        failed) and the actions after it stay queued, and the step's ticks are not routed.
        """
        saved = self._executor
        if executor is not None:
            self._executor = executor
        try:
            self.time += 1
            start = len(self._events)
            self._drain(self._router.route_action)
            self._router.route_ticks()
            return list(self._events[start:])
        finally:
            if executor is not None:
                self._executor = saved

    def _drain(self, handle: Callable[[int, Any, str | None], None]) -> None:
        """Hand every queued action to `handle`; on an error, requeue what was not done."""
        pending, self._pending = self._pending, []
        for index, (action_id, action, submitter) in enumerate(pending):
            self._applied = None
            try:
                handle(action_id, action, submitter)
            except BaseException:
                # An action not yet applied (decided into its events or its refusal) is retried
                # by the next step, pre_action calls included; an applied one must not run twice.
                done = self._applied == action_id
                self._pending = pending[index + 1 if done else index:] + self._pending
                raise

    def _apply_queued(self, action_id: int, action: Any, submitter: str | None) -> None:
        if isinstance(action, Rejected):
            self.record_rejection(action_id, action, submitter)
        else:
            self.decide_and_append(action_id, action, submitter)

    # -- what routing and decisions use -------------------------------------------------------

    def decide_and_append(self, action_id: int, action: Any, submitter: str | None) -> None:
        """Decide `action` against the current state and append its events (or its refusal).

        The submitter checks run here too, so an action a rule rewrote passes them again.
        """
        decide = DOMAIN_DECIDERS[type(action)]
        decision = submitter_refusal(action, submitter) or decide(
            self._state, action, DecisionContext(self.time, action_id, self, submitter))
        if isinstance(decision, Rejected):
            self.record_rejection(action_id, decision, submitter)
            return
        cause = cause_of(action_id, submitter)
        for draft in decision:
            self.append(draft, cause)
        self._applied = action_id

    def record_rejection(
        self, action_id: int, rejection: Rejected, submitter: str | None
    ) -> Event:
        """Append `domain.action_rejected` for `action_id`."""
        data = {"action_id": action_id, "code": rejection.code, "notes": list(rejection.notes),
                **(rejection.details or {})}
        event = self.append(Draft("domain.action_rejected", data),
                            cause_of(action_id, submitter))
        self._applied = action_id
        return event

    def append(self, draft: Draft, caused_by: dict[str, int | str] | None) -> Event:
        """Give a draft its id and time, apply it, and add it to the journal."""
        event = Event(len(self._events) + 1, self.time, caused_by, draft.kind, draft.data)
        apply_event(self._state, event)
        self._events.append(event)
        if event.kind in ROUTING_KINDS:
            self._router.invalidate()
        return event

    # -- persistence (agentworld.persistence does the file work) --------------------------------

    def save_to_dir(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Save the world and its module store to directory `path`, crash-safely and under the
        directory's lock; `overwrite` replaces a world in `path` this one does not continue."""
        from agentworld.persistence import save_world

        save_world(self, path, overwrite=overwrite)

    save_to_dir_with_modules = save_to_dir

    @classmethod
    def load_from_dir(cls, path: str | os.PathLike[str], **kwargs: Any) -> World:
        """Load a world saved with `save_to_dir`; `kwargs` (executor=, plugins=...) go to `cls`."""
        from agentworld.persistence import load_world

        return load_world(path, world_class=cls, **kwargs)

    load_from_dir_with_modules = load_from_dir

    def _queue(self) -> tuple[int, list[Queued]]:
        """The next action id and the queued actions, as persistence saves them."""
        return self._next_action_id, list(self._pending)

    def _restore(
        self,
        *,
        time: int,
        events: list[Event],
        state: WorldState,
        next_action_id: int,
        pending: list[Queued],
        store_is_dir_local: bool,
        corrupt_artifacts: dict[str, str],
    ) -> None:
        """Install loaded parts into a fresh world (persistence's restore hook)."""
        self.time = time
        self._events[:] = events
        self._state = state
        self._next_action_id = next_action_id
        self._pending = list(pending)
        self._store_is_dir_local = store_is_dir_local
        self._corrupt_artifacts = dict(corrupt_artifacts)
        self._router.invalidate()
