"""Property tests for routing: any action sequence through a world of modules is deterministic,
replayable, and never raises."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentworld import World
from agentworld.canonical import sha256_hex
from agentworld.model import Event
from agentworld.stateroot import state_root
from agentworld.testing.guests import guest_wasm
from agentworld.world import event_to_json, rebuild_state
from worldkit import deploy, install, manifest, world_with_agents

cells = st.sampled_from([[13, 13], [7, 7], [1, 2], [0, 0]])
agents = st.sampled_from(["ada", "bob", "ghost"])
actions = st.one_of(
    st.builds(lambda a, c: {"type": "move_agent", "data": {"agent_id": a, "to": c}}, agents, cells),
    st.builds(lambda a, b, n: {"type": "transfer_resource", "data": {
        "from_agent_id": a, "to_agent_id": b, "kind": "ore", "amount": n}},
        agents, agents, st.integers(-1, 3)),
    st.builds(lambda a, i, on: {"type": "module.set_active", "data": {
        "agent_id": a, "instance_id": i, "active": on}},
        agents, st.sampled_from(["m.counter#3", "m.loop#4", "m.none#9"]), st.booleans()),
    st.just({"type": "move_agent", "data": {"agent_id": 1}}),
)
scripts = st.lists(st.lists(actions, max_size=4), min_size=1, max_size=6)


def modular_world() -> World:
    world = world_with_agents("ada", "bob")
    world.submit({"type": "register_agent", "data": {"agent_id": "zed", "position": [0, 0],
                                                     "resources": {"ore": 2}}})
    world.step()
    install(world, "ada", manifest("m.rule", deploy(world, guest_wasm("rule")), kind="pure",
                                   subscriptions=[{"stage": "pre_action",
                                                   "action_kinds": ["action.move_agent"]}]))
    install(world, "bob", manifest("m.obs", deploy(world, guest_wasm("observer")), kind="pure",
                                   subscriptions=[{"stage": "post_event",
                                                   "event_kinds": ["domain.*"]}]))
    install(world, "ada", manifest("m.counter", deploy(world, guest_wasm("counter")),
                                   subscriptions=[{"stage": "tick", "every_ticks": 2}]))
    install(world, "bob", manifest("m.loop", deploy(world, guest_wasm("loop")), kind="pure",
                                   limits={"max_gas": 20_000}))
    return world


def run(script: list[list[dict[str, Any]]]) -> World:
    world = modular_world()
    for batch in script:
        for action in batch:
            world.submit(json.loads(json.dumps(action)))
        world.step_with_modules()
    return world


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts)
def test_routing_is_deterministic_and_replayable(script: list[list[dict[str, Any]]]) -> None:
    first, second = run(script), run(script)
    lines = [event_to_json(e) for e in first.journal]
    assert lines == [event_to_json(e) for e in second.journal]
    replayed = rebuild_state(Event(**json.loads(line)) for line in lines)
    assert state_root(replayed) == first.state_root() == second.state_root()
    assert [e.id for e in first.journal] == list(range(1, len(first.journal) + 1))


COUNTER_HASH = sha256_hex(guest_wasm("counter"))
scalars = st.none() | st.booleans() | st.integers(-3, 10**10) | st.text(max_size=6)
subscription = st.fixed_dictionaries({}, optional={
    "stage": st.sampled_from(["tick", "pre_action", "post_event", "post_action", "nope"]),
    "event_kinds": st.lists(st.sampled_from(["domain.*", "*", "x.", "a*b"]), max_size=2),
    "action_kinds": st.lists(st.sampled_from(["action.*", "move_agent", ""]), max_size=2),
    "every_ticks": st.integers(-1, 3),
    "filters": st.sampled_from([None, {}, {"event": [{"path": "/data/x", "eq": 1}]},
                                {"action": {"any": []}}, {"event": "bad"}]),
})
manifests = st.fixed_dictionaries({
    "module_id": st.sampled_from(["m.counter", "M", "m.other"]),
    "name": st.sampled_from(["counter", " "]),
    "version": st.sampled_from(["1.0.0", "2.0.0", "bad version"]),
    "kind": st.sampled_from(["reducer", "pure", "weird"]),
    "wasm_hash": st.sampled_from([COUNTER_HASH, "0" * 64, "nothex"]),
    "interface_version": st.sampled_from(["wasm-1", "wasm-0"]),
    "exports": st.lists(st.sampled_from(["memory", "alloc", "reduce", "call", "ghost"]),
                        max_size=4),
}, optional={
    "subscriptions": st.lists(subscription, max_size=2),
    "required_caps": st.lists(st.sampled_from(["cap.bank", "cap.none"]), max_size=2),
    "abi_contract": st.fixed_dictionaries({}, optional={
        "cap_slots": st.dictionaries(st.sampled_from(["pay"]),
                                     st.sampled_from(["cap.bank", "cap.x"])),
        "input_schema": scalars, "output_schema": scalars,
        "policy_hooks": st.lists(st.sampled_from(["m.counter", "m.rule"]), max_size=1)}),
    "limits": st.dictionaries(st.sampled_from(["max_gas", "max_emits", "max_call_ms"]),
                              st.integers(-1, 10**12), max_size=2),
    "extra": scalars,
})
module_actions = st.one_of(
    st.builds(lambda m: {"type": "module.install",
                         "data": {"installer_agent_id": "ada", "manifest": m}}, manifests),
    st.builds(lambda m, v: {"type": "module.upgrade", "data": {
        "upgrader_agent_id": "ada", "instance_id": "m.counter#3", "from_version": v,
        "manifest": m}}, manifests, st.sampled_from(["1", "1.0.0"])),
    st.builds(lambda v: {"type": "module.rollback", "data": {
        "operator_agent_id": "ada", "instance_id": "m.counter#3", "target_version": v}},
        st.sampled_from(["1", "1.0.0", "2.0.0"])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.one_of(module_actions, actions), max_size=3), min_size=1,
                max_size=4))
def test_module_lifecycle_actions_never_raise_and_stay_deterministic(
    script: list[list[dict[str, Any]]],
) -> None:
    first, second = run(script), run(script)
    assert [event_to_json(e) for e in first.journal] == [
        event_to_json(e) for e in second.journal]
    assert first.state_root() == second.state_root()
    assert state_root(rebuild_state(first.journal)) == first.state_root()
