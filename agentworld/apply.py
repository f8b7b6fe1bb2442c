"""`apply_event`: the only writer of world state.

Applying is a deterministic function of (state, event): it reads nothing else (no clock, no
environment, no module) and calls nothing, so replaying a journal always rebuilds the same state.
Events whose kind records a fact without changing state (rejections, module emits) are no-ops.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from attrs import evolve

from agentworld.authority import pin_policy_hooks
from agentworld.errors import MalformedEventError, UnknownEventKindError
from agentworld.manifest import parse_manifest
from agentworld.model import (
    Agent,
    ArtifactRecord,
    CapabilityGrant,
    EffectIntent,
    Event,
    ModuleInstance,
    ModuleNamespace,
    PinnedRule,
    WorldState,
)

Applier = Callable[[WorldState, Event], None]


def _agent_registered(state: WorldState, event: Event) -> None:
    data = event.data
    x, y = data["position"]
    state.agents[data["agent_id"]] = Agent(data["agent_id"], (x, y), dict(data["resources"]))


def _agent_moved(state: WorldState, event: Event) -> None:
    x, y = event.data["to"]
    state.agents[event.data["agent_id"]].position = (x, y)


def _resource_transferred(state: WorldState, event: Event) -> None:
    data = event.data
    kind, amount = data["kind"], data["amount"]
    source = state.agents[data["from_agent_id"]].resources
    source[kind] -= amount
    if source[kind] == 0:
        del source[kind]
    target = state.agents[data["to_agent_id"]].resources
    target[kind] = target.get(kind, 0) + amount
    # Keep resource maps in sorted order so the snapshot never depends on transfer history.
    state.agents[data["to_agent_id"]].resources = dict(sorted(target.items()))


def _capability_granted(state: WorldState, event: Event) -> None:
    data = event.data
    state.grants[data["cap_ref"]] = CapabilityGrant(
        data["cap_ref"], list(data["allowed_effect_kinds"]), data["expires_at"]
    )


def _artifact_deployed(state: WorldState, event: Event) -> None:
    data = event.data
    if data["wasm_hash"] not in state.artifacts:  # redeploying known bytes changes nothing
        state.artifacts[data["wasm_hash"]] = ArtifactRecord(
            data["wasm_hash"], data["publisher_agent_id"], data["size"], event.time,
            data.get("exports"),
        )


def _role_granted(state: WorldState, event: Event) -> None:
    roles = state.roles.setdefault(event.data["agent_id"], [])
    roles.append(event.data["role"])
    roles.sort()


def _role_revoked(state: WorldState, event: Event) -> None:
    agent_id = event.data["agent_id"]
    state.roles[agent_id].remove(event.data["role"])
    if not state.roles[agent_id]:
        del state.roles[agent_id]


def _module_registered(state: WorldState, event: Event) -> None:
    manifest = parse_manifest(event.data["manifest"])
    state.manifests[manifest.key] = manifest
    if "registrant_agent_id" in event.data:
        _attribute(state, manifest.key, event.data["registrant_agent_id"])


def _attribute(state: WorldState, key: str, agent_id: str) -> None:
    """Record that `agent_id` registered `key`: the first registrant of a module owns it.

    Registrations written before namespaces existed name no registrant; the install or
    upgrade event that follows in the same action calls this with its acting agent, and
    before it no other event can name the new version, so the first call for a key is right.
    """
    if key in state.manifest_registrants:
        return
    state.manifest_registrants[key] = agent_id
    manifest = state.manifests[key]
    namespace = state.modules.get(manifest.module_id)
    if namespace is None:
        state.modules[manifest.module_id] = ModuleNamespace(agent_id, manifest.version)
    elif namespace.owner_agent_id == agent_id:
        namespace.last_version = manifest.version


def _pins(state: WorldState, key: str, data: dict[str, object]) -> list[str]:
    pins = data.get("policy_hooks")
    if isinstance(pins, list):
        return list(pins)
    # Written before hooks were pinned: pin them as a decision would have then.
    return pin_policy_hooks(state, state.manifests[key])


def _first_tick(state: WorldState, module_id: str, version: str, time: int) -> int | None:
    every = state.manifests[f"{module_id}@{version}"].tick_every
    return None if every is None else time + every


def _module_installed(state: WorldState, event: Event) -> None:
    data = event.data
    module_id, version = data["module_id"], data["module_version"]
    key = f"{module_id}@{version}"
    manifest = state.manifests[key]
    _attribute(state, key, data["installer_agent_id"])
    # Events written before instances existed carry no instance_id: number them in order.
    instance_id = data.get("instance_id") or f"{module_id}#{state.instance_counter + 1}"
    number = int(instance_id.rsplit("#", 1)[1])
    state.instance_counter = max(state.instance_counter, number)
    state.instances[instance_id] = ModuleInstance(
        instance_id=instance_id,
        module_id=module_id,
        module_version=version,
        wasm_hash=data.get("wasm_hash", manifest.wasm_hash),
        owner_agent_id=data["installer_agent_id"],
        install_target=dict(data.get("install_target", {"type": "self_agent"})),
        active=data.get("active", True),
        installed_at=event.time,
        manifest_hash=data.get("manifest_hash", manifest.manifest_hash()),
        policy_hooks=_pins(state, key, data),
        tick_anchor=_first_tick(state, module_id, version, event.time),
    )


def _active_set(state: WorldState, event: Event) -> None:
    instance = state.instances[event.data["instance_id"]]
    instance.active = event.data["active"]
    if instance.active and instance.tick_anchor is None:
        instance.tick_anchor = _first_tick(
            state, instance.module_id, instance.module_version, event.time
        )


def _instance_moved(state: WorldState, event: Event) -> None:
    """An upgrade or rollback: same id, owner, target and state; new version and code."""
    data = event.data
    instance = state.instances[data["instance_id"]]
    key = f"{instance.module_id}@{data['to_module_version']}"
    _attribute(state, key, data.get("upgrader_agent_id") or data["operator_agent_id"])
    instance.policy_hooks = _pins(state, key, data)
    instance.module_version = data["to_module_version"]
    instance.wasm_hash = data["to_wasm_hash"]
    instance.manifest_hash = data["manifest_hash"]
    instance.active = data.get("active", instance.active)
    if instance.tick_anchor is None:
        instance.tick_anchor = _first_tick(
            state, instance.module_id, instance.module_version, event.time
        )


def _state_updated(state: WorldState, event: Event) -> None:
    state.module_states[event.data["instance_id"]] = base64.b64decode(event.data["state"])


def _tick_scheduled(state: WorldState, event: Event) -> None:
    state.instances[event.data["instance_id"]].tick_anchor = event.data["next_tick"]


def _effect_queued(state: WorldState, event: Event) -> None:
    data = event.data
    state.effect_counter += 1
    state.pending_effects[data["intent_id"]] = EffectIntent(
        intent_id=data["intent_id"],
        instance_id=data["instance_id"],
        module_id=data["module_id"],
        trace_id=data["trace_id"],
        kind=data["kind"],
        params=data["params"],
        cap_ref=data["cap_ref"],
        queued_at=event.time,
    )


def _receipt_recorded(state: WorldState, event: Event) -> None:
    del state.pending_effects[event.data["intent_id"]]


def _compat_policy_set(state: WorldState, event: Event) -> None:
    state.compat_policy = [PinnedRule(entry["rule"], entry["plugin"], entry["plugin_version"])
                           for entry in event.data["rules"]]


APPLIERS: dict[str, Applier] = {
    "domain.agent_registered": _agent_registered,
    "domain.agent_moved": _agent_moved,
    "domain.resource_transferred": _resource_transferred,
    "domain.capability_granted": _capability_granted,
    "domain.role_granted": _role_granted,
    "domain.role_revoked": _role_revoked,
    "domain.module_artifact_deployed": _artifact_deployed,
    "domain.module_registered": _module_registered,
    "domain.module_installed": _module_installed,
    "domain.module_active_set": _active_set,
    "domain.module_upgraded": _instance_moved,
    "domain.module_rolled_back": _instance_moved,
    "module.state_updated": _state_updated,
    "module.tick_scheduled": _tick_scheduled,
    "effect.queued": _effect_queued,
    "effect.receipt_recorded": _receipt_recorded,
    "world.compat_policy_set": _compat_policy_set,
}

# Kinds that record a fact but change no state.
FACT_KINDS: set[str] = {
    "domain.action_rejected",
    "module.emitted",
    "module.call_failed",
    "rule.decision_recorded",
    "rule.action_overridden",
}


Change = tuple[str, str | None]
"""A field of the state that an event changes, and the key of its entry (None for a counter)."""

_Changes = Callable[[WorldState, dict[str, Any]], list[Change]]


def _attributed(module_id: str, version: str) -> list[Change]:
    """What `_attribute` may change for `module_id@version`."""
    return [("manifest_registrants", f"{module_id}@{version}"), ("modules", module_id)]


def _instance_installed(state: WorldState, data: dict[str, Any]) -> list[Change]:
    instance_id = data.get("instance_id") or f"{data['module_id']}#{state.instance_counter + 1}"
    return [("instances", instance_id), ("instance_counter", None),
            *_attributed(data["module_id"], data["module_version"])]


def _manifest_registered(state: WorldState, data: dict[str, Any]) -> list[Change]:
    manifest = data["manifest"]
    module_id, version = manifest["module_id"], manifest["version"]
    return [("manifests", f"{module_id}@{version}"), *_attributed(module_id, version)]


def _instance_moved_changes(state: WorldState, data: dict[str, Any]) -> list[Change]:
    instance_id = data["instance_id"]
    module_id = state.instances[instance_id].module_id
    return [("instances", instance_id), *_attributed(module_id, data["to_module_version"])]


CHANGES: dict[str, _Changes] = {
    "domain.agent_registered": lambda state, data: [("agents", data["agent_id"])],
    "domain.agent_moved": lambda state, data: [("agents", data["agent_id"])],
    "domain.resource_transferred": lambda state, data: [
        ("agents", data["from_agent_id"]), ("agents", data["to_agent_id"])],
    "domain.capability_granted": lambda state, data: [("grants", data["cap_ref"])],
    "domain.role_granted": lambda state, data: [("roles", data["agent_id"])],
    "domain.role_revoked": lambda state, data: [("roles", data["agent_id"])],
    "domain.module_artifact_deployed": lambda state, data: [("artifacts", data["wasm_hash"])],
    "domain.module_registered": _manifest_registered,
    "domain.module_installed": _instance_installed,
    "domain.module_active_set": lambda state, data: [("instances", data["instance_id"])],
    "domain.module_upgraded": _instance_moved_changes,
    "domain.module_rolled_back": _instance_moved_changes,
    "module.state_updated": lambda state, data: [("module_states", data["instance_id"])],
    "module.tick_scheduled": lambda state, data: [("instances", data["instance_id"])],
    "effect.queued": lambda state, data: [
        ("pending_effects", data["intent_id"]), ("effect_counter", None)],
    "effect.receipt_recorded": lambda state, data: [("pending_effects", data["intent_id"])],
    "world.compat_policy_set": lambda state, data: [("compat_policy", None)],
}
"""What each state-changing kind changes (computed before it is applied)."""


def _agent_copy(agent: Agent) -> Agent:
    return Agent(agent.agent_id, agent.position, dict(agent.resources))


ENTRY_COPY: dict[str, Callable[[Any], Any]] = {
    "agents": _agent_copy,  # appliers change an agent's position and resources in place
    "instances": evolve,  # and an instance's attributes (not the values they hold)
    "modules": evolve,  # and a namespace's last version
    "roles": list,  # and an agent's list of roles
}
"""How to copy an entry of the maps whose appliers change entries in place: what the ledger
keeps to undo a step, and what a world image holds. Entries of the other maps are only ever
replaced or deleted, never changed."""


def _intent_number(intent_id: str) -> int:
    return int(intent_id.rsplit("-", 1)[1])


ENTRY_ORDER: dict[str, Callable[[str], Any] | None] = {
    "pending_effects": _intent_number,  # queued, so kept, in intent-number order
    "roles": None,
}
"""The maps whose appliers delete entries, and the order of their keys: a sort key when the
order follows from the keys, None when it is history's (undoing a deletion must restore the
entry to its place, which a dict cannot do by itself)."""


def changes(state: WorldState, event: Event) -> list[Change] | None:
    """The entries `event` will change when applied to `state` (call it before applying).

    None when the event's data does not say (it is malformed): anything may change.
    """
    declared = CHANGES.get(event.kind)
    if declared is None:  # a fact changes nothing; an applier without a declaration, anything
        return None if event.kind in APPLIERS else []
    try:
        return declared(state, event.data)
    except (KeyError, TypeError, AttributeError):
        return None


def apply_event(state: WorldState, event: Event) -> None:
    """Apply one event to `state` in place.

    Unknown kinds raise `UnknownEventKindError`; data that does not fit raises
    `MalformedEventError` (the state may then be partly changed: it came from a corrupt journal).
    """
    applier = APPLIERS.get(event.kind)
    if applier is not None:
        try:
            applier(state, event)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedEventError(
                f"event {event.id} ({event.kind}) cannot be applied: {type(exc).__name__}: {exc}"
            ) from None
    elif event.kind not in FACT_KINDS:
        raise UnknownEventKindError(f"event {event.id} has unknown kind {event.kind!r}")
