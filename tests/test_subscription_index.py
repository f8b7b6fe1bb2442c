"""The subscription index and tick schedule agree with scanning every instance.

Routing looks instances up by stage and kind instead of asking each one; these properties check
that the lookup finds exactly the instances a full scan in install order finds, in the same
order, through any sequence of installs, removals and re-entries.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentworld import World
from agentworld.filters import kind_matches
from agentworld.manifest import CompiledSubscription
from agentworld.subscriptions import SubscriptionIndex, TickSchedule, label_prefixes, next_due
from agentworld.testing.guests import guest_wasm
from worldkit import deploy, install, manifest, world_with_agents

STAGES = ("pre_action", "post_action", "post_event", "tick")
patterns = st.sampled_from(["*", "a.*", "a.b.*", "a.b", "a.b.c", "a..*", "b.*", "b", "a.",
                            "action.*", "action.move_agent"])
labels = st.sampled_from(["a", "a.b", "a.b.c", "a..x", "a.", "b", "b.c", "action.move_agent",
                          "action.transfer", "c"])


class _Route:
    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id


subscription_lists = st.lists(
    st.builds(lambda stage, kinds: CompiledSubscription(stage, tuple(kinds), None, None, 1),
              st.sampled_from(STAGES), st.lists(patterns, min_size=1, max_size=3)),
    max_size=4)
operations = st.lists(st.tuples(st.integers(1, 12), st.booleans(), subscription_lists),
                      max_size=40)


def scan(live: dict[int, tuple[CompiledSubscription, ...]], stage: str, label: str
         ) -> list[tuple[int, int]]:
    """(instance number, subscription index) of every match, the slow way."""
    return [(number, index) for number in sorted(live)
            for index, sub in enumerate(live[number])
            if sub.stage == stage and any(kind_matches(p, label) for p in sub.kinds)]


@settings(max_examples=300, deadline=None)
@given(operations, labels, st.sampled_from(STAGES[:3]))
def test_the_index_finds_what_a_scan_finds_in_install_order(
    ops: list[tuple[int, bool, list[CompiledSubscription]]], label: str, stage: str
) -> None:
    index = SubscriptionIndex()
    live: dict[int, tuple[CompiledSubscription, ...]] = {}
    for number, enter, subs in ops:
        instance_id = f"m#{number}"
        index.remove(instance_id)
        live.pop(number, None)
        if enter:
            index.add(instance_id, number, _Route(instance_id), subs)
            live[number] = tuple(subs)
    found = [entry.order for entry in index.matching(stage, label)]
    assert sorted(set(found)) == scan(live, stage, label)
    assert found == sorted(found)


@given(labels)
def test_a_label_is_looked_up_under_every_prefix_a_pattern_can_name(label: str) -> None:
    prefixes = set(label_prefixes(label))
    for cut in range(len(label) + 1):
        pattern = label[:cut] + "*"
        if pattern.endswith(".*") and pattern != ".*":
            assert (pattern[:-1] in prefixes) == kind_matches(pattern, label)


@given(st.integers(0, 30) | st.none(), st.integers(1, 5) | st.none(), st.integers(0, 40))
def test_next_due_is_the_first_due_time_not_before_start(
    anchor: int | None, every: int | None, start: int
) -> None:
    def is_due(time: int) -> bool:
        return (anchor is not None and every is not None and time >= anchor
                and (time - anchor) % every == 0)

    expected = next((t for t in range(start, start + 50) if is_due(t)), None)
    assert next_due(anchor, every, start) == expected


schedule_ops = st.lists(st.one_of(
    st.tuples(st.just("set"), st.integers(1, 6), st.integers(0, 25) | st.none(),
              st.integers(1, 4)),
    st.tuples(st.just("step"), st.booleans(), st.just(None), st.just(None)),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(schedule_ops)
def test_the_schedule_yields_exactly_the_due_instances(ops: list[Any]) -> None:
    """Whatever is scheduled, and whichever steps route ticks, the due list matches a scan."""
    schedule = TickSchedule()
    anchors: dict[str, tuple[int | None, int]] = {}
    time = 0

    def due_from(instance_id: str, start: int) -> int | None:
        anchor, every = anchors[instance_id]
        return next_due(anchor, every, start)

    for op, first, second, third in ops:
        if op == "set":
            instance_id = f"m#{first}"
            anchors[instance_id] = (second, third)
            schedule.set(instance_id, first, due_from(instance_id, time))
            continue
        time += 1
        if not first:  # a step that routes no ticks (World.step)
            continue
        expected = [f"m#{n}" for n in sorted(int(i[2:]) for i in anchors)
                    if due_from(f"m#{n}", time) == time]
        due = schedule.due(time, due_from)
        assert due == expected
        for instance_id in due:
            schedule.set(instance_id, int(instance_id[2:]), due_from(instance_id, time + 1))


def _set_active(world: World, agent: str, instance_id: str, active: bool) -> None:
    world.submit({"type": "module.set_active", "data": {
        "agent_id": agent, "instance_id": instance_id, "active": active}})


def test_a_reactivated_instance_keeps_its_install_order_and_its_tick_phase() -> None:
    world = world_with_agents("ada")
    observer = deploy(world, guest_wasm("observer"))
    for _ in range(3):
        install(world, "ada", manifest("m.obs", observer, kind="pure", subscriptions=[
            {"stage": "post_event", "event_kinds": ["domain.agent_moved"]},
            {"stage": "tick", "every_ticks": 3}]))
    _set_active(world, "ada", "m.obs#1", False)
    world.step_with_modules()
    _set_active(world, "ada", "m.obs#1", True)
    world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [1, 1]}})
    events = world.step_with_modules()
    called = [e.data["instance_id"] for e in events if e.kind == "module.emitted"
              and e.data["payload"]["stage"] == "post_event"]
    assert called == ["m.obs#1", "m.obs#2", "m.obs#3"]
    # Steps without routing skip ticks; the next routed step ticks whoever is due then.
    for _ in range(4):
        world.step()
    ticked: dict[int, list[str]] = {}
    for _ in range(6):
        events = world.step_with_modules()
        ticked[world.time] = [e.data["instance_id"] for e in events if e.kind == "module.emitted"]
    for time, instance_ids in ticked.items():
        expected = [i.instance_id for i in world.instances.values()
                    if (time - (i.tick_anchor or 0)) % 3 == 0]
        assert instance_ids == expected, time
    assert any(ticked.values())
