"""Module routing for `World.step_with_modules`.

For each queued action: pre_action (rule decisions merged: deny > modify > allow) → apply →
post_action → post_event for the events it produced; then ticks for due instances. Calls are
routed per *instance*, in install order. A failing call records `module.call_failed` and
contributes nothing else; a failing pre_action call denies its action (fail-closed).

Governance actions of the world's system actor skip pre_action, so no rule can lock the host
out. A rule may only rewrite a domain action into one of the same type and acting agent; the
rewritten action keeps its submitter.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import cbor2
from attrs import frozen

from agentworld.abi import encode_input
from agentworld.actions import parse_action
from agentworld.authority import cause_of, override_problem
from agentworld.canonical import canonical_json
from agentworld.convert import unstructure
from agentworld.domain import Draft, Rejected
from agentworld.errors import AgentWorldError, InvalidInputError, StoreError
from agentworld.executor import CallLimits, CallRequest, ModuleCallError, ModuleOutput
from agentworld.filters import kind_matches
from agentworld.manifest import CompiledSubscription, Manifest, compile_subscriptions
from agentworld.model import Event, ModuleInstance
from agentworld.module_actions import DeployArtifact

if TYPE_CHECKING:
    from agentworld.world import World

VERDICT_RANK = {"allow": 0, "modify": 1, "deny": 2}


class ModuleHaltError(AgentWorldError):
    """A module call failed in a world configured to halt instead of recording and going on."""

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
    manifest: Manifest
    subscriptions: tuple[CompiledSubscription, ...]
    ctx_base: dict[str, Any]
    tick_every: int | None
    limits: CallLimits
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

    def __init__(self, world: World) -> None:
        self.world = world
        self._routes: list[Route] | None = None
        self._compiled: dict[str, tuple[CompiledSubscription, ...]] = {}

    def invalidate(self) -> None:
        """Forget the routing table (instances or manifests changed)."""
        self._routes = None

    def routes(self) -> list[Route]:
        """Active instances in install order, with what routing needs of each."""
        if self._routes is None:
            state = self.world.state
            config_hash = self.world.config_hash()
            routes = []
            # Install order is the instance number, whatever order the map was rebuilt in.
            for instance in sorted(state.instances.values(), key=install_number):
                if not instance.active:
                    continue
                manifest = state.manifests[f"{instance.module_id}@{instance.module_version}"]
                if manifest.key not in self._compiled:
                    self._compiled[manifest.key] = compile_subscriptions(manifest)
                ctx_base = {
                    "v": manifest.interface_version,
                    "module_id": instance.module_id,
                    "instance_id": instance.instance_id,
                    "module_version": instance.module_version,
                    "install_target": instance.install_target,
                    "manifest_hash": instance.manifest_hash,
                    "world_config_hash": config_hash,
                }
                routes.append(Route(
                    instance, manifest, self._compiled[manifest.key], ctx_base,
                    manifest.tick_every,
                    manifest.limits.resolve(self.world.config.default_limits),
                    self._policy_hooks(instance, ctx_base),
                ))
            self._routes = routes
        return self._routes

    def _policy_hooks(
        self, instance: ModuleInstance, ctx_base: dict[str, Any]
    ) -> dict[str, PolicyHook]:
        """The instance's pinned hooks, each called with its own module's identity."""
        hooks = {}
        for key in instance.policy_hooks:
            manifest = self.world.state.manifests.get(key)
            if manifest is None:
                continue
            hooks[manifest.module_id] = PolicyHook(
                manifest.module_id, manifest,
                manifest.limits.resolve(self.world.config.default_limits),
                {**ctx_base, "v": manifest.interface_version, "module_id": manifest.module_id,
                 "module_version": manifest.version, "manifest_hash": manifest.manifest_hash()},
            )
        return hooks

    # -- the step -----------------------------------------------------------------------------

    def route_action(self, action_id: int, action: Any, submitter: str | None) -> None:
        """pre_action → apply → post_action → post_event for one queued action."""
        world = self.world
        cause = cause_of(action_id, submitter)
        start = len(world.journal)
        if isinstance(action, Rejected):
            world.record_rejection(action_id, action, submitter)
            self._route_events(world.journal[start:], cause)
            return
        envelope = action_envelope(action_id, action)
        label = f"action.{action.type}"
        if submitter is None and action.governance:
            effective: Any = action
        else:
            effective = self._pre_action(action_id, action, envelope, label, cause)
        start = len(world.journal)
        if isinstance(effective, Rejected):
            world.record_rejection(action_id, effective, submitter)
            effective_action = action
        else:
            effective_action = effective
            world.decide_and_append(action_id, effective_action, submitter)
        results = world.journal[start:]
        effective_envelope = action_envelope(action_id, effective_action)
        effective_label = f"action.{effective_action.type}"
        # The event the action resulted in: its last (an install registers, then installs).
        result = event_json(results[-1]) if results else None
        for route in self.routes():
            for sub in route.subscriptions:
                if (sub.stage == "post_action" and sub.matches_kind(effective_label)
                        and (sub.action_filter is None or sub.action_filter(effective_envelope))
                        and (sub.event_filter is None
                             or (result is not None and sub.event_filter(result)))):
                    trace_id = f"action-{action_id}-{route.instance.instance_id}"
                    self._call(route, "post_action", trace_id,
                               {"kind": "action", "id": action_id}, cause,
                               action=effective_envelope, event=result)
                    break
        self._route_events(results, cause)

    def _pre_action(
        self, action_id: int, action: Any, envelope: dict[str, Any], label: str,
        cause: dict[str, int | str],
    ) -> Any:
        decisions: list[RuleDecision] = []
        failed: list[str] = []
        for route in self.routes():
            if not any(sub.stage == "pre_action" and sub.matches_kind(label)
                       and (sub.action_filter is None or sub.action_filter(envelope))
                       for sub in route.subscriptions):
                continue
            instance_id = route.instance.instance_id
            result = self._call(route, "pre_action", f"action-{action_id}-{instance_id}",
                                {"kind": "action", "id": action_id}, cause, action=envelope,
                                ruled=(action_id, action))
            if result is None:
                failed.append(instance_id)
            else:
                decisions.extend(result)
        if not decisions and not failed:
            return action
        verdict, override, notes = merge_decisions(decisions, failed)
        self.world.append(Draft("rule.decision_recorded", {
            "action_id": action_id,
            "verdict": verdict,
            "decisions": [{"instance_id": d.instance_id, "verdict": d.verdict, "notes": d.notes}
                          for d in decisions],
            "failed_instances": failed,
            "notes": notes,
        }), cause)
        if verdict == "deny":
            return Rejected("rule_denied", tuple(notes))
        if verdict == "modify":
            overridden = parse_action(override)
            self.world.append(Draft("rule.action_overridden", {
                "action_id": action_id,
                "original_action": {"type": envelope["type"], "data": envelope["data"]},
                "override_action": {"type": overridden.type, "data": action_data(overridden)},
            }), cause)
            return overridden
        return action

    def _route_events(self, events: Any, cause: dict[str, int | str] | None) -> None:
        for event in events:
            document = event_json(event)
            for route in self.routes():
                for sub in route.subscriptions:
                    if (sub.stage == "post_event" and sub.matches_kind(event.kind)
                            and (sub.event_filter is None or sub.event_filter(document))):
                        self._call(route, "post_event",
                                   f"event-{event.id}-{route.instance.instance_id}",
                                   {"kind": "event", "id": event.id}, cause, event=document)
                        break

    def route_ticks(self) -> None:
        """Call every active instance whose tick is due at the current time."""
        time = self.world.time
        for route in self.routes():
            every, anchor = route.tick_every, route.instance.tick_anchor
            if every is None or anchor is None or time < anchor or (time - anchor) % every:
                continue
            self._call(route, "tick", f"tick-{time}-{route.instance.instance_id}",
                       {"kind": "tick", "id": time}, None)

    # -- one call -----------------------------------------------------------------------------

    def _call(
        self,
        route: Route,
        stage: str,
        trace_id: str,
        origin: dict[str, Any],
        cause: dict[str, int | str] | None,
        *,
        event: dict[str, Any] | None = None,
        action: dict[str, Any] | None = None,
        ruled: tuple[int, Any] | None = None,
    ) -> list[RuleDecision] | None:
        """Run one call and record its outputs as a whole; None when it failed.

        `ruled` is the `(action_id, action)` a pre_action call decides on.
        """
        world = self.world
        instance, manifest = route.instance, route.manifest
        ctx = {**route.ctx_base, "trace_id": trace_id, "stage": stage, "time": world.time,
               "origin": origin}
        reducer = manifest.kind == "reducer"
        state = world.state.module_states.get(instance.instance_id, b"") if reducer else None
        try:
            output = self._execute(manifest, route.limits, instance.instance_id,
                                   encode_input(ctx, event=event, action=action, state=state))
            intents = self._check_effects(route, output, trace_id, ctx)
            decisions = (self._decisions(instance.instance_id, output, ruled)
                         if ruled is not None else [])
        except ModuleCallError as failure:
            data: dict[str, Any] = {
                "instance_id": instance.instance_id, "module_id": instance.module_id,
                "trace_id": trace_id, "stage": stage, "code": failure.code,
                "detail": failure.detail,
            }
            if failure.code == "out_of_fuel" and failure.gas_used is not None:
                data["gas_used"] = failure.gas_used
            recorded = world.append(Draft("module.call_failed", data), cause)
            if world.config.halt_on_module_failure:
                raise ModuleHaltError(recorded) from None
            return None
        base = {"instance_id": instance.instance_id, "trace_id": trace_id}
        if reducer and output.new_state is not None:
            world.append(Draft("module.state_updated", {
                **base, "state": base64.b64encode(output.new_state).decode("ascii")}), cause)
        for emit in output.emits:
            if stage == "pre_action" and emit["kind"] == "rule.decision":
                continue
            world.append(Draft("module.emitted", {
                **base, "module_id": instance.module_id, "kind": emit["kind"],
                "payload": emit.get("payload")}), cause)
        for intent in intents:
            world.append(Draft("effect.queued", intent), cause)
        if stage == "tick" and output.tick_lifecycle is not None:
            lifecycle = output.tick_lifecycle
            next_tick = (world.time + lifecycle["ticks"]
                         if lifecycle["mode"] == "wake_after_ticks" else None)
            world.append(Draft("module.tick_scheduled", {**base, "next_tick": next_tick}), cause)
        return decisions

    def _execute(
        self, manifest: Manifest, limits: CallLimits, instance_id: str, payload: bytes,
        entrypoint: str | None = None,
    ) -> ModuleOutput:
        """Call `entrypoint` (default: the manifest's) of the manifest's artifact once."""
        world = self.world
        executor = world.executor_for_calls()
        wasm_hash = manifest.wasm_hash
        # Checked here, not left to the executor: an executor shared with another world may
        # hold the compiled module, and the journal must not depend on what it has cached.
        if not world.artifact_available(wasm_hash):
            raise ModuleCallError("artifact_missing",
                                  f"artifact {wasm_hash} is not in the module store")
        return executor.call(CallRequest(
            module_id=manifest.module_id,
            instance_id=instance_id,
            wasm_hash=wasm_hash,
            wasm=_loader(world.load_blob, wasm_hash),
            entrypoint=entrypoint or manifest.entrypoint,
            input=payload,
            limits=limits,
            kind=manifest.kind,
            gas_schedule=world.config.gas_schedule,
        ))

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

    def _check_effects(
        self, route: Route, output: ModuleOutput, trace_id: str, ctx: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Every effect checked against slots, caps, grants and policy hooks, or a failure."""
        world = self.world
        manifest, instance = route.manifest, route.instance
        intents = []
        counter = world.state.effect_counter
        for effect in output.effects:
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
            grant = world.state.grants.get(cap_ref)
            if grant is None:
                raise ModuleCallError("caps_denied", f"cap {cap_ref!r} is not granted")
            if grant.expired(world.time):
                raise ModuleCallError("caps_denied",
                                      f"cap {cap_ref!r} expired at {grant.expires_at}")
            if not any(kind_matches(p, effect["kind"]) for p in grant.allowed_effect_kinds):
                raise ModuleCallError("caps_denied",
                                      f"cap {cap_ref!r} does not allow effect {effect['kind']!r}")
            intent = {"kind": effect["kind"], "params": effect.get("params"), "cap_ref": cap_ref}
            for hook in manifest.abi_contract.policy_hooks:
                self._ask_policy(route, hook, intent, trace_id, ctx)
            counter += 1
            intents.append({"intent_id": f"intent-{counter}", "instance_id": instance.instance_id,
                            "module_id": instance.module_id, "trace_id": trace_id, **intent})
        return intents

    def _ask_policy(
        self, route: Route, hook: str, intent: dict[str, Any], trace_id: str,
        ctx: dict[str, Any],
    ) -> None:
        """Run the instance's pinned policy hook `hook` on an effect intent, with the hook's own
        module identity in its context; anything but `policy.allow` denies."""
        pinned = route.policy_hooks.get(hook)
        if pinned is None:
            raise ModuleCallError("policy_denied", f"policy hook {hook!r} is not pinned")
        name = pinned.manifest.key
        hook_ctx = {**ctx, **pinned.ctx_base, "stage": "policy",
                    "trace_id": f"policy-{trace_id}-{hook}"}
        payload = cbor2.dumps({"ctx": hook_ctx, "effect": intent}, canonical=True)
        try:
            output = self._execute(pinned.manifest, pinned.limits, route.instance.instance_id,
                                   payload)
        except ModuleCallError as failure:
            raise ModuleCallError("policy_denied", f"policy hook {name} failed: "
                                  f"{failure.code}: {failure.detail}") from None
        denials = [emit for emit in output.emits if emit["kind"] == "policy.deny"]
        if denials or not any(emit["kind"] == "policy.allow" for emit in output.emits):
            reason = deny_reason(denials[0].get("payload")) if denials else "no policy.allow"
            raise ModuleCallError("policy_denied",
                                  f"policy hook {name} denied {intent['kind']!r}: {reason}")


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


def _loader(load: Callable[[str], bytes], wasm_hash: str) -> Callable[[], bytes]:
    def load_artifact() -> bytes:
        try:
            return load(wasm_hash)
        except StoreError:
            # The store's own message names paths or endpoints; the journal must not.
            raise ModuleCallError(
                "artifact_missing", f"artifact {wasm_hash} could not be read from the module store"
            ) from None

    return load_artifact

