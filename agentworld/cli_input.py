"""Reading the CLI's input strictly: any problem is one line on stderr and exit status 2."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import click


class BadInput(click.ClickException):
    """Unusable input: one line on stderr, exit status 2."""

    exit_code = 2


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):  # linear: an object with many keys must not be quadratic
        counts = Counter(key for key, _ in pairs)
        duplicates = sorted(key for key, count in counts.items() if count > 1)
        raise ValueError(f"duplicate keys {duplicates}")
    return found


def read_text_input(path: str) -> str:
    """The UTF-8 text of file `path`; any problem exits 2 in one line."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}") from None


def read_json_input(source: str, *, text: str | None = None) -> Any:
    """JSON from file `source` (or from `text`, then `source` only names it), strictly: any
    problem exits 2 in one line. Duplicate keys are refused rather than resolved to the last."""
    if text is None:
        text = read_text_input(source)
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise BadInput(f"{source}: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, duplicate keys, integers too long to parse
        raise BadInput(f"{source}: not usable JSON: {exc}") from None
