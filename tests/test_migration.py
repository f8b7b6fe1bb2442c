"""State migration: the target version's `migrate` export on upgrade and rollback, refusals that
change nothing, and the compatibility rule about dropping it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cbor2
import pytest

from agentworld import World, WorldConfig
from agentworld.canonical import sha256_hex
from agentworld.compat import CompatContext, check_compatibility
from agentworld.config import config_hash
from agentworld.manager import PluginManager
from agentworld.manifest import parse_manifest
from agentworld.testing.guests import guest_wasm
from agentworld.world import rebuild_state
from worldkit import (
    constant_migration,
    deploy,
    events,
    install,
    manifest,
    migrating_guest,
    world_with_agents,
)

EXPORTS = ["memory", "alloc", "reduce", "migrate"]
RULES = PluginManager(entrypoints=False, environ={}).compat_rules()


def counter_manifest(world: World, guest: str, version: str, **extra: Any) -> dict[str, Any]:
    return manifest("m.counter", deploy(world, guest_wasm(guest)), version=version,
                    exports=EXPORTS, **extra)


def move(world: World, action: dict[str, Any], *, routed: bool = False) -> dict[str, Any]:
    """Submit an upgrade or rollback as ada and step (with modules only if `routed`); return
    the event that decided it."""
    data = action["data"]
    world.submit(action, submitter="ada")
    action_id = world.pending_action_ids[-1]
    if routed:
        world.step_with_modules()
    else:
        world.step()
    decided = [e for e in world.journal if (e.caused_by or {}).get("action") == action_id
               and e.kind in {"domain.module_upgraded", "domain.module_rolled_back",
                              "domain.action_rejected"}]
    assert len(decided) == 1, data
    return {"kind": decided[0].kind, "action_id": action_id, **decided[0].data}


def upgrade(world: World, from_version: str, candidate: dict[str, Any],
            routed: bool = False) -> dict[str, Any]:
    return move(world, {"type": "module.upgrade", "data": {
        "upgrader_agent_id": "ada", "instance_id": "m.counter#1", "from_version": from_version,
        "manifest": candidate}}, routed=routed)


def rollback(world: World, version: str) -> dict[str, Any]:
    return move(world, {"type": "module.rollback", "data": {
        "operator_agent_id": "ada", "instance_id": "m.counter#1", "target_version": version}})


def state_of(world: World) -> bytes:
    return world.module_state("m.counter#1")


def count(world: World) -> int:
    """The count in a counter_v1 (4 bytes) or counter_v2 (count, then last tick) state."""
    return int.from_bytes(state_of(world)[:8], "little")


@pytest.fixture
def ticking_v1(plugin_manager: PluginManager) -> World:
    """A world where ada's counter_v1 instance has ticked three times (state: 4-byte 3)."""
    world = world_with_agents("ada", plugins=plugin_manager)
    assert install(world, "ada", counter_manifest(world, "counter_v1", "1.0.0"))["kind"] == (
        "domain.module_installed")
    for _ in range(3):
        world.step_with_modules()
    assert state_of(world) == (3).to_bytes(4, "little")
    return world


def test_upgrade_migrates_the_state_and_the_new_code_reads_it(ticking_v1: World) -> None:
    world = ticking_v1
    v2 = counter_manifest(world, "counter_v2", "2.0.0")  # deploying ticks once more
    before = count(world)
    result = upgrade(world, "1.0.0", v2)
    assert result["kind"] == "domain.module_upgraded"
    step = [e for e in world.journal if e.time == world.time]
    assert [e.kind for e in step] == ["domain.module_registered", "domain.module_upgraded",
                                      "module.state_updated"]
    assert step[-1].data["trace_id"] == f"migrate-{result['action_id']}-m.counter#1"
    assert state_of(world) == before.to_bytes(8, "little") + bytes(8)
    world.step_with_modules()
    assert state_of(world) == (before + 1).to_bytes(8, "little") + world.time.to_bytes(
        8, "little")
    assert events(world, "module.emitted")[-1]["payload"] == {"count": before + 1,
                                                             "last_tick": world.time}
    assert not events(world, "module.call_failed")
    assert rebuild_state(world.journal) == world.state


