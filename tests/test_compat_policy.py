"""The pinned upgrade policy: a world is judged by the rules it pinned, whatever is installed."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.table import Table

from agentworld import World, hookimpl
from agentworld.cli import _echo_table
from agentworld.manager import PluginManager
from agentworld.model import PinnedRule
from agentworld.persistence import verify_dir
from agentworld.policy import standard_policy
from agentworld.testing.guests import guest_wasm
from agentworld.world import rebuild_state
from worldkit import (
    FREEZE_COUNTERS_SOURCE,
    deploy,
    events,
    install,
    manifest,
    world_with_agents,
    write_distribution,
)

OLD_WORLDS = Path(__file__).parent / "data" / "worlds"
BUILTIN_RULES = [
    "interface-version-unchanged", "exports-not-reduced", "subscriptions-covered",
    "abi-version-unchanged", "io-schemas-unchanged", "cap-slots-preserved",
    "policy-hooks-preserved", "required-caps-preserved", "version-increases", "migrate-kept",
]


class FreezeCounters:
    name, description, severity = "freeze-counters", "counters may not change", "error"

    def check(self, current: Any, candidate: Any, context: Any) -> list[str]:
        return ["counters are frozen"] if current.module_id == "m.counter" else []


class FreezePlugin:
    """Freezes counters."""

    def __init__(self, version: str = "1.0") -> None:
        self.__version__ = version

    @hookimpl
    def agentworld_register_compat_rules(self, register: Callable[..., None]) -> None:
        register(FreezeCounters())


def counter_world(plugins: PluginManager) -> tuple[World, dict[str, Any]]:
    """ada's m.counter#1 at 1.0.0, and the artifact a 2.0.0 would run."""
    world = world_with_agents("ada", plugins=plugins)
    v1 = manifest("m.counter", deploy(world, guest_wasm("counter")))
    assert install(world, "ada", v1)["kind"] == "domain.module_installed"
    v2 = manifest("m.counter", deploy(world, guest_wasm("sleeper")), version="2.0.0")
    return world, v2


def decide(world: World, action: dict[str, Any], submitter: str | None = None) -> dict[str, Any]:
    """Submit, step, and return the event that decided the action."""
    action_id = world.submit(action, submitter)
    world.step_with_modules()
    (decided,) = [e for e in world.journal if (e.caused_by or {}).get("action") == action_id
                  and e.kind in {"domain.module_upgraded", "domain.module_rolled_back",
                                 "domain.action_rejected", "world.compat_policy_set"}]
    return {"kind": decided.kind, "time": decided.time, **decided.data}


def upgrade(world: World, from_version: str, candidate: dict[str, Any]) -> dict[str, Any]:
    return decide(world, {"type": "module.upgrade", "data": {
        "upgrader_agent_id": "ada", "instance_id": "m.counter#1", "from_version": from_version,
        "manifest": candidate}}, "ada")


def set_policy(world: World, rules: list[str] | None = None,
               submitter: str | None = None) -> dict[str, Any]:
    return decide(world, {"type": "world.set_compat_policy",
                          "data": {} if rules is None else {"rules": rules}}, submitter)


def test_a_world_starts_under_the_standard_policy_without_an_event(
    plugin_manager: PluginManager,
) -> None:
    world = World(plugins=plugin_manager)
    assert len(world.journal) == 0 and world.state.compat_policy is None
    assert [pin.rule for pin in standard_policy()] == BUILTIN_RULES
    assert {(pin.plugin, pin.plugin_version) for pin in standard_policy()} == {
        ("default-rules", "0.1.0")}


def test_a_world_created_with_other_rules_pins_them_in_its_first_event(
    plugin_manager: PluginManager,
) -> None:
    plugin_manager.register(FreezePlugin("1.0"), name="freeze")
    world, v2 = counter_world(plugin_manager)
    first = world.journal[0]
    assert (first.id, first.time, first.caused_by, first.kind) == (
        1, 0, None, "world.compat_policy_set")
    assert first.data["rules"][-1] == {"rule": "freeze-counters", "plugin": "freeze",
                                       "plugin_version": "1.0"}
    assert [rule["rule"] for rule in first.data["rules"]] == [*BUILTIN_RULES, "freeze-counters"]
    refused = upgrade(world, "1.0.0", v2)
    assert refused["code"] == "incompatible_upgrade"
    assert refused["report"]["rules"][-1] == "freeze-counters"
    assert rebuild_state(world.journal) == world.state


