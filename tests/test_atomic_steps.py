"""A step is all or nothing: whatever raises in the middle of it, the world is exactly as it was
before (time, journal, state with its maps' order, queue), and carrying on gives the journal of
a run in which nothing failed (property test over random scripts and failure points)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentworld import World
from agentworld.canonical import ordered_json
from agentworld.convert import unstructure
from agentworld.executor import CallRequest, ModuleCallError, ModuleOutput
from agentworld.testing.guests import guest_wasm
from agentworld.world import event_to_json
from worldkit import deploy, install, manifest, world_with_agents


class EngineCrash(RuntimeError):
    """What a broken engine raises: not a module failure, so the step cannot go on."""


class CrashingExecutor:
    """The world's real executor, except that its `fuse`-th call from now on raises."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.fuse: int | None = None

    def _burn(self) -> None:
        if self.fuse is not None:
            self.fuse -= 1
            if self.fuse < 0:
                self.fuse = None
                raise EngineCrash("the engine went away")

    def call(self, request: CallRequest) -> ModuleOutput:
        self._burn()
        return self.inner.call(request)  # type: ignore[no-any-return]

    def call_batch(self, requests: Sequence[CallRequest]) -> list[ModuleOutput | ModuleCallError]:
        results = []
        for request in requests:
            self._burn()
            results.extend(self.inner.call_batch([request]))
        return results

    def check_artifact(self, wasm: bytes, gas_schedule: int = 1) -> list[str]:
        return self.inner.check_artifact(wasm, gas_schedule)  # type: ignore[no-any-return]

    def close(self) -> None:
        pass


def effect_world(executor: CrashingExecutor | None = None) -> World:
    """Counters, an observer and two effectors whose effects wait for receipts."""
    world = world_with_agents("ada", "bob", "cy", **({"executor": executor} if executor else {}))
    world.submit({"type": "grant_capability", "data": {
        "cap_ref": "cap.bank", "allowed_effect_kinds": ["bank.*"], "expires_at": None}})
    world.step()
    effector = deploy(world, guest_wasm("effector_ref"))
    for module_id in ("e.pay", "e.also"):
        install(world, "ada", manifest(module_id, effector, kind="pure",
                                       required_caps=["cap.bank"],
                                       subscriptions=[{"stage": "tick", "every_ticks": 2}]))
    install(world, "bob", manifest("m.counter", deploy(world, guest_wasm("counter"))))
    install(world, "cy", manifest("m.obs", deploy(world, guest_wasm("observer")), kind="pure",
                                  subscriptions=[{"stage": "post_event",
                                                  "event_kinds": ["domain.*"]}]))
    return world


agents = st.sampled_from(["ada", "bob", "cy"])
actions = st.one_of(
    st.builds(lambda a, x: {"type": "move_agent", "data": {"agent_id": a, "to": [x, 1]}},
              agents, st.integers(0, 9)),
    st.builds(lambda n, status: {"type": "effect.receipt", "data": {
        "intent_id": f"intent-{n}", "status": status}},
        st.integers(1, 12), st.sampled_from(["ok", "error"])),
    st.builds(lambda verb, a: {"type": f"{verb}_role", "data": {
        "agent_id": a, "role": "rule_author"}}, st.sampled_from(["grant", "revoke"]), agents),
    st.builds(lambda on: {"type": "module.set_active", "data": {
        "agent_id": "ada", "instance_id": "e.also#2", "active": on}}, st.booleans()),
)
steps = st.lists(st.tuples(st.lists(actions, max_size=4), st.integers(0, 4) | st.none(),
                           st.booleans()), min_size=1, max_size=6)


def fingerprint(world: World) -> tuple[Any, ...]:
    """Everything a failed step must leave as it was, maps' order included."""
    return (world.time, [event_to_json(e) for e in world.journal], world.state_root(),
            ordered_json(unstructure(world.state)), world.pending_action_ids)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_a_failed_step_changes_nothing_and_the_run_ends_as_one_without_failures(
    script: list[tuple[list[dict[str, Any]], int | None, bool]],
) -> None:
    plain = effect_world()
    crashing = CrashingExecutor(plain.executor)
    world = effect_world(crashing)
    assert fingerprint(world) == fingerprint(plain)
    for batch, fuse, with_modules in script:
        for target in (plain, world):
            for action in batch:
                target.submit(json.loads(json.dumps(action)))
        (plain.step_with_modules if with_modules else plain.step)()
        if fuse is not None and with_modules:
            before = fingerprint(world)
            crashing.fuse = fuse
            try:
                world.step_with_modules()
            except EngineCrash:
                assert fingerprint(world) == before
            else:  # the step made fewer calls than the fuse: it went through
                crashing.fuse = None
                assert fingerprint(world) == fingerprint(plain)
                continue
        (world.step_with_modules if with_modules else world.step)()
        assert fingerprint(world) == fingerprint(plain)


def test_a_failed_step_puts_deleted_entries_back_in_their_place() -> None:
    """Receipts delete pending effects and revoking a last role deletes the agent's roles; an
    undone step restores both maps in their order, not with the restored entries last."""
    crashing = CrashingExecutor(effect_world().executor)
    world = effect_world(crashing)
    for agent in ("bob", "ada", "cy"):
        world.submit({"type": "grant_role", "data": {"agent_id": agent, "role": "rule_author"}})
    for _ in range(4):
        world.step_with_modules()
    assert len(world.pending_effects()) >= 3
    world.submit({"type": "effect.receipt", "data": {"intent_id": "intent-1", "status": "ok"}})
    world.submit({"type": "revoke_role", "data": {"agent_id": "bob", "role": "rule_author"}})
    before = fingerprint(world)
    crashing.fuse = 1
    with pytest.raises(EngineCrash):
        world.step_with_modules()
    assert fingerprint(world) == before
    assert list(world.state.roles) == ["bob", "ada", "cy"]


def test_an_image_is_not_changed_by_later_steps() -> None:
    world = effect_world()
    world.submit({"type": "grant_role", "data": {"agent_id": "bob", "role": "rule_author"}})
    world.step_with_modules()
    image = world.image()
    frozen = (ordered_json(unstructure(image.state)), len(image.journal), image.state_root)
    world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [5, 5]}})
    world.submit({"type": "revoke_role", "data": {"agent_id": "bob", "role": "rule_author"}})
    world.submit({"type": "module.set_active", "data": {
        "agent_id": "ada", "instance_id": "e.also#2", "active": False}})
    for _ in range(3):
        world.step_with_modules()
    assert (ordered_json(unstructure(image.state)), len(image.journal),
            image.state_root) == frozen
    assert world.state_root() != image.state_root
