"""Domain decisions: what events an action produces in a given state, or why it is refused.

Deciding never changes state; the world appends the drafts as events and `apply_event` writes
them. A refusal is data (`Rejected`), recorded as `domain.action_rejected`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import frozen

from agentworld.actions import (
    GrantCapability,
    GrantRole,
    MoveAgent,
    RegisterAgent,
    RevokeRole,
    TransferResource,
)
from agentworld.model import WorldState

# Installing (or moving an instance onto) a manifest with a pre_action subscription needs it.
RULE_AUTHOR = "rule_author"
ROLES = (RULE_AUTHOR,)


@frozen
class Draft:
    """An event before the world gives it an id, a time and a cause."""

    kind: str
    data: dict[str, Any]


@frozen
class Rejected:
    """An action's refusal: a stable machine-readable code, human-readable notes, and
    optional structured details (e.g. a compatibility report) recorded beside them."""

    code: str
    notes: tuple[str, ...]
    details: dict[str, Any] | None = None


Decision = list[Draft] | Rejected


@frozen
class DecisionContext:
    """What a decision may read besides the state: the clock, the action's id, world services,
    and the action's submitter (None for the world's system actor)."""

    time: int
    action_id: int
    services: Any = None
    submitter: str | None = None


def rejected(code: str, *notes: str) -> Rejected:
    """Shorthand for a refusal with notes."""
    return Rejected(code, tuple(notes))


def decide_register_agent(
    state: WorldState, action: RegisterAgent, ctx: DecisionContext
) -> Decision:
    """Register a new agent."""
    if not action.agent_id.strip():
        return rejected("invalid_agent_id", "agent_id must not be blank")
    if action.agent_id in state.agents:
        return rejected("agent_exists", f"agent {action.agent_id!r} is already registered")
    negative = sorted(kind for kind, amount in action.resources.items() if amount < 0)
    if negative:
        return rejected("invalid_resources", f"negative amounts for: {', '.join(negative)}")
    return [
        Draft(
            "domain.agent_registered",
            {
                "agent_id": action.agent_id,
                "position": list(action.position),
                "resources": dict(sorted(action.resources.items())),
            },
        )
    ]


def decide_move_agent(state: WorldState, action: MoveAgent, ctx: DecisionContext) -> Decision:
    """Move an existing agent."""
    agent = state.agents.get(action.agent_id)
    if agent is None:
        return rejected("agent_not_found", f"no agent {action.agent_id!r}")
    return [
        Draft(
            "domain.agent_moved",
            {"agent_id": agent.agent_id, "from": list(agent.position), "to": list(action.to)},
        )
    ]


def decide_transfer_resource(
    state: WorldState, action: TransferResource, ctx: DecisionContext
) -> Decision:
    """Transfer resources between two existing agents."""
    if action.amount <= 0:
        return rejected("invalid_amount", f"amount must be positive, got {action.amount}")
    if action.from_agent_id == action.to_agent_id:
        return rejected("same_agent", "an agent cannot transfer to itself")
    missing = [a for a in (action.from_agent_id, action.to_agent_id) if a not in state.agents]
    if missing:
        return rejected("agent_not_found", *(f"no agent {a!r}" for a in missing))
    held = state.agents[action.from_agent_id].resources.get(action.kind, 0)
    if held < action.amount:
        return rejected(
            "insufficient_resources",
            f"{action.from_agent_id!r} holds {held} {action.kind!r}, needs {action.amount}",
        )
    return [
        Draft(
            "domain.resource_transferred",
            {
                "from_agent_id": action.from_agent_id,
                "to_agent_id": action.to_agent_id,
                "kind": action.kind,
                "amount": action.amount,
            },
        )
    ]


def decide_grant_capability(
    state: WorldState, action: GrantCapability, ctx: DecisionContext
) -> Decision:
    """Grant (or replace) a capability."""
    if not action.cap_ref.strip():
        return rejected("invalid_cap_ref", "cap_ref must not be blank")
    if not action.allowed_effect_kinds or any(not k.strip() for k in action.allowed_effect_kinds):
        return rejected("invalid_effect_kinds", "allowed_effect_kinds must be non-blank patterns")
    if action.expires_at is not None and action.expires_at <= ctx.time:
        return rejected(
            "already_expired", f"expires_at {action.expires_at} is not after time {ctx.time}"
        )
    return [
        Draft(
            "domain.capability_granted",
            {
                "cap_ref": action.cap_ref,
                "allowed_effect_kinds": list(action.allowed_effect_kinds),
                "expires_at": action.expires_at,
            },
        )
    ]


def _role_problem(state: WorldState, agent_id: str, role: str) -> Rejected | None:
    if agent_id not in state.agents:
        return rejected("agent_not_found", f"no agent {agent_id!r}")
    if role not in ROLES:
        return rejected("unknown_role", f"no role {role!r} (roles: {', '.join(ROLES)})")
    return None


def decide_grant_role(state: WorldState, action: GrantRole, ctx: DecisionContext) -> Decision:
    """Give an agent a role it does not hold yet."""
    problem = _role_problem(state, action.agent_id, action.role)
    if problem is not None:
        return problem
    if action.role in state.roles.get(action.agent_id, ()):
        return rejected("role_held", f"{action.agent_id!r} already holds {action.role!r}")
    return [Draft("domain.role_granted", {"agent_id": action.agent_id, "role": action.role})]


def decide_revoke_role(state: WorldState, action: RevokeRole, ctx: DecisionContext) -> Decision:
    """Take a role from an agent that holds it."""
    problem = _role_problem(state, action.agent_id, action.role)
    if problem is not None:
        return problem
    if action.role not in state.roles.get(action.agent_id, ()):
        return rejected("role_not_held", f"{action.agent_id!r} does not hold {action.role!r}")
    return [Draft("domain.role_revoked", {"agent_id": action.agent_id, "role": action.role})]


Decider = Callable[[WorldState, Any, DecisionContext], Decision]

DOMAIN_DECIDERS: dict[type[Any], Decider] = {
    RegisterAgent: decide_register_agent,
    MoveAgent: decide_move_agent,
    TransferResource: decide_transfer_resource,
    GrantCapability: decide_grant_capability,
    GrantRole: decide_grant_role,
    RevokeRole: decide_revoke_role,
}