def test_a_rule_plugin_installed_later_changes_nothing_until_the_policy_is_adopted(
    plugin_manager: PluginManager,
) -> None:
    world, v2 = counter_world(plugin_manager)
    plugin_manager.register(FreezePlugin(), name="freeze")
    root = world.state_root()
    assert upgrade(world, "1.0.0", {**v2, "version": "1.1.0"})["kind"] == (
        "domain.module_upgraded")
    assert world.state_root() != root  # the upgrade, not the plugin, changed the state
    adopted = set_policy(world)
    assert adopted["kind"] == "world.compat_policy_set"
    assert world.state.compat_policy == [*standard_policy(),
                                         PinnedRule("freeze-counters", "freeze", "1.0")]
    refused = upgrade(world, "1.1.0", v2)
    assert refused["code"] == "incompatible_upgrade"
    assert {v["rule"] for v in refused["report"]["violations"]} == {"freeze-counters"}
    assert rebuild_state(world.journal) == world.state


def test_set_compat_policy_is_the_system_actors_and_names_installed_rules_once(
    plugin_manager: PluginManager,
) -> None:
    world, v2 = counter_world(plugin_manager)
    assert set_policy(world, submitter="ada")["code"] == "not_system_actor"
    missing = set_policy(world, ["exports-not-reduced", "no-such-rule"])
    assert missing["code"] == "compat_rule_missing"
    assert missing["notes"][0].startswith("no compat rule 'no-such-rule' is installed here")
    twice = set_policy(world, ["migrate-kept", "migrate-kept"])
    assert twice["code"] == "invalid_compat_policy"
    assert world.state.compat_policy is None
    pinned = set_policy(world, ["exports-not-reduced"])
    assert pinned["rules"] == [{"rule": "exports-not-reduced", "plugin": "default-rules",
                                "plugin_version": "0.1.0"}]
    # Only the pinned rule judges now: dropping a subscription is no longer refused.
    narrowed = {**v2, "subscriptions": []}
    accepted = upgrade(world, "1.0.0", narrowed)
    assert accepted["kind"] == "domain.module_upgraded"


def test_a_missing_pinned_rule_refuses_upgrades_and_rollbacks_naming_rule_and_plugin(
    plugin_manager: PluginManager,
) -> None:
    plugin_manager.register(FreezePlugin("1.0"), name="freeze")
    world, v2 = counter_world(plugin_manager)
    set_policy(world, BUILTIN_RULES)
    assert upgrade(world, "1.0.0", v2)["kind"] == "domain.module_upgraded"
    set_policy(world)  # pins freeze-counters again
    plugin_manager.unregister("freeze")
    refused = decide(world, {"type": "module.rollback", "data": {
        "operator_agent_id": "ada", "instance_id": "m.counter#1", "target_version": "1.0.0"}},
        "ada")
    assert refused["code"] == "compat_rule_missing"
    assert refused["notes"] == [
        "the world's compat policy pins rule 'freeze-counters' (plugin 'freeze' 1.0), which is "
        "not installed here"]
    assert world.instances["m.counter#1"].module_version == "2.0.0"
    # Another version of a third-party plugin is not the pinned rule either.
    plugin_manager.register(FreezePlugin("2.0"), name="freeze")
    refused = upgrade(world, "2.0.0", {**v2, "version": "3.0.0"})
    assert refused["code"] == "compat_rule_missing"
    assert refused["notes"] == [
        "the world's compat policy pins rule 'freeze-counters' (plugin 'freeze' 1.0), but here "
        "it comes from plugin 'freeze' 2.0"]
    assert world.instances["m.counter#1"].module_version == "2.0.0"


