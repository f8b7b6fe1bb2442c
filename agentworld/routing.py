"""Module routing for `World.step_with_modules`.

For each queued action: pre_action (rule decisions merged: deny > modify > allow) → apply →
post_action → post_event for the events it produced; then ticks for due instances. Calls are
routed per *instance*, in install order. A failing call records `module.call_failed` and
contributes nothing else; a failing pre_action call denies its action (fail-closed).

Each stage is planned, run as a batch and recorded: the calls of a stage (the rules judging one
action, the observers of one event, the instances due to tick) do not depend on each other's
outputs, so they go to the executor's `call_batch` together, the policy hooks their effects
ask for go as a second batch, and the outcomes are recorded in install order. Subscriptions
are looked up in an index (`agentworld.subscriptions`), never by asking every instance. The
router reads the ledger, appends to it, runs calls through the world services and decides
actions through the decider; it never sees the world.

Governance actions of the world's system actor skip pre_action, so no rule can lock the host
out. A rule may only rewrite a domain action into one of the same type and acting agent; the
rewritten action keeps its submitter.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cbor2
from attrs import frozen

from agentworld.actions import parse_action
from agentworld.authority import cause_of, override_problem
from agentworld.callinput import CallSite, InputTemplate, encode_value
from agentworld.canonical import canonical_json
from agentworld.convert import unstructure
from agentworld.decide import Decider
from agentworld.domain import Rejected
from agentworld.errors import AgentWorldError, InvalidInputError
from agentworld.executor import CallLimits, CallRequest, ModuleCallError, ModuleOutput
from agentworld.filters import kind_matches
from agentworld.ledger import Ledger
from agentworld.manifest import CompiledSubscription, Manifest, compile_subscriptions
from agentworld.model import Event, ModuleInstance, WorldState
from agentworld.module_actions import DeployArtifact
from agentworld.services import WorldServices
from agentworld.subscriptions import Entry, SubscriptionIndex, TickSchedule, next_due

VERDICT_RANK = {"allow": 0, "modify": 1, "deny": 2}

# Events after which an instance's route (its manifest, activity, tick cadence) is rebuilt.
ROUTING_KINDS = frozenset({
    "domain.module_installed",
    "domain.module_active_set",
    "domain.module_upgraded",
    "domain.module_rolled_back",
})


class ModuleHaltError(AgentWorldError):
    """A module call failed in a world configured to halt instead of recording and going on.

    The step that raised it is undone as a whole; `event` is the `module.call_failed` it would
    have recorded (not in the journal).
    """

    def __init__(self, event: Event) -> None:
        self.event = event
        data = event.data
        super().__init__(f"halted: {data['instance_id']} failed at {data['stage']} "
                         f"({data['code']}: {data['detail']})")


@frozen
class PolicyHook:
    """A pinned policy hook as routing calls it: its manifest, limits and context constants."""

    module_id: str
    manifest: Manifest
    limits: CallLimits
    ctx_base: dict[str, Any]


@frozen
class Route:
    """One active instance's view for routing: its manifest, subscriptions and call constants."""

    instance: ModuleInstance
    number: int
    manifest: Manifest
    subscriptions: tuple[CompiledSubscription, ...]
    ctx_base: dict[str, Any]
    template: InputTemplate
    tick_every: int | None
    limits: CallLimits
    reducer: bool  # a reducer's calls carry its state
    # Hook module_id -> the pinned hook; a hook missing here denies every effect (fail-closed).
    policy_hooks: dict[str, PolicyHook]


@frozen
class RuleDecision:
    """A pre_action module's verdict on one action."""

    instance_id: str
    verdict: str
    override: Any
    notes: str


def install_number(instance: ModuleInstance) -> int:
    """The `n` of `<module_id>#<n>`: the world-wide install counter when it was installed."""
    return int(instance.instance_id.rsplit("#", 1)[1])


