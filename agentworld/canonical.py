"""Canonical JSON and hashing: the byte encoding that journals and state roots are built on.

Canonical JSON is UTF-8, keys sorted, no insignificant whitespace, integers as integers, floats
as their shortest round-trip text, NaN and Infinity refused, bytes as base64. Two equal values
always encode to the same bytes, on every machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from agentworld.errors import CanonicalEncodingError


def _encode_special(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, tuple | frozenset):
        return list(value) if isinstance(value, tuple) else sorted(value)
    raise CanonicalEncodingError(f"cannot encode {type(value).__name__} canonically")


def _encoder(sort_keys: bool) -> json.JSONEncoder:
    return json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=sort_keys,
                            separators=(",", ":"), default=_encode_special)


_CANONICAL = _encoder(sort_keys=True)
_ORDERED = _encoder(sort_keys=False)


def _encode(encoder: json.JSONEncoder, value: Any) -> bytes:
    try:
        return encoder.encode(value).encode("utf-8")
    except CanonicalEncodingError:
        raise
    except (ValueError, TypeError) as exc:  # NaN/Infinity, non-string keys, huge integers
        raise CanonicalEncodingError(str(exc)) from exc


def canonical_json(value: Any) -> bytes:
    """Encode `value` as canonical JSON bytes."""
    return _encode(_CANONICAL, value)


def ordered_json(value: Any) -> bytes:
    """Like `canonical_json`, but keeping each mapping's own key order.

    For snapshots: the order of the world's maps (install order, registration order) is
    derived from the journal, so it is deterministic, and a loaded world must keep it.
    """
    return _encode(_ORDERED, value)


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def canonical_hash(value: Any) -> str:
    """Lowercase hex SHA-256 of the canonical JSON of `value`."""
    return sha256_hex(canonical_json(value))
