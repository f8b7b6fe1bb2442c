"""Upgrade and rollback gated by pluggable compatibility rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentworld import World, hookimpl
from agentworld.compat import CompatContext, Violation, check_compatibility
from agentworld.manager import PluginManager
from agentworld.manifest import parse_manifest
from agentworld.testing.guests import guest_wasm
from worldkit import (
    FREEZE_COUNTERS_SOURCE,
    counter_value,
    deploy,
    events,
    install,
    manifest,
    world_with_agents,
    write_distribution,
)

RULES = PluginManager(entrypoints=False, environ={}).compat_rules()


def judge(current: dict[str, Any], candidate: dict[str, Any]) -> dict[str, list[str]]:
    """Violated rule names → messages, using the default rules."""
    report = check_compatibility(parse_manifest(current), parse_manifest(candidate), RULES,
                                 CompatContext())
    found: dict[str, list[str]] = {}
    for violation in report.violations:
        found.setdefault(violation.rule, []).append(violation.message)
    return found


BASE = manifest(
    "m.svc", "a" * 64, kind="pure",
    subscriptions=[{"stage": "post_event", "event_kinds": ["domain.agent_registered"]},
                   {"stage": "pre_action", "action_kinds": ["action.move_agent"],
                    "filters": {"action": [{"path": "/data/agent_id", "eq": "ada"}]}}],
    required_caps=["cap.bank", "cap.mail"],
    abi_contract={"abi_version": 1, "input_schema": "in.v1", "output_schema": "out.v1",
                  "cap_slots": {"pay": "cap.bank"}, "policy_hooks": ["m.policy"]},
)


def variant(**changes: Any) -> dict[str, Any]:
    candidate = json.loads(json.dumps(BASE))
    candidate["version"] = "2.0.0"
    for key, value in changes.items():
        if key in {"abi_version", "input_schema", "output_schema", "cap_slots", "policy_hooks"}:
            candidate["abi_contract"][key] = value
        else:
            candidate[key] = value
    return candidate


def subs(first_kinds: list[str], stage: str = "post_event",
         filters: Any = BASE["subscriptions"][1]["filters"]) -> list[dict[str, Any]]:
    first: dict[str, Any] = {"stage": stage,
                             ("event_kinds" if stage == "post_event" else "action_kinds"):
                             first_kinds}
    return [first, {**BASE["subscriptions"][1], "filters": filters}]


@pytest.mark.parametrize(("candidate", "rule"), [
    (variant(), None),
    (variant(exports=["memory", "alloc", "call", "extra"]), None),
    (variant(exports=["memory", "call"]), "exports-not-reduced"),
    (variant(subscriptions=subs(["domain.*"])), None),
    (variant(subscriptions=subs(["*"])), None),
    (variant(subscriptions=subs(["domain.agent_moved"])), "subscriptions-covered"),
    (variant(subscriptions=[{"stage": "post_event", "event_kinds": ["domain.*"]}]),
     "subscriptions-covered"),
    (variant(subscriptions=subs(["domain.agent_registered"],
                                filters={"action": [{"path": "/data/agent_id", "eq": "bob"}]})),
     "subscriptions-covered"),
    (variant(subscriptions=subs(["domain.agent_registered"], filters=None)), None),
    (variant(subscriptions=subs(["domain.agent_registered"], filters={})), None),
    (variant(subscriptions=subs(["action.*"], stage="post_action")), "subscriptions-covered"),
    (variant(cap_slots={"pay": "cap.mail"}), "cap-slots-preserved"),
    (variant(cap_slots={}), "cap-slots-preserved"),
    (variant(cap_slots={"pay": "cap.bank", "mail": "cap.mail"}), None),
    (variant(cap_slots={"pay": "cap.bank", "x": "cap.other"}), "cap-slots-preserved"),
    (variant(input_schema="in.v2", output_schema="out.v2"), "io-schemas-unchanged"),
    (variant(interface_version="wasm-2"), "interface-version-unchanged"),
    (variant(abi_version=2), "abi-version-unchanged"),
    (variant(policy_hooks=[]), "policy-hooks-preserved"),
    (variant(required_caps=["cap.bank"]), "required-caps-preserved"),
])
def test_each_default_rule_accepts_and_refuses(candidate: dict[str, Any], rule: str | None) -> None:
    found = judge(BASE, candidate)
    if rule is None:
        assert found == {}
    else:
        assert rule in found, found


def test_every_violation_is_reported_not_only_the_first() -> None:
    candidate = variant(exports=["call"], interface_version="wasm-2", cap_slots={},
                        required_caps=[], policy_hooks=[], input_schema=None, output_schema=None)
    assert set(judge(BASE, candidate)) == {
        "exports-not-reduced", "interface-version-unchanged", "cap-slots-preserved",
        "required-caps-preserved", "policy-hooks-preserved", "io-schemas-unchanged"}


class Advisory:
    name, description, severity = "advisory", "warns about renames", "warning"

    def check(self, current: Any, candidate: Any, context: Any) -> list[str]:
        return ["name changed"] if current.name != candidate.name else []


class Broken:
    name, description, severity = "broken", "raises", "error"

    def check(self, current: Any, candidate: Any, context: Any) -> list[Violation]:
        raise RuntimeError("oops")


def test_warnings_never_block_and_a_raising_rule_is_an_error() -> None:
    report = check_compatibility(parse_manifest(BASE), parse_manifest(variant(name="renamed")),
                                 [Advisory()], CompatContext())
    assert report.compatible
    assert report.to_json()["violations"] == [
        {"rule": "advisory", "message": "name changed", "severity": "warning"}]
    report = check_compatibility(parse_manifest(BASE), parse_manifest(BASE), [Broken()],
                                 CompatContext())
    assert not report.compatible and "RuntimeError: oops" in report.violations[0].message


# -- upgrades in a world -------------------------------------------------------------------------


def upgrade(world: World, agent: str, instance_id: str, from_version: str,
            candidate: dict[str, Any]) -> dict[str, Any]:
    world.submit({"type": "module.upgrade", "data": {
        "upgrader_agent_id": agent, "instance_id": instance_id, "from_version": from_version,
        "manifest": candidate}}, submitter=agent)
    world.step_with_modules()
    outcome = [e for e in world.journal if e.kind in {"domain.module_upgraded",
                                                       "domain.action_rejected"}][-1]
    return {"kind": outcome.kind, **outcome.data}


@pytest.fixture
def counters(plugin_manager: PluginManager) -> tuple[World, dict[str, Any], dict[str, Any]]:
    world = world_with_agents("ada", "bob", plugins=plugin_manager)
    v1 = manifest("m.counter", deploy(world, guest_wasm("counter")))
    v2 = manifest("m.counter", deploy(world, guest_wasm("sleeper")), version="2.0.0")
    install(world, "ada", v1)
    install(world, "bob", v1)
    world.step_with_modules()
    return world, v1, v2


def test_owner_upgrades_one_instance_next_tick_runs_new_code_with_old_state(
    counters: tuple[World, dict[str, Any], dict[str, Any]],
) -> None:
    world, v1, v2 = counters
    before = counter_value(world, "m.counter#1")
    result = upgrade(world, "ada", "m.counter#1", "1.0.0", v2)
    assert result["kind"] == "domain.module_upgraded"
    assert {k: result[k] for k in ("instance_id", "upgrader_agent_id", "module_id",
                                   "from_module_version", "to_module_version", "from_wasm_hash",
                                   "to_wasm_hash", "active")} == {
        "instance_id": "m.counter#1", "upgrader_agent_id": "ada", "module_id": "m.counter",
        "from_module_version": "1.0.0", "to_module_version": "2.0.0",
        "from_wasm_hash": v1["wasm_hash"], "to_wasm_hash": v2["wasm_hash"], "active": True}
    assert result["manifest_hash"] == parse_manifest(v2).manifest_hash()
    assert len(events(world, "domain.module_registered")) == 2
    instance = world.instances["m.counter#1"]
    assert (instance.instance_id, instance.owner_agent_id, instance.module_version) == (
        "m.counter#1", "ada", "2.0.0")
    # The upgrade step's tick already ran v2: state carried on, no emit, a sleep scheduled.
    assert counter_value(world, "m.counter#1") == before + 1
    upgrade_time = world.time
    scheduled = events(world, "module.tick_scheduled")
    assert scheduled[-1]["instance_id"] == "m.counter#1"
    assert scheduled[-1]["next_tick"] == upgrade_time + 3
    ticked = [e for e in world.journal if e.kind == "module.emitted" and e.time == upgrade_time]
    assert [e.data["instance_id"] for e in ticked] == ["m.counter#2"]
    assert world.instances["m.counter#2"].module_version == "1.0.0"


def test_non_owner_and_incompatible_upgrades_are_refused_and_say_why(
    counters: tuple[World, dict[str, Any], dict[str, Any]],
) -> None:
    world, _, v2 = counters
    refused = upgrade(world, "bob", "m.counter#1", "1.0.0", v2)
    assert refused["code"] == "not_instance_owner"
    narrowed = {**v2, "subscriptions": [], "exports": ["reduce"]}
    refused = upgrade(world, "ada", "m.counter#1", "1.0.0", narrowed)
    assert refused["code"] == "incompatible_upgrade"
    rules = {v["rule"] for v in refused["report"]["violations"]}
    assert rules == {"exports-not-reduced", "subscriptions-covered"}
    assert any(note.startswith("[error] exports-not-reduced:") for note in refused["notes"])
    assert world.instances["m.counter#1"].module_version == "1.0.0"


@pytest.mark.parametrize(("agent", "instance", "from_version", "changes", "code"), [
    ("zed", "m.counter#1", "1.0.0", {}, "agent_not_found"),
    ("ada", "m.counter#9", "1.0.0", {}, "instance_not_found"),
    ("ada", "m.counter#1", "0.9.0", {}, "stale_from_version"),
    ("ada", "m.counter#1", "1.0.0", {"module_id": "m.other"}, "module_id_mismatch"),
    ("ada", "m.counter#1", "1.0.0", {"version": "1.0.0"}, "same_version"),
    ("ada", "m.counter#1", "1.0.0", {"kind": "sideways"}, "invalid_manifest"),
])
def test_each_upgrade_check_has_its_own_code(
    counters: tuple[World, dict[str, Any], dict[str, Any]],
    agent: str, instance: str, from_version: str, changes: dict[str, Any], code: str,
) -> None:
    world, _, v2 = counters
    assert upgrade(world, agent, instance, from_version, {**v2, **changes})["code"] == code


def test_rollback_returns_to_a_registered_version(
    counters: tuple[World, dict[str, Any], dict[str, Any]],
) -> None:
    world, v1, v2 = counters
    upgrade(world, "ada", "m.counter#1", "1.0.0", v2)
    for operator, version, code in (("bob", "1.0.0", "not_instance_owner"),
                                    ("ada", "0.1.0", "version_not_registered"),
                                    ("ada", "2.0.0", "same_version")):
        world.submit({"type": "module.rollback", "data": {
            "operator_agent_id": operator, "instance_id": "m.counter#1",
            "target_version": version}}, submitter=operator)
        world.step_with_modules()
        assert events(world, "domain.action_rejected")[-1]["code"] == code
    world.submit({"type": "module.rollback", "data": {
        "operator_agent_id": "ada", "instance_id": "m.counter#1", "target_version": "1.0.0"}})
    world.step_with_modules()
    (rolled,) = events(world, "domain.module_rolled_back")
    assert (rolled["from_module_version"], rolled["to_module_version"]) == ("2.0.0", "1.0.0")
    assert rolled["to_wasm_hash"] == v1["wasm_hash"]
    assert world.instances["m.counter#1"].module_version == "1.0.0"


class StrictRule:
    name, description, severity = "no-upgrades", "refuses everything", "error"

    def check(self, current: Any, candidate: Any, context: Any) -> list[str]:
        return [f"{context.operation} of {context.instance_id} refused by policy"]


class StrictPlugin:
    @hookimpl
    def agentworld_register_compat_rules(self, register: Callable[..., None]) -> None:
        register(StrictRule())


def adopt_policy(world: World, rules: list[str] | None = None) -> dict[str, Any]:
    """Pin the rules installed now (or the named ones) as the world's policy; return the event."""
    world.submit({"type": "world.set_compat_policy",
                  "data": {} if rules is None else {"rules": rules}})
    world.step_with_modules()
    outcome = [e for e in world.journal if e.kind in {"world.compat_policy_set",
                                                       "domain.action_rejected"}][-1]
    return {"kind": outcome.kind, **outcome.data}


