"""Golden scenarios: fixed action scripts whose journals and state roots are recorded as test data.

Each scenario drives a fresh `World` through the public API only (`submit`, `step`,
`step_with_modules`, `journal`, `state_root`), so a change to the kernel's insides must leave
the recorded bytes identical. The host (the system actor) registers agents, deploys artifacts
and grants capabilities and roles; agents submit their own installs, moves, transfers and
lifecycle actions. An intended change of behaviour regenerates the files in a commit
of its own that says why (each scenario takes the executor to run on, wasmtime by default):

    .venv/bin/python tests/golden_scenarios.py --write
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentworld import World
from agentworld.canonical import canonical_json, sha256_hex
from agentworld.executor import Executor, ExecutorConfig
from agentworld.testing.guests import guest_wasm

GOLDEN_DIR = Path(__file__).parent / "golden"


def journal_lines(world: World) -> bytes:
    """The journal as canonical JSON lines (bytes as base64), one event a line."""
    return b"".join(
        canonical_json({"id": e.id, "time": e.time, "caused_by": e.caused_by, "kind": e.kind,
                        "data": e.data}) + b"\n"
        for e in world.journal)


def _manifest(module_id: str, wasm_hash: str, kind: str = "reducer", version: str = "1.0.0",
              **extra: Any) -> dict[str, Any]:
    entry = "reduce" if kind == "reducer" else "call"
    return {"module_id": module_id, "name": module_id, "version": version, "kind": kind,
            "wasm_hash": wasm_hash, "interface_version": "wasm-1",
            "exports": ["memory", "alloc", entry], **extra}


def _deploy(world: World, *guests: str) -> dict[str, str]:
    hashes = {}
    for guest in guests:
        wasm = guest_wasm(guest)
        hashes[guest] = sha256_hex(wasm)
        world.submit({"type": "module.deploy_artifact", "data": {
            "publisher_agent_id": "ada", "wasm_bytes": wasm, "wasm_hash": hashes[guest]}})
    return hashes


def _agents(world: World, *names: str) -> None:
    for index, name in enumerate(names):
        world.submit({"type": "register_agent", "data": {
            "agent_id": name, "position": [index * 3, 0], "resources": {"ore": 10}}})


def _install(world: World, agent: str, manifest: dict[str, Any],
             location: str | None = None, activate: bool = True) -> None:
    target = {"type": "location", "location_id": location} if location else {"type": "self_agent"}
    world.submit({"type": "module.install", "data": {
        "installer_agent_id": agent, "manifest": manifest, "install_target": target,
        "activate": activate}}, submitter=agent)


def _rule_author(world: World, agent: str) -> None:
    world.submit({"type": "grant_role", "data": {"agent_id": agent, "role": "rule_author"}})


def modules_scenario(executor_config: ExecutorConfig | None = None,
                    executor: str | Executor = "wasmtime") -> World:
    """Instances on two targets, a rule (allow, deny, modify), an observer, ticks, lifecycle."""
    world = World(executor=executor, executor_config=executor_config)
    _agents(world, "ada", "bob", "cy")
    hashes = _deploy(world, "counter", "sleeper", "suspender", "rule", "observer")
    _rule_author(world, "ada")
    world.step_with_modules()
    counter = _manifest("g.counter", hashes["counter"], subscriptions=[{"stage": "tick"}])
    rule = _manifest("g.rule", hashes["rule"], "pure", role="rule", subscriptions=[
        {"stage": "pre_action", "action_kinds": ["action.move_agent"]}])
    observer = _manifest("g.observer", hashes["observer"], "pure", role="observer", subscriptions=[
        {"stage": "post_event", "event_kinds": ["domain.*", "domain.agent_moved"],
         "filters": {"event": [{"path": "/data/agent_id", "eq": "cy"}]}},
        {"stage": "post_action", "action_kinds": ["action.transfer_resource"]}])
    _install(world, "ada", counter)
    _install(world, "bob", counter, location="hub")
    _install(world, "ada", rule)
    _install(world, "cy", observer)
    _install(world, "cy", _manifest("g.suspender", hashes["suspender"],
                                    subscriptions=[{"stage": "tick", "every_ticks": 2}]))
    world.step_with_modules()
    for agent, cell in (("ada", [2, 2]), ("bob", [13, 13]), ("cy", [7, 7]), ("cy", [1, 5])):
        world.submit({"type": "move_agent", "data": {"agent_id": agent, "to": cell}},
                     submitter=agent)
    world.submit({"type": "transfer_resource", "data": {
        "from_agent_id": "ada", "to_agent_id": "bob", "kind": "ore", "amount": 4}},
        submitter="ada")
    world.submit({"type": "transfer_resource", "data": {
        "from_agent_id": "bob", "to_agent_id": "cy", "kind": "ore", "amount": 99}},
        submitter="bob")
    world.step_with_modules()
    for _ in range(3):
        world.step_with_modules()
    sleeper = {**counter, "version": "2.0.0", "wasm_hash": hashes["sleeper"]}
    for agent in ("bob", "ada"):
        world.submit({"type": "module.upgrade", "data": {
            "upgrader_agent_id": agent, "instance_id": "g.counter#1",
            "from_version": "1.0.0", "manifest": sleeper}}, submitter=agent)
    world.step_with_modules()
    for _ in range(4):
        world.step_with_modules()
    world.submit({"type": "module.set_active", "data": {
        "agent_id": "bob", "instance_id": "g.counter#2", "active": False}}, submitter="bob")
    world.submit({"type": "module.set_active", "data": {
        "agent_id": "ada", "instance_id": "g.counter#2", "active": False}}, submitter="ada")
    world.step_with_modules()
    world.step_with_modules()
    world.submit({"type": "module.rollback", "data": {
        "operator_agent_id": "ada", "instance_id": "g.counter#1", "target_version": "1.0.0"}},
        submitter="ada")
    world.submit({"type": "module.set_active", "data": {
        "agent_id": "bob", "instance_id": "g.counter#2", "active": True}}, submitter="bob")
    world.step_with_modules()
    world.step_with_modules()
    world.step()
    return world


def effects_scenario(executor_config: ExecutorConfig | None = None,
                    executor: str | Executor = "wasmtime") -> World:
    """Capabilities, slots, policy hooks that allow and deny, receipts, an expired grant."""
    world = World(executor=executor, executor_config=executor_config)
    _agents(world, "ada", "bob")
    world.submit({"type": "grant_capability", "data": {
        "cap_ref": "cap.bank", "allowed_effect_kinds": ["bank.*"], "expires_at": None}})
    world.submit({"type": "grant_capability", "data": {
        "cap_ref": "cap.short", "allowed_effect_kinds": ["bank.pay"], "expires_at": 9}})
    hashes = _deploy(world, "effector", "effector_ref", "observer")
    world.step_with_modules()
    _install(world, "ada", _manifest("g.effector", hashes["effector"], "pure",
                                     required_caps=["cap.bank"],
                                     abi_contract={"cap_slots": {"pay": "cap.bank"}},
                                     subscriptions=[{"stage": "tick", "every_ticks": 3}]))
    _install(world, "bob", _manifest("g.unbound", hashes["effector"], "pure",
                                     required_caps=["cap.bank"],
                                     subscriptions=[{"stage": "tick", "every_ticks": 4}]))
    _install(world, "bob", _manifest("g.effector_ref", hashes["effector_ref"], "pure",
                                     required_caps=["cap.bank", "cap.short"],
                                     subscriptions=[{"stage": "tick", "every_ticks": 2}]))
    world.step_with_modules()
    for _ in range(4):
        world.step_with_modules()
    for intent in world.pending_effects()[:2]:
        world.submit({"type": "effect.receipt", "data": {
            "intent_id": intent.intent_id, "status": "ok", "result": {"paid": 1}}})
    world.submit({"type": "effect.receipt", "data": {
        "intent_id": "no-such-intent", "status": "ok", "result": None}})
    world.step_with_modules()
    for _ in range(6):
        world.step_with_modules()
    return world


def failures_scenario(executor_config: ExecutorConfig | None = None,
                     executor: str | Executor = "wasmtime") -> World:
    """Hostile guests contained; a failing rule denies; refused manifests and upgrades."""
    world = World(executor=executor, executor_config=executor_config)
    _agents(world, "ada", "bob")
    hostile = ("loop", "membomb", "bigmem", "huge", "garbage", "badptr", "unreachable",
               "divzero", "recursion", "noalloc", "noentry")
    hashes = _deploy(world, "counter", "observer", *hostile)
    world.submit({"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": "ada", "wasm_bytes": b"\0asm\x01\0\0\0junk",
        "wasm_hash": sha256_hex(b"\0asm\x01\0\0\0junk")}})
    world.submit({"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": "ada", "wasm_bytes": b"abc", "wasm_hash": "00" * 32}})
    world.step_with_modules()
    limits = {"max_gas": 200_000, "max_mem_bytes": 4 * 1024 * 1024,
              "max_output_bytes": 64 * 1024}
    _install(world, "ada", _manifest("g.counter", hashes["counter"],
                                     subscriptions=[{"stage": "tick"}]))
    for name in hostile[:-2]:  # noalloc and noentry cannot promise the exports a manifest needs
        _install(world, "bob", _manifest(f"h.{name}", hashes[name], "pure", limits=limits,
                                         subscriptions=[{"stage": "tick"}]))
    noalloc = _manifest("h.noalloc", hashes["noalloc"], "pure", limits=limits,
                        subscriptions=[{"stage": "tick"}])
    noalloc["exports"] = ["memory", "call"]
    _install(world, "bob", noalloc)
    _rule_author(world, "ada")
    trap_rule = {"stage": "pre_action", "action_kinds": ["action.transfer_resource"]}
    _install(world, "ada", _manifest("h.trap_rule", hashes["unreachable"], "pure", role="rule",
                                     subscriptions=[trap_rule]))
    _install(world, "ada", _manifest("bad manifest", "zz", "pure", exports=[],
                                     subscriptions=[{"stage": "nowhere"}]))
    world.step_with_modules()
    world.submit({"type": "transfer_resource", "data": {
        "from_agent_id": "ada", "to_agent_id": "bob", "kind": "ore", "amount": 1}},
        submitter="ada")
    world.submit({"type": "move_agent", "data": {"agent_id": "bob", "to": [4, 4]}},
                 submitter="bob")
    world.step_with_modules()
    world.step_with_modules()
    narrower = _manifest("g.counter", hashes["observer"], version="2.0.0",
                         interface_version="wasm-2", exports=["memory"], subscriptions=[])
    world.submit({"type": "module.upgrade", "data": {
        "upgrader_agent_id": "ada", "instance_id": "g.counter#1", "from_version": "1.0.0",
        "manifest": narrower}}, submitter="ada")
    dropped = _manifest("g.counter", hashes["counter"], version="2.0.0",
                        subscriptions=[{"stage": "post_event", "event_kinds": ["x.*"]}])
    world.submit({"type": "module.upgrade", "data": {
        "upgrader_agent_id": "ada", "instance_id": "g.counter#1", "from_version": "1.0.0",
        "manifest": dropped}}, submitter="ada")
    world.submit({"type": "module.rollback", "data": {
        "operator_agent_id": "ada", "instance_id": "g.counter#1", "target_version": "0.1.0"}},
        submitter="ada")
    world.submit({"type": "move_agent", "data": {"agent_id": "nobody", "to": [1, 1]}},
                 submitter="nobody")
    world.submit({"type": "no_such_action", "data": {}})
    world.step_with_modules()
    world.step_with_modules()
    return world


SCENARIOS: dict[str, Callable[..., World]] = {
    "modules": modules_scenario,
    "effects": effects_scenario,
    "failures": failures_scenario,
}


def write_all() -> None:
    """Record every scenario's journal and state root under `tests/golden/`."""
    GOLDEN_DIR.mkdir(exist_ok=True)
    for name, scenario in SCENARIOS.items():
        world = scenario()
        (GOLDEN_DIR / f"{name}.jsonl").write_bytes(journal_lines(world))
        (GOLDEN_DIR / f"{name}.root").write_text(world.state_root() + "\n")
        print(f"{name}: {len(world.journal)} events, root {world.state_root()}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/golden_scenarios.py --write")
    write_all()