def action_data(action: Any) -> dict[str, Any]:
    """An action's data as modules, filters and the journal see it.

    A deploy shows its hash and size, never its bytes: artifact bytes live in the store only.
    """
    data: dict[str, Any] = unstructure(action)
    if isinstance(action, DeployArtifact):
        del data["wasm_bytes"]
        data["size"] = len(action.wasm_bytes)
    return data


def action_envelope(action_id: int, action: Any) -> dict[str, Any]:
    """The action as modules and filters see it: `{action_id, type, data}`."""
    return {"action_id": action_id, "type": action.type, "data": action_data(action)}


def event_json(event: Event) -> dict[str, Any]:
    """The event as modules and filters see it."""
    return {"id": event.id, "time": event.time, "caused_by": event.caused_by,
            "kind": event.kind, "data": event.data}


class Router:
    """Routes one world's actions, events and ticks to its module instances."""

    def __init__(self, ledger: Ledger, services: WorldServices, decider: Decider) -> None:
        self._ledger = ledger
        self._services = services
        self._decider = decider
        self._compiled: dict[str, tuple[CompiledSubscription, ...]] = {}
        # Built on first use and then kept up to date event by event (see `observe`).
        self._index: SubscriptionIndex | None = None
        self._schedule = TickSchedule()
        self._routes: dict[str, Route] = {}

    def invalidate(self) -> None:
        """Forget the routing tables (the whole state was replaced)."""
        self._index = None

    def observe(self, event: Event) -> None:
        """Keep the routing tables in step with an event just applied to the state."""
        if self._index is None:
            return
        if event.kind in ROUTING_KINDS:
            instance_id = event.data.get("instance_id")
            if isinstance(instance_id, str):
                self._refresh(instance_id)
            else:  # an install recorded before instances had ids: rebuild from the state
                self.invalidate()
        elif event.kind == "module.tick_scheduled":
            route = self._routes.get(event.data["instance_id"])
            if route is not None:
                self._reschedule(route, self._ledger.time)

    def _tables(self) -> SubscriptionIndex:
        if self._index is None:
            self._index = SubscriptionIndex()
            self._schedule = TickSchedule()
            self._routes = {}
            # Install order is the instance number, whatever order the map was rebuilt in.
            for instance in sorted(self._ledger.state.instances.values(), key=install_number):
                self._enter(self._index, instance)
        return self._index

    def _refresh(self, instance_id: str) -> None:
        index = self._tables()
        index.remove(instance_id)
        self._routes.pop(instance_id, None)
        self._schedule.set(instance_id, 0, None)
        instance = self._ledger.state.instances.get(instance_id)
        if instance is not None:
            self._enter(index, instance)

    def _enter(self, index: SubscriptionIndex, instance: ModuleInstance) -> None:
        if not instance.active:
            return
        route = self._route(instance)
        self._routes[instance.instance_id] = route
        index.add(instance.instance_id, route.number, route, route.subscriptions)
        self._reschedule(route, self._ledger.time)

    def _reschedule(self, route: Route, start: int) -> None:
        instance_id = route.instance.instance_id
        self._schedule.set(instance_id, route.number, self._due_from(instance_id, start))

    def _due_from(self, instance_id: str, start: int) -> int | None:
        anchor = self._ledger.state.instances[instance_id].tick_anchor
        return next_due(anchor, self._routes[instance_id].tick_every, start)

    def _route(self, instance: ModuleInstance) -> Route:
        manifest = self._ledger.state.manifests[
            f"{instance.module_id}@{instance.module_version}"]
        if manifest.key not in self._compiled:
            self._compiled[manifest.key] = compile_subscriptions(manifest)
        constants = {
            "v": manifest.interface_version,
            "module_id": instance.module_id,
            "instance_id": instance.instance_id,
            "module_version": instance.module_version,
            "install_target": instance.install_target,
            "manifest_hash": instance.manifest_hash,
            "world_config_hash": self._services.config_hash(),
        }
        return Route(
            instance, install_number(instance), manifest, self._compiled[manifest.key],
            constants, InputTemplate(constants), manifest.tick_every,
            manifest.limits.resolve(self._services.config.default_limits),
            manifest.kind == "reducer", self._policy_hooks(instance, constants),
        )

    def _matching(self, stage: str, label: str) -> list[Entry]:
        return self._tables().matching(stage, label)

    def _policy_hooks(
        self, instance: ModuleInstance, ctx_base: dict[str, Any]
    ) -> dict[str, PolicyHook]:
        """The instance's pinned hooks, each called with its own module's identity."""
        hooks = {}
        for key in instance.policy_hooks:
            manifest = self._ledger.state.manifests.get(key)
            if manifest is None:
                continue
            hooks[manifest.module_id] = PolicyHook(
                manifest.module_id, manifest,
                manifest.limits.resolve(self._services.config.default_limits),
                {**ctx_base, "v": manifest.interface_version, "module_id": manifest.module_id,
                 "module_version": manifest.version, "manifest_hash": manifest.manifest_hash()},
            )
        return hooks

    # -- the step -----------------------------------------------------------------------------

    def route_action(self, action_id: int, action: Any, submitter: str | None) -> None:
        """pre_action → apply → post_action → post_event for one queued action."""
        ledger, decider = self._ledger, self._decider
        cause = cause_of(action_id, submitter)
        start = len(ledger.journal)
        if isinstance(action, Rejected):
            decider.reject(action_id, action, submitter)
            self._route_events(ledger.journal[start:], cause)
            return
        envelope = action_envelope(action_id, action)
        label = f"action.{action.type}"
        if submitter is None and action.governance:
            effective: Any = action
        else:
            effective = self._pre_action(action_id, action, envelope, label, cause)
        start = len(ledger.journal)
        if isinstance(effective, Rejected):
            decider.reject(action_id, effective, submitter)
            effective_action = action
        else:
            effective_action = effective
            decider.decide(action_id, effective_action, submitter)
        results = ledger.journal[start:]
        effective_envelope = action_envelope(action_id, effective_action)
        effective_label = f"action.{effective_action.type}"
        # The event the action resulted in: its last (an install registers, then installs).
        result = event_json(results[-1]) if results else None
        calls: list[Call] = []
        called = 0
        for entry in self._matching("post_action", effective_label):
            sub = entry.sub
            if (entry.number != called
                    and (sub.action_filter is None or sub.action_filter(effective_envelope))
                    and (sub.event_filter is None
                         or (result is not None and sub.event_filter(result)))):
                called = entry.number
                if not calls:
                    site = CallSite("post_action", ledger.time, "action", action_id)
                    routed_action = encode_value(effective_envelope)
                    routed_result = None if result is None else encode_value(result)
                calls.append(self._plan(entry.route, site, cause, action=routed_action,
                                        event=routed_result))
        self._run(calls)
        self._route_events(results, cause)

    def _pre_action(
        self, action_id: int, action: Any, envelope: dict[str, Any], label: str,
        cause: dict[str, int | str],
    ) -> Any:
        routed = None
        site = CallSite("pre_action", self._ledger.time, "action", action_id)
        calls: list[Call] = []
        called = 0
        for entry in self._matching("pre_action", label):
            sub = entry.sub
            if entry.number == called or (sub.action_filter is not None
                                          and not sub.action_filter(envelope)):
                continue
            called = entry.number
            if routed is None:
                routed = encode_value(envelope)
            calls.append(self._plan(entry.route, site, cause, action=routed,
                                    ruled=(action_id, action)))
        self._run(calls)
        decisions = [decision for call in calls for decision in call.decisions]
        failed = [call.instance_id for call in calls if call.output is None]
        if not decisions and not failed:
            return action
        verdict, override, notes = merge_decisions(decisions, failed)
        self._ledger.append("rule.decision_recorded", {
            "action_id": action_id,
            "verdict": verdict,
            "decisions": [{"instance_id": d.instance_id, "verdict": d.verdict, "notes": d.notes}
                          for d in decisions],
            "failed_instances": failed,
            "notes": notes,
        }, cause)
        if verdict == "deny":
            return Rejected("rule_denied", tuple(notes))
        if verdict == "modify":
            overridden = parse_action(override)
            self._ledger.append("rule.action_overridden", {
                "action_id": action_id,
                "original_action": {"type": envelope["type"], "data": envelope["data"]},
                "override_action": {"type": overridden.type, "data": action_data(overridden)},
            }, cause)
            return overridden
        return action

    def _route_events(self, events: Any, cause: dict[str, int | str] | None) -> None:
        for event in events:
            entries = self._matching("post_event", event.kind)
            if not entries:
                continue
            document = event_json(event)
            site = CallSite("post_event", self._ledger.time, "event", event.id)
            encoded = None
            calls = []
            called = 0
            plan = self._plan
            for entry in entries:
                sub = entry.sub
                if entry.number == called or (sub.event_filter is not None
                                              and not sub.event_filter(document)):
                    continue
                called = entry.number
                if encoded is None:
                    encoded = encode_value(document)
                calls.append(plan(entry.route, site, cause, event=encoded))
            self._run(calls)

    def route_ticks(self) -> None:
        """Call every active instance whose tick is due at the current time."""
        time = self._ledger.time
        self._tables()
        due = [self._routes[instance_id]
               for instance_id in self._schedule.due(time, self._due_from)]
        site = CallSite("tick", time, "tick", time)
        self._run([self._plan(route, site, None) for route in due])
        for route in due:
            # The instance's next tick: its cadence, or what its tick_lifecycle asked for.
            current = self._routes.get(route.instance.instance_id)
            if current is not None:
                self._reschedule(current, time + 1)

    # -- plan, batch, record -------------------------------------------------------------------

    def _plan(
        self,
        route: Route,
        site: CallSite,
        cause: dict[str, int | str] | None,
        *,
        event: bytes | None = None,
        action: bytes | None = None,
        ruled: tuple[int, Any] | None = None,
    ) -> Call:
        """A call of `route` at `site` with the routed event and action already encoded (`ruled`:
        the action a rule judges)."""
        instance_id = route.instance.instance_id
        trace_id = site.trace_prefix + instance_id
        state = (self._ledger.state.module_states.get(instance_id, b"")
                 if route.reducer else None)
        payload = route.template.call_input(site, trace_id, event=event, action=action,
                                            state=state)
        return Call(route, site, cause, payload, trace_id, ruled)

    def _run(self, calls: list[Call]) -> None:
        """Run planned calls as one batch, their policy hooks as a second, and record each.

        The calls of one batch do not depend on each other's outputs, so the executor may run
        them however it likes (`call_batch`); outcomes are recorded in the planned order.
        """
        if not calls:
            return
        self._execute(calls)
        checks: list[PolicyCheck] = []
        for call in calls:
            if call.output is not None and call.output.effects:
                self._plan_effects(call, checks)
        if checks:
            self._execute(checks)
        for call in calls:
            if call.output is not None and (call.effects or call.ruled is not None):
                self._settle(call)
            self._record(call)

    def _execute(self, batch: Sequence[Call | PolicyCheck]) -> None:
        """Run a batch of calls and set each one's output or failure."""
        services = self._services
        try:
            executor = services.executor_for_calls()
        except ModuleCallError as failure:
            for target in batch:
                target.failure = failure
            return
        requests, targets = [], []
        gas_schedule = services.config.gas_schedule
        loaders: dict[str, Callable[[], bytes] | None] = {}  # per artifact, for this batch
        last: Manifest | None = None  # consecutive calls mostly share their manifest
        for target in batch:
            manifest = target.manifest
            if manifest is not last:
                last = manifest
                wasm_hash, module_id = manifest.wasm_hash, manifest.module_id
                entrypoint, kind = manifest.entrypoint, manifest.kind
                if wasm_hash in loaders:
                    loader = loaders[wasm_hash]
                else:
                    # Checked here, not left to the executor: an executor shared with another
                    # world may hold the compiled module, and the journal must not depend on its
                    # caches.
                    loader = loaders[wasm_hash] = (
                        services.loader(wasm_hash) if services.artifact_available(wasm_hash)
                        else None)
            if loader is None:
                target.failure = ModuleCallError(
                    "artifact_missing", f"artifact {wasm_hash} is not in the module store")
                continue
            requests.append(CallRequest(
                module_id=module_id,
                instance_id=target.instance_id,
                wasm_hash=wasm_hash,
                wasm=loader,
                entrypoint=entrypoint,
                input=target.payload,
                limits=target.limits,
                kind=kind,
                gas_schedule=gas_schedule,
            ))
            targets.append(target)
        for target, outcome in zip(targets, executor.call_batch(requests), strict=True):
            if isinstance(outcome, ModuleOutput):
                target.output = outcome
            else:
                target.failure = outcome

    def _plan_effects(self, call: Call, hooks: list[PolicyCheck]) -> None:
        """Check the call's effects against slots, caps and grants; plan their policy checks.

        Effects are checked in order and the first refusal is the call's failure, so policy
        checks are planned for the effects before it only.
        """
        ledger = self._ledger
        route = call.route
        manifest = route.manifest
        assert call.output is not None
        planned: list[tuple[dict[str, Any], list[PolicyCheck]] | ModuleCallError] = []
        call.effects = planned
        for effect in call.output.effects:
            try:
                cap_ref = _granted_cap(manifest, effect, ledger.state, ledger.time)
            except ModuleCallError as failure:
                planned.append(failure)
                return
            intent = {"kind": effect["kind"], "params": effect.get("params"), "cap_ref": cap_ref}
            checks = []
            for name in manifest.abi_contract.policy_hooks:
                pinned = route.policy_hooks.get(name)
                if pinned is None:
                    check = PolicyCheck(call.instance_id, None, b"")
                    check.failure = ModuleCallError(
                        "policy_denied", f"policy hook {name!r} is not pinned")
                else:
                    check = PolicyCheck(call.instance_id, pinned,
                                        self._policy_input(call, pinned, intent))
                    hooks.append(check)
                checks.append(check)
            planned.append((intent, checks))

    def _policy_input(self, call: Call, hook: PolicyHook, intent: dict[str, Any]) -> bytes:
        """A policy hook's input: the calling instance's context with the hook's identity."""
        site = call.site
        ctx = {**call.route.ctx_base, "trace_id": call.trace_id, "stage": site.stage_name,
               "time": self._ledger.time, "origin": {"kind": site.origin_kind,
                                                   "id": site.origin_id}}
        hook_ctx = {**ctx, **hook.ctx_base, "stage": "policy",
                    "trace_id": f"policy-{call.trace_id}-{hook.module_id}"}
        return cbor2.dumps({"ctx": hook_ctx, "effect": intent}, canonical=True)

    def _settle(self, call: Call) -> None:
        """Turn a call's output and its policy checks into accepted effects, or a failure."""
        if call.output is None:
            return
        try:
            if call.effects:
                intents = []
                for planned in call.effects:
                    if isinstance(planned, ModuleCallError):
                        raise planned
                    intent, checks = planned
                    for check in checks:
                        check.verdict(intent)
                    intents.append(intent)
                call.intents = intents
            if call.ruled is not None:
                call.decisions = self._decisions(call.instance_id, call.output, call.ruled)
        except ModuleCallError as failure:
            call.failure = failure
            call.output = None

    def _record(self, call: Call) -> None:
        """Record a settled call's outputs as a whole, or its failure."""
        ledger = self._ledger
        route, cause, trace_id = call.route, call.cause, call.trace_id
        instance = route.instance
        stage = call.site.stage_name
        output = call.output
        if output is None:
            failure = call.failure
            assert failure is not None
            data: dict[str, Any] = {
                "instance_id": instance.instance_id, "module_id": instance.module_id,
                "trace_id": trace_id, "stage": stage, "code": failure.code,
                "detail": failure.detail,
            }
            if failure.code == "out_of_fuel" and failure.gas_used is not None:
                data["gas_used"] = failure.gas_used
            recorded = ledger.append("module.call_failed", data, cause)
            if self._services.config.halt_on_module_failure:
                raise ModuleHaltError(recorded) from None
            return
        instance_id = instance.instance_id
        if route.reducer and output.new_state is not None:
            ledger.append("module.state_updated", {
                "instance_id": instance_id, "trace_id": trace_id,
                "state": base64.b64encode(output.new_state).decode("ascii")}, cause)
        module_id = instance.module_id
        append = ledger.append
        for emit in output.emits:
            kind = emit["kind"]
            if kind == "rule.decision" and stage == "pre_action":
                continue
            append("module.emitted", {
                "instance_id": instance_id, "trace_id": trace_id, "module_id": module_id,
                "kind": kind, "payload": emit["payload"]}, cause)
        if call.intents:
            counter = ledger.state.effect_counter
            for intent in call.intents:
                counter += 1
                append("effect.queued", {
                    "intent_id": f"intent-{counter}", "instance_id": instance_id,
                    "module_id": module_id, "trace_id": trace_id, **intent}, cause)
        if stage == "tick" and output.tick_lifecycle is not None:
            lifecycle = output.tick_lifecycle
            next_tick = (ledger.time + lifecycle["ticks"]
                         if lifecycle["mode"] == "wake_after_ticks" else None)
            ledger.append("module.tick_scheduled", {
                "instance_id": instance_id, "trace_id": trace_id, "next_tick": next_tick}, cause)

    def _decisions(
        self, instance_id: str, output: ModuleOutput, ruled: tuple[int, Any]
    ) -> list[RuleDecision]:
        action_id, original = ruled
        decisions = []
        for emit in output.emits:
            if emit["kind"] != "rule.decision":
                continue
            payload = emit.get("payload")
            if not isinstance(payload, Mapping):
                raise ModuleCallError("invalid_output", "rule.decision payload must be a map")
            if payload.get("action_id") != action_id:
                raise ModuleCallError("invalid_output", f"rule.decision names action "
                                      f"{payload.get('action_id')!r}, routed {action_id}")
            verdict = payload.get("verdict")
            if verdict not in VERDICT_RANK:
                raise ModuleCallError("invalid_output", f"unknown verdict {verdict!r}")
            override = payload.get("override_action")
            if verdict == "modify":
                try:
                    overridden = parse_action(override if isinstance(override, Mapping) else {})
                except InvalidInputError as exc:
                    raise ModuleCallError("invalid_output", f"override_action: {exc}") from None
                problem = override_problem(original, overridden)
                if problem is not None:
                    raise ModuleCallError("invalid_output", f"override_action: {problem}")
            notes = payload.get("notes", "")
            decisions.append(RuleDecision(instance_id, verdict, override,
                                          notes if isinstance(notes, str) else str(notes)))
        return decisions


