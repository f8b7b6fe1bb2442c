"""A world's compatibility policy: the rules that judge its upgrades, pinned in the world.

Every world starts under the standard policy: the rules the built-in plugins register. A world
created where the installed rules differ (a rule plugin is installed, or the built-in rules are
blocked) pins that rule set in its first event, `world.compat_policy_set`. After that only the
action `world.set_compat_policy`, which only the world's system actor may submit, changes it.

An upgrade or rollback is judged by exactly the pinned rules. Rules installed on a machine but
not pinned are ignored, and a pinned rule that is not installed (or comes from another plugin,
or another version of a third-party plugin) makes the world refuse to decide
(`compat_rule_missing`), never decide differently. Built-in plugins ship with agentworld, so
their rules match by name and plugin whatever agentworld's version.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

from attrs import frozen

from agentworld.actions import register_action_type
from agentworld.compat import CompatRule
from agentworld.domain import DOMAIN_DECIDERS, Decision, DecisionContext, Draft, rejected
from agentworld.manager import PluginManager
from agentworld.model import PinnedRule, WorldState

POLICY_SET = "world.compat_policy_set"


@frozen
class InstalledRule:
    """A compatibility rule registered in this process, with the plugin that registered it."""

    rule: CompatRule
    plugin: str
    plugin_version: str | None
    builtin: bool

    def pin(self) -> PinnedRule:
        """The rule as a world pins it."""
        return PinnedRule(self.rule.name, self.plugin, self.plugin_version)

    def satisfies(self, pin: PinnedRule) -> bool:
        """True when this rule is the pinned one: same name and plugin, and for a third-party
        plugin the same version."""
        return (self.rule.name == pin.rule and self.plugin == pin.plugin
                and (self.builtin or self.plugin_version == pin.plugin_version))


class PolicyServices(Protocol):
    """What policy decisions need from the world."""

    def installed_rules(self) -> list[InstalledRule]:
        """The compatibility rules registered here, with their plugins."""


def installed_rules(manager: PluginManager) -> list[InstalledRule]:
    """Every compatibility rule `manager` has, in order, with its plugin and version."""
    plugins = {info.name: info for info in manager.plugins()}
    found = []
    for rule in manager.compat_rules():
        plugin = manager.compat_rule_plugin(rule.name) or ""
        info = plugins.get(plugin)
        found.append(InstalledRule(rule, plugin, None if info is None else info.version,
                                   info is not None and info.builtin))
    return found


@functools.cache
def standard_policy() -> tuple[PinnedRule, ...]:
    """The standard policy: the rules of the built-in plugins, as a fresh plugin manager that
    loads nothing else (and blocks nothing) registers them."""
    pristine = PluginManager(entrypoints=False, environ={})
    return tuple(installed.pin() for installed in installed_rules(pristine))


def pinned_rules(state: WorldState) -> tuple[PinnedRule, ...]:
    """The rules the world's policy pins (the standard policy unless it pinned others)."""
    return standard_policy() if state.compat_policy is None else tuple(state.compat_policy)


def creation_policy(installed: Sequence[InstalledRule]) -> list[PinnedRule] | None:
    """What a world created with `installed` pins: None when that is the standard policy."""
    standard = standard_policy()
    if len(installed) == len(standard) and all(
            rule.builtin and rule.satisfies(pin) for rule, pin in zip(installed, standard,
                                                                        strict=True)):
        return None
    return [rule.pin() for rule in installed]


def describe(pin: PinnedRule) -> str:
    """`rule (plugin version)` for messages."""
    return f"{pin.rule!r} (plugin {pin.plugin!r} {pin.plugin_version or 'without a version'})"


def resolve(
    pins: Sequence[PinnedRule], installed: Sequence[InstalledRule]
) -> tuple[list[CompatRule], list[str]]:
    """The installed rules `pins` name, in order, and one problem per pinned rule that is not
    installed here (a world with any problem must not decide)."""
    by_name = {rule.rule.name: rule for rule in installed}
    rules: list[CompatRule] = []
    problems: list[str] = []
    for pin in pins:
        found = by_name.get(pin.rule)
        if found is None:
            problems.append(f"the world's compat policy pins rule {describe(pin)}, which is not "
                            "installed here")
        elif not found.satisfies(pin):
            problems.append(f"the world's compat policy pins rule {describe(pin)}, but here it "
                            f"comes from plugin {found.plugin!r} "
                            f"{found.plugin_version or 'without a version'}")
        else:
            rules.append(found.rule)
    return rules, problems


def policy_summary(state: WorldState, installed: Sequence[InstalledRule]) -> dict[str, Any]:
    """The world's policy as `world info` shows it: standard or pinned, and each rule with its
    plugin, version and whether it is installed here."""
    return {
        "standard": state.compat_policy is None,
        "rules": [{"rule": pin.rule, "plugin": pin.plugin, "plugin_version": pin.plugin_version,
                   "installed": any(rule.satisfies(pin) for rule in installed)}
                  for pin in pinned_rules(state)],
    }


def policy_data(pins: Sequence[PinnedRule]) -> dict[str, Any]:
    """The data of a `world.compat_policy_set` event."""
    return {"rules": [{"rule": pin.rule, "plugin": pin.plugin,
                       "plugin_version": pin.plugin_version} for pin in pins]}


@frozen(kw_only=True)
class SetCompatPolicy:
    """The world's system actor pins the compatibility rules that judge upgrades from now on:
    the installed rules named in `rules`, in that order, or every installed rule."""

    type: ClassVar[str] = "world.set_compat_policy"
    actor_field: ClassVar[str | None] = None
    governance: ClassVar[bool] = True
    rules: tuple[str, ...] | None = None


def decide_set_compat_policy(
    state: WorldState, action: SetCompatPolicy, ctx: DecisionContext
) -> Decision:
    """Pin the named installed rules (all of them when none are named)."""
    services: PolicyServices | None = ctx.services
    if services is None:
        raise RuntimeError("setting the compat policy needs world services")
    installed = services.installed_rules()
    if action.rules is None:
        return [Draft(POLICY_SET, policy_data([rule.pin() for rule in installed]))]
    repeated = sorted({name for name in action.rules if action.rules.count(name) > 1})
    if repeated:
        return rejected("invalid_compat_policy", f"rules named more than once: {repeated}")
    by_name = {rule.rule.name: rule for rule in installed}
    missing = [name for name in action.rules if name not in by_name]
    if missing:
        known = ", ".join(by_name) or "none"
        return rejected("compat_rule_missing", *(f"no compat rule {name!r} is installed here "
                                                 f"(installed: {known})" for name in missing))
    return [Draft(POLICY_SET, policy_data([by_name[name].pin() for name in action.rules]))]


register_action_type(SetCompatPolicy)
DOMAIN_DECIDERS[SetCompatPolicy] = decide_set_compat_policy
