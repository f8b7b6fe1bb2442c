"""The guest ABI: input encoding and output decoding, every acceptance and every rejection."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentworld.abi import decode_output, encode_input
from agentworld.executor import CallLimits, ModuleCallError, ModuleOutput

LIMITS = CallLimits()


def decode(message: Any, kind: str = "reducer", limits: CallLimits = LIMITS) -> ModuleOutput:
    return decode_output(cbor2.dumps(message), limits=limits, kind=kind)


def failure_code(raw: bytes, kind: str = "reducer", limits: CallLimits = LIMITS) -> str:
    with pytest.raises(ModuleCallError) as failure:
        decode_output(raw, limits=limits, kind=kind)
    return failure.value.code


# -- encode_input --------------------------------------------------------------------------


def test_input_is_one_canonical_map() -> None:
    ctx = {"v": "wasm-1", "stage": "tick", "time": 3}
    raw = encode_input(ctx, event={"id": 1, "kind": "k"}, state=b"\x01")
    assert cbor2.loads(raw) == {"ctx": ctx, "event": {"id": 1, "kind": "k"}, "state": b"\x01"}
    assert raw == cbor2.dumps(cbor2.loads(raw), canonical=True)
    # Key order in the caller's dicts does not change the bytes.
    assert raw == encode_input(
        dict(reversed(ctx.items())), event={"kind": "k", "id": 1}, state=b"\x01"
    )


def test_input_keys_only_when_given() -> None:
    assert set(cbor2.loads(encode_input({}))) == {"ctx"}
    assert set(cbor2.loads(encode_input({}, action={"type": "t"}))) == {"ctx", "action"}
    assert cbor2.loads(encode_input({}, state=b""))["state"] == b""


# -- accepted outputs ----------------------------------------------------------------------


def test_full_output() -> None:
    output = decode(
        {
            "new_state": b"\x02",
            "emits": [{"kind": "a.b", "payload": {"n": 1, "x": [1.5, None, True, "s"]}}],
            "effects": [{"kind": "bank.pay", "params": {"amount": 1}, "cap_slot": "pay"}],
            "tick_lifecycle": {"mode": "wake_after_ticks", "ticks": 2},
        }
    )
    assert output == ModuleOutput(
        new_state=b"\x02",
        emits=({"kind": "a.b", "payload": {"n": 1, "x": [1.5, None, True, "s"]}},),
        effects=({"kind": "bank.pay", "params": {"amount": 1}, "cap_slot": "pay"},),
        tick_lifecycle={"mode": "wake_after_ticks", "ticks": 2},
    )


def test_missing_keys_mean_empty() -> None:
    assert decode({}) == ModuleOutput()
    assert decode({"new_state": None, "tick_lifecycle": None}) == ModuleOutput()
    assert decode({"tick_lifecycle": {"mode": "suspend"}}).tick_lifecycle == {"mode": "suspend"}


def test_legacy_output_bytes_is_ignored_and_int_array_state_is_bytes() -> None:
    output = decode({"new_state": [1, 2, 255], "output_bytes": [9, 9], "emits": []})
    assert output == ModuleOutput(new_state=b"\x01\x02\xff")


def test_effect_with_cap_ref() -> None:
    effect = {"kind": "k", "params": None, "cap_ref": "cap.bank"}
    assert decode({"effects": [effect]}).effects == (effect,)


def test_pure_output_may_carry_null_state() -> None:
    assert decode({"new_state": None}, kind="pure") == ModuleOutput()


# -- rejected outputs ----------------------------------------------------------------------


def test_output_too_large_is_checked_before_decoding() -> None:
    limits = CallLimits(max_output_bytes=4)
    assert failure_code(b"\xff" * 5, limits=limits) == "output_too_large"
    assert failure_code(cbor2.dumps({"emits": []}), limits=limits) == "output_too_large"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe",
        b"\xa1",  # truncated
        b"\xa0\x00",  # bytes after the map
        cbor2.dumps([1, 2]),
        cbor2.dumps("text"),
        bytes.fromhex("a2656d69747380656d69747380"),  # duplicate key
        cbor2.dumps({b"emits": []}),  # a byte-string key
        cbor2.dumps({1: []}),
    ],
)
def test_undecodable_or_not_a_map(raw: bytes) -> None:
    assert failure_code(raw) == "invalid_output"


@pytest.mark.parametrize(
    "message",
    [
        {"unknown": 1},
        {"new_state": "text"},
        {"new_state": 5},
        {"new_state": [256]},
        {"new_state": [-1]},
        {"new_state": ["a"]},
        {"emits": None},
        {"emits": {}},
        {"emits": [{"kind": "k"}]},
        {"emits": [{"kind": "", "payload": 1}]},
        {"emits": [{"kind": 1, "payload": 1}]},
        {"emits": [{"kind": "k", "payload": 1, "extra": 1}]},
        {"emits": ["k"]},
        {"effects": "x"},
        {"effects": [{"kind": "k", "params": {}}]},
        {"effects": [{"kind": "k", "params": {}, "cap_ref": "a", "cap_slot": "b"}]},
        {"effects": [{"kind": "k", "cap_ref": "a"}]},
        {"effects": [{"kind": "k", "params": {}, "cap_ref": 3}]},
        {"effects": [{"kind": "k", "params": {}, "cap_ref": "a", "more": 1}]},
        {"tick_lifecycle": {"mode": "wake_after_ticks", "ticks": 0}},
        {"tick_lifecycle": {"mode": "wake_after_ticks", "ticks": True}},
        {"tick_lifecycle": {"mode": "wake_after_ticks"}},
        {"tick_lifecycle": {"mode": "suspend", "ticks": 1}},
        {"tick_lifecycle": {"mode": "sleep"}},
        {"tick_lifecycle": "suspend"},
    ],
)
def test_wrong_shapes(message: dict[str, Any]) -> None:
    assert failure_code(cbor2.dumps(message)) == "invalid_output"


@pytest.mark.parametrize(
    "payload",
    [
        b"bytes",
        float("nan"),
        float("inf"),
        {1: "int key"},
        [{"deep": [b"x"]}],
        cbor2.CBORTag(1234, "x"),
        cbor2.undefined,
        cbor2.CBORSimpleValue(16),
    ],
)
def test_payloads_must_be_json_compatible(payload: Any) -> None:
    emits = {"emits": [{"kind": "k", "payload": payload}]}
    effects = {"effects": [{"kind": "k", "params": payload, "cap_slot": "s"}]}
    assert failure_code(cbor2.dumps(emits)) == "invalid_output"
    assert failure_code(cbor2.dumps(effects)) == "invalid_output"


@pytest.mark.parametrize(
    "tagged",
    [
        bytes.fromhex("c249010000000000000000"),  # bignum
        bytes.fromhex("c11a514b67b0"),  # epoch datetime
        bytes.fromhex("d9d9f7f6"),  # self-described CBOR
        bytes.fromhex("d81c81d81d00"),  # shared reference (could build cycles)
    ],
)
def test_no_cbor_tag_is_accepted(tagged: bytes) -> None:
    raw = bytes.fromhex("a165656d69747381a2646b696e64616b677061796c6f6164") + tagged
    assert failure_code(raw) == "invalid_output"


def test_pure_module_returning_state() -> None:
    assert failure_code(cbor2.dumps({"new_state": b"x"}), kind="pure") == "invalid_output"
    assert failure_code(cbor2.dumps({"new_state": [1]}), kind="pure") == "invalid_output"


def test_emit_and_effect_limits() -> None:
    limits = CallLimits(max_emits=1, max_effects=1)
    emits = [{"kind": "k", "payload": None}] * 2
    effects = [{"kind": "k", "params": None, "cap_slot": "s"}] * 2
    assert failure_code(cbor2.dumps({"emits": emits}), limits=limits) == "emit_limit_exceeded"
    assert failure_code(cbor2.dumps({"effects": effects}), limits=limits) == "effect_limit_exceeded"
    assert decode({"emits": emits[:1], "effects": effects[:1]}, limits=limits).emits == tuple(
        emits[:1]
    )


def test_deep_nesting_is_refused_not_crashing() -> None:
    raw = (
        bytes.fromhex("a165656d69747381a2646b696e64616b677061796c6f6164") + b"\x81" * 5000 + b"\x00"
    )
    assert failure_code(raw) == "invalid_output"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=256))
def test_decode_never_raises_anything_else(raw: bytes) -> None:
    try:
        decode_output(raw, limits=LIMITS, kind="reducer")
    except ModuleCallError as exc:
        assert exc.code in {"invalid_output", "emit_limit_exceeded", "effect_limit_exceeded"}


JSON = st.recursive(
    st.none()
    | st.booleans()
    # CBOR's plain integers; larger ones need a bignum tag, which outputs may not use.
    | st.integers(-(2**64), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=8), JSON), max_size=5))
def test_json_payloads_round_trip(emits: list[tuple[str, Any]]) -> None:
    message = {"emits": [{"kind": kind, "payload": payload} for kind, payload in emits]}
    output = decode_output(cbor2.dumps(message), limits=LIMITS, kind="pure")
    assert list(output.emits) == message["emits"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_after_a_valid_prefix(tail: bytes) -> None:
    raw = cbor2.dumps({"emits": [{"kind": "k", "payload": 1}]}) + tail
    try:
        decode_output(raw, limits=LIMITS, kind="pure")
    except ModuleCallError as exc:
        assert exc.code == "invalid_output"
    else:
        assert tail == b""


def test_an_empty_cap_ref_beside_a_slot_is_the_slot() -> None:
    # The original engine's guest SDK writes this shape.
    effect = {"kind": "k", "params": {}, "cap_ref": "", "cap_slot": "pay"}
    assert decode({"effects": [effect]}).effects == (
        {"kind": "k", "params": {}, "cap_slot": "pay"},)


@pytest.mark.parametrize("effect", [
    {"kind": "k", "params": {}, "cap_ref": ""},
    {"kind": "k", "params": {}, "cap_ref": "", "cap_slot": ""},
])
def test_an_empty_cap_ref_without_a_slot_is_still_invalid(effect: dict[str, object]) -> None:
    assert failure_code(cbor2.dumps({"effects": [effect]})) == "invalid_output"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=128), JSON)
def test_a_failed_decode_leaves_nothing_behind(garbage: bytes, payload: Any) -> None:
    """Decoders are reused: a valid output decodes the same after any garbage, deep nesting
    included, as it does first."""
    message = {"emits": [{"kind": "k", "payload": payload}]}
    raw = cbor2.dumps(message)
    first = decode_output(raw, limits=LIMITS, kind="pure")
    for bad in (garbage, b"\x81" * 5000 + b"\x00", b"\xbf" * 300):
        try:
            decode_output(bad, limits=LIMITS, kind="pure")
        except ModuleCallError:
            pass
        assert decode_output(raw, limits=LIMITS, kind="pure") == first
