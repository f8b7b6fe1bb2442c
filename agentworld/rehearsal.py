"""Rehearse an upgrade against a saved world's real state without saving anything.

`rehearse_upgrade` loads the saved world with an in-memory copy of its module store, submits the
very `module.upgrade` the command line would (deploying the candidate's artifact first when
given), steps once with modules and then `steps` more times, and reports what happened: the
verdict, the instance's state before, right after the migration and at the end, every event,
and every module failure. The world directory and its store are only read.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from typing import Any

from attrs import frozen

from agentworld.canonical import sha256_hex
from agentworld.compat import CompatContext, check_compatibility
from agentworld.errors import AgentWorldError, InvalidInputError
from agentworld.manifest import parse_manifest
from agentworld.migration import migration_trace_id
from agentworld.model import Event
from agentworld.policy import pinned_rules, resolve
from agentworld.world import World, event_to_json, load_world_detached


class RehearsalError(AgentWorldError):
    """A rehearsal cannot be set up (no upgrading agent can be named)."""


@frozen
class StateDigest:
    """An instance's state bytes, summarized: their size and SHA-256."""

    size: int
    sha256: str

    @classmethod
    def of(cls, data: bytes) -> StateDigest:
        """The digest of `data`."""
        return cls(len(data), sha256_hex(data))

    def to_json(self) -> dict[str, Any]:
        """`{size, sha256}`."""
        return {"size": self.size, "sha256": self.sha256}


@frozen
class Rehearsal:
    """What a rehearsed upgrade did. `code` and `notes` are the refusal's when it was refused;
    `report` is the compatibility report of the world's pinned rules (warnings included)."""

    instance_id: str
    from_version: str | None
    to_version: str | None
    accepted: bool
    code: str | None
    notes: tuple[str, ...]
    report: dict[str, Any] | None
    state_before: StateDigest | None
    state_migrated: StateDigest | None
    state_after: StateDigest | None
    steps: int
    events: tuple[Event, ...]

    @property
    def failures(self) -> list[dict[str, Any]]:
        """Every `module.call_failed` of the rehearsal, as its event data."""
        return [event.data for event in self.events if event.kind == "module.call_failed"]

    @property
    def instance_failures(self) -> list[dict[str, Any]]:
        """The failed calls of the upgraded instance."""
        return [data for data in self.failures if data.get("instance_id") == self.instance_id]

    @property
    def ok(self) -> bool:
        """True when the upgrade was accepted and the instance never failed afterwards."""
        return self.accepted and not self.instance_failures

    def to_json(self) -> dict[str, Any]:
        """The rehearsal as plain data (events as in the journal)."""
        def digest(value: StateDigest | None) -> dict[str, Any] | None:
            return None if value is None else value.to_json()

        return {
            "instance_id": self.instance_id,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "verdict": "accepted" if self.accepted else "rejected",
            "code": self.code,
            "notes": list(self.notes),
            "report": self.report,
            "state": {"before": digest(self.state_before),
                      "migrated": digest(self.state_migrated),
                      "after": digest(self.state_after)},
            "steps": self.steps,
            "events": [_event_json(event) for event in self.events],
            "failures": self.failures,
            "ok": self.ok,
            "saved": False,
        }


def _event_json(event: Event) -> dict[str, Any]:
    """An event as the journal holds it, as plain data."""
    value: dict[str, Any] = json.loads(event_to_json(event))
    return value


def _state(world: World, instance_id: str) -> StateDigest | None:
    if instance_id not in world.instances:
        return None
    return StateDigest.of(world.module_state(instance_id))


def _warnings_report(
    world: World, instance_id: str, current_key: str, candidate: Any
) -> dict[str, Any] | None:
    """The pinned rules' report on an accepted candidate (its warnings are journaled nowhere)."""
    rules, missing = resolve(pinned_rules(world.state), world.installed_rules())
    if missing:
        return None
    report = check_compatibility(world.state.manifests[current_key], parse_manifest(candidate),
                                 rules, CompatContext(instance_id=instance_id, time=world.time))
    return report.to_json()


def rehearse_upgrade(
    directory: str | os.PathLike[str],
    instance_id: str,
    candidate: Any,
    *,
    wasm: bytes | None = None,
    steps: int = 0,
    agent: str | None = None,
    submitter: str | None = None,
    **world_kwargs: Any,
) -> Rehearsal:
    """Rehearse upgrading `instance_id` of the world saved in `directory` to the manifest
    `candidate` (JSON data), as `agent` (default: the `submitter`, else the instance's owner)
    submitted by `submitter` (default: the system actor); then run `steps` more steps.

    `wasm`, if given, is deployed in the same step, before the upgrade. `world_kwargs` go to the
    `World` constructor (`plugins=`, `executor=`). Nothing is saved.
    """
    if steps < 0:
        raise InvalidInputError("rehearsal", [f"steps must be 0 or more, got {steps}"])
    world = load_world_detached(directory, **world_kwargs)
    instance = world.instances.get(instance_id)
    upgrader = agent or submitter or (instance.owner_agent_id if instance else None)
    if upgrader is None:
        raise RehearsalError(f"no instance {instance_id!r} in the world: name the upgrading "
                             "agent to rehearse the refusal")
    before = _state(world, instance_id)
    from_version = instance.module_version if instance else None
    current_key = f"{instance.module_id}@{instance.module_version}" if instance else ""
    if wasm is not None:
        world.submit({"type": "module.deploy_artifact", "data": {
            "publisher_agent_id": upgrader, "wasm_bytes": wasm,
            "wasm_hash": sha256_hex(wasm)}}, submitter)
    action_id = world.submit({"type": "module.upgrade", "data": {
        "upgrader_agent_id": upgrader, "instance_id": instance_id,
        "from_version": from_version or "", "manifest": candidate}}, submitter)
    events: list[Event] = list(world.step_with_modules())
    outcome = _outcome(events, action_id)
    migrated = before
    trace_id = migration_trace_id(action_id, instance_id)
    for event in events:
        if event.kind == "module.state_updated" and event.data.get("trace_id") == trace_id:
            migrated = StateDigest.of(base64.b64decode(event.data["state"]))
    accepted = outcome.kind == "domain.module_upgraded"
    if accepted:
        report = _warnings_report(world, instance_id, current_key, candidate)
    else:
        report = outcome.data.get("report")
    for _ in range(steps):
        events += world.step_with_modules()
    return Rehearsal(
        instance_id=instance_id,
        from_version=from_version,
        to_version=outcome.data["to_module_version"] if accepted else _version_of(candidate),
        accepted=accepted,
        code=None if accepted else outcome.data["code"],
        notes=() if accepted else tuple(outcome.data["notes"]),
        report=report,
        state_before=before,
        state_migrated=migrated if accepted else before,
        state_after=_state(world, instance_id),
        steps=steps,
        events=tuple(events),
    )


def _outcome(events: Sequence[Event], action_id: int) -> Event:
    """The event that decided the upgrade: its `domain.module_upgraded` or its rejection."""
    for event in events:
        caused = (event.caused_by or {}).get("action") == action_id
        if caused and event.kind in {"domain.module_upgraded", "domain.action_rejected"}:
            return event
    raise RehearsalError(f"the upgrade (action {action_id}) was neither applied nor refused")


def _version_of(candidate: Any) -> str | None:
    version = candidate.get("version") if isinstance(candidate, dict) else None
    return version if isinstance(version, str) else None
