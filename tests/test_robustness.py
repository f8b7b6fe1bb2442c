"""No input crashes the world or loses data: hostile actions, failing stores, halts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentworld import World, WorldConfig, hookimpl
from agentworld.canonical import sha256_hex
from agentworld.errors import StoreError
from agentworld.manager import PluginManager
from agentworld.plugins.memory_store import MemoryStore
from agentworld.routing import ModuleHaltError
from agentworld.testing.guests import guest_wasm
from worldkit import deploy, events, install, manifest, world_with_agents


def deep(levels: int) -> object:
    value: object = "x"
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(("action", "fragment"), [
    ({"type": "module.install", "data": {"installer_agent_id": "ada", "manifest": [1]}},
     "invalid_manifest: $: expected an object"),
    ({"type": "module.install", "data": {"installer_agent_id": "ada", "manifest": "m"}},
     "invalid_manifest: $: expected an object"),
    ({"type": "register_agent", "data": {"agent_id": "\ud800", "position": [0, 0]}},
     "lone surrogate"),
    ({"type": "register_agent", "data": {"agent_id": "a", "position": [0, 0], 1: 2}},
     "is not a string"),
    ({1: 2, "type": "register_agent"}, "is not a string"),
    ({"type": "register_agent", "data": {"agent_id": "a", "position": [0, 0],
                                         "resources": {"x": float("nan")}}}, "finite"),
    ({"type": "module.install", "data": {"installer_agent_id": "ada", "manifest": {
        "abi_contract": {"input_schema": deep(3000)}}}}, "nested deeper"),
    ({"type": "register_agent", "data": {"agent_id": "a", "position": [0, 0],
                                         "resources": {"x": object()}}}, "not JSON data"),
])
def test_hostile_actions_are_rejected_never_raised(action: object, fragment: str) -> None:
    world = world_with_agents("ada")
    action_id = world.submit(action)
    later = world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [1, 1]}})
    world.step_with_modules()
    rejection = events(world, "domain.action_rejected")[0]
    code, _, fragment = fragment.partition(": ") if fragment.startswith("invalid_") else (
        "invalid_action", "", fragment)
    assert rejection["action_id"] == action_id and rejection["code"] == code
    assert fragment in " ".join(rejection["notes"]), rejection["notes"]
    assert events(world, "domain.agent_moved")[0]["agent_id"] == "ada"
    assert later not in world.pending_action_ids
    assert len(world.state_root()) == 64  # the state still encodes canonically


class BrokenStore:
    """A store whose writes fail, as an unreachable S3 endpoint's would."""

    uri = "broken://"

    def __init__(self, uri: str) -> None:
        self.blobs: dict[str, bytes] = {}

    def put_blob(self, wasm_hash: str, data: bytes) -> None:
        raise StoreError("broken://: endpoint unreachable")

    def get_blob(self, wasm_hash: str) -> bytes:
        raise StoreError("broken://: endpoint unreachable")

    def has_blob(self, wasm_hash: str) -> bool:
        return False


class BrokenStorePlugin:
    @hookimpl
    def agentworld_register_module_stores(self, register: Callable[..., None]) -> None:
        register("broken", BrokenStore)


@pytest.mark.parametrize("stepper", ["step", "step_with_modules"])
def test_a_store_outage_stops_the_step_and_keeps_the_actions_queued(stepper: str) -> None:
    plugins = PluginManager(entrypoints=False, environ={})
    plugins.register(BrokenStorePlugin(), name="broken")
    world = world_with_agents("ada", store="broken://", plugins=plugins)
    wasm = guest_wasm("counter")
    deploy_id = world.submit({"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": "ada", "wasm_bytes": wasm, "wasm_hash": sha256_hex(wasm)}})
    move_id = world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [1, 1]}})
    before = len(world.journal)
    with pytest.raises(StoreError, match="unreachable"):
        getattr(world, stepper)()
    assert world.pending_action_ids == [deploy_id, move_id]
    assert len(world.journal) == before


def test_halt_undoes_the_whole_step_and_keeps_every_action_queued() -> None:
    world = world_with_agents("ada", config=WorldConfig(halt_on_module_failure=True))
    install(world, "ada", manifest(
        "m.trap", deploy(world, guest_wasm("unreachable")), kind="pure",
        subscriptions=[{"stage": "pre_action", "action_kinds": ["action.move_agent"]}]))
    first = world.submit({"type": "register_agent", "data": {"agent_id": "bob",
                                                             "position": [0, 0]}})
    halted = world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [1, 1]}})
    later = world.submit({"type": "register_agent", "data": {"agent_id": "cy",
                                                             "position": [0, 0]}})
    length = len(world.journal)
    with pytest.raises(ModuleHaltError, match=r"m\.trap#1 failed at pre_action"):
        world.step_with_modules()
    assert len(world.journal) == length
    assert "bob" not in world.state.agents and "cy" not in world.state.agents
    assert world.pending_action_ids == [first, halted, later]


