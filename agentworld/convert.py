"""The one cattrs converter: strict structuring of external input, plain unstructuring of data.

Strict means: unknown fields are errors, and primitives are never coerced (`"5"` is not an int,
`True` is not an int, `1.5` is not an int). Errors come back as a list of readable problems.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.v import format_exception as cattrs_format_exception

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

def _is_sequence_type(cls: Any) -> bool:
    return get_origin(cls) in (list, tuple)


def _strict_sequence(value: Any, cls: Any) -> Any:
    # cattrs would iterate any iterable: "abc" would become ["a", "b", "c"].
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    args = get_args(cls)
    if get_origin(cls) is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            raise ValueError(f"expected a list of {len(args)} items, got {len(value)}")
        item_types = list(args)
    else:
        item_types = [args[0] if args else Any] * len(value)
    items, errors = [], []
    for index, (item, item_type) in enumerate(zip(value, item_types, strict=True)):
        try:
            items.append(converter.structure(item, item_type))
        except Exception as exc:  # collected, so that every bad item is reported
            exc.__notes__ = [*getattr(exc, "__notes__", []),
                             IterableValidationNote(f"item {index}", index, item_type)]
            errors.append(exc)
    if errors:
        raise IterableValidationError(f"while structuring {cls}", errors, cls)
    return tuple(items) if get_origin(cls) is tuple else items


converter.register_structure_hook_func(_is_sequence_type, _strict_sequence)
converter.register_structure_hook(int, _strict_int)
converter.register_structure_hook(str, _strict_str)
converter.register_structure_hook(bool, _strict_bool)
converter.register_structure_hook(float, _strict_float)
converter.register_structure_hook(bytes, _bytes_or_base64)


def _int_or_str(value: Any, _: Any) -> int | str:
    if isinstance(value, str):
        return value
    return _strict_int(value, int)


# An event's cause: `{"action": id}`, with the action's submitter when there is one.
converter.register_structure_hook_func(lambda cls: cls == (int | str), _int_or_str)


def _describe(exc: BaseException, cls: type | None) -> str:
    # Our own hooks' messages say exactly what is wrong; cattrs' generic text does not.
    if isinstance(exc, InvalidInputError):  # a class's own validation, e.g. WorldConfig's
        return "; ".join(exc.problems)
    if type(exc) in (TypeError, ValueError) and str(exc):
        return str(exc)
    return cattrs_format_exception(exc, cls)


def problems_of(exc: BaseException) -> list[str]:
    """Flatten a cattrs/attrs structuring error into readable problems, one per failing field."""
    if isinstance(exc, ClassValidationError | IterableValidationError | ForbiddenExtraKeysError):
        return cattrs.transform_error(exc, path="$", format_exception=_describe)
    return [str(exc)]


MAX_DEPTH = 64


def plain_json(value: Any, what: str, *, allow_bytes: bool = False, where: str = "$") -> Any:
    """A copy of `value` built only of plain JSON values, or `InvalidInputError` listing why not.

    Subclasses of str, int, float, dict and list become the plain type, so no user-defined
    method runs past this point; `allow_bytes` admits byte strings (for fields declared as bytes).
    """
    problems: list[str] = []
    copy = _plain(value, where, 0, allow_bytes, problems)
    if problems:
        raise InvalidInputError(what, problems)
    return copy


def json_problems(value: Any, where: str = "$") -> list[str]:
    """Why `value` is not plain JSON data (bytes allowed): deep nesting, non-string keys,
    unencodable text (lone surrogates), NaN/Infinity, other types. Empty when it is fine."""
    problems: list[str] = []
    _plain(value, where, 0, True, problems)
    return problems


def _plain(value: Any, where: str, depth: int, allow_bytes: bool, problems: list[str]) -> Any:
    # The base types' own methods read a subclass's value: an override cannot lie or raise.
    if depth > MAX_DEPTH:
        problems.append(f"{where}: nested deeper than {MAX_DEPTH} levels")
        return None
    if value is None or type(value) is bool:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        if allow_bytes:
            return value if type(value) is bytes else bytes(value)
        problems.append(f"{where}: bytes are not a JSON value (send text, numbers, lists or "
                        f"objects)")
        return None
    if isinstance(value, int):
        number = int.__int__(value)
        # Guests see CBOR integers of 64 bits at most, and JSON encoders refuse huge ones.
        if not -(2**63) <= number < 2**64:
            problems.append(f"{where}: integer does not fit in 64 bits")
        return number
    if isinstance(value, float):
        real = float.__float__(value)
        if not math.isfinite(real):
            problems.append(f"{where}: {real} is not a finite number")
        return real
    if isinstance(value, str):
        text = str.__str__(value)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            problems.append(f"{where}: text is not valid Unicode (lone surrogate)")
        return text
    if isinstance(value, dict):
        copy: dict[str, Any] = {}
        for key, item in dict.items(value):
            if not isinstance(key, str):
                problems.append(f"{where}: a key of type {type(key).__name__} is not a string")
                continue
            name = _plain(key, f"{where} key", depth + 1, allow_bytes, problems)
            if name in copy:
                problems.append(f"{where}: key {name!r} appears twice")
            copy[name] = _plain(item, f"{where}.{name}", depth + 1, allow_bytes, problems)
        return copy
    if isinstance(value, list | tuple):
        items = list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)
        return [_plain(item, f"{where}[{index}]", depth + 1, allow_bytes, problems)
                for index, item in enumerate(items)]
    problems.append(f"{where}: {type(value).__name__} is not JSON data")
    return None


def structure(value: Any, cls: type[T], what: str) -> T:
    """Structure external input into `cls`, raising `InvalidInputError` listing every problem."""
    try:
        return converter.structure(value, cls)
    except (cattrs.BaseValidationError, ForbiddenExtraKeysError, TypeError, ValueError) as exc:
        raise InvalidInputError(what, problems_of(exc)) from None
    except (AttributeError, KeyError, IndexError) as exc:
        # cattrs reaches for mapping methods on whatever it is given: a list or a string where
        # an object belongs fails this way.
        problem = f"$: expected an object ({type(exc).__name__}: {exc})"
        raise InvalidInputError(what, [problem]) from None
    except RecursionError:
        raise InvalidInputError(what, ["$: nested too deeply"]) from None


def _known_only(value: Any, cls: Any) -> Any:
    """`value` without the keys `cls` (an attrs class, or a list/tuple/optional of one) does
    not define, at every depth; anything that is not shaped like `cls` is returned as is."""
    if get_origin(cls) in (list, tuple):
        args = [arg for arg in get_args(cls) if arg is not Ellipsis]
        if len(args) == 1 and isinstance(value, list):
            return [_known_only(item, args[0]) for item in value]
        return value
    members = [arg for arg in get_args(cls) if arg is not type(None)]
    if len(members) == 1:  # Optional[X]
        return _known_only(value, members[0])
    if not (attrs.has(cls) and isinstance(value, dict)):
        return value
    fields = attrs.fields_dict(attrs.resolve_types(cls))
    return {key: _known_only(item, fields[key].type) for key, item in value.items()
            if key in fields}


def structure_collecting(value: Any, cls: type[T], what: str) -> tuple[T | None, list[str]]:
    """Structure `value` into `cls`, collecting problems instead of raising.

    Unknown fields do not hide the other problems: when they are the only obstacle, the value
    built from the known fields is returned beside them, so callers can check it further.
    """
    try:
        return structure(value, cls, what), []
    except InvalidInputError as exc:
        problems = exc.problems
    try:
        return structure(_known_only(value, cls), cls, what), problems
    except InvalidInputError:
        return None, problems


def unstructure(value: Any) -> Any:
    """Turn attrs data into plain dicts/lists/primitives."""
    return converter.unstructure(value)
