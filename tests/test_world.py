from typing import Any

from agentworld import World
from agentworld.actions import GrantCapability, MoveAgent, RegisterAgent, TransferResource
from agentworld.world import rebuild_state


def register(agent_id: str, x: int = 0, y: int = 0, **resources: int) -> dict[str, Any]:
    return {"type": "register_agent",
            "data": {"agent_id": agent_id, "position": [x, y], "resources": resources}}


def last_rejection(world: World) -> dict[str, Any]:
    event = world.journal[-1]
    assert event.kind == "domain.action_rejected"
    return event.data


def test_time_starts_at_zero_and_each_step_advances_it() -> None:
    world = World()
    assert world.time == 0 and len(world.journal) == 0
    world.step()
    world.step_with_modules()
    assert world.time == 2


def test_submit_returns_increasing_action_ids_and_events_cite_them() -> None:
    world = World()
    first = world.submit(register("ada", ore=5))
    second = world.submit(RegisterAgent(agent_id="bob", position=(1, 1)))
    assert (first, second) == (1, 2)
    events = world.step()
    assert [e.id for e in events] == [1, 2]
    assert [e.caused_by for e in events] == [{"action": 1}, {"action": 2}]
    assert all(e.time == 1 for e in events)
    assert events[0].kind == "domain.agent_registered"
    assert events[0].data == {"agent_id": "ada", "position": [0, 0], "resources": {"ore": 5}}
    assert world.state.agents["bob"].position == (1, 1)


def test_move_transfer_and_grant() -> None:
    world = World()
    world.submit(register("ada", ore=5))
    world.submit(register("bob"))
    world.submit(MoveAgent(agent_id="ada", to=(2, 3)))
    world.submit(TransferResource(from_agent_id="ada", to_agent_id="bob", kind="ore", amount=5))
    world.submit(GrantCapability(cap_ref="cap.bank", allowed_effect_kinds=("bank.*",)))
    world.step()
    kinds = [e.kind for e in world.journal]
    assert kinds == ["domain.agent_registered", "domain.agent_registered", "domain.agent_moved",
                     "domain.resource_transferred", "domain.capability_granted"]
    assert world.journal[2].data == {"agent_id": "ada", "from": [0, 0], "to": [2, 3]}
    assert world.state.agents["ada"].resources == {}
    assert world.state.agents["bob"].resources == {"ore": 5}
    assert world.state.grants["cap.bank"].allowed_effect_kinds == ["bank.*"]


def test_each_refusal_is_an_event_with_a_code_and_notes() -> None:
    world = World()
    world.submit(register("ada", ore=1))
    world.step()
    cases = [
        (register("ada"), "agent_exists"),
        (register(" "), "invalid_agent_id"),
        (register("neg", ore=-1), "invalid_resources"),
        ({"type": "move_agent", "data": {"agent_id": "ghost", "to": [1, 1]}}, "agent_not_found"),
        ({"type": "transfer_resource", "data": {"from_agent_id": "ada", "to_agent_id": "ghost",
                                                "kind": "ore", "amount": 1}}, "agent_not_found"),
        ({"type": "transfer_resource", "data": {"from_agent_id": "ada", "to_agent_id": "ada",
                                                "kind": "ore", "amount": 1}}, "same_agent"),
        ({"type": "transfer_resource", "data": {"from_agent_id": "ada", "to_agent_id": "ada",
                                                "kind": "ore", "amount": 0}}, "invalid_amount"),
        ({"type": "grant_capability", "data": {"cap_ref": "c", "allowed_effect_kinds": ["x"],
                                               "expires_at": 1}}, "already_expired"),
        ({"type": "grant_capability", "data": {"cap_ref": "c", "allowed_effect_kinds": []}},
         "invalid_effect_kinds"),
    ]
    for action, code in cases:
        action_id = world.submit(action)
        world.step()
        rejection = last_rejection(world)
        assert rejection["code"] == code, action
        assert rejection["action_id"] == action_id
        assert rejection["notes"] and all(isinstance(n, str) for n in rejection["notes"])
    world.submit(register("bob"))
    world.submit({"type": "transfer_resource", "data": {"from_agent_id": "ada",
                  "to_agent_id": "bob", "kind": "ore", "amount": 2}})
    world.step()
    assert last_rejection(world)["code"] == "insufficient_resources"
    assert world.state.agents["ada"].resources == {"ore": 1}


def test_malformed_actions_are_rejected_with_every_problem_listed() -> None:
    world = World()
    world.submit({"type": "register_agent", "data": {"agent_id": 7, "position": ["0", 0],
                                                     "colour": "red"}})
    world.submit({"type": "teleport", "data": {}})
    world.submit({"type": "move_agent", "data": {"agent_id": "a", "to": [True, 1.5]}})
    world.submit(42)
    world.step()
    rejections = [e.data for e in world.journal]
    assert [r["code"] for r in rejections] == ["invalid_action"] * 4
    first = " ".join(rejections[0]["notes"])
    assert "agent_id" in first and "position" in first and "colour" in first
    assert "unknown action type 'teleport'" in rejections[1]["notes"]
    assert len(rejections[2]["notes"]) == 2  # neither a bool nor a float is an int
    assert world.state.agents == {}


def test_state_root_is_stable_and_rebuilt_from_the_journal() -> None:
    world = World()
    empty_root = world.state_root()
    assert len(empty_root) == 64 and empty_root == World().state_root()
    world.submit(register("ada", ore=3))
    world.submit(register("bob"))
    world.step()
    world.submit(TransferResource(from_agent_id="ada", to_agent_id="bob", kind="ore", amount=3))
    world.step()
    assert world.state_root() != empty_root
    rebuilt = rebuild_state(world.journal)
    assert rebuilt == world.state


def test_journal_is_read_only() -> None:
    world = World()
    assert not hasattr(world.journal, "append")