def test_missing_bytes_fail_even_when_a_shared_executor_has_the_module_cached(
    tmp_path: object,
) -> None:
    from pathlib import Path

    directory = Path(str(tmp_path))
    world = world_with_agents("ada")
    install(world, "ada", manifest("m.counter", deploy(world, guest_wasm("counter"))))
    world.step_with_modules()  # the executor now holds the compiled module
    world.save_to_dir(directory)
    for blob in (directory / "modules" / "blobs" / "sha256").iterdir():
        blob.unlink()
    bare = World.load_from_dir(directory, executor=world.executor)
    assert bare.missing_artifacts() == [next(iter(world.state.artifacts))]
    bare.step_with_modules()
    failure = events(bare, "module.call_failed")[-1]
    assert failure["code"] == "artifact_missing"
    assert str(directory) not in failure["detail"]  # the journal never depends on paths


def test_many_worlds_share_one_engine() -> None:
    # Each engine reserves address space; one per world used to exhaust the process's memory
    # mappings at about 32 worlds and abort the interpreter.
    worlds = []
    for _ in range(60):
        world = world_with_agents("ada")
        install(world, "ada", manifest("m.counter", deploy(world, guest_wasm("counter"))))
        world.step_with_modules()
        worlds.append(world)
    assert len({id(world.executor) for world in worlds}) == 1
    assert all(world.module_state("m.counter#1") for world in worlds)


class FlakyStore(MemoryStore):
    """A working store whose writes can be made to fail, as during a network outage."""

    failing = False

    def put_blob(self, wasm_hash: str, data: bytes) -> None:
        if self.failing:
            raise StoreError("flaky://: endpoint unreachable")
        super().put_blob(wasm_hash, data)


def test_an_action_seen_by_pre_action_modules_is_retried_whole_when_its_step_fails() -> None:
    store = FlakyStore("flaky://")
    world = world_with_agents("ada", store=store)
    install(world, "ada", manifest(
        "m.obs", deploy(world, guest_wasm("observer")), kind="pure",
        subscriptions=[{"stage": "pre_action", "action_kinds": ["action.*"]}]))
    wasm = guest_wasm("counter")
    store.failing = True
    deploy_id = world.submit({"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": "ada", "wasm_bytes": wasm, "wasm_hash": sha256_hex(wasm)}},
        submitter="ada")  # the system actor's would skip pre_action
    length = len(world.journal)
    with pytest.raises(StoreError):
        world.step_with_modules()
    assert world.pending_action_ids == [deploy_id]
    assert len(world.journal) == length  # the step is undone, the observer's call included
    store.failing = False
    world.step_with_modules()
    assert sha256_hex(wasm) in world.state.artifacts
    seen = [e for e in world.journal if e.kind == "module.emitted"
            and e.caused_by == {"action": deploy_id, "submitter": "ada"}]
    assert len(seen) == 1  # the journal holds the step that succeeded, as if none failed


def test_a_loaded_world_routes_in_install_order_like_the_saved_one(tmp_path: object) -> None:
    from pathlib import Path

    world = world_with_agents("ada")
    world.submit({"type": "grant_capability", "data": {"cap_ref": "cap.bank",
                                                       "allowed_effect_kinds": ["bank.*"]}})
    effector = deploy(world, guest_wasm("effector_ref"))
    # Installed in an order that sorting by id would reverse.
    for module_id in ("z.pay", "a.pay", "m.pay"):
        install(world, "ada", manifest(module_id, effector, kind="pure",
                                       required_caps=["cap.bank"]))
    world.save_to_dir(Path(str(tmp_path)))
    loaded = World.load_from_dir(Path(str(tmp_path)))
    live_events = world.step_with_modules()
    loaded_events = loaded.step_with_modules()
    assert [e.data for e in live_events] == [e.data for e in loaded_events]
    assert [e.data["instance_id"] for e in live_events if e.kind == "effect.queued"] == [
        "z.pay#1", "a.pay#2", "m.pay#3"]
    assert loaded.state_root() == world.state_root()
    assert [i.intent_id for i in loaded.pending_effects()] == [
        i.intent_id for i in world.pending_effects()]


@pytest.mark.parametrize("action", [
    {"type": "register_agent", "data": {"agent_id": "a", "position": [10**5000, 0]}},
    {"type": "register_agent", "data": {"agent_id": "a", "position": [2**64, 0]}},
    {"type": "grant_capability", "data": {"cap_ref": "c", "allowed_effect_kinds": "bank.*"}},
    {"type": "move_agent", "data": {"agent_id": "ada", "to": [1, 2, 3]}},
])
def test_out_of_range_integers_and_strings_for_lists_are_refused(action: object) -> None:
    world = world_with_agents("ada")
    world.submit(action)
    world.step()
    assert events(world, "domain.action_rejected")[0]["code"] == "invalid_action"
    assert len(world.state_root()) == 64
