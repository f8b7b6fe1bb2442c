"""Property: no instance ever changes except by its owner or the world's system actor.

Random multi-agent scripts: agents try every lifecycle action on instances they do not own,
honestly (as themselves) and forged (acting as the owner), and through rule modules whose
override rewrites their own moves into another agent's lifecycle action; the host now and then
changes an instance itself. After every step, every instance change must come from an event
whose cause names its owner as submitter, or no submitter (the system actor).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentworld import World
from agentworld.canonical import sha256_hex
from agentworld.testing.guests import guest_wasm
from worldkit import manifest, rule_guest

AGENTS = ("ada", "bob", "cy")
LIFECYCLE = {"domain.module_active_set", "domain.module_upgraded", "domain.module_rolled_back"}
COUNTER, SLEEPER = guest_wasm("counter"), guest_wasm("sleeper")
V1 = manifest("m.c", sha256_hex(COUNTER))
V2 = manifest("m.c", sha256_hex(SLEEPER), version="2.0.0")
# The instances every script starts with: (instance id, owner).
OWNED = (("m.c#1", "ada"), ("m.c#2", "bob"), ("m.c#3", "cy"), ("m.c#4", "ada"))


def lifecycle(kind: str, actor: str, instance_id: str, flag: bool) -> dict[str, Any]:
    """One lifecycle action on `instance_id`, acting as `actor`."""
    if kind == "set_active":
        return {"type": "module.set_active",
                "data": {"agent_id": actor, "instance_id": instance_id, "active": flag}}
    if kind == "upgrade":
        return {"type": "module.upgrade",
                "data": {"upgrader_agent_id": actor, "instance_id": instance_id,
                         "from_version": "1.0.0" if flag else "2.0.0",
                         "manifest": V2 if flag else {**V1, "version": "3.0.0"}}}
    return {"type": "module.rollback",
            "data": {"operator_agent_id": actor, "instance_id": instance_id,
                     "target_version": "1.0.0" if flag else "2.0.0"}}


KINDS = ("set_active", "upgrade", "rollback")
# What a rule may answer `modify` with: another agent's lifecycle action, or a move as them.
FORGERIES = tuple(
    [lifecycle(kind, owner, instance_id, flag)
     for instance_id, owner in OWNED for kind in KINDS for flag in (True, False)]
    + [{"type": "move_agent", "data": {"agent_id": agent, "to": [9, 9]}} for agent in AGENTS])
RULES = {index: rule_guest("modify", forged) for index, forged in enumerate(FORGERIES)}

agent_index = st.integers(0, len(AGENTS) - 1)
ops = st.one_of(
    st.tuples(st.just("direct"), agent_index, st.integers(0, 7), st.sampled_from(KINDS),
              st.booleans(), st.booleans()),
    st.tuples(st.just("rule"), agent_index, st.integers(0, len(FORGERIES) - 1)),
    st.tuples(st.just("grant"), agent_index),
    st.tuples(st.just("move"), agent_index),
    st.tuples(st.just("system"), st.integers(0, 7), st.sampled_from(KINDS), st.booleans()),
    st.tuples(st.just("step")),
)


def start() -> World:
    world = World()
    for index, agent in enumerate(AGENTS):
        world.submit({"type": "register_agent", "data": {"agent_id": agent,
                                                         "position": [index, 0]}})
    for wasm in (COUNTER, SLEEPER):
        world.submit({"type": "module.deploy_artifact", "data": {
            "publisher_agent_id": "ada", "wasm_bytes": wasm, "wasm_hash": sha256_hex(wasm)}})
    for (_, owner), body in zip(OWNED, (V1, V1, V1, V2), strict=True):
        world.submit({"type": "module.install", "data": {
            "installer_agent_id": owner, "manifest": body, "activate": body is V1}},
            submitter=owner)
    world.step_with_modules()
    assert [(i.instance_id, i.owner_agent_id) for i in world.instances.values()] == list(OWNED)
    return world


def snapshot(world: World) -> dict[str, tuple[Any, ...]]:
    """What a lifecycle action may change, per instance."""
    return {i.instance_id: (i.owner_agent_id, i.module_version, i.wasm_hash, i.manifest_hash,
                            i.active, tuple(i.policy_hooks), tuple(sorted(i.install_target)))
            for i in world.instances.values()}


def check_step(world: World, before: dict[str, tuple[Any, ...]], first_event: int) -> None:
    after = snapshot(world)
    owners = {i.instance_id: i.owner_agent_id for i in world.instances.values()}
    changers: dict[str, list[Any]] = {}
    for event in world.journal[first_event:]:
        if event.kind in LIFECYCLE:
            instance_id = event.data["instance_id"]
            submitter = (event.caused_by or {}).get("submitter")
            assert submitter in (None, owners[instance_id]), (event, owners[instance_id])
            changers.setdefault(instance_id, []).append(submitter)
    for instance_id, state in before.items():
        assert after[instance_id][0] == state[0]  # owners never change
        if after[instance_id] != state:
            assert changers.get(instance_id), instance_id
    for instance in world.instances.values():
        registered = world.state.manifests[f"{instance.module_id}@{instance.module_version}"]
        assert instance.manifest_hash == registered.manifest_hash()


def run(world: World, op: tuple[Any, ...]) -> None:
    ids = list(world.instances)
    if op[0] == "direct":
        _, actor_index, target, kind, forge, flag = op
        actor, instance_id = AGENTS[actor_index], ids[target % len(ids)]
        owner = world.instances[instance_id].owner_agent_id
        world.submit(lifecycle(kind, owner if forge else actor, instance_id, flag),
                     submitter=actor)
    elif op[0] == "rule":
        _, actor_index, forgery = op
        actor, wasm = AGENTS[actor_index], RULES[forgery]
        world.submit({"type": "module.deploy_artifact", "data": {
            "publisher_agent_id": actor, "wasm_bytes": wasm, "wasm_hash": sha256_hex(wasm)}})
        world.submit({"type": "module.install", "data": {
            "installer_agent_id": actor,
            "manifest": manifest(f"r.{actor}{forgery}", sha256_hex(wasm), kind="pure",
                                 subscriptions=[{"stage": "pre_action",
                                                 "action_kinds": ["action.move_agent"]}])}},
            submitter=actor)
    elif op[0] == "grant":
        world.submit({"type": "grant_role",
                      "data": {"agent_id": AGENTS[op[1]], "role": "rule_author"}})
    elif op[0] == "move":
        agent = AGENTS[op[1]]
        world.submit({"type": "move_agent", "data": {"agent_id": agent, "to": [1, 2]}},
                     submitter=agent)
    elif op[0] == "system":
        _, target, kind, flag = op
        world.submit(lifecycle(kind, "ada", ids[target % len(ids)], flag))


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(script=st.lists(ops, min_size=1, max_size=14))
def test_instances_change_only_by_their_owner_or_the_system_actor(
    script: list[tuple[Any, ...]],
) -> None:
    world = start()
    for op in [*script, ("step",)]:
        if op[0] == "step":
            before, first = snapshot(world), len(world.journal)
            world.step_with_modules()
            check_step(world, before, first)
        else:
            run(world, op)
