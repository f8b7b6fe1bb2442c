"""The compatibility-rule contract (SPEC §9): rules judge a candidate manifest against the current."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from attrs import frozen

SEVERITIES = ("error", "warning")


@frozen
class Violation:
    """One broken rule: which rule, what is wrong, and whether it blocks (`error`) or not."""

    rule: str
    message: str
    severity: str = "error"


@runtime_checkable
class CompatRule(Protocol):
    """A compatibility rule, registered through `agentworld_register_compat_rules`."""

    name: str
    description: str
    severity: str

    def check(
        self, current: Any, candidate: Any, context: Any
    ) -> list[Violation] | list[str] | list[Violation | str]:
        """Return the violations of `candidate` against `current` (empty when compatible)."""
        ...
