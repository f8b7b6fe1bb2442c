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
_EMIT_KEYS = frozenset({"kind", "payload"})


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


def _check_json(value: Any, where: str) -> None:
    """Refuse anything the journal's canonical JSON cannot hold (iteratively: no recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if not math.isfinite(item):
                _invalid(f"{where}: {item!r} is not a finite number")
        elif kind is list:
            stack.extend(item)
        elif kind is dict:
            for key in item:
                if type(key) is not str:
                    _invalid(f"{where}: map key {key!r} is not a string")
            stack.extend(item.values())
        else:
            _invalid(f"{where}: {kind.__name__} values are not JSON-compatible")


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
        where = f"emits[{index}]"
        if type(emit) is not dict or emit.keys() != _EMIT_KEYS:
            _invalid(f"{where} must be a map with exactly the keys kind and payload")
        if type(emit["kind"]) is not str or not emit["kind"]:
            _invalid(f"{where}.kind must be a non-empty string")
        _check_json(emit["payload"], f"{where}.payload")
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
        _check_json(effect["params"], f"{where}.params")
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
    stream = io.BytesIO(raw)
    try:
        message = cbor2.CBORDecoder(
            stream,
            semantic_decoders=_NO_TAGS,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
        ).decode()
    except Exception as exc:  # cbor2 raises several types (and RecursionError) on garbage
        raise ModuleCallError("invalid_output", f"output is not valid CBOR: {exc}") from None
    if stream.tell() != len(raw):
        _invalid(f"{len(raw) - stream.tell()} bytes follow the output map")
    if type(message) is not dict:
        _invalid(f"output must be a CBOR map, not {type(message).__name__}")
    unknown = message.keys() - OUTPUT_KEYS
    if unknown:
        _invalid(f"output has unknown keys: {', '.join(sorted(map(repr, unknown)))}")
    new_state = _new_state(message.get("new_state"))
    if new_state is not None and kind == "pure":
        _invalid("a pure module must not return new_state")
    return ModuleOutput(
        new_state=new_state,
        emits=_emits(message.get("emits", []), limits.max_emits),
        effects=_effects(message.get("effects", []), limits.max_effects),
        tick_lifecycle=_tick_lifecycle(message.get("tick_lifecycle")),
        gas_used=gas_used,
    )
