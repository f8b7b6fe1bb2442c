"""Modules in the world: artifacts, manifests, instances and routing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentworld import World, WorldConfig
from agentworld.apply import apply_event
from agentworld.canonical import sha256_hex
from agentworld.model import Event, WorldState
from agentworld.routing import ModuleHaltError, RuleDecision, merge_decisions
from agentworld.stateroot import state_root
from agentworld.testing.guests import guest_wasm
from agentworld.world import event_to_json, rebuild_state
from worldkit import (
    constant_guest,
    counter_value,
    deploy,
    events,
    install,
    manifest,
    world_with_agents,
)


@pytest.fixture
def world() -> World:
    return world_with_agents("ada", "bob", "cy")


def counter_manifest(world: World, **extra: object) -> dict[str, object]:
    return manifest("m.counter", deploy(world, guest_wasm("counter")), **extra)


# -- artifacts and manifests --------------------------------------------------------------------


def test_deploy_records_hash_and_size_never_bytes(world: World) -> None:
    wasm = guest_wasm("counter")
    wasm_hash = deploy(world, wasm)
    deployed = events(world, "domain.module_artifact_deployed")
    assert deployed == [{"publisher_agent_id": "ada", "wasm_hash": wasm_hash, "size": len(wasm),
                         "exports": ["memory", "alloc", "reduce", "reduce_packed",
                                     "reduce_retarea"]}]
    assert world.store.get_blob(wasm_hash) == wasm
    assert all(b"wasm_bytes" not in event_to_json(e) for e in world.journal)
    deploy(world, wasm)  # idempotent
    assert len(world.state.artifacts) == 1


@pytest.mark.parametrize(("wasm", "claimed", "code"), [
    (b"\0asm\1\0\0\0", "0" * 64, "hash_mismatch"),
    (b"not wasm at all", None, "invalid_artifact"),
])
def test_deploy_refusals(world: World, wasm: bytes, claimed: str | None, code: str) -> None:
    world.submit({"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": "ada", "wasm_bytes": wasm, "wasm_hash": claimed or sha256_hex(wasm)}})
    world.step_with_modules()
    assert world.journal[-1].data["code"] == code


def test_a_deploy_above_max_artifact_bytes_is_refused() -> None:
    wasm = guest_wasm("counter")
    for limit, code in ((len(wasm) - 1, "artifact_too_large"), (len(wasm), None)):
        world = World(config=WorldConfig(max_artifact_bytes=limit))
        world.submit({"type": "register_agent", "data": {"agent_id": "ada", "position": [0, 0]}})
        world.submit({"type": "module.deploy_artifact", "data": {
            "publisher_agent_id": "ada", "wasm_bytes": wasm, "wasm_hash": sha256_hex(wasm)}})
        world.step_with_modules()
        assert world.journal[-1].data.get("code") == code
    assert world.journal[-1].kind == "domain.module_artifact_deployed"


def test_the_gas_schedule_is_pinned_by_the_world_config() -> None:
    assert World().config.gas_schedule == 2
    assert WorldConfig(gas_schedule=1).gas_schedule == 1
    with pytest.raises(ValueError, match="gas_schedule 7 is unknown"):
        WorldConfig(gas_schedule=7)


def test_manifest_validation_lists_every_problem(world: World) -> None:
    bad = {
        "module_id": "Bad Id", "name": " ", "version": "1", "kind": "reducer",
        "wasm_hash": "f" * 64, "interface_version": "wasm-9", "exports": ["memory"],
        "subscriptions": [
            {"stage": "tick", "event_kinds": ["x"]},
            {"stage": "post_event", "event_kinds": ["domain.*"],
             "filters": {"event": [{"path": "data/agent_id", "eq": "ada"}]}},
            {"stage": "pre_action", "action_kinds": ["move_agent"]},
            {"stage": "tick"},
        ],
        "required_caps": ["cap.none"],
        "abi_contract": {"input_schema": "in", "cap_slots": {"pay": "cap.other"},
                         "policy_hooks": ["bad-id"]},
        "limits": {"max_gas": 10**12},
    }
    result = install(world, "ada", bad)
    assert result["code"] == "invalid_manifest"
    notes = "\n".join(result["notes"])
    for fragment in ["module_id 'Bad Id'", "name must not be blank", "wasm-9",
                     "entrypoint 'reduce'", "tick subscription takes no kinds",
                     "not a JSON pointer", "must start with 'action.'", "come in pairs",
                     "cap slot 'pay'", "policy hook 'bad-id'", "limits.max_gas",
                     "at most one tick subscription",
                     "'cap.none' is not granted", "is not deployed"]:
        assert fragment in notes, fragment
    assert len(result["notes"]) >= 13


def test_manifest_exports_must_be_real(world: World) -> None:
    claims = counter_manifest(world, exports=["memory", "alloc", "reduce", "reduce_v2"])
    result = install(world, "ada", claims)
    assert result["code"] == "invalid_manifest"
    assert result["notes"] == [f"export 'reduce_v2' is not exported by artifact "
                               f"{claims['wasm_hash']}"]
    pure_without_call = {**counter_manifest(world), "kind": "pure",
                         "exports": ["memory", "alloc", "call"]}
    assert "export 'call' is not exported" in install(world, "ada", pure_without_call)[
        "notes"][0]


def test_unknown_manifest_fields_are_refused(world: World) -> None:
    extra = counter_manifest(world, colour="red")
    result = install(world, "ada", extra)
    assert result["code"] == "invalid_manifest" and "colour" in " ".join(result["notes"])


def test_registry_is_immutable_per_module_version(world: World) -> None:
    original = counter_manifest(world)
    assert install(world, "ada", original)["kind"] == "domain.module_installed"
    assert install(world, "bob", original)["kind"] == "domain.module_installed"
    assert len(events(world, "domain.module_registered")) == 1
    changed = {**original, "name": "something else"}
    result = install(world, "ada", changed)
    assert result["code"] == "manifest_conflict"


# -- instances ---------------------------------------------------------------------------------


def test_two_instances_count_their_own_ticks(world: World) -> None:
    counter = counter_manifest(world)
    first = install(world, "ada", counter)
    second = install(world, "bob", counter, target={"type": "location", "location_id": "hub"})
    assert (first["instance_id"], second["instance_id"]) == ("m.counter#1", "m.counter#2")
    assert first["install_target"] == {"type": "self_agent"}
    assert world.instances["m.counter#1"].owner_agent_id == "ada"
    assert world.instances["m.counter#2"].owner_agent_id == "bob"
    assert world.instances["m.counter#2"].install_target == {"type": "location",
                                                             "location_id": "hub"}
    for _ in range(5):
        world.step_with_modules()
    # Installed one step apart, the first has seen one tick more.
    assert counter_value(world, "m.counter#1") == 6
    assert counter_value(world, "m.counter#2") == 5
    updates = [e for e in world.journal if e.kind == "module.state_updated"]
    assert all(e.caused_by is None for e in updates)
    assert all(e.data["trace_id"] == f"tick-{e.time}-{e.data['instance_id']}" for e in updates)
    emitted = events(world, "module.emitted")
    assert emitted[-1]["kind"] == "counter.ticked"
    assert emitted[-1]["payload"] == {"count": 5}

    third = install(world, "cy", counter)
    assert third["instance_id"] == "m.counter#3"
    world.submit({"type": "module.set_active",
                  "data": {"agent_id": "ada", "instance_id": "m.counter#1", "active": False}})
    for _ in range(3):
        world.step_with_modules()
    assert counter_value(world, "m.counter#1") == 7  # ticked at install step, then stopped
    assert counter_value(world, "m.counter#2") == 9
    assert counter_value(world, "m.counter#3") == 3


def test_only_the_owner_sets_active(world: World) -> None:
    install(world, "ada", counter_manifest(world))
    world.submit({"type": "module.set_active",
                  "data": {"agent_id": "bob", "instance_id": "m.counter#1", "active": False}},
                 submitter="bob")
    world.step_with_modules()
    assert events(world, "domain.action_rejected")[-1]["code"] == "not_instance_owner"
    assert world.instances["m.counter#1"].active


def test_install_inactive_then_activate(world: World) -> None:
    install(world, "ada", counter_manifest(world), activate=False)
    world.step_with_modules()
    assert world.module_state("m.counter#1") == b""
    world.submit({"type": "module.set_active",
                  "data": {"agent_id": "ada", "instance_id": "m.counter#1", "active": True}})
    world.step_with_modules()
    # Activation takes effect in the same step: ticks are routed after the step's actions.
    assert counter_value(world, "m.counter#1") == 1


def test_every_ticks_wake_after_and_suspend(world: World) -> None:
    wasm = {name: deploy(world, guest_wasm(name)) for name in ("counter", "sleeper", "suspender")}
    install(world, "ada", manifest("m.every3", wasm["counter"],
                                   subscriptions=[{"stage": "tick", "every_ticks": 3}]))
    install(world, "ada", manifest("m.sleeper", wasm["sleeper"]))
    install(world, "ada", manifest("m.suspender", wasm["suspender"]))
    for _ in range(12):
        world.step_with_modules()
    assert counter_value(world, "m.every3#1") == 4
    # Installed 13 steps before the end, ticking at +1 and then sleeping 3 ticks each time.
    assert counter_value(world, "m.sleeper#2") == 5
    assert counter_value(world, "m.suspender#3") == 1
    scheduled = events(world, "module.tick_scheduled")
    assert {"instance_id": "m.suspender#3", "next_tick": None} in [
        {k: s[k] for k in ("instance_id", "next_tick")} for s in scheduled]


def test_old_install_event_without_instance_id_loads_with_defaults(world: World) -> None:
    counter = counter_manifest(world)
    install(world, "ada", counter)
    registered = next(e for e in world.journal if e.kind == "domain.module_registered")
    state = rebuild_state([e for e in world.journal if e.kind != "domain.module_installed"])
    old_shape = {"installer_agent_id": "bob", "module_id": "m.counter",
                 "module_version": "1.0.0"}
    apply_event(state, Event(999, 7, None, "domain.module_installed", old_shape))
    instance = state.instances["m.counter#1"]
    assert instance.owner_agent_id == "bob" and instance.active
    assert instance.install_target == {"type": "self_agent"}
    assert instance.wasm_hash == registered.data["manifest"]["wasm_hash"]
    assert isinstance(state, WorldState)


# -- failure isolation ---------------------------------------------------------------------------


def test_infinite_loop_fails_each_tick_while_counters_count(world: World) -> None:
    install(world, "ada", counter_manifest(world))
    looping = manifest("m.loop", deploy(world, guest_wasm("loop")), kind="pure",
                       limits={"max_gas": 200_000})
    install(world, "bob", looping)
    before = len(events(world, "module.call_failed"))
    for _ in range(4):
        world.step_with_modules()
    failures = events(world, "module.call_failed")[before:]
    assert [f["code"] for f in failures] == ["out_of_fuel"] * 4
    assert all(f["instance_id"] == "m.loop#2" and f["stage"] == "tick" for f in failures)
    assert counter_value(world, "m.counter#1") == 6
    assert world.module_state("m.loop#2") == b""
    assert not [e for e in world.journal if e.data.get("instance_id") == "m.loop#2"
                and e.kind.startswith(("module.", "effect.")) and e.kind != "module.call_failed"]


def test_halt_option_undoes_the_step_and_reports_the_failure() -> None:
    world = world_with_agents("ada", config=WorldConfig(halt_on_module_failure=True))
    install(world, "ada", manifest("m.trap", deploy(world, guest_wasm("unreachable")),
                                   kind="pure"))
    before = (world.time, len(world.journal), world.state_root())
    moved = world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [1, 1]}})
    for _ in range(2):  # the same halt again: nothing of the first attempt stayed
        with pytest.raises(ModuleHaltError, match=r"m\.trap#1") as raised:
            world.step_with_modules()
        failed = raised.value.event
        assert failed.kind == "module.call_failed" and failed.data["stage"] == "tick"
        assert failed.id == before[1] + 2  # after the move's event, where it would have gone
        assert (world.time, len(world.journal), world.state_root()) == before
        assert world.pending_action_ids == [moved]


# -- rules and observers -----------------------------------------------------------------------


def rule_world() -> World:
    world = world_with_agents("ada", "bob")
    rule = manifest("m.rule", deploy(world, guest_wasm("rule")), kind="pure", role="rule",
                    subscriptions=[{"stage": "pre_action", "action_kinds": ["action.move_agent"]}])
    observer = manifest("m.observer", deploy(world, guest_wasm("observer")), kind="pure",
                        role="observer",
                        subscriptions=[{"stage": "post_action", "action_kinds": ["action.*"]}])
    install(world, "ada", rule)
    install(world, "ada", observer)
    return world


def test_rule_denies_rewrites_and_allows_and_observer_sees_the_effective_action() -> None:
    world = rule_world()
    denied = world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [13, 13]}})
    rewritten = world.submit({"type": "move_agent", "data": {"agent_id": "bob", "to": [7, 7]}})
    allowed = world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [2, 2]}})
    world.step_with_modules()
    decisions = {d["action_id"]: d for d in events(world, "rule.decision_recorded")}
    assert decisions[denied]["verdict"] == "deny"
    assert decisions[rewritten]["verdict"] == "modify"
    assert decisions[allowed]["verdict"] == "allow"
    rejected = events(world, "domain.action_rejected")
    assert rejected[-1]["action_id"] == denied and rejected[-1]["code"] == "rule_denied"
    assert "13,13" in " ".join(rejected[-1]["notes"])
    (override,) = events(world, "rule.action_overridden")
    assert override["override_action"] == {"type": "move_agent",
                                           "data": {"agent_id": "bob", "to": [8, 8]}}
    assert world.state.agents["bob"].position == (8, 8)
    assert world.state.agents["ada"].position == (2, 2)
    saw = {e.caused_by["action"]: e.data["payload"] for e in world.journal  # type: ignore[index]
           if e.kind == "module.emitted" and e.data["kind"] == "observer.saw"}
    assert saw[rewritten]["stage"] == "post_action"
    assert saw[rewritten]["action"]["data"] == {"agent_id": "bob", "to": [8, 8]}
    assert saw[rewritten]["event"]["kind"] == "domain.agent_moved"
    assert saw[rewritten]["event"]["data"]["to"] == [8, 8]
    assert saw[denied]["event"]["kind"] == "domain.action_rejected"
    trace_ids = [e.data["trace_id"] for e in world.journal if e.kind == "module.emitted"]
    assert f"action-{rewritten}-m.observer#2" in trace_ids


def test_merge_deny_beats_modify_beats_allow_and_conflicting_overrides_deny() -> None:
    move = {"type": "move_agent", "data": {"agent_id": "a", "to": [1, 1]}}
    other = {"type": "move_agent", "data": {"agent_id": "a", "to": [2, 2]}}
    allow, deny = RuleDecision("r#1", "allow", None, ""), RuleDecision("r#2", "deny", None, "no")
    modify = RuleDecision("r#3", "modify", move, "")
    assert merge_decisions([allow], [])[0] == "allow"
    assert merge_decisions([allow, modify], [])[:2] == ("modify", move)
    assert merge_decisions([modify, deny, allow], [])[0] == "deny"
    same_override = RuleDecision("r#4", "modify", dict(move), "")
    assert merge_decisions([modify, same_override], [])[0] == "modify"
    verdict, _, notes = merge_decisions([modify, RuleDecision("r#4", "modify", other, "")], [])
    assert verdict == "deny" and "conflicting" in notes[-1]
    assert merge_decisions([allow], ["r#9"])[0] == "deny"


def test_failing_pre_action_module_denies_its_action() -> None:
    world = world_with_agents("ada")
    trap = manifest("m.trap", deploy(world, guest_wasm("unreachable")), kind="pure",
                    subscriptions=[{"stage": "pre_action", "action_kinds": ["action.move_agent"]}])
    install(world, "ada", trap)
    action_id = world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [5, 5]}})
    world.step_with_modules()
    assert events(world, "module.call_failed")[-1]["code"] == "trap"
    assert events(world, "domain.action_rejected")[-1] == {
        "action_id": action_id, "code": "rule_denied",
        "notes": ["m.trap#1: module call failed (fail-closed)"]}
    assert world.state.agents["ada"].position == (0, 0)


def test_event_filter_routes_only_that_agents_events() -> None:
    world = world_with_agents("ada", "bob")
    observer = manifest(
        "m.watch", deploy(world, guest_wasm("observer")), kind="pure",
        subscriptions=[{"stage": "post_event", "event_kinds": ["domain.agent_moved"],
                        "filters": {"event": [{"path": "/data/agent_id", "eq": "bob"}]}}])
    install(world, "ada", observer)
    world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [1, 1]}})
    world.submit({"type": "move_agent", "data": {"agent_id": "bob", "to": [2, 2]}})
    world.submit({"type": "move_agent", "data": {"agent_id": "bob", "to": [3, 3]}})
    world.step_with_modules()
    seen = [e.data for e in world.journal if e.kind == "module.emitted"]
    assert [s["payload"]["event"]["data"]["to"] for s in seen] == [[2, 2], [3, 3]]
    moved = [e for e in world.journal if e.kind == "domain.agent_moved"]
    assert [s["trace_id"] for s in seen] == [f"event-{e.id}-m.watch#1" for e in moved[1:]]


@pytest.mark.parametrize(("filters", "reason"), [
    ({"event": [{"path": "/data/x", "re": "(unclosed"}]}, "invalid regular expression"),
    ({"event": [{"path": "/data/x", "eq": 1, "ne": 2}]}, "exactly one of"),
    ({"event": {"all": [], "some": []}}, "unknown RuleSet keys"),
    ({"action": [{"path": "/data/x", "eq": 1}]}, "'action' filters do not apply"),
    ({"event": [{"path": "/data/x", "gt": [1]}]}, "compares numbers or strings"),
])
def test_invalid_filters_are_refused_at_install(filters: object, reason: str) -> None:
    world = world_with_agents("ada")
    bad = manifest("m.watch", deploy(world, guest_wasm("observer")), kind="pure",
                   subscriptions=[{"stage": "post_event", "event_kinds": ["domain.*"],
                                   "filters": filters}])
    result = install(world, "ada", bad)
    assert result["code"] == "invalid_manifest"
    assert reason in " ".join(result["notes"])


# -- effects -------------------------------------------------------------------------------------


def effect_world(expires_at: int | None = None) -> World:
    world = world_with_agents("ada")
    world.submit({"type": "grant_capability", "data": {
        "cap_ref": "cap.bank", "allowed_effect_kinds": ["bank.*"], "expires_at": expires_at}})
    world.step()
    return world


def effect_manifest(world: World, guest: str, **extra: object) -> dict[str, object]:
    return manifest(f"m.{guest}", deploy(world, guest_wasm(guest)), kind="pure",
                    required_caps=["cap.bank"], **extra)


def test_accepted_effect_is_queued_and_answered_by_receipt() -> None:
    world = effect_world()
    install(world, "ada", effect_manifest(world, "effector",
                                          abi_contract={"cap_slots": {"pay": "cap.bank"}}))
    world.step_with_modules()
    (intent,) = world.pending_effects()
    assert (intent.kind, intent.params, intent.cap_ref) == ("bank.pay", {"amount": 1}, "cap.bank")
    world.submit({"type": "effect.receipt",
                  "data": {"intent_id": intent.intent_id, "status": "ok", "result": {"paid": 1}}})
    world.step()
    assert events(world, "effect.receipt_recorded")[0]["intent_id"] == intent.intent_id
    assert intent.intent_id not in world.state.pending_effects


def assert_refused(world: World, code: str) -> None:
    world.step_with_modules()
    failure = events(world, "module.call_failed")[-1]
    assert failure["code"] == code
    assert world.pending_effects() == []
    assert events(world, "effect.queued") == []


def test_unbound_slot_is_refused() -> None:
    world = effect_world()
    install(world, "ada", effect_manifest(world, "effector"))
    assert_refused(world, "caps_denied")
    assert "slot 'pay' is not bound" in events(world, "module.call_failed")[-1]["detail"]


def test_expired_cap_is_refused() -> None:
    world = effect_world(expires_at=6)  # granted at t=2
    install(world, "ada", effect_manifest(world, "effector_ref"))  # installed at t=4
    world.step_with_modules()  # t=5: the grant still holds
    assert len(world.pending_effects()) == 1
    world.step_with_modules()  # t=6: expired
    failure = events(world, "module.call_failed")[-1]
    assert failure["code"] == "caps_denied" and "expired at 6" in failure["detail"]
    assert len(world.pending_effects()) == 1 and len(events(world, "effect.queued")) == 1


def test_ungranted_cap_is_refused() -> None:
    world = world_with_agents("ada")
    wasm_hash = deploy(world, guest_wasm("effector_ref"))
    install(world, "ada", manifest("m.effector_ref", wasm_hash, kind="pure"))
    assert_refused(world, "caps_denied")
    assert "not in the manifest's required_caps" in events(world, "module.call_failed")[-1][
        "detail"]


@pytest.mark.parametrize(("policy_output", "code"), [
    ({"emits": [{"kind": "policy.deny", "payload": {}}]}, "policy_denied"),
    ({"emits": [{"kind": "policy.allow", "payload": {}}]}, None),
])
def test_policy_hook_decides(policy_output: dict[str, object], code: str | None) -> None:
    world = effect_world()
    policy = manifest("m.policy", deploy(world, constant_guest(policy_output)), kind="pure",
                      subscriptions=[])
    install(world, "ada", policy)
    install(world, "ada", effect_manifest(world, "effector_ref",
                                          abi_contract={"policy_hooks": ["m.policy"]}))
    if code is None:
        world.step_with_modules()
        (intent,) = world.pending_effects()
        assert (intent.kind, intent.params, intent.cap_ref, intent.instance_id) == (
            "bank.pay", {"amount": 1}, "cap.bank", "m.effector_ref#2")
    else:
        assert_refused(world, code)


# -- determinism -------------------------------------------------------------------------------


def scripted_world() -> World:
    world = rule_world()
    wasm_hash = deploy(world, guest_wasm("counter"))
    install(world, "bob", manifest("m.counter", wasm_hash))
    install(world, "ada", manifest("m.loop", deploy(world, guest_wasm("loop")), kind="pure",
                                   limits={"max_gas": 100_000}))
    for step in range(6):
        world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [7 + step % 2, 7]}})
        world.submit({"type": "move_agent", "data": {"agent_id": "bob", "to": [13, 13]}})
        world.step_with_modules()
    return world


def test_same_actions_same_journal_and_replay_gives_the_root() -> None:
    first, second = scripted_world(), scripted_world()
    lines = [event_to_json(e) for e in first.journal]
    assert lines == [event_to_json(e) for e in second.journal]
    assert first.state_root() == second.state_root()
    kinds = {e.kind for e in first.journal}
    assert {"module.state_updated", "module.call_failed", "rule.decision_recorded",
            "module.emitted", "rule.action_overridden"} <= kinds
    replayed = rebuild_state(Event(**json.loads(line)) for line in lines)

    assert state_root(replayed) == first.state_root()


def test_trace_ids_and_origins_for_action_event_and_tick_calls() -> None:
    world = world_with_agents("ada")
    observer = deploy(world, guest_wasm("observer"))
    install(world, "ada", manifest("m.obs", observer, kind="pure", subscriptions=[
        {"stage": "pre_action", "action_kinds": ["action.move_agent"]},
        {"stage": "post_event", "event_kinds": ["domain.agent_moved"]},
        {"stage": "tick", "every_ticks": 2},
    ]))
    action_id = world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [1, 0]}})
    for _ in range(6):
        world.step_with_modules()
    seen = [(e.caused_by, e.data["payload"]) for e in world.journal
            if e.kind == "module.emitted"]
    moved = next(e for e in world.journal if e.kind == "domain.agent_moved")
    by_stage = {payload["stage"]: (cause, payload) for cause, payload in seen}
    cause, pre = by_stage["pre_action"]
    assert cause == {"action": action_id}
    assert pre["origin"] == {"kind": "action", "id": action_id}
    assert pre["trace_id"] == f"action-{action_id}-m.obs#1"
    assert pre["action"] == {"action_id": action_id, "type": "move_agent",
                             "data": {"agent_id": "ada", "to": [1, 0]}}
    cause, post = by_stage["post_event"]
    assert cause == {"action": action_id}
    assert post["origin"] == {"kind": "event", "id": moved.id}
    assert post["trace_id"] == f"event-{moved.id}-m.obs#1"
    assert post["event"]["data"] == moved.data
    ticks = [(e.time, e.caused_by, e.data["payload"]) for e in world.journal
             if e.kind == "module.emitted" and e.data["payload"]["stage"] == "tick"]
    assert ticks
    for time, cause, tick in ticks:
        assert cause is None
        assert tick["origin"] == {"kind": "tick", "id": time}
        assert tick["trace_id"] == f"tick-{time}-m.obs#1"
    installed_at = next(e.time for e in world.journal if e.kind == "domain.module_installed")
    assert [time for time, _, _ in ticks] == list(range(installed_at + 2, world.time + 1, 2))


def test_an_unavailable_engine_refuses_deploys_and_fails_calls_with_a_code(
    tmp_path: Path,
) -> None:
    working = world_with_agents("ada")
    install(working, "ada", manifest("m.counter", deploy(working, guest_wasm("counter"))))
    working.save_to_dir(tmp_path)
    broken = World.load_from_dir(tmp_path, executor="no-such-engine")
    wasm = guest_wasm("observer")
    broken.submit({"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": "ada", "wasm_bytes": wasm, "wasm_hash": sha256_hex(wasm)}})
    broken.step_with_modules()
    assert events(broken, "domain.action_rejected")[-1]["code"] == "engine_unavailable"
    failure = events(broken, "module.call_failed")[-1]
    assert failure["code"] == "engine_unavailable" and "no-such-engine" in failure["detail"]


def test_post_action_sees_the_event_an_install_resulted_in() -> None:
    world = world_with_agents("ada")
    install(world, "ada", manifest(
        "m.obs", deploy(world, guest_wasm("observer")), kind="pure",
        subscriptions=[{"stage": "post_action", "action_kinds": ["action.module.install"]}]))
    install(world, "ada", manifest("m.counter", deploy(world, guest_wasm("counter"))))
    # An instance is routed to from the moment it is installed: it sees its own install too.
    own, other = [e.data["payload"] for e in world.journal if e.kind == "module.emitted"
                  and e.data["kind"] == "observer.saw"]
    assert own["event"]["data"]["instance_id"] == "m.obs#1"
    assert other["event"]["kind"] == "domain.module_installed"
    assert other["event"]["data"]["instance_id"] == "m.counter#2"


def test_modules_see_a_deploy_without_its_bytes() -> None:
    world = world_with_agents("ada")
    install(world, "ada", manifest(
        "m.obs", deploy(world, guest_wasm("observer")), kind="pure",
        subscriptions=[{"stage": "pre_action", "action_kinds": ["action.module.*"]}]))
    wasm = guest_wasm("counter")
    wasm_hash = deploy(world, wasm, submitter="ada")  # the system actor's would skip pre_action
    (saw,) = [e.data["payload"] for e in world.journal if e.kind == "module.emitted"]
    assert saw["action"]["data"] == {"publisher_agent_id": "ada", "wasm_hash": wasm_hash,
                                     "size": len(wasm)}
    assert max(len(event_to_json(e)) for e in world.journal) < len(wasm)
