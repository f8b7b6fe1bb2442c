"""Module lifecycle actions (SPEC §4): deploy artifacts, install instances, (de)activate them,
and answer queued effects with receipts. Deciding reads the state and the world's services;
only the resulting events change state.
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar, Protocol

from attrs import Factory, frozen

from agentworld.actions import register_action_type
from agentworld.canonical import sha256_hex
from agentworld.domain import DOMAIN_DECIDERS, Decision, DecisionContext, Draft, rejected
from agentworld.errors import ExecutorUnavailableError, InvalidInputError
from agentworld.executor import CallLimits, InvalidArtifactError
from agentworld.manifest import Manifest, ValidationContext, parse_manifest, validate_manifest
from agentworld.model import InstallTarget, ModuleInstance, WorldState


@frozen(kw_only=True)
class DeployArtifact:
    """Publish WASM bytes; `wasm_hash` must be their SHA-256 hex."""

    type: ClassVar[str] = "module.deploy_artifact"
    publisher_agent_id: str
    wasm_bytes: bytes
    wasm_hash: str


@frozen(kw_only=True)
class InstallModule:
    """Register `manifest` (if new) and install an instance of it owned by the installer."""

    type: ClassVar[str] = "module.install"
    installer_agent_id: str
    manifest: Any
    activate: bool = True
    install_target: InstallTarget = Factory(InstallTarget)


@frozen(kw_only=True)
class SetActive:
    """The owner activates or deactivates one instance."""

    type: ClassVar[str] = "module.set_active"
    agent_id: str
    instance_id: str
    active: bool


@frozen(kw_only=True)
class EffectReceipt:
    """The host answers a queued effect intent."""

    type: ClassVar[str] = "effect.receipt"
    intent_id: str
    status: str
    result: Any = None


class ModuleServices(Protocol):
    """What module decisions need from the world beyond its state."""

    default_limits: CallLimits
    max_limits: CallLimits

    def store_blob(self, wasm_hash: str, data: bytes) -> None:
        """Put verified artifact bytes into the world's module store."""

    def has_blob(self, wasm_hash: str) -> bool:
        """True when the module store holds the artifact's bytes."""

    def check_artifact(self, wasm: bytes) -> None:
        """Raise `InvalidArtifactError` unless the bytes are a module the ABI accepts."""


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

    def manifest_kind(module_id: str) -> str | None:
        kinds = [m.kind for m in state.manifests.values() if m.module_id == module_id]
        return kinds[-1] if kinds else None

    return ValidationContext(
        time=time,
        max_limits=services.max_limits,
        grants=state.grants,
        artifact_deployed=lambda wasm_hash: wasm_hash in state.artifacts,
        artifact_present=services.has_blob,
        manifest_kind=manifest_kind,
    )


def check_manifest(
    state: WorldState, raw: Any, ctx: DecisionContext
) -> Manifest | tuple[str, list[str]]:
    """A valid, registrable manifest, or `(code, problems)` saying why not."""
    try:
        manifest = parse_manifest(raw)
    except InvalidInputError as exc:
        return "invalid_manifest", exc.problems
    problems = validate_manifest(manifest, validation_context(state, ctx.time, services_of(ctx)))
    if problems:
        return "invalid_manifest", problems
    registered = state.manifests.get(manifest.key)
    if registered is not None and registered != manifest:
        return "manifest_conflict", [
            f"{manifest.key} is already registered with a different manifest "
            f"(hash {registered.manifest_hash()})"
        ]
    return manifest


def registration_drafts(state: WorldState, manifest: Manifest) -> list[Draft]:
    """`domain.module_registered` if `manifest` is new, else nothing."""
    if manifest.key in state.manifests:
        return []
    return [Draft("domain.module_registered", {
        "module_id": manifest.module_id,
        "version": manifest.version,
        "manifest_hash": manifest.manifest_hash(),
        "manifest": manifest.to_json(),
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
    try:
        services.check_artifact(action.wasm_bytes)
    except InvalidArtifactError as exc:
        return rejected("invalid_artifact", str(exc))
    except ExecutorUnavailableError as exc:
        return rejected("engine_unavailable", str(exc))
    services.store_blob(actual, action.wasm_bytes)
    return [Draft("domain.module_artifact_deployed", {
        "publisher_agent_id": action.publisher_agent_id,
        "wasm_hash": actual,
        "size": len(action.wasm_bytes),
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
    checked = check_manifest(state, action.manifest, ctx)
    if isinstance(checked, tuple):
        return rejected(checked[0], *checked[1])
    manifest = checked
    instance_id = f"{manifest.module_id}#{state.instance_counter + 1}"
    return [*registration_drafts(state, manifest), Draft("domain.module_installed", {
        "instance_id": instance_id,
        "installer_agent_id": action.installer_agent_id,
        "module_id": manifest.module_id,
        "module_version": manifest.version,
        "wasm_hash": manifest.wasm_hash,
        "install_target": action.install_target.to_json(),
        "active": action.activate,
        "manifest_hash": manifest.manifest_hash(),
    })]


def owned_instance(
    state: WorldState, agent_id: str, instance_id: str
) -> ModuleInstance | tuple[str, str]:
    """The instance if `agent_id` exists and owns it, else `(code, note)`."""
    if agent_id not in state.agents:
        return "agent_not_found", f"no agent {agent_id!r}"
    instance = state.instances.get(instance_id)
    if instance is None:
        return "instance_not_found", f"no instance {instance_id!r}"
    if instance.owner_agent_id != agent_id:
        return "not_instance_owner", (
            f"{instance_id} is owned by {instance.owner_agent_id!r}, not {agent_id!r}"
        )
    return instance


def decide_set_active(state: WorldState, action: SetActive, ctx: DecisionContext) -> Decision:
    """Only the owner (de)activates an instance."""
    found = owned_instance(state, action.agent_id, action.instance_id)
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


def state_to_json(state: bytes) -> str:
    """Module state bytes as they appear in events (base64)."""
    return base64.b64encode(state).decode("ascii")


for _cls, _decide in (
    (DeployArtifact, decide_deploy),
    (InstallModule, decide_install),
    (SetActive, decide_set_active),
    (EffectReceipt, decide_receipt),
):
    register_action_type(_cls)
    DOMAIN_DECIDERS[_cls] = _decide
