"""A call input spliced from pieces encoded once is the canonical CBOR of the whole message.

Routing encodes a route's context constants and each routed event or action once and splices
them into every call's input; these properties check the result byte for byte against
`cbor2.dumps(message, canonical=True)` of the message built whole.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentworld.callinput import (
    VARIABLE_KEYS,
    CallSite,
    InputTemplate,
    encode_call,
    encode_int,
    encode_text,
    encode_value,
)

texts = st.text(max_size=30)
ints = st.integers(-(2**64), 2**64 - 1)
json_values = st.recursive(
    st.none() | st.booleans() | ints | texts
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)
constant_keys = texts.filter(lambda key: key not in VARIABLE_KEYS)


@settings(max_examples=400)
@given(
    st.dictionaries(constant_keys, json_values, max_size=8),
    texts | st.text(min_size=60, max_size=120),  # trace ids past 255 bytes too
    st.sampled_from(["pre_action", "post_action", "post_event", "tick", "x" * 30]),
    st.integers(0, 2**64 - 1), st.sampled_from(["event", "action", "tick"]),
    st.integers(0, 2**64 - 1),
    st.none() | json_values, st.none() | json_values, st.none() | st.binary(max_size=300),
)
def test_a_spliced_input_is_the_canonical_encoding_of_the_whole_message(
    constants: dict[str, Any], trace_id: str, stage: str, time: int, origin_kind: str,
    origin_id: int, event: Any, action: Any, state: bytes | None,
) -> None:
    template = InputTemplate(constants)
    site = CallSite(stage, time, origin_kind, origin_id)
    context = template.context(site, trace_id)
    ctx = {**constants, "trace_id": trace_id, "stage": stage, "time": time,
           "origin": {"kind": origin_kind, "id": origin_id}}
    assert context == cbor2.dumps(ctx, canonical=True)
    spliced = encode_call(context, event=None if event is None else encode_value(event),
                          action=None if action is None else encode_value(action), state=state)
    message: dict[str, Any] = {"ctx": ctx}
    for key, value in (("event", event), ("action", action), ("state", state)):
        if value is not None:
            message[key] = value
    assert spliced == cbor2.dumps(message, canonical=True)
    assert template.call_input(
        site, trace_id, event=None if event is None else encode_value(event),
        action=None if action is None else encode_value(action), state=state) == spliced


@given(st.integers(-(2**70), 2**70), texts)
def test_integers_and_texts_encode_as_cbor2_does(value: int, text: str) -> None:
    assert encode_int(value) == cbor2.dumps(value, canonical=True)
    assert encode_text(text) == cbor2.dumps(text, canonical=True)


def test_a_constant_may_not_shadow_a_per_call_key() -> None:
    with pytest.raises(ValueError, match="variable"):
        InputTemplate({"time": 3})