def test_blocking_the_built_in_rules_leaves_standard_worlds_unable_to_decide(
    plugin_manager: PluginManager,
) -> None:
    world, v2 = counter_world(plugin_manager)
    plugin_manager.block("default-rules")
    refused = upgrade(world, "1.0.0", v2)
    assert refused["code"] == "compat_rule_missing"
    assert refused["notes"][0] == (
        "the world's compat policy pins rule 'interface-version-unchanged' (plugin "
        "'default-rules' 0.1.0), which is not installed here")
    assert len(refused["notes"]) == len(BUILTIN_RULES)
    # A world created with no rules at all pins exactly that, and every upgrade passes.
    bare, v2 = counter_world(plugin_manager)
    assert bare.journal[0].data == {"rules": []}
    assert upgrade(bare, "1.0.0", {**v2, "subscriptions": []})["kind"] == (
        "domain.module_upgraded")


def test_the_policy_survives_save_load_and_verify(
    plugin_manager: PluginManager, tmp_path: Path,
) -> None:
    plugin_manager.register(FreezePlugin(), name="freeze")
    world, v2 = counter_world(plugin_manager)
    set_policy(world, ["freeze-counters"])
    world.save_to_dir(tmp_path / "w")
    loaded = World.load_from_dir(tmp_path / "w", plugins=plugin_manager)
    assert loaded.state.compat_policy == [PinnedRule("freeze-counters", "freeze", "1.0")]
    assert loaded.state_root() == world.state_root()
    assert verify_dir(tmp_path / "w").ok
    assert upgrade(loaded, "1.0.0", v2)["notes"] == ["[error] freeze-counters: counters are "
                                                      "frozen"]


def test_worlds_saved_before_pinning_are_judged_by_the_built_in_rules(
    plugin_manager: PluginManager, tmp_path: Path,
) -> None:
    shutil.copytree(OLD_WORLDS / "v1-modules", tmp_path / "old")
    plugin_manager.register(FreezePlugin(), name="freeze")
    old = World.load_from_dir(tmp_path / "old", plugins=plugin_manager)
    assert old.state.compat_policy is None
    assert verify_dir(tmp_path / "old").ok
    instance = old.instances["g.counter#1"]
    current = old.state.manifests[f"g.counter@{instance.module_version}"].to_json()
    candidate = {**current, "version": "7.0.0"}
    result = decide(old, {"type": "module.upgrade", "data": {
        "upgrader_agent_id": instance.owner_agent_id, "instance_id": "g.counter#1",
        "from_version": instance.module_version, "manifest": candidate}})
    assert result["kind"] == "domain.module_upgraded"  # the installed freeze rule is ignored
    narrowed = {**candidate, "version": "8.0.0", "subscriptions": []}
    refused = decide(old, {"type": "module.upgrade", "data": {
        "upgrader_agent_id": instance.owner_agent_id, "instance_id": "g.counter#1",
        "from_version": "7.0.0", "manifest": narrowed}})
    assert refused["code"] == "incompatible_upgrade"
    assert refused["report"]["rules"] == BUILTIN_RULES


# -- the command line --------------------------------------------------------------------------


