"""A routed call's input, encoded once per part and spliced (ABI `wasm-1`).

A call's input is one canonical CBOR map `{ctx, event?, state?, action?}`. Most of it does not
change from call to call: a route's context constants (module, instance, hashes) are the same
for every call of that instance, and the event or action being routed is the same for every
instance it is routed to. So each is encoded once (`cbor2.dumps(..., canonical=True)`) and a
call only encodes its own few values (trace id, stage, time, origin) and splices the pieces
together in canonical key order. The result is byte for byte what `cbor2.dumps(message,
canonical=True)` gives for the whole message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cbor2

# The keys of a call context that change from call to call; every other key is a constant.
VARIABLE_KEYS = ("trace_id", "stage", "time", "origin")


def _head(major: int, length: int) -> bytes:
    """A CBOR item head: major type and length (or value), in the shortest form."""
    if length < 24:
        return bytes((major << 5 | length,))
    if length < 0x100:
        return bytes((major << 5 | 24, length))
    if length < 0x10000:
        return bytes((major << 5 | 25,)) + length.to_bytes(2, "big")
    if length < 0x100000000:
        return bytes((major << 5 | 26,)) + length.to_bytes(4, "big")
    return bytes((major << 5 | 27,)) + length.to_bytes(8, "big")


def encode_text(text: str) -> bytes:
    """Canonical CBOR of a text string."""
    data = text.encode("utf-8")
    return _head(3, len(data)) + data


def encode_int(value: int) -> bytes:
    """Canonical CBOR of an integer."""
    if 0 <= value < 2**64:
        return _head(0, value)
    if -(2**64) <= value < 0:
        return _head(1, -1 - value)
    return cbor2.dumps(value, canonical=True)  # a bignum


def encode_bytes(data: bytes) -> bytes:
    """Canonical CBOR of a byte string."""
    return _head(2, len(data)) + data


def _key_order(encoded_key: bytes) -> tuple[int, bytes]:
    # Canonical CBOR orders map keys by the length of their encoding, then bytewise.
    return len(encoded_key), encoded_key


def encode_value(value: Any) -> bytes:
    """Canonical CBOR of any value (a routed event or action, a constant)."""
    return cbor2.dumps(value, canonical=True)


def encode_origin(kind: str, origin_id: int) -> bytes:
    """Canonical CBOR of a call origin `{"kind": kind, "id": origin_id}`."""
    return b"\xa2\x62id" + encode_int(origin_id) + b"\x64kind" + encode_text(kind)


_CTX = encode_text("ctx")
_EVENT = encode_text("event")
_STATE = encode_text("state")
_ACTION = encode_text("action")
_TEXT_HEADS = tuple(_head(3, size) for size in range(0x100))  # of texts shorter than 256 bytes
_CTX_AND_EVENT = _head(5, 2) + _CTX  # the head of a map {ctx, event}, and its first key


class CallSite:
    """What every call routed for one event, action or tick shares: its stage, the time and its
    origin (encoded once), and its trace ids' prefix."""

    __slots__ = ("origin", "origin_id", "origin_kind", "stage", "stage_name", "time",
                 "trace_prefix")

    def __init__(self, stage: str, time: int, origin_kind: str, origin_id: int) -> None:
        self.stage_name = stage
        self.origin_kind = origin_kind
        self.origin_id = origin_id
        self.stage = encode_text(stage)
        self.time = encode_int(time)
        self.origin = encode_origin(origin_kind, origin_id)
        self.trace_prefix = f"{origin_kind}-{origin_id}-"


class InputTemplate:
    """One route's call context with its constants already encoded.

    Every context has the same keys, so the canonical layout is fixed per template: constant
    bytes with the four per-call values between them, in an order found once.
    """

    __slots__ = ("_consts", "_order")

    def __init__(self, constants: Mapping[str, Any]) -> None:
        if set(constants) & set(VARIABLE_KEYS):
            raise ValueError("a context constant may not be one of the variable keys")
        keys = {encode_text(key): key for key in (*constants, *VARIABLE_KEYS)}
        consts = [_head(5, len(keys))]
        order = []
        for encoded in sorted(keys, key=_key_order):
            key = keys[encoded]
            consts[-1] += encoded
            if key in VARIABLE_KEYS:
                order.append(VARIABLE_KEYS.index(key))
                consts.append(b"")
            else:
                consts[-1] += encode_value(constants[key])
        self._consts = tuple(consts)
        self._order = tuple(order)

    def context(self, site: CallSite, trace_id: str) -> bytes:
        """The encoded context of this route's call at `site`."""
        values = (encode_text(trace_id), site.stage, site.time, site.origin)
        c0, c1, c2, c3, c4 = self._consts
        o0, o1, o2, o3 = self._order
        return b"".join((c0, values[o0], c1, values[o1], c2, values[o2], c3, values[o3], c4))

    def call_input(
        self,
        site: CallSite,
        trace_id: str,
        *,
        event: bytes | None = None,
        action: bytes | None = None,
        state: bytes | None = None,
    ) -> bytes:
        """The whole input of this route's call at `site`: `encode_call` of its `context`."""
        if event is None or action is not None or state is not None:
            return encode_call(self.context(site, trace_id), event=event, action=action,
                               state=state)
        # A routed event alone, the most common call: the map is spliced in one go.
        text = trace_id.encode("utf-8")
        size = len(text)
        values = (_TEXT_HEADS[size] + text if size < 0x100 else _head(3, size) + text,
                  site.stage, site.time, site.origin)
        c0, c1, c2, c3, c4 = self._consts
        o0, o1, o2, o3 = self._order
        return b"".join((_CTX_AND_EVENT, c0, values[o0], c1, values[o1], c2, values[o2], c3,
                         values[o3], c4, _EVENT, event))


def encode_call(
    context: bytes,
    *,
    event: bytes | None = None,
    action: bytes | None = None,
    state: bytes | None = None,
) -> bytes:
    """A call's whole input map from its encoded context, event and action, and raw state."""
    parts = [b"", _CTX, context]
    if event is not None:
        parts += [_EVENT, event]
    if state is not None:
        parts += [_STATE, encode_bytes(state)]
    if action is not None:
        parts += [_ACTION, action]
    parts[0] = _head(5, len(parts) // 2)
    return b"".join(parts)