def test_blocking_the_default_rules_and_registering_others_replaces_the_adopted_policy(
    counters: tuple[World, dict[str, Any], dict[str, Any]], plugin_manager: PluginManager,
) -> None:
    world, _, v2 = counters
    plugin_manager.block("default-rules")
    plugin_manager.register(StrictPlugin(), name="strict")
    assert [rule.name for rule in plugin_manager.compat_rules()] == ["no-upgrades"]
    # The world pinned the standard rules; with them blocked it refuses to judge at all.
    missing = upgrade(world, "ada", "m.counter#1", "1.0.0", v2)
    assert missing["code"] == "compat_rule_missing"
    assert any("'exports-not-reduced' (plugin 'default-rules'" in note
               for note in missing["notes"])
    assert adopt_policy(world)["rules"] == [
        {"rule": "no-upgrades", "plugin": "strict", "plugin_version": None}]
    refused = upgrade(world, "ada", "m.counter#1", "1.0.0", v2)
    assert refused["code"] == "incompatible_upgrade"
    (violation,) = refused["report"]["violations"]
    assert violation["message"] == "upgrade of m.counter#1 refused by policy"
    plugin_manager.unregister("strict")
    assert upgrade(world, "ada", "m.counter#1", "1.0.0", v2)["code"] == "compat_rule_missing"
    assert adopt_policy(world)["rules"] == []
    narrowed = {**v2, "subscriptions": []}  # incompatible by the defaults, but they are gone
    assert upgrade(world, "ada", "m.counter#1", "1.0.0", narrowed)["kind"] == (
        "domain.module_upgraded")