def _granted_cap(manifest: Manifest, effect: dict[str, Any], state: WorldState, time: int
                 ) -> str:
    """The cap an effect uses, if the manifest binds it and the world grants it for the effect."""
    slot = effect.get("cap_slot")
    if slot is not None:
        cap_ref = manifest.abi_contract.cap_slots.get(slot)
        if cap_ref is None:
            raise ModuleCallError("caps_denied", f"cap slot {slot!r} is not bound")
    else:
        cap_ref = effect["cap_ref"]
    if cap_ref not in manifest.required_caps:
        raise ModuleCallError("caps_denied",
                              f"cap {cap_ref!r} is not in the manifest's required_caps")
    grant = state.grants.get(cap_ref)
    if grant is None:
        raise ModuleCallError("caps_denied", f"cap {cap_ref!r} is not granted")
    if grant.expired(time):
        raise ModuleCallError("caps_denied", f"cap {cap_ref!r} expired at {grant.expires_at}")
    if not any(kind_matches(p, effect["kind"]) for p in grant.allowed_effect_kinds):
        raise ModuleCallError("caps_denied",
                              f"cap {cap_ref!r} does not allow effect {effect['kind']!r}")
    return str(cap_ref)


class Call:
    """One planned module call: its route and input, then its outcome once the batch ran."""

    __slots__ = ("cause", "decisions", "effects", "failure", "instance_id", "intents", "limits",
                 "manifest", "output", "payload", "route", "ruled", "site", "trace_id")

    def __init__(self, route: Route, site: CallSite, cause: dict[str, int | str] | None,
                 payload: bytes, trace_id: str, ruled: tuple[int, Any] | None = None) -> None:
        self.route = route
        self.instance_id = route.instance.instance_id
        self.manifest = route.manifest
        self.limits = route.limits
        self.site = site
        self.cause = cause
        self.payload = payload
        self.trace_id = trace_id
        self.ruled = ruled
        self.output: ModuleOutput | None = None
        self.failure: ModuleCallError | None = None
        # Per effect, in order: (intent, its policy checks), or the refusal that ends the list.
        # Set only for calls that have effects or judge an action (most calls do not).
        self.effects: Sequence[tuple[dict[str, Any], list[PolicyCheck]] | ModuleCallError] = ()
        self.intents: Sequence[dict[str, Any]] = ()
        self.decisions: Sequence[RuleDecision] = ()