def test_migrate_gets_its_own_context_the_old_state_and_both_versions(ticking_v1: World) -> None:
    world = ticking_v1
    echo = migrating_guest("""
        (call $w_begin)
        (call $w_map (i32.const 1))
        (call $w_str (global.get $s_new_state))
        (call $w_head (i32.const 2) (i64.extend_i32_u (local.get $len)))
        (call $w_copy (local.get $ptr) (local.get $len))
        (global.get $out_start) (call $out_len)""")
    candidate = manifest("m.counter", deploy(world, echo), version="1.5.0", exports=EXPORTS)
    old_state = state_of(world)
    result = upgrade(world, "1.0.0", candidate)
    assert result["kind"] == "domain.module_upgraded"
    received = cbor2.loads(state_of(world))
    assert received == {
        "ctx": {"v": "wasm-1", "module_id": "m.counter", "instance_id": "m.counter#1",
                "module_version": "1.5.0",
                "trace_id": f"migrate-{result['action_id']}-m.counter#1", "stage": "migrate",
                "time": world.time, "origin": {"kind": "action", "id": result["action_id"]},
                "install_target": {"type": "self_agent"},
                "manifest_hash": parse_manifest(candidate).manifest_hash(),
                "world_config_hash": config_hash(world.config)},
        "state": old_state,
        "from_version": "1.0.0",
        "to_version": "1.5.0",
    }


LOOP = "(loop $spin (br $spin)) unreachable"
MEMBOMB = ("(loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) "
           "unreachable")
GARBAGE = "(i32.store8 (i32.const 8000) (i32.const 0xff)) (i32.const 8000) (i32.const 1)"


@pytest.mark.parametrize(("guest", "limits", "code", "detail"), [
    (lambda: migrating_guest("unreachable"), {}, "trap", "unreachable"),
    (lambda: migrating_guest(LOOP), {"max_gas": 20_000}, "out_of_fuel", "20000"),
    (lambda: migrating_guest(MEMBOMB), {"max_mem_bytes": 4 * 65536}, "memory_limit", ""),
    (lambda: migrating_guest(GARBAGE), {}, "invalid_output", ""),
    (lambda: constant_migration({"new_state": bytes(300)}), {"max_output_bytes": 128},
     "output_too_large", ""),
    (lambda: constant_migration({"emits": [{"kind": "migrated", "payload": None}]}), {},
     "invalid_output", "only new_state"),
    (lambda: constant_migration({"new_state": b"x", "tick_lifecycle": {"mode": "suspend"}}), {},
     "invalid_output", "only new_state"),
])
def test_a_failing_migration_refuses_the_whole_upgrade_and_changes_nothing(
    ticking_v1: World, guest: Any, limits: dict[str, int], code: str, detail: str,
) -> None:
    world = ticking_v1
    candidate = manifest("m.counter", deploy(world, guest()), version="2.0.0", exports=EXPORTS,
                         limits=limits)
    root, state, journal_length = world.state_root(), state_of(world), len(world.journal)
    result = upgrade(world, "1.0.0", candidate)
    assert result["kind"] == "domain.action_rejected"
    assert result["code"] == "migration_failed"
    failure = result["failure"]
    assert failure["code"] == code and detail in failure["detail"]
    assert failure["trace_id"] == f"migrate-{result['action_id']}-m.counter#1"
    if code == "out_of_fuel":  # the target's own limits bound the migration
        assert failure["gas_used"] == 20_000
    assert result["notes"] == [f"m.counter@2.0.0 migrate failed: {code}: {failure['detail']}"]
    # The rejection is the step's only event: no registration, no move, no state.
    assert len(world.journal) == journal_length + 1
    assert world.state_root() == root
    assert state_of(world) == state
    instance = world.instances["m.counter#1"]
    assert (instance.module_version, instance.wasm_hash) == ("1.0.0", events(
        world, "domain.module_installed")[0]["wasm_hash"])
    assert "m.counter@2.0.0" not in world.state.manifests
    assert rebuild_state(world.journal) == world.state


