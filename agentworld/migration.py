"""State migration: on an upgrade or rollback, the target version converts the instance's state.

A module that declares the export `migrate` is called once, after the compatibility rules
passed, with `{ctx, state, from_version, to_version}` under its own manifest's limits; the
`new_state` it returns replaces the instance's state. A migration only converts state: an
output with emits, effects or a tick lifecycle is invalid. A failing migration refuses the
whole action (`migration_failed`), so the instance keeps its version and its state.
"""

from __future__ import annotations

import base64
from typing import Any, Protocol

from agentworld.abi import encode_migration_input
from agentworld.domain import DecisionContext, Draft, Rejected
from agentworld.executor import ModuleCallError, ModuleOutput
from agentworld.manifest import Manifest
from agentworld.model import ModuleInstance, WorldState

MIGRATE_EXPORT = "migrate"


class MigrationServices(Protocol):
    """What a migration needs from the world: its config hash and one way to call a module."""

    def config_hash(self) -> str:
        """SHA-256 of the canonical world config (`world_config_hash` in every context)."""

    def call_module(
        self, manifest: Manifest, instance_id: str, entrypoint: str, payload: bytes
    ) -> ModuleOutput:
        """Run `entrypoint` of `manifest`'s artifact once; raise `ModuleCallError` on failure."""


def migration_trace_id(action_id: int, instance_id: str) -> str:
    """The trace id of the migration an action runs on an instance."""
    return f"migrate-{action_id}-{instance_id}"


def migrate_state(
    state: WorldState, instance: ModuleInstance, target: Manifest, ctx: DecisionContext,
    services: MigrationServices,
) -> list[Draft] | Rejected:
    """Run `target`'s migration of `instance`'s state: the `module.state_updated` it gives
    (nothing when `target` has no `migrate` export or returns no new state), or the refusal."""
    if MIGRATE_EXPORT not in target.exports:
        return []
    instance_id = instance.instance_id
    trace_id = migration_trace_id(ctx.action_id, instance_id)
    call_ctx = {
        "v": target.interface_version,
        "module_id": target.module_id,
        "instance_id": instance_id,
        "module_version": target.version,
        "trace_id": trace_id,
        "stage": "migrate",
        "time": ctx.time,
        "origin": {"kind": "action", "id": ctx.action_id},
        "install_target": instance.install_target,
        "manifest_hash": target.manifest_hash(),
        "world_config_hash": services.config_hash(),
    }
    payload = encode_migration_input(call_ctx, state.module_states.get(instance_id, b""),
                                     instance.module_version, target.version)
    try:
        output = services.call_module(target, instance_id, MIGRATE_EXPORT, payload)
        if output.emits or output.effects or output.tick_lifecycle is not None:
            raise ModuleCallError("invalid_output", "a migration returns only new_state, "
                                  "not emits, effects or tick_lifecycle")
    except ModuleCallError as failure:
        detail: dict[str, Any] = {"code": failure.code, "detail": failure.detail,
                                  "trace_id": trace_id}
        if failure.code == "out_of_fuel" and failure.gas_used is not None:
            detail["gas_used"] = failure.gas_used
        return Rejected("migration_failed", (
            f"{target.key} migrate failed: {failure.code}: {failure.detail}",
        ), {"failure": detail})
    if output.new_state is None:
        return []
    return [Draft("module.state_updated", {
        "instance_id": instance_id, "trace_id": trace_id,
        "state": base64.b64encode(output.new_state).decode("ascii")})]
