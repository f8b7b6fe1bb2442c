"""`major-version-kept`: unit cases, and a world that pins it and is refused by it."""

from __future__ import annotations

from agentworld import World
from agentworld.canonical import sha256_hex
from agentworld.compat import CompatContext
from agentworld.manager import PluginManager
from agentworld.manifest import read_manifest

from agentworld_example_plugins import policy
from agentworld_example_plugins.policy import MajorVersionKept

# A pure module that returns an empty output map (CBOR 0xa0) on every call.
QUIET = """
(module
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "call") (param i32 i32) (result i64)
    (i32.store8 (i32.const 16) (i32.const 0xa0))
    i64.const 0x0000000100000010))
"""


def manifest(version: str, wasm_hash: str = "ab" * 32) -> dict[str, object]:
    return {"module_id": "m.quiet", "name": "quiet", "version": version, "kind": "pure",
            "wasm_hash": wasm_hash, "interface_version": "wasm-1",
            "exports": ["memory", "alloc", "call"]}


def judge(current: str, candidate: str, operation: str = "upgrade") -> list[str]:
    old, problems = read_manifest(manifest(current))
    new, more = read_manifest(manifest(candidate))
    assert old is not None and new is not None and not problems and not more
    found = MajorVersionKept().check(old, new, CompatContext(operation=operation))
    return [violation.message for violation in found]


def test_minor_and_patch_changes_keep_the_major_version() -> None:
    assert judge("1.0.0", "1.4.2") == []
    assert judge("1.4.2", "1.0.0", "rollback") == []
    assert judge("2.0.0-rc.1", "2.0.0") == []


def test_a_new_major_version_is_a_violation_either_way() -> None:
    (message,) = judge("1.9.0", "2.0.0")
    assert message.startswith("upgrade from 1.9.0 to 2.0.0 changes the major version (1 -> 2)")
    (message,) = judge("2.0.0", "1.0.0", "rollback")
    assert message.startswith("rollback from 2.0.0 to 1.0.0")


def test_an_unreadable_version_is_a_violation() -> None:
    assert judge("1.0.0", "v2") == ["not a semantic version: v2"]


def test_a_world_created_with_the_rule_pins_it_and_refuses_a_major_upgrade(
    agentworld_plugins: PluginManager, agentworld_wat
) -> None:
    agentworld_plugins.register(policy, name="example-policy")
    world = World(plugins=agentworld_plugins)
    wasm = agentworld_wat(QUIET)
    wasm_hash = sha256_hex(wasm)
    world.submit({"type": "register_agent", "data": {"agent_id": "ada", "position": [0, 0]}})
    world.submit({"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": "ada", "wasm_bytes": wasm, "wasm_hash": wasm_hash}})
    world.submit({"type": "module.install", "data": {
        "installer_agent_id": "ada", "manifest": manifest("1.0.0", wasm_hash)}})
    for version in ("2.0.0", "1.1.0"):
        world.submit({"type": "module.upgrade", "data": {
            "upgrader_agent_id": "ada", "instance_id": "m.quiet#1", "from_version": "1.0.0",
            "manifest": manifest(version, wasm_hash)}})
    world.step_with_modules()
    (pinned,) = [e.data["rules"] for e in world.journal if e.kind == "world.compat_policy_set"]
    assert [rule["plugin"] for rule in pinned if rule["rule"] == "major-version-kept"] == [
        "example-policy"]
    (refused,) = [e.data for e in world.journal if e.kind == "domain.action_rejected"]
    assert refused["code"] == "incompatible_upgrade"
    assert [v["rule"] for v in refused["report"]["violations"]] == ["major-version-kept"]
    assert world.instances["m.quiet#1"].module_version == "1.1.0"
