"""The demo behind `agentworld demo`: agents, modules as owned instances, rules, ticks, an upgrade,
and a save/load round trip that keeps running its modules.

Everything the demo does goes through the public API (`World.submit`, `step_with_modules`) and
the example guests shipped in `agentworld.testing.guests`; the printed state root is the same on
every run and machine.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from typing import Any

from agentworld.canonical import sha256_hex
from agentworld.errors import AgentWorldError
from agentworld.executor import ExecutorConfig
from agentworld.testing.guests import guest_wasm
from agentworld.world import World


def _manifest(module_id: str, wasm_hash: str, kind: str, version: str = "1.0.0",
              **extra: Any) -> dict[str, Any]:
    entrypoint = "reduce" if kind == "reducer" else "call"
    return {"module_id": module_id, "name": module_id, "version": version, "kind": kind,
            "wasm_hash": wasm_hash, "interface_version": "wasm-1",
            "exports": ["memory", "alloc", entrypoint], **extra}


def _counter(world: World, instance_id: str) -> int:
    # counter_v1 keeps a 4-byte count, counter_v2 an 8-byte count and then the last tick time.
    return int.from_bytes(world.module_state(instance_id)[:8], "little")


def run_demo(echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the demo world; return `state_root`, `events`, `time`, `instances`, `event_kinds`."""
    say = echo or (lambda _text: None)
    world = demo_world(say)

    with tempfile.TemporaryDirectory(prefix="agentworld-demo-") as directory:
        world.save_to_dir(directory)
        restored = World.load_from_dir(directory)
        world.step_with_modules()
        restored.step_with_modules()
        same = restored.state_root() == world.state_root()
    say(f"t={world.time}: saved with its modules, loaded, stepped both: "
        f"{'same state root' if same else 'ROOTS DIFFER'}")
    if not same:
        raise AgentWorldError("the restored world diverged from the original")

    kinds = Counter(event.kind for event in world.journal)
    root = world.state_root()
    say(f"{len(world.journal)} events: " + ", ".join(f"{k}={n}" for k, n in sorted(kinds.items())))
    say(f"state root: {root}")
    return {
        "state_root": root,
        "events": len(world.journal),
        "time": world.time,
        "instances": {i.instance_id: i.module_version for i in world.instances.values()},
        "event_kinds": dict(sorted(kinds.items())),
    }


def demo_world(
    say: Callable[[str], None], executor_config: ExecutorConfig | None = None
) -> World:
    """The demo's world after its scripted steps (before the save and reload)."""
    world = World(executor_config=executor_config)
    for name, x in (("ada", 0), ("bob", 3), ("cy", 6)):
        world.submit({"type": "register_agent",
                      "data": {"agent_id": name, "position": [x, 0], "resources": {"ore": 10}}})
    hashes = {}
    for guest in ("counter_v1", "counter_v2", "rule", "observer"):
        wasm = guest_wasm(guest)
        hashes[guest] = sha256_hex(wasm)
        world.submit({"type": "module.deploy_artifact", "data": {
            "publisher_agent_id": "ada", "wasm_bytes": wasm, "wasm_hash": hashes[guest]}})
    # ada's rule module will deny and rewrite other agents' moves: that needs the role.
    world.submit({"type": "grant_role", "data": {"agent_id": "ada", "role": "rule_author"}})
    world.step_with_modules()
    refused = [e.data for e in world.journal if e.kind == "domain.action_rejected"]
    if refused:
        first = refused[0]
        raise AgentWorldError(f"demo: deploying the example guests was refused: "
                              f"{first['code']}: {'; '.join(first['notes'])}")
    say(f"t={world.time}: 3 agents registered, 4 artifacts deployed, ada may author rules")

    counter = _manifest("demo.counter", hashes["counter_v1"], "reducer",
                        exports=["memory", "alloc", "reduce", "migrate"],
                        subscriptions=[{"stage": "tick"}])
    rule = _manifest("demo.rule", hashes["rule"], "pure", role="rule", subscriptions=[
        {"stage": "pre_action", "action_kinds": ["action.move_agent"]}])
    observer = _manifest("demo.observer", hashes["observer"], "pure", role="observer",
                         subscriptions=[{"stage": "post_event",
                                         "event_kinds": ["domain.agent_moved"],
                                         "filters": {"event": [
                                             {"path": "/data/agent_id", "eq": "cy"}]}}])
    installs = [("ada", counter, None), ("bob", counter, "hub"), ("ada", rule, None),
                ("cy", observer, None)]
    for agent, manifest, location in installs:
        target = ({"type": "location", "location_id": location} if location
                  else {"type": "self_agent"})
        world.submit({"type": "module.install", "data": {
            "installer_agent_id": agent, "manifest": manifest, "install_target": target}},
            submitter=agent)
    world.step_with_modules()
    for instance in world.instances.values():
        say(f"t={world.time}: installed {instance.instance_id} owned by "
            f"{instance.owner_agent_id} at {instance.install_target}")

    moves = (("ada", [2, 2]), ("bob", [13, 13]), ("cy", [7, 7]))
    for agent, cell in moves:
        world.submit({"type": "move_agent", "data": {"agent_id": agent, "to": cell}},
                     submitter=agent)
    world.submit({"type": "transfer_resource", "data": {
        "from_agent_id": "ada", "to_agent_id": "bob", "kind": "ore", "amount": 4}},
        submitter="ada")
    world.step_with_modules()
    for event in world.journal:
        if event.time == world.time and event.kind in {
                "rule.decision_recorded", "rule.action_overridden", "domain.agent_moved",
                "domain.action_rejected"}:
            say(f"t={event.time}: {event.kind} {event.data}")

    for _ in range(3):
        world.step_with_modules()
    say(f"t={world.time}: counters ada={_counter(world, 'demo.counter#1')} "
        f"bob={_counter(world, 'demo.counter#2')}")

    # v2 keeps a wider state (count and last tick): its `migrate` converts ada's v1 state.
    upgraded = {**counter, "version": "2.0.0", "wasm_hash": hashes["counter_v2"]}
    for agent in ("bob", "ada"):  # bob does not own demo.counter#1: refused, then ada upgrades
        world.submit({"type": "module.upgrade", "data": {
            "upgrader_agent_id": agent, "instance_id": "demo.counter#1",
            "from_version": "1.0.0", "manifest": upgraded}}, submitter=agent)
    world.step_with_modules()
    for event in world.journal:
        migration = (event.kind == "module.state_updated"
                     and event.data["trace_id"].startswith("migrate-"))
        if event.time == world.time and (migration or event.kind in {
                "domain.module_upgraded", "domain.action_rejected"}):
            say(f"t={event.time}: {event.kind} {event.data}")
    for _ in range(4):
        world.step_with_modules()
    say(f"t={world.time}: counters ada={_counter(world, 'demo.counter#1')} (v2, its state "
        f"migrated to {len(world.module_state('demo.counter#1'))} bytes) "
        f"bob={_counter(world, 'demo.counter#2')} (v1)")

    return world
