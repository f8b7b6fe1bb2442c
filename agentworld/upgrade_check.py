"""Judging an upgrade from two manifests alone: preconditions, validation and every rule.

`agentworld module check-upgrade` prints this report. Nothing hides anything else: the
preconditions the upgrade action checks (same module, a different version), every problem of
either manifest and every compatibility rule's violations are reported together, so an
operator sees everything that stands in the way at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from attrs import frozen

from agentworld.compat import CompatContext, CompatRule, Violation, check_compatibility
from agentworld.manifest import Manifest, read_manifest

# How each finding is produced; `source` in the report.
SOURCES = ("precondition", "validation", "rule")


@frozen
class Finding:
    """One reason an upgrade would be refused (or, for a `warning`, only reported)."""

    source: str
    violation: Violation

    def to_json(self) -> dict[str, Any]:
        """The finding as plain data."""
        v = self.violation
        return {"source": self.source, "rule": v.rule, "message": v.message,
                "severity": v.severity}


@frozen
class UpgradeCheck:
    """Every finding on one candidate, and the rules that ran."""

    findings: tuple[Finding, ...]
    rules: tuple[str, ...]

    @property
    def compatible(self) -> bool:
        """True when the upgrade would be accepted: no finding has severity `error`."""
        return not any(f.violation.severity == "error" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        """The report as plain data."""
        return {
            "compatible": self.compatible,
            "rules": list(self.rules),
            "violations": [finding.to_json() for finding in self.findings],
        }

    def lines(self) -> list[str]:
        """One human-readable line per finding: `[severity] rule: message`."""
        return [f"[{f.violation.severity}] {f.violation.rule}: {f.violation.message}"
                for f in self.findings]


def check_upgrade(
    current: Any, candidate: Any, rules: Iterable[CompatRule], *, operation: str = "upgrade"
) -> UpgradeCheck:
    """Judge moving from manifest `current` to `candidate` (JSON data or `Manifest`s).

    Preconditions are named by the code the upgrade action is refused with
    (`module_id_mismatch`, `same_version`); a manifest's own problems are `invalid_manifest`
    findings. The rules run whenever both manifests could be read, valid or not.
    """
    findings: list[Finding] = []
    old, old_problems = read_manifest(current)
    new, new_problems = read_manifest(candidate)
    if old is not None and new is not None:
        findings += _preconditions(old, new)
    findings += [Finding("validation", Violation("invalid_manifest", f"{which}: {problem}"))
                 for which, problems in (("current", old_problems), ("candidate", new_problems))
                 for problem in problems]
    names: tuple[str, ...] = ()
    if old is not None and new is not None:
        report = check_compatibility(old, new, rules, CompatContext(operation=operation))
        findings += [Finding("rule", violation) for violation in report.violations]
        names = report.rules
    return UpgradeCheck(tuple(findings), names)


def _preconditions(old: Manifest, new: Manifest) -> list[Finding]:
    found = []
    if old.module_id != new.module_id:
        found.append(Violation("module_id_mismatch", f"module_id changes from {old.module_id!r} "
                               f"to {new.module_id!r}"))
    if old.version == new.version:
        found.append(Violation("same_version", f"both manifests are version {old.version!r}"))
    return [Finding("precondition", violation) for violation in found]
