"""What enters a world is plain JSON: free-form values refuse bytes, user-defined types never
reach the journal, `submit` never raises, and a `WorldConfig` that cannot run is refused."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agentworld import World, WorldConfig
from agentworld.errors import InvalidInputError
from agentworld.executor import CallLimits
from agentworld.testing.guests import guest_wasm
from agentworld.world import MAX_LIMITS, event_to_json
from worldkit import deploy, events, install, manifest, world_with_agents


def effect_world() -> World:
    """A world with one pending effect intent from the shipped effector guest."""
    world = world_with_agents("ada")
    world.submit({"type": "grant_capability", "data": {
        "cap_ref": "cap.bank", "allowed_effect_kinds": ["bank.*"], "expires_at": None}})
    world.step()
    install(world, "ada", manifest("m.effector", deploy(world, guest_wasm("effector")),
                                   kind="pure", required_caps=["cap.bank"],
                                   abi_contract={"cap_slots": {"pay": "cap.bank"}}))
    world.step_with_modules()
    assert world.pending_effects()
    return world


def test_bytes_in_a_receipt_result_are_refused_alike_live_and_after_a_reload(
    tmp_path: Path,
) -> None:
    live = effect_world()
    (intent,) = live.pending_effects()
    live.submit({"type": "effect.receipt", "data": {
        "intent_id": intent.intent_id, "status": "ok", "result": {"proof": b"\x00\x01"}}})
    live.save_to_dir(tmp_path)
    loaded = World.load_from_dir(tmp_path)
    for world in (live, loaded):
        world.step_with_modules()
        (refusal,) = events(world, "domain.action_rejected")
        assert refusal["code"] == "invalid_action"
        assert any("$.data.result.proof: bytes are not a JSON value" in note
                   for note in refusal["notes"]), refusal
        assert intent.intent_id in world.state.pending_effects  # still unanswered
    assert [event_to_json(e) for e in loaded.journal] == [event_to_json(e) for e in live.journal]


def test_bytes_anywhere_in_a_manifest_are_refused() -> None:
    world = world_with_agents("ada")
    counter = deploy(world, guest_wasm("counter"))
    result = install(world, "ada", manifest("m.counter", counter, input_schema={"x": b"\x00"}))
    assert result["code"] == "invalid_action"
    assert any("$.data.manifest.input_schema.x: bytes are not a JSON value" in note
               for note in result["notes"]), result


def test_declared_bytes_fields_still_take_bytes_or_base64() -> None:
    world = world_with_agents("ada")
    assert deploy(world, guest_wasm("counter")) in world.state.artifacts


class RaisingMapping(Mapping[str, Any]):
    """A mapping whose items cannot be read."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(["type", "data"])

    def __len__(self) -> int:
        return 2


class FussyText(str):
    """Text that refuses to be hashed or compared."""

    def __hash__(self) -> int:
        raise TypeError("no hashing")

    def __eq__(self, other: object) -> bool:
        raise TypeError("no comparing")


class FussyNumber(int):
    """A number that refuses to be compared."""

    def __lt__(self, other: object) -> bool:
        raise TypeError("no comparing")

    __le__ = __gt__ = __ge__ = __lt__


class Shouting(str):
    """Text whose str() lies."""

    def __str__(self) -> str:
        return "LIES"


def test_submit_never_raises_and_user_types_never_reach_the_journal() -> None:
    world = World()
    ids = [
        world.submit(RaisingMapping()),
        world.submit({"type": FussyText("register_agent"),
                      "data": {"agent_id": FussyText("ada"), "position": [0, 0]}}),
        world.submit({"type": "register_agent",
                      "data": {"agent_id": "bob", "position": [FussyNumber(3), 0],
                               "resources": {Shouting("gold"): FussyNumber(2)}}}),
    ]
    assert ids == [1, 2, 3] and world.pending_action_ids == ids
    produced = world.step()
    refused = [e.data for e in produced if e.kind == "domain.action_rejected"]
    assert [(r["action_id"], r["code"]) for r in refused] == [(1, "invalid_action")]
    assert "cannot be read: KeyError" in refused[0]["notes"][0]
    assert world.state.agents["bob"].resources == {"gold": 2}
    assert world.state.agents["bob"].position == (3, 0)
    for event in world.journal:
        for value in _leaves(event.data):
            assert type(value) in {str, int, bool, type(None)}, (event.kind, type(value))
    assert world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [1, 1]}}) == 4


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


@pytest.mark.parametrize(("changes", "problem"), [
    ({"default_limits": CallLimits(max_gas=-1)}, "default_limits.max_gas must be a positive"),
    ({"max_limits": CallLimits(max_call_ms=0)}, "max_limits.max_call_ms must be a positive"),
    ({"default_limits": CallLimits(max_call_ms=MAX_LIMITS.max_call_ms + 1)},
     "default_limits.max_call_ms (10001) is above max_limits.max_call_ms (10000)"),
    ({"max_limits": CallLimits(max_gas=2**64)}, "below 2**63"),
    ({"default_limits": CallLimits(max_emits=True)}, "default_limits.max_emits must be"),
    ({"world_id": ""}, "world_id must be a non-empty string"),
])
def test_a_world_config_that_cannot_run_is_refused(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid world config") as refused:
        WorldConfig(**changes)
    assert problem in str(refused.value)


def test_a_saved_world_with_an_unusable_config_is_corrupt(tmp_path: Path) -> None:
    import json

    from agentworld.canonical import canonical_json, sha256_hex
    from agentworld.persistence import GENERATIONS, METADATA, SNAPSHOT, CorruptWorldError

    World().save_to_dir(tmp_path)
    generation = tmp_path / GENERATIONS / "00000001"
    snapshot = json.loads((generation / SNAPSHOT).read_bytes())
    snapshot["config"]["default_limits"]["max_gas"] = -1
    data = canonical_json(snapshot)
    (generation / SNAPSHOT).write_bytes(data)
    meta = json.loads((generation / METADATA).read_bytes())
    meta["snapshot_sha256"] = sha256_hex(data)
    (generation / METADATA).write_bytes(canonical_json(meta))
    with pytest.raises(CorruptWorldError, match="max_gas must be a positive"):
        World.load_from_dir(tmp_path)