def agentworld(*args: str | Path, plugin_path: Path | None = None,
               ) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process that loads installed plugins; `plugin_path` adds a directory
    holding an installed rule-plugin distribution to that process only."""
    env = {key: value for key, value in os.environ.items()
           if key not in {"AGENTWORLD_LOAD_PLUGINS", "PYTHONPATH"}}
    if plugin_path is not None:
        env["PYTHONPATH"] = str(plugin_path)
    return subprocess.run([sys.executable, "-m", "agentworld", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env)


def upgrade_cli(directory: Path, manifest_file: Path, from_version: str,
                plugin_path: Path | None = None) -> tuple[int, list[dict[str, Any]]]:
    result = agentworld("module", "upgrade", directory, "--agent", "ada", "--instance",
                        "m.counter#1", "--from-version", from_version, "--manifest",
                        manifest_file, "--json", plugin_path=plugin_path)
    assert result.returncode in {0, 1}, result.stderr
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.slow
def test_two_copies_decide_alike_until_one_adopts_a_plugin_rule_by_a_journaled_action(
    tmp_path: Path,
) -> None:
    """Acceptance: one saved world copied twice; a rule plugin installed for one process only.
    Both copies decide the same upgrade identically until the policy is adopted."""
    plugins = tmp_path / "site"
    write_distribution(plugins, "aw_freeze", "0.3.0", "aw_freeze_plugin", FREEZE_COUNTERS_SOURCE)
    world, v2 = counter_world(PluginManager(entrypoints=False, environ={}))
    files = tmp_path / "files"
    files.mkdir()
    for version, candidate in (("2.0.0", v2), ("3.0.0", {**v2, "version": "3.0.0"})):
        (files / f"{version}.json").write_text(json.dumps(candidate))
    world.save_to_dir(tmp_path / "w")
    for copy in ("a", "b"):
        shutil.copytree(tmp_path / "w", tmp_path / copy)
    with_plugin = agentworld("plugins", "--json", plugin_path=plugins)
    assert "freeze-counters" in {rule["name"] for rule in
                                 json.loads(with_plugin.stdout)["compat_rules"]}

    code_a, events_a = upgrade_cli(tmp_path / "a", files / "2.0.0.json", "1.0.0", plugins)
    code_b, events_b = upgrade_cli(tmp_path / "b", files / "2.0.0.json", "1.0.0")
    assert (code_a, code_b) == (0, 0)
    assert events_a == events_b and events_a[1]["kind"] == "domain.module_upgraded"

    adopted = agentworld("world", "submit", tmp_path / "a",
                         '{"type": "world.set_compat_policy", "data": {}}', "--json",
                         plugin_path=plugins)
    assert adopted.returncode == 0, adopted.stderr
    (policy_set,) = [json.loads(line) for line in adopted.stdout.splitlines()
                     if '"world.compat_policy_set"' in line]
    assert policy_set["data"]["rules"][-1] == {"rule": "freeze-counters",
                                               "plugin": "aw_freeze", "plugin_version": "0.3.0"}

    code_a, events_a = upgrade_cli(tmp_path / "a", files / "3.0.0.json", "2.0.0", plugins)
    code_b, events_b = upgrade_cli(tmp_path / "b", files / "3.0.0.json", "2.0.0")
    assert (code_a, events_a[0]["data"]["code"]) == (1, "incompatible_upgrade")
    assert (code_b, events_b[1]["kind"]) == (0, "domain.module_upgraded")
    # Copy a in a process without the plugin: it refuses to decide, naming rule and plugin.
    code, refused = upgrade_cli(tmp_path / "a", files / "3.0.0.json", "2.0.0")
    assert (code, refused[0]["data"]["code"]) == (1, "compat_rule_missing")
    assert "'freeze-counters' (plugin 'aw_freeze' 0.3.0)" in refused[0]["data"]["notes"][0]
    info = json.loads(agentworld("world", "info", tmp_path / "a", "--json").stdout)
    assert info["compat_policy"]["standard"] is False
    assert info["compat_policy"]["rules"][-1] == {
        "rule": "freeze-counters", "plugin": "aw_freeze", "plugin_version": "0.3.0",
        "installed": False}
    info = json.loads(agentworld("world", "info", tmp_path / "b", "--json").stdout)
    assert info["compat_policy"]["standard"] is True
    assert [rule["rule"] for rule in info["compat_policy"]["rules"]] == BUILTIN_RULES
    for copy in ("a", "b"):
        assert verify_dir(tmp_path / copy).ok
    assert events(World.load_from_dir(tmp_path / "b"), "world.compat_policy_set") == []


def test_the_policy_table_on_a_closed_pipe_ends_like_any_other_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`world info | head -1` must exit like a closed pipe (141), also when the pipe closes
    just before a table: rich alone would turn that into exit status 1."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = io.TextIOWrapper(os.fdopen(write_end, "wb"), write_through=True)
    monkeypatch.setattr(sys, "stdout", stream)
    try:
        with pytest.raises(BrokenPipeError):
            _echo_table(Table(title="Compatibility policy"))
    finally:
        monkeypatch.undo()
        with contextlib.suppress(BrokenPipeError):
            stream.close()
