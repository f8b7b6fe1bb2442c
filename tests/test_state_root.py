"""The incremental state root always equals the root computed from scratch.

`state_root()` keeps a hash tree over each map of the state and updates the path above each
entry an event changes (the appliers declare what every event changes); these properties
compare it, after random changes and random scripts, with `reference_root` below: the
definition written out plainly, building every tree from nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_routing_properties import modular_world

from agentworld.apply import APPLIERS, CHANGES, apply_event, changes
from agentworld.canonical import canonical_hash, canonical_json
from agentworld.convert import unstructure
from agentworld.model import Agent, EffectIntent, Event, WorldState
from agentworld.stateroot import LEAF, StateRoot
from golden_scenarios import SCENARIOS


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _node(entries: list[tuple[bytes, bytes]], depth: int) -> bytes:
    """The hash of the trie node holding `entries` (key digest, entry hash) at `depth`."""
    if len(entries) <= LEAF or depth == 64:
        return _sha(b"\x01" + b"".join(entry for _, entry in sorted(entries)))
    nibble = (lambda d: d[depth // 2] & 15) if depth % 2 else (lambda d: d[depth // 2] >> 4)
    return _sha(b"\x02" + b"".join(
        _node([item for item in entries if nibble(item[0]) == n], depth + 1)
        for n in range(16)))


def reference_root(state: WorldState) -> str:
    """The state root as its definition states it, from nothing."""
    fields = {}
    for name, value in unstructure(state).items():
        if isinstance(getattr(state, name), dict):
            fields[name] = _node([
                (_sha(key.encode()), _sha(b"\x00" + canonical_json(key) + b":"
                                          + canonical_json(entry)))
                for key, entry in value.items()], 0).hex()
        else:
            fields[name] = canonical_hash(value)
    return canonical_hash(fields)


from_scratch = reference_root


keys = st.one_of(st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "~", "é", "ab"]),
                st.integers(0, 399).map(lambda n: f"k{n}"))
edits = st.lists(st.one_of(
    # Hundreds of entries at once (branches split), and thinning them out (branches merge).
    st.tuples(st.just("fill"), st.just(""), st.integers(0, 400)),
    st.tuples(st.just("thin"), st.sampled_from(["2", "3", "5", "40"]), st.integers(0, 4)),
    st.tuples(st.just("agent"), keys, st.integers(-3, 3)),
    st.tuples(st.just("agent"), keys, st.integers(-3, 3)),
    st.tuples(st.just("drop_agent"), keys, st.just(0)),
    st.tuples(st.just("root"), st.just(""), st.just(0)),
    st.tuples(st.just("effect"), keys, st.integers(0, 3)),
    st.tuples(st.just("drop_effect"), keys, st.just(0)),
    st.tuples(st.just("counter"), st.sampled_from(["instance_counter", "effect_counter"]),
              st.integers(0, 9)),
    st.tuples(st.just("root"), st.just(""), st.just(0)),
), max_size=80)


@settings(max_examples=500, deadline=None)
@given(edits, st.booleans())
@example([("agent", key, 0) for key in "abcd"] + [("root", "", 0), ("drop_agent", "b", 0)],
         False)
def test_any_sequence_of_entry_changes_keeps_the_root_exact(
    ops: list[tuple[str, str, int]], check_every_edit: bool
) -> None:
    """Inserts, replacements and deletions anywhere in a map."""
    state = WorldState()
    root = StateRoot(state)
    for op, key, number in ops:
        if op == "fill":
            for n in range(number):
                state.agents[f"k{n}"] = Agent(f"k{n}", (n, number), {})
                root.touch("agents", f"k{n}")
        elif op == "thin":
            for n in range(400):
                if n % int(key) != number % int(key) and f"k{n}" in state.agents:
                    del state.agents[f"k{n}"]
                    root.touch("agents", f"k{n}")
        elif op == "agent":
            state.agents[key] = Agent(key, (number, 0), {"ore": number} if number else {})
            root.touch("agents", key)
        elif op == "drop_agent":
            state.agents.pop(key, None)
            root.touch("agents", key)
        elif op == "effect":
            state.pending_effects[key] = EffectIntent(key, "m#1", "m", "t", "k",
                                                      {"n": number}, "cap", number)
            root.touch("pending_effects", key)
        elif op == "drop_effect":
            state.pending_effects.pop(key, None)
            root.touch("pending_effects", key)
        elif op == "counter":
            setattr(state, key, number)
            root.touch(key)
        if op == "root" or check_every_edit:
            assert root.hexdigest() == from_scratch(state)
    assert root.hexdigest() == from_scratch(state)


def test_a_map_growing_entry_by_entry_then_shrinking_keeps_the_root_exact() -> None:
    """Every size from 0 to 300 and back: each split and each merge of a branch happens."""
    state = WorldState()
    root = StateRoot(state)
    names = [f"k{n}" for n in range(300)]
    for name in names:
        state.agents[name] = Agent(name, (0, 0), {})
        root.touch("agents", name)
        assert root.hexdigest() == reference_root(state)
    for name in names[::7] + [name for index, name in enumerate(names) if index % 7]:
        del state.agents[name]
        root.touch("agents", name)
        assert root.hexdigest() == reference_root(state)


def replay_touching_only_what_events_declare(journal: Iterable[Event]) -> str:
    """Apply `journal` to an empty state, telling the root only the changes each event
    declares; after every event the root must equal the one computed from nothing."""
    state = WorldState()
    root = StateRoot(state)
    for event in journal:
        declared = changes(state, event)
        apply_event(state, event)
        assert declared is not None
        for name, key in declared:
            root.touch(name, key)
        assert root.hexdigest() == from_scratch(state), event
    return root.hexdigest()


cells = st.sampled_from([[13, 13], [7, 7], [1, 2], [0, 0]])
agents = st.sampled_from(["ada", "bob", "zed", "ghost"])
actions = st.one_of(
    st.builds(lambda a, c: {"type": "move_agent", "data": {"agent_id": a, "to": c}}, agents, cells),
    st.builds(lambda a, b, n: {"type": "transfer_resource", "data": {
        "from_agent_id": a, "to_agent_id": b, "kind": "ore", "amount": n}},
        agents, agents, st.integers(1, 3)),
    st.builds(lambda a, i, on: {"type": "module.set_active", "data": {
        "agent_id": a, "instance_id": i, "active": on}},
        agents, st.sampled_from(["m.counter#3", "m.obs#2"]), st.booleans()),
    st.builds(lambda name: {"type": "register_agent", "data": {
        "agent_id": name, "position": [0, 0], "resources": {"ore": 1}}},
        st.text(alphabet="abcxyz", min_size=1, max_size=3)),
    st.builds(lambda verb, agent: {"type": f"{verb}_role", "data": {
        "agent_id": agent, "role": "rule_author"}},
        st.sampled_from(["grant", "revoke"]), agents),
    st.builds(lambda cap, until: {"type": "grant_capability", "data": {
        "cap_ref": cap, "allowed_effect_kinds": ["bank.*"], "expires_at": until}},
        st.sampled_from(["cap.a", "cap.b"]), st.sampled_from([None, 99])),
)
scripts = st.lists(st.tuples(st.lists(actions, max_size=4), st.booleans()),
                   min_size=1, max_size=6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts)
def test_a_world_root_equals_the_root_from_scratch_after_every_step_and_event(
    script: list[tuple[list[dict[str, Any]], bool]],
) -> None:
    world = modular_world()
    for batch, with_modules in script:
        for action in batch:
            world.submit(json.loads(json.dumps(action)))
        if with_modules:
            world.step_with_modules()
        else:
            world.step()
        assert world.state_root() == from_scratch(world.state)
    replay_touching_only_what_events_declare(world.journal)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_event_kind_declares_what_it_changes(name: str) -> None:
    """The golden scenarios (upgrades, rollbacks, effects, receipts, failures), event by event."""
    world = SCENARIOS[name]()
    assert replay_touching_only_what_events_declare(world.journal) == world.state_root()


def test_every_applier_declares_what_it_changes() -> None:
    assert set(CHANGES) == set(APPLIERS)
