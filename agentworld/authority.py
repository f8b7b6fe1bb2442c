"""Authority: who may do what in a world.

The world trusts the submitter its host hands over with each action (`World.submit(action,
submitter=...)`); no submitter is the host itself, the world's system actor. From there:
an action's acting agent must be its submitter; system-only actions need the system actor; the
first registrant of a `module_id` owns it; rule modules need the role `rule_author`; a policy
hook is pinned to one `module_id@version`; a rule's override stays within its action.
"""

from __future__ import annotations

from typing import Any

from agentworld.actions import acting_agent
from agentworld.domain import RULE_AUTHOR, Rejected, rejected
from agentworld.manifest import Manifest
from agentworld.model import WorldState


def cause_of(action_id: int, submitter: str | None) -> dict[str, int | str]:
    """The `caused_by` of the events an action causes: the action, and its submitter if any."""
    if submitter is None:
        return {"action": action_id}
    return {"action": action_id, "submitter": submitter}


def submitter_refusal(action: Any, submitter: str | None) -> Rejected | None:
    """Why `submitter` may not submit `action` (`not_system_actor`, `actor_mismatch`), or None.

    The system actor (None) may submit anything, acting as any agent.
    """
    if submitter is None:
        return None
    field: str | None = type(action).actor_field
    if field is None:
        return rejected("not_system_actor", f"only the world's system actor submits "
                        f"{action.type}; it was submitted by {submitter!r}")
    actor = getattr(action, field)
    if actor != submitter:
        return rejected("actor_mismatch", f"{action.type} acts as {field} {actor!r}, but "
                        f"{submitter!r} submitted it")
    return None


def override_problem(original: Any, override: Any) -> str | None:
    """Why a rule may not replace `original` with `override`, or None when it may.

    Only domain actions are rewritten, into one of the same type with the same acting agent,
    so an override passes the very checks the original passed with the same submitter.
    """
    if type(original).governance:
        return f"{original.type} can only be allowed or denied, not modified"
    if override.type != original.type:
        return f"an override of {original.type} must be a {original.type}, not {override.type}"
    if acting_agent(override) != acting_agent(original):
        field = type(original).actor_field
        return (f"an override must keep {field} {acting_agent(original)!r}, "
                f"not {acting_agent(override)!r}")
    return None


def namespace_refusal(state: WorldState, manifest: Manifest, agent_id: str) -> Rejected | None:
    """`not_module_owner` when `agent_id` would register a new version of another's module.

    This holds for the system actor too, which registers in a namespace by acting as its
    owner: so every version of a module is its owner's.
    """
    if manifest.key in state.manifests:
        return None
    namespace = state.modules.get(manifest.module_id)
    if namespace is None or namespace.owner_agent_id == agent_id:
        return None
    return rejected("not_module_owner", f"{manifest.module_id} belongs to "
                    f"{namespace.owner_agent_id!r}; only its owner registers new versions, "
                    f"not {agent_id!r}")


def role_refusal(
    state: WorldState, manifest: Manifest, agent_id: str, submitter: str | None
) -> Rejected | None:
    """`role_required` when an agent without `rule_author` would run a rule module."""
    if submitter is None or not manifest.has_pre_action:
        return None
    if RULE_AUTHOR in state.roles.get(agent_id, ()):
        return None
    return rejected("role_required", f"{manifest.key} has a pre_action subscription: "
                    f"running it needs the role {RULE_AUTHOR!r}, which {agent_id!r} does not "
                    f"hold")


def hook_target(state: WorldState, hook: str) -> str | None:
    """The `module_id@version` a policy hook naming `hook` resolves to now: the version its
    namespace owner registered last (None when nobody registered `hook`)."""
    namespace = state.modules.get(hook)
    return None if namespace is None else f"{hook}@{namespace.last_version}"


def pin_policy_hooks(state: WorldState, manifest: Manifest) -> list[str]:
    """The manifest's policy hooks, each pinned to the `module_id@version` it resolves to now."""
    pins = [hook_target(state, hook) for hook in manifest.abi_contract.policy_hooks]
    return [pin for pin in pins if pin is not None]
