"""The one cattrs converter: strict structuring of external input, plain unstructuring of data.

Strict means: unknown fields are errors, and primitives are never coerced (`"5"` is not an int,
`True` is not an int, `1.5` is not an int). Errors come back as a list of readable problems.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any, TypeVar

import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from agentworld.errors import InvalidInputError

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=True)


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return float(value)


def _bytes_or_base64(value: Any, _: type) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"expected base64 text: {exc}") from None
    raise TypeError(f"expected bytes or base64 text, got {type(value).__name__}")


# Unstructured data is JSON-native, so what modules, filters and the journal see is exactly what
# a JSON round trip gives back: bytes become base64 text, tuples become lists.
converter.register_unstructure_hook(bytes, lambda value: base64.b64encode(value).decode("ascii"))
converter.register_unstructure_hook_func(
    lambda cls: getattr(cls, "__origin__", cls) is tuple,
    lambda value: [converter.unstructure(item) for item in value],
)

converter.register_structure_hook(int, _strict_int)
converter.register_structure_hook(str, _strict_str)
converter.register_structure_hook(bool, _strict_bool)
converter.register_structure_hook(float, _strict_float)
converter.register_structure_hook(bytes, _bytes_or_base64)


def problems_of(exc: BaseException) -> list[str]:
    """Flatten a cattrs/attrs structuring error into readable problems, one per failing field."""
    if isinstance(exc, ClassValidationError | IterableValidationError | ForbiddenExtraKeysError):
        return cattrs.transform_error(exc, path="$")
    return [str(exc)]


def structure(value: Any, cls: type[T], what: str) -> T:
    """Structure external input into `cls`, raising `InvalidInputError` listing every problem."""
    try:
        return converter.structure(value, cls)
    except (cattrs.BaseValidationError, ForbiddenExtraKeysError, TypeError, ValueError) as exc:
        raise InvalidInputError(what, problems_of(exc)) from None


def unstructure(value: Any) -> Any:
    """Turn attrs data into plain dicts/lists/primitives."""
    return converter.unstructure(value)
