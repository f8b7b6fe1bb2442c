"""The guest ABI `wasm-1`, independent of any engine: encode a call's input, decode its output.

Input and output are single CBOR maps. Decoding is on the hot path of every module
call, so it leans on cbor2's C decoder and only walks the decoded values, never the bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import cbor2

from agentworld.executor import CallLimits, ModuleCallError, ModuleOutput

ABI_VERSION = "wasm-1"

OUTPUT_KEYS = frozenset({"new_state", "effects", "emits", "tick_lifecycle", "output_bytes"})
"""Keys a guest output may carry; `output_bytes` (the original engine's ABI) is ignored."""

_EFFECT_KEYS = frozenset({"kind", "params", "cap_ref", "cap_slot"})


class _NoTags(Mapping[int, Any]):
    """A `semantic_decoders` table that claims every tag and refuses it.

    Outputs are written to the journal as JSON, so no CBOR tag may reach it; cbor2 would
    otherwise turn tags into datetimes, decimals, bignums or shared (even cyclic) references.
    """

    def __getitem__(self, tag: int) -> Any:
        def refuse(decoder: Any) -> NoReturn:
            raise cbor2.CBORDecodeError(f"CBOR tag {tag} is not allowed in module output")

        return refuse

    def __contains__(self, tag: object) -> bool:
        return True

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


_NO_TAGS = _NoTags()


def encode_input(
    ctx: Mapping[str, Any],
    *,
    event: Mapping[str, Any] | None = None,
    action: Mapping[str, Any] | None = None,
    state: bytes | None = None,
) -> bytes:
    """Encode one call's input map canonically; `state` is passed for reducers only."""
    message: dict[str, Any] = {"ctx": ctx}
    if event is not None:
        message["event"] = event
    if action is not None:
        message["action"] = action
    if state is not None:
        message["state"] = bytes(state)
    return cbor2.dumps(message, canonical=True)


def encode_migration_input(
    ctx: Mapping[str, Any], state: bytes, from_version: str, to_version: str
) -> bytes:
    """Encode a `migrate` call's input map canonically: the instance's state and both versions."""
    return cbor2.dumps({"ctx": ctx, "state": bytes(state), "from_version": from_version,
                        "to_version": to_version}, canonical=True)


def _invalid(detail: str) -> NoReturn:
    raise ModuleCallError("invalid_output", detail)


_JSON_SCALARS = frozenset({str, int, bool, type(None)})


def _json_problem(value: Any) -> str | None:
    """Why the journal's canonical JSON cannot hold `value`, or None (iterative: no recursion).

    On the hot path of every call with emits or effects: only containers go on the stack, each
    value is looked at once, by its exact type, and no message is built unless one is wrong.
    """
    stack = [value]
    pop, push, scalars = stack.pop, stack.append, _JSON_SCALARS
    while stack:
        item = pop()
        if type(item) is dict:
            for key in item:
                if type(key) is not str:
                    return f"map key {key!r} is not a string"
            values: Any = item.values()
        elif type(item) is list:
            values = item
        else:  # only the top-level value can be anything else: check it as a member
            values = (item,)
        for member in values:
            kind = type(member)
            if kind in scalars:
                continue
            if kind is dict or kind is list:
                push(member)
            elif kind is float:
                if not math.isfinite(member):
                    return f"{member!r} is not a finite number"
            else:
                return f"{kind.__name__} values are not JSON-compatible"
    return None


def _new_state(value: Any) -> bytes | None:
    if value is None or type(value) is bytes:
        return value
    if type(value) is list:
        # The original engine's ABI sent bytes as an array of small integers.
        try:
            return bytes(value)
        except (TypeError, ValueError):
            _invalid("new_state array must hold integers 0..255")
    _invalid(f"new_state must be bytes, null or an array of bytes, not {type(value).__name__}")


def _emits(value: Any, limit: int) -> tuple[dict[str, Any], ...]:
    if type(value) is not list:
        _invalid("emits must be an array")
    if len(value) > limit:
        raise ModuleCallError("emit_limit_exceeded", f"{len(value)} emits exceed the limit {limit}")
    for index, emit in enumerate(value):
        # Exactly the keys kind and payload: two keys, both present.
        if type(emit) is not dict or len(emit) != 2 or "payload" not in emit or "kind" not in emit:
            _invalid(f"emits[{index}] must be a map with exactly the keys kind and payload")
        kind = emit["kind"]
        if type(kind) is not str or not kind:
            _invalid(f"emits[{index}].kind must be a non-empty string")
        problem = _json_problem(emit["payload"])
        if problem is not None:
            _invalid(f"emits[{index}].payload: {problem}")
    return tuple(value)


def _effects(value: Any, limit: int) -> tuple[dict[str, Any], ...]:
    if type(value) is not list:
        _invalid("effects must be an array")
    if len(value) > limit:
        raise ModuleCallError(
            "effect_limit_exceeded", f"{len(value)} effects exceed the limit {limit}"
        )
    for index, effect in enumerate(value):
        where = f"effects[{index}]"
        if type(effect) is not dict:
            _invalid(f"{where} must be a map")
        keys = effect.keys()
        if effect.get("cap_ref") == "" and "cap_slot" in keys:
            # The original engine's guest SDK writes an empty cap_ref beside a slot: the slot.
            effect = {key: item for key, item in effect.items() if key != "cap_ref"}
            value[index] = effect
            keys = effect.keys()
        if not keys <= _EFFECT_KEYS or "kind" not in keys or "params" not in keys:
            _invalid(f"{where} must have kind, params and one of cap_ref / cap_slot")
        if ("cap_ref" in keys) == ("cap_slot" in keys):
            _invalid(f"{where} must name exactly one of cap_ref / cap_slot")
        for key in ("kind", "cap_ref", "cap_slot"):
            if key in keys and (type(effect[key]) is not str or not effect[key]):
                _invalid(f"{where}.{key} must be a non-empty string")
        problem = _json_problem(effect["params"])
        if problem is not None:
            _invalid(f"{where}.params: {problem}")
    return tuple(value)


def _tick_lifecycle(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if type(value) is dict:
        if value == {"mode": "suspend"}:
            return value
        ticks = value.get("ticks")
        if (
            value.keys() == {"mode", "ticks"}
            and value["mode"] == "wake_after_ticks"
            and type(ticks) is int
            and ticks >= 1
        ):
            return value
    _invalid(
        'tick_lifecycle must be null, {"mode": "suspend"} or '
        '{"mode": "wake_after_ticks", "ticks": n >= 1}'
    )


def _decoder() -> cbor2.CBORDecoder:
    return cbor2.CBORDecoder(io.BytesIO(), semantic_decoders=_NO_TAGS,
                             allow_duplicate_keys=False, strict_hashable_types=True)


# Idle decoders; list pop and append are atomic, so threads never share one.
_DECODERS: list[cbor2.CBORDecoder] = []


def decode_output(
    raw: bytes, *, limits: CallLimits, kind: str, gas_used: int = 0
) -> ModuleOutput:
    """Decode and validate a guest's output bytes, raising `ModuleCallError` when invalid.

    `gas_used` is carried into the output as it is.
    """
    if len(raw) > limits.max_output_bytes:
        raise ModuleCallError(
            "output_too_large",
            f"output is {len(raw)} bytes, the limit is {limits.max_output_bytes}",
        )
    # A decoder over a stream (not `cbor2.loads`) so bytes after the map are seen and refused.
    # Decoders are reused (one per concurrent caller): making one costs as much as a small
    # output's validation. One that failed is dropped, so no state of a failure carries over.
    stream = io.BytesIO(raw)
    decoder = _DECODERS.pop() if _DECODERS else _decoder()
    decoder.fp = stream
    try:
        message = decoder.decode()
    except Exception as exc:  # cbor2 raises several types (and RecursionError) on garbage
        raise ModuleCallError("invalid_output", f"output is not valid CBOR: {exc}") from None
    _DECODERS.append(decoder)
    if stream.tell() != len(raw):
        _invalid(f"{len(raw) - stream.tell()} bytes follow the output map")
    if type(message) is not dict:
        _invalid(f"output must be a CBOR map, not {type(message).__name__}")
    if not message.keys() <= OUTPUT_KEYS:
        unknown = message.keys() - OUTPUT_KEYS
        _invalid(f"output has unknown keys: {', '.join(sorted(map(repr, unknown)))}")
    # Absent parts are common (most calls only emit): skip their checks.
    new_state = message.get("new_state")
    if new_state is not None:
        new_state = _new_state(new_state)
        if kind == "pure":
            _invalid("a pure module must not return new_state")
    lifecycle = message.get("tick_lifecycle")
    return ModuleOutput(
        new_state=new_state,
        emits=_emits(message["emits"], limits.max_emits) if "emits" in message else (),
        effects=(_effects(message["effects"], limits.max_effects) if "effects" in message
                 else ()),
        tick_lifecycle=None if lifecycle is None else _tick_lifecycle(lifecycle),
        gas_used=gas_used,
    )