class PolicyCheck:
    """One policy hook asked about one effect intent (None: no hook is pinned), and its answer."""

    __slots__ = ("failure", "hook", "instance_id", "limits", "manifest", "output", "payload")

    def __init__(self, instance_id: str, hook: PolicyHook | None, payload: bytes) -> None:
        self.instance_id = instance_id  # the instance whose effect is checked: the hook runs as it
        self.hook = hook
        self.payload = payload
        if hook is not None:
            self.manifest = hook.manifest
            self.limits = hook.limits
        self.output: ModuleOutput | None = None
        self.failure: ModuleCallError | None = None

    def verdict(self, intent: dict[str, Any]) -> None:
        """Raise `policy_denied` unless the hook answered `policy.allow` and no `policy.deny`."""
        if self.output is None:
            failure = self.failure
            assert failure is not None
            if self.hook is None:
                raise failure
            raise ModuleCallError("policy_denied", f"policy hook {self.hook.manifest.key} "
                                  f"failed: {failure.code}: {failure.detail}")
        assert self.hook is not None
        emits = self.output.emits
        denials = [emit for emit in emits if emit["kind"] == "policy.deny"]
        if denials or not any(emit["kind"] == "policy.allow" for emit in emits):
            reason = deny_reason(denials[0].get("payload")) if denials else "no policy.allow"
            raise ModuleCallError("policy_denied", f"policy hook {self.hook.manifest.key} "
                                  f"denied {intent['kind']!r}: {reason}")