def test_a_migration_failure_is_a_refusal_even_in_a_halting_world(
    plugin_manager: PluginManager,
) -> None:
    world = world_with_agents("ada", plugins=plugin_manager,
                              config=WorldConfig(halt_on_module_failure=True))
    install(world, "ada", counter_manifest(world, "counter_v1", "1.0.0"))
    bad = manifest("m.counter", deploy(world, migrating_guest("unreachable")), version="2.0.0",
                   exports=EXPORTS)
    assert upgrade(world, "1.0.0", bad, routed=True)["code"] == "migration_failed"
    assert not events(world, "module.call_failed")


def test_rollback_runs_the_older_versions_migrate(ticking_v1: World) -> None:
    world = ticking_v1
    assert upgrade(world, "1.0.0", counter_manifest(world, "counter_v2", "2.0.0"),
                   routed=True)["kind"] == "domain.module_upgraded"
    world.step_with_modules()
    assert len(state_of(world)) == 16
    ticked = count(world)
    result = rollback(world, "1.0.0")
    assert result["kind"] == "domain.module_rolled_back"
    (migrated,) = [e for e in world.journal if e.kind == "module.state_updated"
                   and e.data["trace_id"] == f"migrate-{result['action_id']}-m.counter#1"]
    assert base64.b64decode(migrated.data["state"]) == ticked.to_bytes(4, "little")
    world.step_with_modules()
    assert state_of(world) == (ticked + 1).to_bytes(4, "little")
    assert events(world, "module.emitted")[-1]["payload"] == {"count": ticked + 1}
    assert not events(world, "module.call_failed")


def test_a_failing_rollback_migration_keeps_the_newer_version_and_its_state(
    plugin_manager: PluginManager,
) -> None:
    world = world_with_agents("ada", plugins=plugin_manager)
    bad_v1 = manifest("m.counter", deploy(world, migrating_guest("unreachable")),
                      exports=EXPORTS)
    install(world, "ada", bad_v1)
    assert upgrade(world, "1.0.0", counter_manifest(world, "counter_v2", "2.0.0"))["kind"] == (
        "domain.module_upgraded")
    assert state_of(world) == bytes(16)  # v2 migrated the empty state
    root = world.state_root()
    result = rollback(world, "1.0.0")
    assert (result["code"], result["failure"]["code"]) == ("migration_failed", "trap")
    assert world.instances["m.counter#1"].module_version == "2.0.0"
    assert state_of(world) == bytes(16) and world.state_root() == root


def test_without_a_declared_migrate_the_state_carries_over_unconverted(
    ticking_v1: World,
) -> None:
    world = ticking_v1
    # counter_v2 exports migrate, but a manifest that does not declare it never gets it called.
    undeclared = manifest("m.counter", deploy(world, guest_wasm("counter_v2")),
                          version="2.0.0", exports=["memory", "alloc", "reduce"])
    before = state_of(world)
    assert upgrade(world, "1.0.0", undeclared, routed=True)["kind"] == "domain.module_upgraded"
    assert state_of(world) == before and len(before) == 4
    (failed,) = events(world, "module.call_failed")  # v2 cannot read a v1 state
    assert (failed["stage"], failed["code"]) == ("tick", "trap")


