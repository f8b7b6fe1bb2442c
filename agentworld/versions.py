"""Module versions as semantic versions: the grammar and the order upgrades must follow.

A version is `MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD]`: numbers without leading zeros
(a missing MINOR or PATCH counts as 0), a pre-release of dot-separated identifiers
(`[0-9A-Za-z-]+`, numeric ones without leading zeros) and build metadata of dot-separated
identifiers. Order is Semantic Versioning 2.0.0 precedence: numbers compare numerically, a
pre-release sorts before its release (`1.0.0-rc.1 < 1.0.0`), pre-release identifiers compare
one by one (numbers numerically and below text, text in ASCII order, a shorter list first when
all else is equal), and build metadata is ignored (`1.0.0+a` and `1.0.0+b` are equal).
"""

from __future__ import annotations

import re
from functools import total_ordering

from attrs import frozen

_NUMBER = r"0|[1-9][0-9]*"
_PRE_ID = rf"(?:{_NUMBER}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_GRAMMAR = re.compile(
    rf"(?P<major>{_NUMBER})(?:\.(?P<minor>{_NUMBER}))?(?:\.(?P<patch>{_NUMBER}))?"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


@total_ordering
@frozen(eq=False)
class SemanticVersion:
    """A parsed version; compares by precedence (build metadata ignored)."""

    text: str
    release: tuple[int, int, int]
    prerelease: tuple[int | str, ...]

    def _key(self) -> tuple[tuple[int, int, int], int, tuple[tuple[int, int | str], ...]]:
        # A release (no pre-release) sorts after every pre-release of the same numbers; numeric
        # identifiers sort before alphanumeric ones.
        pre = tuple((0, part) if isinstance(part, int) else (1, part) for part in self.prerelease)
        return self.release, 0 if self.prerelease else 1, pre

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: SemanticVersion) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.text


def parse_version(text: str) -> SemanticVersion | None:
    """The semantic version `text` spells, or None when it does not follow the grammar."""
    found = _GRAMMAR.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        return None
    release = (int(found["major"]), int(found["minor"] or 0), int(found["patch"] or 0))
    prerelease = tuple(int(part) if part.isdigit() else part
                       for part in (found["pre"] or "").split(".") if part)
    return SemanticVersion(text, release, prerelease)
