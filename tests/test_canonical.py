import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentworld.canonical import canonical_hash, canonical_json
from agentworld.errors import CanonicalEncodingError


def test_sorted_keys_no_whitespace_utf8() -> None:
    assert canonical_json({"b": 1, "a": [1, 2], "é": None}) == '{"a":[1,2],"b":1,"é":null}'.encode()


def test_floats_shortest_round_trip_and_ints_stay_ints() -> None:
    assert canonical_json([0.1, 1.0, 10, -0.5]) == b"[0.1,1.0,10,-0.5]"


def test_bytes_become_base64() -> None:
    assert canonical_json({"b": b"\x00\xff"}) == b'{"b":"AP8="}'


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, {1: "x", "a": 2}, object()])
def test_refuses_what_has_no_canonical_form(bad: object) -> None:
    with pytest.raises(CanonicalEncodingError):
        canonical_json(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values))
def test_key_order_never_matters(value: dict[str, object]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert canonical_json(value) == canonical_json(reordered)
    assert canonical_hash(value) == canonical_hash(reordered)