def test_a_pure_module_migration_may_not_return_state(plugin_manager: PluginManager) -> None:
    world = world_with_agents("ada", plugins=plugin_manager)
    pure_exports = ["memory", "alloc", "call", "migrate"]
    v1 = manifest("m.counter", deploy(world, constant_migration({}, kind="pure")), kind="pure",
                  exports=pure_exports)
    install(world, "ada", v1)
    v2 = manifest("m.counter", deploy(world, constant_migration({"new_state": b"s"},
                                                                kind="pure")),
                  kind="pure", version="2.0.0", exports=pure_exports)
    result = upgrade(world, "1.0.0", v2)
    assert (result["code"], result["failure"]["code"]) == ("migration_failed", "invalid_output")
    quiet = {**v2, "version": "3.0.0", "wasm_hash": v1["wasm_hash"]}
    assert upgrade(world, "1.0.0", quiet)["kind"] == "domain.module_upgraded"
    assert state_of(world) == b""


def test_dropping_migrate_is_a_warning_not_a_removed_export() -> None:
    current = manifest("m.counter", "a" * 64, exports=EXPORTS)
    candidate = {**current, "version": "2.0.0", "exports": ["memory", "alloc", "reduce"]}
    report = check_compatibility(parse_manifest(current), parse_manifest(candidate), RULES,
                                 CompatContext())
    assert report.compatible
    assert report.to_json()["violations"] == [{
        "rule": "migrate-kept", "severity": "warning",
        "message": "m.counter@2.0.0 drops the migrate export of m.counter@1.0.0: the instance's "
                   "state carries over unconverted, so its layout must be one the candidate "
                   "reads"}]
    kept = check_compatibility(parse_manifest(current), parse_manifest(
        {**candidate, "exports": EXPORTS}), RULES, CompatContext())
    assert kept.violations == ()
    # Any other export still may not go away.
    narrowed = {**candidate, "exports": ["memory", "reduce", "migrate"]}
    report = check_compatibility(parse_manifest(current), parse_manifest(narrowed), RULES,
                                 CompatContext())
    assert [v.rule for v in report.violations] == ["exports-not-reduced"]


@pytest.mark.slow
def test_the_v1_to_v2_migration_through_the_command_line(tmp_path: Path) -> None:
    def agentworld(*args: str | Path) -> list[dict[str, Any]]:
        result = subprocess.run([sys.executable, "-m", "agentworld", *map(str, args), "--json"],
                                capture_output=True, text=True, timeout=120, env=dict(os.environ))
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    world = tmp_path / "w"
    agentworld("world", "init", world, "--agent", "ada")
    for version, guest in (("1.0.0", "counter_v1"), ("2.0.0", "counter_v2")):
        (tmp_path / f"{guest}.wasm").write_bytes(guest_wasm(guest))
        (tmp_path / f"{guest}.json").write_text(json.dumps(manifest(
            "m.counter", sha256_hex(guest_wasm(guest)), version=version, exports=EXPORTS)))
        agentworld("module", "deploy", world, "--agent", "ada", "--wasm",
                   tmp_path / f"{guest}.wasm")
    agentworld("module", "install", world, "--agent", "ada", "--manifest",
               tmp_path / "counter_v1.json")
    agentworld("world", "step", world, "--steps", "2")
    before = World.load_from_dir(world).module_state("m.counter#1")
    assert before == (2).to_bytes(4, "little")
    upgraded = agentworld("module", "upgrade", world, "--agent", "ada", "--instance",
                          "m.counter#1", "--from-version", "1.0.0", "--manifest",
                          tmp_path / "counter_v2.json")
    migrated = next(e for e in upgraded if e["kind"] == "module.state_updated")
    assert migrated["data"]["trace_id"].startswith("migrate-")
    assert base64.b64decode(migrated["data"]["state"]) == (2).to_bytes(8, "little") + bytes(8)
    ticked = [e for e in upgraded if e["kind"] == "module.emitted"]
    assert ticked[0]["data"]["payload"]["count"] == 3
    rolled = agentworld("module", "rollback", world, "--agent", "ada", "--instance",
                        "m.counter#1", "--to-version", "1.0.0")
    assert [e["kind"] for e in rolled][:2] == ["domain.module_rolled_back", "module.state_updated"]
    assert World.load_from_dir(world).module_state("m.counter#1") == (4).to_bytes(4, "little")
