"""An upgrade policy rule: an instance stays within its major version.

`major-version-kept` refuses an upgrade (or a rollback) whose target has another major version
than the instance runs now: in this policy a new major version is a new module, installed beside
the old one, never an in-place upgrade. Versions are read as semantic versions with agentworld's
own parser; a version it cannot read is a violation too.

A world created where this plugin is installed pins the rule (with this plugin's name and
version) in its compatibility policy, so the world keeps deciding by it, and refuses to decide
upgrades on a machine without it.
"""

from __future__ import annotations

from collections.abc import Callable

from agentworld import hookimpl
from agentworld.compat import CompatContext, Violation
from agentworld.manifest import Manifest
from agentworld.versions import parse_version


class MajorVersionKept:
    """The rule: the candidate's major version equals the current one."""

    name = "major-version-kept"
    description = "an upgrade or rollback keeps the instance's major version"
    severity = "error"

    def check(
        self, current: Manifest, candidate: Manifest, context: CompatContext
    ) -> list[Violation]:
        """One violation when the major versions differ (or a version cannot be read)."""
        versions = (str(current.version), str(candidate.version))
        parsed = [parse_version(version) for version in versions]
        unreadable = [v for v, p in zip(versions, parsed, strict=True) if p is None]
        if unreadable:
            return [Violation(self.name, f"not a semantic version: {', '.join(unreadable)}",
                              self.severity)]
        old, new = (p.release[0] for p in parsed if p is not None)
        if old == new:
            return []
        return [Violation(self.name, f"{context.operation} from {versions[0]} to {versions[1]} "
                          f"changes the major version ({old} -> {new}); install the new major "
                          "version as a new instance instead", self.severity)]


@hookimpl
def agentworld_register_compat_rules(register: Callable[..., None]) -> None:
    """Provide `major-version-kept`."""
    register(MajorVersionKept())
