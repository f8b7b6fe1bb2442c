"""The world's data: events and the state they build. Plain attrs classes, no behaviour."""

from __future__ import annotations

from typing import Any

from attrs import Factory, define, frozen
from cattrs.gen import make_dict_unstructure_fn, override

from agentworld.convert import converter
from agentworld.manifest import Manifest


@frozen
class Event:
    """One journal entry: the only way state changes.

    `caused_by` is None (a tick) or `{"action": id}`, plus `"submitter": agent_id` when an
    agent, not the world's system actor, submitted that action.
    """

    id: int
    time: int
    caused_by: dict[str, int | str] | None
    kind: str
    data: dict[str, Any]


@define
class Agent:
    """An agent: where it stands and what it holds."""

    agent_id: str
    position: tuple[int, int]
    resources: dict[str, int] = Factory(dict)


@define
class CapabilityGrant:
    """A capability granted by the world's system actor; effects are checked against it."""

    cap_ref: str
    allowed_effect_kinds: list[str]
    expires_at: int | None = None

    def expired(self, time: int) -> bool:
        """True when the grant is no longer valid at `time`."""
        return self.expires_at is not None and time >= self.expires_at


@define
class ModuleNamespace:
    """A `module_id` and the agent that owns it: the first to register a version of it."""

    owner_agent_id: str
    # The version the owner registered last: what a policy hook naming the module resolves to.
    last_version: str


@frozen(kw_only=True)
class InstallTarget:
    """Where an instance is installed: on its owner (`self_agent`) or at a named location."""

    type: str = "self_agent"
    location_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """`{"type": "self_agent"}` or `{"type": "location", "location_id": ...}`."""
        if self.location_id is None:
            return {"type": self.type}
        return {"type": self.type, "location_id": self.location_id}


@define
class ArtifactRecord:
    """A deployed artifact: who published it and its size (its bytes live in the store)."""

    wasm_hash: str
    publisher_agent_id: str
    size: int
    deployed_at: int
    # What the module really exports (None for artifacts deployed before this was recorded).
    exports: list[str] | None = None


@define
class ModuleInstance:
    """An installed module: one owner, one target, its own version, state and tick schedule."""

    instance_id: str
    module_id: str
    module_version: str
    wasm_hash: str
    owner_agent_id: str
    install_target: dict[str, Any]
    active: bool
    installed_at: int
    manifest_hash: str
    # The policy hooks the manifest names, each pinned to `module_id@version` when the instance
    # was installed, upgraded or rolled back.
    policy_hooks: list[str] = Factory(list)
    # Ticks are due at tick_anchor, tick_anchor + every_ticks, ...; None means suspended.
    tick_anchor: int | None = None


@define
class EffectIntent:
    """An accepted module effect, waiting in the pending-effect queue for a receipt."""

    intent_id: str
    instance_id: str
    module_id: str
    trace_id: str
    kind: str
    params: Any
    cap_ref: str
    queued_at: int


@frozen
class PinnedRule:
    """One rule of a world's compatibility policy: its name, the plugin that registered it, and
    that plugin's version when the rule was pinned."""

    rule: str
    plugin: str
    plugin_version: str | None


@define
class WorldState:
    """Everything the journal builds. Its canonical encoding is hashed into the state root."""

    agents: dict[str, Agent] = Factory(dict)
    grants: dict[str, CapabilityGrant] = Factory(dict)
    artifacts: dict[str, ArtifactRecord] = Factory(dict)
    # module_id@version -> manifest; immutable once registered
    manifests: dict[str, Manifest] = Factory(dict)
    # module_id@version -> the agent whose install or upgrade registered it
    manifest_registrants: dict[str, str] = Factory(dict)
    modules: dict[str, ModuleNamespace] = Factory(dict)
    # agent_id -> the roles the system actor granted it, sorted
    roles: dict[str, list[str]] = Factory(dict)
    instances: dict[str, ModuleInstance] = Factory(dict)
    module_states: dict[str, bytes] = Factory(dict)
    pending_effects: dict[str, EffectIntent] = Factory(dict)
    instance_counter: int = 0
    effect_counter: int = 0
    # The compatibility rules that judge upgrades, as pinned by `world.compat_policy_set`;
    # None is the standard policy (the built-in rules), which every world starts with.
    compat_policy: list[PinnedRule] | None = None


# The standard policy is the absence of a pinned one: it is left out of the canonical state, so
# the state (and its root) of a world that never pinned rules is what it was before pinning.
converter.register_unstructure_hook(WorldState, make_dict_unstructure_fn(
    WorldState, converter, compat_policy=override(omit_if_default=True)))
