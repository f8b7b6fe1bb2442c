"""Actions: the typed requests agents submit, and the strict parser for their JSON envelope.

An action's envelope is `{"type": <type>, "data": {...}}`; its routing label is
`action.<type>`. Parsing never guesses: unknown types and fields are problems.

Every action class says who may submit it: `actor_field` names its acting-agent field (which
must equal the submitter), or is None for actions only the world's system actor may submit;
`governance` marks actions that govern the world (modules, grants, roles) rather than play in it.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
from attrs import Factory, frozen

from agentworld.convert import plain_json, structure, unstructure
from agentworld.errors import InvalidInputError


@frozen(kw_only=True)
class RegisterAgent:
    """Add an agent at `position` holding `resources`."""

    type: ClassVar[str] = "register_agent"
    actor_field: ClassVar[str | None] = "agent_id"
    governance: ClassVar[bool] = False
    agent_id: str
    position: tuple[int, int]
    resources: dict[str, int] = Factory(dict)


@frozen(kw_only=True)
class MoveAgent:
    """Move an agent to the cell `to`."""

    type: ClassVar[str] = "move_agent"
    actor_field: ClassVar[str | None] = "agent_id"
    governance: ClassVar[bool] = False
    agent_id: str
    to: tuple[int, int]


@frozen(kw_only=True)
class TransferResource:
    """Move `amount` of resource `kind` from one agent to another."""

    type: ClassVar[str] = "transfer_resource"
    actor_field: ClassVar[str | None] = "from_agent_id"
    governance: ClassVar[bool] = False
    from_agent_id: str
    to_agent_id: str
    kind: str
    amount: int


@frozen(kw_only=True)
class GrantCapability:
    """The world's system actor grants capability `cap_ref` for the listed effect kinds."""

    type: ClassVar[str] = "grant_capability"
    actor_field: ClassVar[str | None] = None
    governance: ClassVar[bool] = True
    cap_ref: str
    allowed_effect_kinds: tuple[str, ...]
    expires_at: int | None = None


@frozen(kw_only=True)
class GrantRole:
    """The world's system actor gives agent `agent_id` the role `role`."""

    type: ClassVar[str] = "grant_role"
    actor_field: ClassVar[str | None] = None
    governance: ClassVar[bool] = True
    agent_id: str
    role: str


@frozen(kw_only=True)
class RevokeRole:
    """The world's system actor takes the role `role` from agent `agent_id`."""

    type: ClassVar[str] = "revoke_role"
    actor_field: ClassVar[str | None] = None
    governance: ClassVar[bool] = True
    agent_id: str
    role: str


Action = (RegisterAgent | MoveAgent | TransferResource | GrantCapability | GrantRole
          | RevokeRole)

ACTION_TYPES: dict[str, type[Any]] = {
    cls.type: cls for cls in (RegisterAgent, MoveAgent, TransferResource, GrantCapability,
                              GrantRole, RevokeRole)
}


def register_action_type(cls: type[Any]) -> None:
    """Make `cls` parseable from its envelope: an attrs class with the ClassVars `type`,
    `actor_field` (its acting-agent field, or None when only the system actor may submit it)
    and `governance`."""
    if not isinstance(getattr(cls, "type", None), str) or not hasattr(cls, "actor_field") or (
            not isinstance(getattr(cls, "governance", None), bool)):
        raise TypeError(f"{cls.__name__} must declare type, actor_field and governance")
    ACTION_TYPES[cls.type] = cls


def acting_agent(action: Any) -> str | None:
    """The agent an action acts as (its `actor_field`), or None for a system-only action."""
    field: str | None = type(action).actor_field
    return None if field is None else str(getattr(action, field))


def envelope_of(action: Any) -> dict[str, Any]:
    """The JSON envelope of a typed action or an envelope given as a mapping (copied)."""
    if isinstance(action, Mapping):
        return dict(action)
    action_type = getattr(type(action), "type", None)
    if action_type not in ACTION_TYPES:
        raise InvalidInputError("action", [f"not an action envelope: {type(action).__name__}"])
    return {"type": action_type, "data": unstructure(action)}


def parse_action(envelope: Mapping[str, Any]) -> Any:
    """Parse an action envelope into its typed class, or raise `InvalidInputError`.

    Free-form fields (typed `Any`: a receipt's `result`, a manifest) must hold JSON values:
    bytes there would reach modules as a byte string live and as base64 text after a reload.
    """
    plain = plain_json(dict(envelope), "action", allow_bytes=True)
    extra = sorted(set(plain) - {"type", "data"})
    problems = [f"unknown envelope field {key!r}" for key in extra]
    action_type = plain.get("type")
    cls = ACTION_TYPES.get(action_type) if isinstance(action_type, str) else None
    if cls is None:
        problems.append(f"unknown action type {action_type!r}")
    data = plain.get("data")
    if not isinstance(data, dict):
        problems.append("'data' must be an object")
    if problems or cls is None:
        raise InvalidInputError("action", problems)
    for name in _free_form_fields(cls):
        try:
            plain_json(data.get(name), "action", where=f"$.data.{name}")
        except InvalidInputError as exc:
            problems += exc.problems
    if problems:
        raise InvalidInputError("action", problems)
    return structure(data, cls, f"{action_type} action")


_FREE_FORM: dict[type[Any], tuple[str, ...]] = {}


def _free_form_fields(cls: type[Any]) -> tuple[str, ...]:
    """The fields of action class `cls` that take any JSON value."""
    if cls not in _FREE_FORM:
        hints = typing.get_type_hints(cls)
        _FREE_FORM[cls] = tuple(
            field.name for field in attrs.fields(cls) if hints.get(field.name) is Any)
    return _FREE_FORM[cls]