def test_outside_rule_plugin_installed_through_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_distribution(tmp_path, "aw_freeze", "0.3.0", "aw_freeze_plugin", FREEZE_COUNTERS_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    for environ, expected in (({}, "domain.action_rejected"),
                              ({"AGENTWORLD_DISABLE_PLUGINS": "aw_freeze"},
                               "domain.module_upgraded")):
        world = world_with_agents("ada", plugins=PluginManager(environ=environ))
        v1 = manifest("m.counter", deploy(world, guest_wasm("counter")))
        v2 = {**v1, "version": "1.1.0"}
        install(world, "ada", v1)
        result = upgrade(world, "ada", "m.counter#1", "1.0.0", v2)
        assert result["kind"] == expected
        if expected == "domain.action_rejected":
            assert result["report"]["violations"] == [
                {"rule": "freeze-counters", "message": "counters are frozen", "severity": "error"}]


# -- the check-upgrade command -----------------------------------------------------------------


def check_upgrade(tmp_path: Path, current: Any, candidate: Any, *flags: str,
                  ) -> subprocess.CompletedProcess[str]:
    paths = []
    for name, content in (("current.json", current), ("candidate.json", candidate)):
        path = tmp_path / name
        text = content if isinstance(content, str) else json.dumps(content)
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        paths.append(str(path))
    return subprocess.run([sys.executable, "-m", "agentworld", "module", "check-upgrade",
                           *paths, *flags], capture_output=True, text=True, timeout=120,
                          env=os.environ.copy())


def test_check_upgrade_verdicts_and_exit_codes(tmp_path: Path) -> None:
    ok = check_upgrade(tmp_path, BASE, variant(exports=["memory", "alloc", "call", "more"]))
    assert ok.returncode == 0 and "compatible" in ok.stdout
    bad = check_upgrade(tmp_path, BASE, variant(exports=["call"], abi_version=3))
    assert bad.returncode == 1
    assert "exports-not-reduced" in bad.stdout and "abi-version-unchanged" in bad.stdout
    as_json = check_upgrade(tmp_path, BASE, variant(exports=["call"]), "--json")
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and report["compatible"] is False
    assert report["violations"] == [{"source": "rule", "rule": "exports-not-reduced",
                                     "severity": "error",
                                     "message": "export 'memory' is removed"},
                                    {"source": "rule", "rule": "exports-not-reduced",
                                     "severity": "error", "message": "export 'alloc' is removed"}]
    assert "version-increases" in report["rules"]


def test_check_upgrade_exits_2_only_for_input_it_cannot_read(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    for current, candidate, fragment in (
        ("{not json", BASE, "not usable JSON"),
        (BASE, json.dumps(BASE)[:-1] + ', "name": "again"}', "duplicate keys ['name']"),
        (BASE, '{"limits": {"max_gas": ' + "9" * 5000 + "}}", "not usable JSON"),
        (BASE, "\udcff\udcfe", "not UTF-8"),
        (BASE, deep, "nested too deeply"),
    ):
        result = check_upgrade(tmp_path, current, candidate)
        assert result.returncode == 2, result
        assert len(result.stderr.strip().splitlines()) == 1 and fragment in result.stderr
    missing = subprocess.run([sys.executable, "-m", "agentworld", "module", "check-upgrade",
                              str(tmp_path / "nope.json"), str(tmp_path / "nope.json")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def findings(result: subprocess.CompletedProcess[str]) -> list[tuple[str, str, str]]:
    """(source, rule, message) of every finding in a `check-upgrade --json` report."""
    assert result.returncode == 1, result
    return [(v["source"], v["rule"], v["message"])
            for v in json.loads(result.stdout)["violations"]]


def test_check_upgrade_reports_validation_preconditions_and_rules_together(
    tmp_path: Path,
) -> None:
    # Eight problems, one of them an unknown field, and two rule violations: all reported.
    candidate = variant(surprise=1, interface_version="wasm-2", kind="sideways", name=" ",
                        version="0.9.0", abi_version=7, wasm_hash="nothex", exports=["call"],
                        limits={"max_gas": 0})
    found = findings(check_upgrade(tmp_path, BASE, candidate, "--json"))
    validation = [message for source, rule, message in found if source == "validation"]
    assert all(rule == "invalid_manifest" for source, rule, _ in found if source == "validation")
    for fragment in ("extra fields found (surprise)", "unsupported interface_version 'wasm-2'",
                     "kind must be 'reducer' or 'pure'", "name must not be blank",
                     "abi_contract: unsupported abi_version 7", "is not a SHA-256 hex digest",
                     "limits.max_gas must be at least 1"):
        assert sum(fragment in message for message in validation) == 1, (fragment, validation)
    assert all(message.startswith("candidate: ") for message in validation)
    rules = {rule for source, rule, _ in found if source == "rule"}
    # A candidate on another interface version is judged by the rule, not stopped before it.
    assert {"interface-version-unchanged", "exports-not-reduced", "abi-version-unchanged",
            "version-increases"} <= rules
    text = check_upgrade(tmp_path, BASE, candidate)
    assert text.returncode == 1
    assert text.stdout.splitlines()[-1] == f"incompatible: {len(found)} violation(s)"

    same = findings(check_upgrade(tmp_path, BASE, {**BASE, "module_id": "m.other"}, "--json"))
    assert ("precondition", "module_id_mismatch",
            "module_id changes from 'm.svc' to 'm.other'") in found + same
    assert ("precondition", "same_version", "both manifests are version '1.0.0'") in same
    not_object = findings(check_upgrade(tmp_path, BASE, [1, 2], "--json"))
    assert [(source, rule) for source, rule, _ in not_object] == [
        ("validation", "invalid_manifest")]
    assert "expected an object" in not_object[0][2]


@pytest.mark.parametrize(("current", "candidate", "rollback", "verdict"), [
    ("1.0.0", "1.0.1", False, None),
    ("1.0.0", "2.0", False, None),
    ("1.0.0-rc.2", "1.0.0", False, None),
    ("1.0.0-rc.2", "1.0.0-rc.10", False, None),
    ("1.0.0", "0.0.1", False, "an upgrade must go to a higher version: 0.0.1 is not higher "
                              "than 1.0.0"),
    ("1.0.0", "1.0.0-rc.1", False, "an upgrade must go to a higher version"),
    ("1.0.0", "1.0", False, "an upgrade must go to a higher version"),
    ("1.0.0+a", "1.0.0+b", False, "an upgrade must go to a higher version"),
    ("2.0.0", "1.9.9", True, None),
    ("1.0.0", "1.0.1", True, "a rollback must go to a lower version: 1.0.1 is not lower than "
                             "1.0.0"),
    ("1.0.0", "v2", False, "version 'v2' is not a semantic version"),
    ("01.0.0", "1.0.1", False, "version '01.0.0' is not a semantic version"),
])
def test_version_increases_follows_semantic_version_order(
    current: str, candidate: str, rollback: bool, verdict: str | None
) -> None:
    report = check_compatibility(
        parse_manifest({**BASE, "version": current}),
        parse_manifest({**BASE, "version": candidate}),
        [rule for rule in RULES if rule.name == "version-increases"],
        CompatContext(operation="rollback" if rollback else "upgrade"))
    messages = [violation.message for violation in report.violations]
    if verdict is None:
        assert messages == []
    else:
        (message,) = messages
        assert message.startswith(verdict)


def test_an_upgrade_down_and_a_rollback_up_are_refused_in_a_world(
    counters: tuple[World, dict[str, Any], dict[str, Any]],
) -> None:
    world, _, v2 = counters
    older = {**v2, "version": "0.9.0"}
    refused = upgrade(world, "ada", "m.counter#1", "1.0.0", older)
    assert refused["code"] == "incompatible_upgrade"
    assert [v["rule"] for v in refused["report"]["violations"]] == ["version-increases"]
    assert upgrade(world, "ada", "m.counter#1", "1.0.0", v2)["kind"] == "domain.module_upgraded"
    world.submit({"type": "module.rollback", "data": {
        "operator_agent_id": "ada", "instance_id": "m.counter#1", "target_version": "1.0.0"}})
    world.step_with_modules()
    assert events(world, "domain.module_rolled_back")
    world.submit({"type": "module.rollback", "data": {
        "operator_agent_id": "ada", "instance_id": "m.counter#1", "target_version": "2.0.0"}})
    world.step_with_modules()
    refused = events(world, "domain.action_rejected")[-1]
    assert refused["code"] == "incompatible_rollback"
    assert [v["rule"] for v in refused["report"]["violations"]] == ["version-increases"]


def test_an_unsupported_abi_version_is_refused_at_install(
    plugin_manager: PluginManager,
) -> None:
    world = world_with_agents("ada", plugins=plugin_manager)
    wasm_hash = deploy(world, guest_wasm("counter"))
    refused = install(world, "ada", manifest("m.counter", wasm_hash,
                                             abi_contract={"abi_version": 7}))
    assert refused["code"] == "invalid_manifest"
    assert refused["notes"] == ["abi_contract: unsupported abi_version 7 (supported: 1)"]
    accepted = install(world, "ada", manifest("m.counter", wasm_hash,
                                              abi_contract={"abi_version": 1}))
    assert accepted["kind"] == "domain.module_installed"


def test_an_unknown_manifest_field_does_not_hide_the_other_problems_at_install(
    plugin_manager: PluginManager,
) -> None:
    world = world_with_agents("ada", plugins=plugin_manager)
    wasm_hash = deploy(world, guest_wasm("counter"))
    refused = install(world, "ada", manifest("m.counter", wasm_hash, kind="sideways",
                                             surprise=True))
    assert refused["code"] == "invalid_manifest"
    assert any("extra fields found (surprise)" in note for note in refused["notes"])
    assert any("kind must be 'reducer' or 'pure'" in note for note in refused["notes"])


def test_rollback_to_a_narrower_version_is_refused_by_the_same_gate(
    counters: tuple[World, dict[str, Any], dict[str, Any]],
) -> None:
    world, _, v2 = counters
    wider = {**v2, "subscriptions": [{"stage": "tick"}, {"stage": "post_event",
                                                         "event_kinds": ["domain.*"]}]}
    assert upgrade(world, "ada", "m.counter#1", "1.0.0", wider)["kind"] == "domain.module_upgraded"
    world.submit({"type": "module.rollback", "data": {
        "operator_agent_id": "ada", "instance_id": "m.counter#1", "target_version": "1.0.0"}})
    world.step_with_modules()
    refused = events(world, "domain.action_rejected")[-1]
    assert refused["code"] == "incompatible_rollback"
    assert [v["rule"] for v in refused["report"]["violations"]] == ["subscriptions-covered"]
    assert world.instances["m.counter#1"].module_version == "2.0.0"
