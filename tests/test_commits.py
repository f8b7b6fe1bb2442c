"""The commit model: strict parsing, `action_root` and `block_hash` exactly as defined."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentworld.commits import GENESIS, block_hash, make_commit, parse_commit
from agentworld.errors import ActionRootMismatchError, InvalidCommitError

WASM = b"\0asm\x01\0\0\0"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _actions() -> list[dict[str, Any]]:
    return [
        {"action_id": "a1", "submitter": "ada", "payload": {"type": "move_agent", "data": {
            "agent_id": "ada", "to": [1, 2]}}},
        {"action_id": "a2", "submitter": None, "payload": {"type": "module.deploy_artifact",
                                                           "data": {"wasm_bytes": WASM}}},
    ]


def test_action_root_is_the_hash_of_ids_submitters_and_payload_hashes() -> None:
    commit = make_commit("w", 1, _actions(), committed_at_ms=5)
    # The definition, written out independently: bytes in payloads are base64 text.
    expected = _sha(_canonical([
        ["a1", "ada", _sha(_canonical({"type": "move_agent",
                                       "data": {"agent_id": "ada", "to": [1, 2]}}))],
        ["a2", None, _sha(_canonical({"type": "module.deploy_artifact",
                                      "data": {"wasm_bytes": base64.b64encode(WASM).decode()}}))],
    ]))
    assert commit.action_root == expected
    assert commit.actions[1].payload["data"]["wasm_bytes"] == base64.b64encode(WASM).decode()


def test_bytes_and_their_base64_text_give_one_root() -> None:
    as_bytes = make_commit("w", 1, _actions())
    as_text = json.loads(json.dumps(as_bytes.to_json()))
    assert parse_commit(as_text) == as_bytes


def test_order_and_submitter_change_the_root() -> None:
    actions = _actions()
    root = make_commit("w", 1, actions).action_root
    assert make_commit("w", 1, actions[::-1]).action_root != root
    assert make_commit("w", 1, [{**actions[0], "submitter": "bob"}, actions[1]]).action_root != root
    assert make_commit("w", 1, []).action_root == _sha(b"[]")


def test_a_given_root_is_checked_and_an_omitted_one_only_allowed_in_logs() -> None:
    commit = make_commit("w", 3, _actions()).to_json()
    assert parse_commit(commit).action_root == commit["action_root"]
    with pytest.raises(ActionRootMismatchError, match="height 3"):
        parse_commit({**commit, "action_root": "0" * 64})
    del commit["action_root"]
    with pytest.raises(InvalidCommitError, match="missing field 'action_root'"):
        parse_commit(commit)
    assert len(parse_commit(commit, root_optional=True).action_root) == 64


def test_every_problem_is_listed() -> None:
    with pytest.raises(InvalidCommitError) as caught:
        parse_commit({"world_id": "", "height": 0, "committed_at_ms": -1, "extra": 1,
                      "actions": [{"action_id": "", "submitter": 3, "payload": float("nan")},
                                  "x"]}, root_optional=True)
    problems = "\n".join(caught.value.problems)
    for expected in ("unknown field 'extra'", "$.world_id", "$.height", "$.committed_at_ms",
                     "$.actions[0].action_id", "$.actions[0].submitter", "$.actions[0].payload",
                     "$.actions[1]: expected an object"):
        assert expected in problems


def test_a_blank_submitter_is_refused_before_it_reaches_the_world() -> None:
    with pytest.raises(InvalidCommitError, match=r"\$\.actions\[0\]\.submitter"):
        make_commit("w", 1, [{**_actions()[0], "submitter": "  "}])


def test_repeated_action_ids_are_refused() -> None:
    action = _actions()[0]
    with pytest.raises(InvalidCommitError, match="repeated"):
        make_commit("w", 1, [action, action])


def test_a_payload_the_world_cannot_parse_is_still_a_valid_commit() -> None:
    # The world records it as refused; refusing the whole height would stall the chain.
    commit = make_commit("w", 1, [{"action_id": "x", "submitter": None, "payload": "junk"}])
    assert commit.actions[0].payload == "junk"


def test_block_hash_chains_the_height_to_the_previous_one() -> None:
    first = block_hash("w", 1, GENESIS, "ab" * 32, 7)
    assert first == _sha(_canonical({"world_id": "w", "height": 1, "prev_block_hash": "genesis",
                                     "state_root": "ab" * 32, "journal_len": 7}))
    assert block_hash("w", 2, first, "ab" * 32, 7) != block_hash("w", 2, GENESIS, "ab" * 32, 7)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8)
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=12,
)
commit_like = st.fixed_dictionaries(
    {"world_id": json_values | st.just("w"), "height": json_values | st.integers(1, 5),
     "actions": st.lists(st.fixed_dictionaries(
         {"action_id": json_values | st.text(min_size=1, max_size=4),
          "submitter": json_values | st.none(), "payload": json_values}), max_size=3)
     | json_values},
    optional={"action_root": json_values | st.just("0" * 64),
              "committed_at_ms": json_values | st.integers(0, 10), "extra": json_values},
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(commit_like, json_values), st.booleans())
def test_any_input_is_a_commit_or_a_clear_refusal(value: Any, root_optional: bool) -> None:
    try:
        commit = parse_commit(value, root_optional=root_optional)
    except (InvalidCommitError, ActionRootMismatchError):
        return
    # What parses round-trips through its JSON form to the very same commit.
    assert parse_commit(json.loads(json.dumps(commit.to_json()))) == commit
