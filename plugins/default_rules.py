"""The default compatibility rules, registered as the built-in `default-rules` plugin.

Block this plugin (`AGENTWORLD_DISABLE_PLUGINS=default-rules`) to replace the whole policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import frozen

from agentworld.canonical import canonical_json
from agentworld.compat import CompatContext
from agentworld.filters import pattern_covers
from agentworld.hookspecs import hookimpl
from agentworld.manifest import Manifest, Subscription
from agentworld.versions import parse_version

Check = Callable[[Manifest, Manifest], list[str]]


@frozen
class ManifestRule:
    """A rule backed by a function of the two manifests."""

    name: str
    description: str
    severity: str
    judge: Check

    def check(self, current: Manifest, candidate: Manifest, context: CompatContext) -> list[str]:
        """Messages for each way `candidate` breaks this rule."""
        return self.judge(current, candidate)


def _interface_version(current: Manifest, candidate: Manifest) -> list[str]:
    if current.interface_version == candidate.interface_version:
        return []
    return [f"interface_version changes from {current.interface_version!r} "
            f"to {candidate.interface_version!r}"]


# Only the version being moved to is ever asked to migrate: `migrate` is no part of the interface
# others use, and dropping it is judged by `migrate-kept` instead.
MIGRATE_EXPORT = "migrate"


def _exports(current: Manifest, candidate: Manifest) -> list[str]:
    return [f"export {name!r} is removed" for name in current.exports
            if name not in candidate.exports and name != MIGRATE_EXPORT]


def _migrate_kept(current: Manifest, candidate: Manifest) -> list[str]:
    if MIGRATE_EXPORT in current.exports and MIGRATE_EXPORT not in candidate.exports:
        return [f"{candidate.key} drops the migrate export of {current.key}: the instance's "
                "state carries over unconverted, so its layout must be one the candidate reads"]
    return []


def _same_filter(current: Subscription, candidate: Subscription) -> bool:
    # An empty filter object filters nothing: it is the same as no filter.
    return not candidate.filters or (
        canonical_json(candidate.filters) == canonical_json(current.filters or None)
    )


def _covers(candidate: Subscription, current: Subscription) -> bool:
    if candidate.stage != current.stage or not _same_filter(current, candidate):
        return False
    if current.stage == "tick":
        return True
    wide = candidate.event_kinds or candidate.action_kinds
    narrow = current.event_kinds or current.action_kinds
    return all(any(pattern_covers(w, n) for w in wide) for n in narrow)


def _describe(sub: Subscription) -> str:
    kinds = ", ".join(sub.event_kinds or sub.action_kinds)
    return f"{sub.stage}[{kinds}]" + (" with filters" if sub.filters else "")


def _subscriptions(current: Manifest, candidate: Manifest) -> list[str]:
    return [f"subscription {_describe(sub)} is no longer covered"
            for sub in current.subscriptions
            if not any(_covers(new, sub) for new in candidate.subscriptions)]


def _abi_version(current: Manifest, candidate: Manifest) -> list[str]:
    old, new = current.abi_contract.abi_version, candidate.abi_contract.abi_version
    return [] if old == new else [f"abi_version changes from {old!r} to {new!r}"]


def _io_schemas(current: Manifest, candidate: Manifest) -> list[str]:
    old, new = current.abi_contract, candidate.abi_contract
    return [f"{name} changes" for name in ("input_schema", "output_schema")
            if canonical_json(getattr(old, name)) != canonical_json(getattr(new, name))]


def _cap_slots(current: Manifest, candidate: Manifest) -> list[str]:
    old, new = current.abi_contract.cap_slots, candidate.abi_contract.cap_slots
    messages = []
    for slot, cap_ref in sorted(old.items()):
        if slot not in new:
            messages.append(f"cap slot {slot!r} is dropped")
        elif new[slot] != cap_ref:
            messages.append(f"cap slot {slot!r} is rebound from {cap_ref!r} to {new[slot]!r}")
    for slot, cap_ref in sorted(new.items()):
        if slot not in old and cap_ref not in candidate.required_caps:
            messages.append(f"new cap slot {slot!r} binds {cap_ref!r}, which the candidate "
                            "does not require")
    return messages


def _policy_hooks(current: Manifest, candidate: Manifest) -> list[str]:
    return [f"policy hook {hook!r} is removed" for hook in current.abi_contract.policy_hooks
            if hook not in candidate.abi_contract.policy_hooks]


def _required_caps(current: Manifest, candidate: Manifest) -> list[str]:
    return [f"required cap {cap!r} is dropped" for cap in current.required_caps
            if cap not in candidate.required_caps]


@frozen
class VersionIncreases:
    """An upgrade moves to a higher semantic version, a rollback to a lower one."""

    name: str = "version-increases"
    description: str = ("an upgrade goes to a higher semantic version, a rollback to a lower "
                        "one")
    severity: str = "error"

    def check(self, current: Manifest, candidate: Manifest, context: CompatContext) -> list[str]:
        """A message when the versions are not semantic or move the wrong way."""
        messages = [f"version {manifest.version!r} is not a semantic version "
                    "(MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD])"
                    for manifest in (current, candidate) if parse_version(manifest.version) is None]
        old, new = parse_version(current.version), parse_version(candidate.version)
        if old is None or new is None:
            return messages
        if context.operation == "rollback":
            if not new < old:
                return [f"a rollback must go to a lower version: {candidate.version} is not "
                        f"lower than {current.version}"]
        elif not old < new:
            return [f"an upgrade must go to a higher version: {candidate.version} is not higher "
                    f"than {current.version}"]
        return []


DEFAULT_RULES: tuple[ManifestRule | VersionIncreases, ...] = (
    ManifestRule("interface-version-unchanged", "the interface version stays the same",
                 "error", _interface_version),
    ManifestRule("exports-not-reduced", "every current export is still exported",
                 "error", _exports),
    ManifestRule("subscriptions-covered",
                 "every subscription is still covered by one of the same stage, with wider or "
                 "equal kinds and the same (or no) filter", "error", _subscriptions),
    ManifestRule("abi-version-unchanged", "the ABI contract's abi_version stays the same",
                 "error", _abi_version),
    ManifestRule("io-schemas-unchanged", "input and output schemas stay the same",
                 "error", _io_schemas),
    ManifestRule("cap-slots-preserved",
                 "every cap slot keeps its cap; new slots bind caps the candidate requires",
                 "error", _cap_slots),
    ManifestRule("policy-hooks-preserved", "every current policy hook is kept",
                 "error", _policy_hooks),
    ManifestRule("required-caps-preserved", "every currently required cap is still required",
                 "error", _required_caps),
    VersionIncreases(),
    ManifestRule("migrate-kept", "warns when the candidate drops the current version's migrate "
                 "export (the state then carries over unconverted)", "warning", _migrate_kept),
)


@hookimpl
def agentworld_register_compat_rules(register: Callable[..., Any]) -> None:
    """Provide the default rules."""
    for rule in DEFAULT_RULES:
        register(rule)
