"""Module lifecycle actions: deploy artifacts, install instances, (de)activate, upgrade and roll
them back, and answer queued effects with receipts. Deciding reads the state and the world's
services; only the resulting events change state. Who may do each is in `agentworld.authority`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from attrs import Factory, frozen

from agentworld.actions import register_action_type
from agentworld.authority import (
    hook_target,
    namespace_refusal,
    pin_policy_hooks,
    role_refusal,
)
from agentworld.canonical import sha256_hex
from agentworld.compat import CompatContext, check_compatibility
from agentworld.domain import (
    DOMAIN_DECIDERS,
    Decision,
    DecisionContext,
    Draft,
    Rejected,
    rejected,
)
from agentworld.errors import ExecutorUnavailableError
from agentworld.executor import CallLimits, InvalidArtifactError, ModuleOutput
from agentworld.manifest import (
    Manifest,
    ValidationContext,
    context_problems,
    read_manifest,
    validate_manifest,
)
from agentworld.migration import migrate_state
from agentworld.model import InstallTarget, ModuleInstance, WorldState
from agentworld.policy import InstalledRule, pinned_rules, resolve


@frozen(kw_only=True)
class DeployArtifact:
    """Publish WASM bytes; `wasm_hash` must be their SHA-256 hex."""

    type: ClassVar[str] = "module.deploy_artifact"
    actor_field: ClassVar[str | None] = "publisher_agent_id"
    governance: ClassVar[bool] = True
    publisher_agent_id: str
    wasm_bytes: bytes
    wasm_hash: str


@frozen(kw_only=True)
class InstallModule:
    """Register `manifest` (if new) and install an instance of it owned by the installer."""

    type: ClassVar[str] = "module.install"
    actor_field: ClassVar[str | None] = "installer_agent_id"
    governance: ClassVar[bool] = True
    installer_agent_id: str
    manifest: Any
    activate: bool = True
    install_target: InstallTarget = Factory(InstallTarget)


@frozen(kw_only=True)
class SetActive:
    """The owner (or the system actor) activates or deactivates one instance."""

    type: ClassVar[str] = "module.set_active"
    actor_field: ClassVar[str | None] = "agent_id"
    governance: ClassVar[bool] = True
    agent_id: str
    instance_id: str
    active: bool


@frozen(kw_only=True)
class EffectReceipt:
    """The host (the world's system actor) answers a queued effect intent."""

    type: ClassVar[str] = "effect.receipt"
    actor_field: ClassVar[str | None] = None
    governance: ClassVar[bool] = True
    intent_id: str
    status: str
    result: Any = None


@frozen(kw_only=True)
class UpgradeModule:
    """The owner moves one instance to a new, compatible manifest of the same module."""

    type: ClassVar[str] = "module.upgrade"
    actor_field: ClassVar[str | None] = "upgrader_agent_id"
    governance: ClassVar[bool] = True
    upgrader_agent_id: str
    instance_id: str
    from_version: str
    manifest: Any
    activate: bool = True


@frozen(kw_only=True)
class RollbackModule:
    """The owner moves one instance back to an already registered version."""

    type: ClassVar[str] = "module.rollback"
    actor_field: ClassVar[str | None] = "operator_agent_id"
    governance: ClassVar[bool] = True
    operator_agent_id: str
    instance_id: str
    target_version: str


class ModuleServices(Protocol):
    """What module decisions need from the world beyond its state."""

    default_limits: CallLimits
    max_limits: CallLimits
    max_artifact_bytes: int

    def store_blob(self, wasm_hash: str, data: bytes) -> None:
        """Put verified artifact bytes into the world's module store."""

    def has_blob(self, wasm_hash: str) -> bool:
        """True when the module store holds the artifact's bytes."""

    def check_artifact(self, wasm: bytes) -> list[str]:
        """The module's exports; `InvalidArtifactError` unless the ABI accepts the bytes."""

    def installed_rules(self) -> list[InstalledRule]:
        """The compatibility rules registered here; the world's pinned policy picks from them."""

    def config_hash(self) -> str:
        """SHA-256 of the canonical world config (`world_config_hash` in every context)."""

    def call_module(
        self, manifest: Manifest, instance_id: str, entrypoint: str, payload: bytes
    ) -> ModuleOutput:
        """Run `entrypoint` of `manifest`'s artifact once; raise `ModuleCallError` on failure."""


def services_of(ctx: DecisionContext) -> ModuleServices:
    """The world services a module decision runs with."""
    services: ModuleServices | None = ctx.services
    if services is None:
        raise RuntimeError("module actions need world services")
    return services


def validation_context(
    state: WorldState, time: int, services: ModuleServices
) -> ValidationContext:
    """How manifests are validated against this world right now."""

    def policy_hook(module_id: str) -> Manifest | None:
        key = hook_target(state, module_id)
        return None if key is None else state.manifests.get(key)

    return ValidationContext(
        time=time,
        max_limits=services.max_limits,
        grants=state.grants,
        artifact_deployed=lambda wasm_hash: wasm_hash in state.artifacts,
        artifact_exports=lambda wasm_hash: state.artifacts[wasm_hash].exports,
        artifact_present=services.has_blob,
        policy_hook=policy_hook,
    )


def check_manifest(
    state: WorldState, raw: Any, ctx: DecisionContext, agent_id: str
) -> Manifest | Rejected:
    """The manifest `agent_id` may run, or why not.

    A manifest already registered under its `module_id@version` must be the registered one,
    compared by canonical encoding (`true` is not `1`); what comes back then is the registered
    manifest itself, so the caller judges exactly what the instance will run.
    """
    manifest, problems = read_manifest(raw)
    if manifest is None:
        return Rejected("invalid_manifest", tuple(problems))
    problems += context_problems(manifest, validation_context(state, ctx.time, services_of(ctx)))
    if problems:
        return Rejected("invalid_manifest", tuple(problems))
    registered = state.manifests.get(manifest.key)
    if registered is not None:
        if registered.manifest_hash() != manifest.manifest_hash():
            return rejected("manifest_conflict", f"{manifest.key} is already registered with a "
                            f"different manifest (hash {registered.manifest_hash()})")
        manifest = registered
    return (namespace_refusal(state, manifest, agent_id)
            or role_refusal(state, manifest, agent_id, ctx.submitter) or manifest)


def registration_drafts(state: WorldState, manifest: Manifest, registrant: str) -> list[Draft]:
    """`domain.module_registered` if `manifest` is new, else nothing."""
    if manifest.key in state.manifests:
        return []
    return [Draft("domain.module_registered", {
        "module_id": manifest.module_id,
        "version": manifest.version,
        "manifest_hash": manifest.manifest_hash(),
        "manifest": manifest.to_json(),
        "registrant_agent_id": registrant,
    })]


def decide_deploy(state: WorldState, action: DeployArtifact, ctx: DecisionContext) -> Decision:
    """Verify and store artifact bytes; the journal records the hash and size, never the bytes."""
    if action.publisher_agent_id not in state.agents:
        return rejected("agent_not_found", f"no agent {action.publisher_agent_id!r}")
    actual = sha256_hex(action.wasm_bytes)
    if actual != action.wasm_hash:
        return rejected("hash_mismatch", f"wasm_hash {action.wasm_hash} does not match the "
                                         f"bytes' SHA-256 {actual}")
    services = services_of(ctx)
    if len(action.wasm_bytes) > services.max_artifact_bytes:
        return rejected("artifact_too_large", f"the artifact is {len(action.wasm_bytes)} bytes, "
                                              f"the limit is {services.max_artifact_bytes}")
    try:
        exports = services.check_artifact(action.wasm_bytes)
    except InvalidArtifactError as exc:
        return rejected("invalid_artifact", str(exc))
    except ExecutorUnavailableError as exc:
        return rejected("engine_unavailable", str(exc))
    services.store_blob(actual, action.wasm_bytes)
    return [Draft("domain.module_artifact_deployed", {
        "publisher_agent_id": action.publisher_agent_id,
        "wasm_hash": actual,
        "size": len(action.wasm_bytes),
        "exports": exports,
    })]


def _target_problem(target: InstallTarget) -> str | None:
    if target.type == "self_agent":
        return None if target.location_id is None else "a self_agent target takes no location_id"
    if target.type == "location":
        if target.location_id is None or not target.location_id.strip():
            return "a location target needs a non-blank location_id"
        return None
    return f"install_target type must be 'self_agent' or 'location', got {target.type!r}"


def decide_install(state: WorldState, action: InstallModule, ctx: DecisionContext) -> Decision:
    """Register the manifest if new and create an instance owned by the installer."""
    if action.installer_agent_id not in state.agents:
        return rejected("agent_not_found", f"no agent {action.installer_agent_id!r}")
    problem = _target_problem(action.install_target)
    if problem:
        return rejected("invalid_install_target", problem)
    checked = check_manifest(state, action.manifest, ctx, action.installer_agent_id)
    if isinstance(checked, Rejected):
        return checked
    manifest = checked
    instance_id = f"{manifest.module_id}#{state.instance_counter + 1}"
    registration = registration_drafts(state, manifest, action.installer_agent_id)
    return [*registration, Draft("domain.module_installed", {
        "instance_id": instance_id,
        "installer_agent_id": action.installer_agent_id,
        "module_id": manifest.module_id,
        "module_version": manifest.version,
        "wasm_hash": manifest.wasm_hash,
        "install_target": action.install_target.to_json(),
        "active": action.activate,
        "manifest_hash": manifest.manifest_hash(),
        # A hook is never the module itself, so registering it changes no pin.
        "policy_hooks": pin_policy_hooks(state, manifest),
    })]


def owned_instance(
    state: WorldState, agent_id: str, instance_id: str, submitter: str | None
) -> ModuleInstance | tuple[str, str]:
    """The instance if `agent_id` exists and owns it (or the system actor submitted the
    action: it may change any instance), else `(code, note)`."""
    if agent_id not in state.agents:
        return "agent_not_found", f"no agent {agent_id!r}"
    instance = state.instances.get(instance_id)
    if instance is None:
        return "instance_not_found", f"no instance {instance_id!r}"
    if instance.owner_agent_id != agent_id and submitter is not None:
        return "not_instance_owner", (
            f"{instance_id} is owned by {instance.owner_agent_id!r}, not {agent_id!r}"
        )
    return instance


def decide_set_active(state: WorldState, action: SetActive, ctx: DecisionContext) -> Decision:
    """Only the owner, or the system actor, (de)activates an instance."""
    found = owned_instance(state, action.agent_id, action.instance_id, ctx.submitter)
    if isinstance(found, tuple):
        return rejected(*found)
    return [Draft("domain.module_active_set", {
        "instance_id": found.instance_id, "agent_id": action.agent_id, "active": action.active,
    })]


def decide_receipt(state: WorldState, action: EffectReceipt, ctx: DecisionContext) -> Decision:
    """Record the host's answer to a pending effect and take it off the queue."""
    if action.intent_id not in state.pending_effects:
        return rejected("unknown_intent", f"no pending effect {action.intent_id!r}")
    if action.status not in {"ok", "error"}:
        return rejected("invalid_status", f"status must be 'ok' or 'error', got {action.status!r}")
    return [Draft("effect.receipt_recorded", {
        "intent_id": action.intent_id, "status": action.status, "result": action.result,
    })]


def _compat_gate(
    state: WorldState, current: Manifest, candidate: Manifest, ctx: DecisionContext,
    instance_id: str, agent_id: str, operation: str, code: str,
) -> Rejected | None:
    """Judge `candidate` by the world's pinned rules; a world missing one does not judge."""
    rules, missing = resolve(pinned_rules(state), services_of(ctx).installed_rules())
    if missing:
        return Rejected("compat_rule_missing", tuple(missing))
    report = check_compatibility(
        current, candidate, rules,
        CompatContext(instance_id=instance_id, agent_id=agent_id, time=ctx.time,
                      operation=operation),
    )
    if report.compatible:
        return None
    return Rejected(code, tuple(report.lines()), {"report": report.to_json()})


def _move_data(
    state: WorldState, instance: ModuleInstance, agent_key: str, agent_id: str, target: Manifest
) -> dict[str, Any]:
    return {
        "instance_id": instance.instance_id,
        agent_key: agent_id,
        "module_id": instance.module_id,
        "from_module_version": instance.module_version,
        "to_module_version": target.version,
        "from_wasm_hash": instance.wasm_hash,
        "to_wasm_hash": target.wasm_hash,
        "manifest_hash": target.manifest_hash(),
        "policy_hooks": pin_policy_hooks(state, target),
    }


def decide_upgrade(state: WorldState, action: UpgradeModule, ctx: DecisionContext) -> Decision:
    """Upgrade one instance after each check in turn; every refusal has its own code. Last,
    the new version's `migrate` (if it declares one) converts the instance's state."""
    found = owned_instance(state, action.upgrader_agent_id, action.instance_id, ctx.submitter)
    if isinstance(found, tuple):
        return rejected(*found)
    instance = found
    if action.from_version != instance.module_version:
        return rejected("stale_from_version", f"{instance.instance_id} runs "
                        f"{instance.module_version!r}, not {action.from_version!r}")
    candidate_id = action.manifest.get("module_id") if isinstance(action.manifest, dict) else (
        getattr(action.manifest, "module_id", None))
    if candidate_id != instance.module_id:
        return rejected("module_id_mismatch", f"the manifest is for {candidate_id!r}, the "
                        f"instance runs {instance.module_id!r}")
    candidate_version = action.manifest.get("version") if isinstance(action.manifest, dict) else (
        getattr(action.manifest, "version", None))
    if candidate_version == instance.module_version:
        return rejected("same_version", f"{instance.instance_id} already runs "
                        f"{instance.module_version!r}")
    checked = check_manifest(state, action.manifest, ctx, action.upgrader_agent_id)
    if isinstance(checked, Rejected):
        return checked
    current = state.manifests[f"{instance.module_id}@{instance.module_version}"]
    refusal = _compat_gate(state, current, checked, ctx, instance.instance_id,
                           action.upgrader_agent_id, "upgrade", "incompatible_upgrade")
    if refusal is not None:
        return refusal
    migrated = migrate_state(state, instance, checked, ctx, services_of(ctx))
    if isinstance(migrated, Rejected):
        return migrated
    data = _move_data(state, instance, "upgrader_agent_id", action.upgrader_agent_id, checked)
    return [*registration_drafts(state, checked, action.upgrader_agent_id),
            Draft("domain.module_upgraded", {**data, "active": action.activate}), *migrated]


def decide_rollback(state: WorldState, action: RollbackModule, ctx: DecisionContext) -> Decision:
    """Move an instance back to a registered version through the owner and compat gates; the
    target version's `migrate` (if it has one) converts the instance's state."""
    found = owned_instance(state, action.operator_agent_id, action.instance_id, ctx.submitter)
    if isinstance(found, tuple):
        return rejected(*found)
    instance = found
    target = state.manifests.get(f"{instance.module_id}@{action.target_version}")
    if target is None:
        return rejected("version_not_registered",
                        f"{instance.module_id}@{action.target_version} is not registered")
    if action.target_version == instance.module_version:
        return rejected("same_version", f"{instance.instance_id} already runs "
                        f"{instance.module_version!r}")
    problems = validate_manifest(target, validation_context(state, ctx.time, services_of(ctx)))
    if problems:
        return rejected("invalid_manifest", *problems)
    refused = role_refusal(state, target, action.operator_agent_id, ctx.submitter)
    if refused is not None:
        return refused
    current = state.manifests[f"{instance.module_id}@{instance.module_version}"]
    refusal = _compat_gate(state, current, target, ctx, instance.instance_id,
                           action.operator_agent_id, "rollback", "incompatible_rollback")
    if refusal is not None:
        return refusal
    migrated = migrate_state(state, instance, target, ctx, services_of(ctx))
    if isinstance(migrated, Rejected):
        return migrated
    data = _move_data(state, instance, "operator_agent_id", action.operator_agent_id, target)
    return [Draft("domain.module_rolled_back", data), *migrated]


for _cls, _decide in (
    (DeployArtifact, decide_deploy),
    (InstallModule, decide_install),
    (SetActive, decide_set_active),
    (EffectReceipt, decide_receipt),
    (UpgradeModule, decide_upgrade),
    (RollbackModule, decide_rollback),
):
    register_action_type(_cls)
    DOMAIN_DECIDERS[_cls] = _decide
