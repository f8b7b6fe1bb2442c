"""Commits: the actions agreed for one height, and the hashes that bind heights into a chain.

A commit is `{world_id, height, actions: [{action_id, submitter, payload}], action_root,
committed_at_ms}`. `action_root` is the SHA-256 of the canonical JSON of the ordered list of
`[action_id, submitter, sha256(canonical JSON of payload)]`; a height's `block_hash` is the
SHA-256 of the canonical JSON of `{world_id, height, prev_block_hash, state_root, journal_len}`,
with `prev_block_hash` = "genesis" at height 1. Payloads are JSON data: bytes inside them are
base64 text, so a commit read back from a file hashes and runs exactly like the one recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from attrs import frozen

from agentworld.canonical import canonical_hash, canonical_json, sha256_hex
from agentworld.convert import json_problems
from agentworld.errors import ActionRootMismatchError, InvalidCommitError

GENESIS = "genesis"
MAX_ID_LENGTH = 256
_COMMIT_KEYS = frozenset({"world_id", "height", "actions", "action_root", "committed_at_ms"})
_ACTION_KEYS = frozenset({"action_id", "submitter", "payload"})


@frozen(kw_only=True)
class CommitAction:
    """One committed action: its id, its submitter (None: the system actor) and its payload.

    The payload is an action envelope `{"type", "data"}` as JSON data (bytes as base64 text).
    """

    action_id: str
    submitter: str | None
    payload: Any

    def to_json(self) -> dict[str, Any]:
        """The action as JSON data."""
        return {"action_id": self.action_id, "submitter": self.submitter,
                "payload": self.payload}


@frozen(kw_only=True)
class Commit:
    """The committed actions of one height of one world."""

    world_id: str
    height: int
    actions: tuple[CommitAction, ...]
    action_root: str
    committed_at_ms: int

    def to_json(self) -> dict[str, Any]:
        """The commit as JSON data (the form of a commit-log line and of a record)."""
        return {"world_id": self.world_id, "height": self.height,
                "actions": [action.to_json() for action in self.actions],
                "action_root": self.action_root, "committed_at_ms": self.committed_at_ms}


@frozen(kw_only=True)
class CommitResult:
    """What applying a height gave: its hashes, the journal length and how many events it added."""

    height: int
    block_hash: str
    prev_block_hash: str
    state_root: str
    journal_len: int
    events: int

    def to_json(self) -> dict[str, Any]:
        """The result as JSON data."""
        return {"height": self.height, "block_hash": self.block_hash,
                "prev_block_hash": self.prev_block_hash, "state_root": self.state_root,
                "journal_len": self.journal_len, "events": self.events}


def action_root(actions: Iterable[CommitAction]) -> str:
    """The root binding the ordered actions: ids, submitters and payload hashes."""
    return canonical_hash([
        [action.action_id, action.submitter, sha256_hex(canonical_json(action.payload))]
        for action in actions
    ])


def block_hash(
    world_id: str, height: int, prev_block_hash: str, state_root: str, journal_len: int
) -> str:
    """The hash of one height, chained to the previous height's."""
    return canonical_hash({"world_id": world_id, "height": height,
                           "prev_block_hash": prev_block_hash, "state_root": state_root,
                           "journal_len": journal_len})


def make_commit(
    world_id: str,
    height: int,
    actions: Iterable[Mapping[str, Any] | CommitAction],
    committed_at_ms: int = 0,
) -> Commit:
    """Build a commit from its actions, computing `action_root` (raises `InvalidCommitError`)."""
    return parse_commit({
        "world_id": world_id, "height": height, "committed_at_ms": committed_at_ms,
        "actions": [a.to_json() if isinstance(a, CommitAction) else dict(a) for a in actions],
    }, root_optional=True)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _id_problem(value: Any, where: str, *, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if (not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH
            or json_problems(value)):
        expected = "null or a " if nullable else "a "
        return (f"{where}: expected {expected}non-blank string of at most {MAX_ID_LENGTH} "
                "characters")
    return None


def _parse_action(value: Any, where: str, problems: list[str]) -> CommitAction | None:
    if not isinstance(value, Mapping):
        problems.append(f"{where}: expected an object")
        return None
    found = [f"{where}: unknown field {key!r}" for key in sorted(set(value) - _ACTION_KEYS)]
    found += [f"{where}: missing field {key!r}" for key in sorted(_ACTION_KEYS - set(value))]
    for problem in (_id_problem(value.get("action_id"), f"{where}.action_id"),
                    _id_problem(value.get("submitter"), f"{where}.submitter", nullable=True)):
        if problem is not None:
            found.append(problem)
    # Any JSON payload is accepted: a committed action the world cannot parse is recorded as
    # refused (`invalid_action`), never a reason to refuse the whole height.
    found += json_problems(value.get("payload"), f"{where}.payload")
    problems += found
    if found:
        return None
    # The JSON form (bytes as base64 text) is what is hashed, recorded and re-executed, so a
    # live run and a restart from its records hand the world the very same input.
    return CommitAction(action_id=value["action_id"], submitter=value["submitter"],
                        payload=json.loads(canonical_json(value["payload"])))


def parse_commit(value: Any, *, root_optional: bool = False) -> Commit:
    """A commit from JSON data, strictly checked; `action_root` is verified when present and
    computed when absent (allowed only with `root_optional`, as in a commit-log file)."""
    if isinstance(value, Commit):
        value = value.to_json()
    if not isinstance(value, Mapping):
        raise InvalidCommitError("commit", ["$: expected an object"])
    problems = [f"$: unknown field {key!r}" for key in sorted(set(value) - _COMMIT_KEYS)]
    required = _COMMIT_KEYS - ({"action_root"} if root_optional else set())
    problems += [f"$: missing field {key!r}" for key in sorted(required - set(value))]
    world_problem = _id_problem(value.get("world_id"), "$.world_id")
    if world_problem is not None and "world_id" in value:
        problems.append(world_problem)
    height: Any = value.get("height")
    if "height" in value and (not _is_int(height) or height < 1):
        problems.append("$.height: expected an integer of at least 1")
    committed_at: Any = value.get("committed_at_ms")
    if "committed_at_ms" in value and (not _is_int(committed_at) or not 0 <= committed_at < 2**63):
        problems.append("$.committed_at_ms: expected a non-negative 64-bit integer")
    given_root = value.get("action_root")
    if "action_root" in value and (not isinstance(given_root, str)
                                   or len(given_root) != 64
                                   or given_root.strip("0123456789abcdef")):
        problems.append("$.action_root: expected a lowercase hex SHA-256")
    raw_actions = value.get("actions")
    actions: list[CommitAction] = []
    if "actions" in value and not isinstance(raw_actions, list | tuple):
        problems.append("$.actions: expected a list")
    elif isinstance(raw_actions, list | tuple):
        seen: set[str] = set()
        for index, raw in enumerate(raw_actions):
            action = _parse_action(raw, f"$.actions[{index}]", problems)
            if action is None:
                continue
            if action.action_id in seen:
                problems.append(f"$.actions[{index}].action_id: {action.action_id!r} is repeated")
            seen.add(action.action_id)
            actions.append(action)
    if problems:
        raise InvalidCommitError("commit", problems)
    root = action_root(actions)
    if given_root is not None and given_root != root:
        raise ActionRootMismatchError(
            f"commit for height {height}: action_root {given_root} does not match its actions "
            f"(their root is {root})"
        )
    return Commit(world_id=value["world_id"], height=height, actions=tuple(actions),
                  action_root=root, committed_at_ms=committed_at)
