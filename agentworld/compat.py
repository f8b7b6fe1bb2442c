"""The compatibility engine: every registered rule judges a candidate manifest.

Rules come only from `agentworld_register_compat_rules`. Every rule runs and every violation is
reported; only `error` violations make a candidate incompatible, `warning`s are informational.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from attrs import frozen

SEVERITIES = ("error", "warning")


@frozen
class Violation:
    """One broken rule: which rule, what is wrong, and whether it blocks (`error`) or not."""

    rule: str
    message: str
    severity: str = "error"


@frozen(kw_only=True)
class CompatContext:
    """What a rule may know about the upgrade besides the two manifests."""

    instance_id: str | None = None
    agent_id: str | None = None
    time: int | None = None
    operation: str = "upgrade"


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


@frozen
class CompatReport:
    """The verdict of every rule on one candidate."""

    violations: tuple[Violation, ...]
    rules: tuple[str, ...]

    @property
    def compatible(self) -> bool:
        """True when no violation has severity `error`."""
        return not any(v.severity == "error" for v in self.violations)

    def to_json(self) -> dict[str, Any]:
        """The report as plain data."""
        return {
            "compatible": self.compatible,
            "rules": list(self.rules),
            "violations": [
                {"rule": v.rule, "message": v.message, "severity": v.severity}
                for v in self.violations
            ],
        }

    def lines(self) -> list[str]:
        """One human-readable line per violation: `[severity] rule: message`."""
        return [f"[{v.severity}] {v.rule}: {v.message}" for v in self.violations]


def check_compatibility(
    current: Any, candidate: Any, rules: Iterable[CompatRule], context: CompatContext
) -> CompatReport:
    """Run every rule; a rule that raises is itself reported as an error violation."""
    violations: list[Violation] = []
    names = []
    for rule in rules:
        names.append(rule.name)
        try:
            found = list(rule.check(current, candidate, context))
        except Exception as exc:  # a broken third-party rule must not crash the world
            violations.append(Violation(rule.name, f"rule raised {type(exc).__name__}: {exc}"))
            continue
        for item in found:
            if isinstance(item, Violation):
                violations.append(item)
            else:
                violations.append(Violation(rule.name, str(item), rule.severity))
    return CompatReport(tuple(violations), tuple(names))