# How much of a policy hook's deny reason the journal keeps.
MAX_REASON_CHARS = 200


def deny_reason(payload: Any) -> str:
    """A hook's reason from its `policy.deny` payload: `{"reason": text}`, or the payload."""
    if isinstance(payload, Mapping) and "reason" in payload:
        payload = payload["reason"]
    try:
        text = payload if isinstance(payload, str) else canonical_json(payload).decode("utf-8")
    except AgentWorldError:
        text = "(a reason that is not JSON)"
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "..."


def merge_decisions(
    decisions: list[RuleDecision], failed: list[str]
) -> tuple[str, Any, list[str]]:
    """Merge verdicts: any failure or deny denies; modify beats allow; two overrides deny."""
    notes = [f"{d.instance_id}: {d.notes}" for d in decisions if d.notes]
    notes += [f"{instance_id}: module call failed (fail-closed)" for instance_id in failed]
    if failed or any(d.verdict == "deny" for d in decisions):
        return "deny", None, notes
    overrides = {canonical_json(d.override): d.override for d in decisions
                 if d.verdict == "modify"}
    if len(overrides) > 1:
        return "deny", None, [*notes, "conflicting override_action from several modules"]
    if overrides:
        return "modify", next(iter(overrides.values())), notes
    return "allow", None, notes
