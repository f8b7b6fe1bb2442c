"""Who may do what: submitters, roles, module namespaces, pinned policy hooks, bounded overrides.

The four `test_door_*` tests reproduce the ways a hostile agent took other agents' modules over
before authority existed; each one failed then.
"""

from __future__ import annotations

from typing import Any

import pytest

from agentworld import World
from agentworld.errors import InvalidInputError
from agentworld.manifest import parse_manifest
from agentworld.testing.guests import guest_wasm
from worldkit import (
    constant_guest,
    deploy,
    events,
    install,
    manifest,
    policy_echo_guest,
    rule_guest,
    world_with_agents,
)


def act(world: World, submitter: str | None, action_type: str, **data: Any) -> int:
    """Submit one action as `submitter` (None: the system actor)."""
    return world.submit({"type": action_type, "data": data}, submitter=submitter)


def outcome(world: World, action_id: int) -> list[tuple[str, dict[str, Any]]]:
    """The domain events an action resulted in (its events or its rejection)."""
    return [(e.kind, e.data) for e in world.journal if e.caused_by is not None
            and e.caused_by["action"] == action_id and e.kind.startswith("domain.")]


def code_of(world: World, action_id: int) -> str | None:
    """The rejection code of an action, or None when it was not rejected."""
    codes = [data["code"] for kind, data in outcome(world, action_id)
             if kind == "domain.action_rejected"]
    return codes[0] if codes else None


def grant_role(world: World, agent: str, role: str = "rule_author") -> None:
    act(world, None, "grant_role", agent_id=agent, role=role)
    world.step()


def counters(*owners: str) -> tuple[World, str]:
    """A world of `owners`, each owning one counter instance `m.counter#n` (in order)."""
    world = world_with_agents(*owners)
    wasm_hash = deploy(world, guest_wasm("counter"))
    for owner in owners:
        assert install(world, owner, manifest("m.counter", wasm_hash),
                       submitter=owner)["kind"] == "domain.module_installed"
    return world, wasm_hash


# -- submitters ---------------------------------------------------------------------------------


ACTING = [
    ("register_agent", "agent_id", {"position": [0, 0]}),
    ("move_agent", "agent_id", {"to": [1, 1]}),
    ("transfer_resource", "from_agent_id", {"to_agent_id": "bob", "kind": "ore", "amount": 1}),
    ("module.deploy_artifact", "publisher_agent_id", {"wasm_bytes": b"x", "wasm_hash": "0" * 64}),
    ("module.install", "installer_agent_id", {"manifest": {}}),
    ("module.upgrade", "upgrader_agent_id",
     {"instance_id": "m.counter#1", "from_version": "1.0.0", "manifest": {}}),
    ("module.rollback", "operator_agent_id",
     {"instance_id": "m.counter#1", "target_version": "0.1.0"}),
    ("module.set_active", "agent_id", {"instance_id": "m.counter#1", "active": False}),
]


@pytest.mark.parametrize(("action_type", "field", "data"), ACTING)
@pytest.mark.parametrize("stepper", ["step", "step_with_modules"])
def test_an_action_acting_as_another_agent_is_refused(
    action_type: str, field: str, data: dict[str, Any], stepper: str,
) -> None:
    world, _ = counters("ada", "bob")
    action_id = act(world, "bob", action_type, **{field: "ada", **data})
    getattr(world, stepper)()
    assert code_of(world, action_id) == "actor_mismatch"
    (rejection,) = [e for e in world.journal if e.caused_by is not None
                    and e.caused_by["action"] == action_id]
    assert rejection.caused_by == {"action": action_id, "submitter": "bob"}
    assert "'bob' submitted it" in rejection.data["notes"][0]


@pytest.mark.parametrize(("action_type", "data"), [
    ("grant_capability", {"cap_ref": "cap.x", "allowed_effect_kinds": ["x.*"]}),
    ("grant_role", {"agent_id": "bob", "role": "rule_author"}),
    ("revoke_role", {"agent_id": "ada", "role": "rule_author"}),
    ("effect.receipt", {"intent_id": "intent-1", "status": "ok"}),
])
def test_system_only_actions_from_an_agent_are_refused(
    action_type: str, data: dict[str, Any],
) -> None:
    world = world_with_agents("ada", "bob")
    grant_role(world, "ada")
    action_id = act(world, "bob", action_type, **data)
    world.step_with_modules()
    assert code_of(world, action_id) == "not_system_actor"
    assert world.state.roles == {"ada": ["rule_author"]} and world.state.grants == {}


def test_the_system_actor_acts_as_any_agent_and_its_events_name_no_submitter() -> None:
    world, _ = counters("ada", "bob")
    moved = act(world, None, "move_agent", agent_id="ada", to=[4, 4])
    own = act(world, "bob", "move_agent", agent_id="bob", to=[5, 5])
    world.step_with_modules()
    assert world.state.agents["ada"].position == (4, 4)
    assert world.state.agents["bob"].position == (5, 5)
    causes = {e.caused_by["action"]: e.caused_by for e in world.journal  # type: ignore[index]
              if e.kind == "domain.agent_moved"}
    assert causes == {moved: {"action": moved}, own: {"action": own, "submitter": "bob"}}


def test_an_agent_registers_only_itself() -> None:
    world = World()
    mine = act(world, "ada", "register_agent", agent_id="ada", position=[0, 0])
    squat = act(world, "ada", "register_agent", agent_id="bob", position=[0, 0])
    world.step()
    assert code_of(world, mine) is None and code_of(world, squat) == "actor_mismatch"
    assert list(world.state.agents) == ["ada"]


@pytest.mark.parametrize("submitter", ["", "  ", 7, b"ada", "\ud800"])
def test_a_submitter_that_is_not_an_agent_id_is_the_hosts_error(submitter: Any) -> None:
    world = world_with_agents("ada")
    with pytest.raises(InvalidInputError, match="submitter"):
        world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [1, 1]}},
                     submitter=submitter)
    assert world.pending_action_ids == []


def test_queued_actions_keep_their_submitters_through_save_and_load(tmp_path: Any) -> None:
    world, _ = counters("ada", "bob")
    stolen = act(world, "bob", "module.set_active", agent_id="bob", instance_id="m.counter#1",
                 active=False)
    forged = act(world, "bob", "move_agent", agent_id="ada", to=[9, 9])
    world.save_to_dir(tmp_path / "w")
    loaded = World.load_from_dir(tmp_path / "w")
    loaded.step_with_modules()
    assert code_of(loaded, stolen) == "not_instance_owner"
    assert code_of(loaded, forged) == "actor_mismatch"
    assert loaded.instances["m.counter#1"].active


# -- roles --------------------------------------------------------------------------------------


def test_roles_are_granted_and_revoked_by_the_system_actor() -> None:
    world = world_with_agents("ada")
    ids = [act(world, None, "grant_role", agent_id="ada", role="rule_author"),
           act(world, None, "grant_role", agent_id="ada", role="rule_author"),
           act(world, None, "grant_role", agent_id="ada", role="admin"),
           act(world, None, "grant_role", agent_id="zed", role="rule_author")]
    world.step()
    assert [code_of(world, i) for i in ids] == [None, "role_held", "unknown_role",
                                                "agent_not_found"]
    assert outcome(world, ids[0]) == [("domain.role_granted",
                                       {"agent_id": "ada", "role": "rule_author"})]
    assert world.state.roles == {"ada": ["rule_author"]}
    ids = [act(world, None, "revoke_role", agent_id="ada", role="rule_author"),
           act(world, None, "revoke_role", agent_id="ada", role="rule_author")]
    world.step()
    assert [code_of(world, i) for i in ids] == [None, "role_not_held"]
    assert world.state.roles == {}


def rule_manifest(wasm_hash: str, module_id: str = "r.rule", **extra: Any) -> dict[str, Any]:
    return manifest(module_id, wasm_hash, kind="pure", subscriptions=[
        {"stage": "pre_action", "action_kinds": ["action.move_agent"]}], **extra)


def test_rule_modules_need_the_rule_author_role() -> None:
    world = world_with_agents("ada", "bob")
    allow = deploy(world, rule_guest("allow"))
    deny = deploy(world, rule_guest("deny"))
    refused = install(world, "bob", rule_manifest(allow), submitter="bob")
    assert refused["code"] == "role_required" and "rule_author" in refused["notes"][0]
    # Not a rule: no role needed. The system actor needs none either.
    plain = manifest("b.plain", allow, kind="pure", subscriptions=[])
    assert install(world, "bob", plain, submitter="bob")["kind"] == "domain.module_installed"
    grant_role(world, "bob")
    assert install(world, "bob", rule_manifest(allow),
                   submitter="bob")["kind"] == "domain.module_installed"
    act(world, None, "revoke_role", agent_id="bob", role="rule_author")
    world.step()
    upgrade = act(world, "bob", "module.upgrade", upgrader_agent_id="bob",
                  instance_id="r.rule#2", from_version="1.0.0",
                  manifest=rule_manifest(deny, version="2.0.0"))
    world.step()
    assert code_of(world, upgrade) == "role_required"
    by_system = act(world, None, "module.upgrade", upgrader_agent_id="bob",
                    instance_id="r.rule#2", from_version="1.0.0",
                    manifest=rule_manifest(deny, version="2.0.0"))
    world.step()
    assert code_of(world, by_system) is None
    back = act(world, "bob", "module.rollback", operator_agent_id="bob", instance_id="r.rule#2",
               target_version="1.0.0")
    world.step()
    assert code_of(world, back) == "role_required"
    assert world.instances["r.rule#2"].module_version == "2.0.0"


# -- module namespaces --------------------------------------------------------------------------


def test_the_first_registrant_owns_a_module_id() -> None:
    world, counter = counters("ada", "bob")
    sleeper = deploy(world, guest_wasm("sleeper"))
    assert world.state.modules["m.counter"].owner_agent_id == "ada"
    assert [i.owner_agent_id for i in world.instances.values()] == ["ada", "bob"]
    v2 = manifest("m.counter", sleeper, version="2.0.0")
    stolen = act(world, "bob", "module.upgrade", upgrader_agent_id="bob",
                 instance_id="m.counter#2", from_version="1.0.0", manifest=v2)
    squat = act(world, "bob", "module.install", installer_agent_id="bob",
                manifest=manifest("m.counter", counter, version="0.0.1"))
    world.step_with_modules()
    assert code_of(world, stolen) == code_of(world, squat) == "not_module_owner"
    assert "belongs to 'ada'" in outcome(world, stolen)[0][1]["notes"][0]
    # The owner registers it; then anyone may run it on their own instance.
    assert install(world, "ada", v2, activate=False,
                   submitter="ada")["kind"] == "domain.module_installed"
    upgraded = act(world, "bob", "module.upgrade", upgrader_agent_id="bob",
                   instance_id="m.counter#2", from_version="1.0.0", manifest=v2)
    world.step_with_modules()
    assert code_of(world, upgraded) is None
    assert world.state.manifest_registrants == {"m.counter@1.0.0": "ada",
                                                "m.counter@2.0.0": "ada"}


def test_the_system_actor_registers_in_a_namespace_as_its_owner() -> None:
    world, _ = counters("ada", "bob")
    sleeper = deploy(world, guest_wasm("sleeper"))
    v2 = manifest("m.counter", sleeper, version="2.0.0")
    as_bob = act(world, None, "module.upgrade", upgrader_agent_id="bob",
                 instance_id="m.counter#1", from_version="1.0.0", manifest=v2)
    as_owner = act(world, None, "module.upgrade", upgrader_agent_id="ada",
                   instance_id="m.counter#2", from_version="1.0.0", manifest=v2)
    world.step_with_modules()
    assert code_of(world, as_bob) == "not_module_owner"
    assert code_of(world, as_owner) is None  # bob's instance, upgraded by the host
    assert world.instances["m.counter#2"].module_version == "2.0.0"
    assert world.instances["m.counter#2"].owner_agent_id == "bob"


# -- policy hooks -------------------------------------------------------------------------------


def effect_world() -> World:
    world = world_with_agents("ada", "bob", "cy")
    act(world, None, "grant_capability", cap_ref="cap.bank", allowed_effect_kinds=["bank.*"])
    world.step()
    return world


def effector(world: World, module_id: str, version: str = "1.0.0") -> dict[str, Any]:
    return manifest(module_id, deploy(world, guest_wasm("effector_ref")), kind="pure",
                    version=version, required_caps=["cap.bank"],
                    abi_contract={"policy_hooks": ["p.guard"]})


def hook(wasm_hash: str, version: str = "1.0.0", kind: str = "pure") -> dict[str, Any]:
    return manifest("p.guard", wasm_hash, kind=kind, version=version,
                    subscriptions=[] if kind == "pure" else None)


DENY = {"emits": [{"kind": "policy.deny", "payload": {"reason": "ada says no"}}]}
ALLOW = {"emits": [{"kind": "policy.allow", "payload": {}}]}


def test_door_1_policy_hooks_cannot_be_taken_over_by_another_agents_version() -> None:
    world = effect_world()
    deny, allow = deploy(world, constant_guest(DENY)), deploy(world, constant_guest(ALLOW))
    install(world, "ada", hook(deny), activate=False, submitter="ada")
    installed = install(world, "ada", effector(world, "g.effector"), submitter="ada")
    # bob registers an always-allow p.guard@9.9.9, and a reducer p.guard@9.9.10.
    allowing = install(world, "bob", hook(allow, "9.9.9"), activate=False, submitter="bob")
    counter = deploy(world, guest_wasm("counter"))
    reducer = install(world, "bob", hook(counter, "9.9.10", "reducer"), activate=False,
                      submitter="bob")
    for _ in range(3):
        world.step_with_modules()
    assert world.pending_effects() == []
    assert allowing.get("code") == reducer.get("code") == "not_module_owner"
    failure = events(world, "module.call_failed")[-1]
    assert failure["code"] == "policy_denied"
    assert "p.guard@1.0.0 denied 'bank.pay': ada says no" in failure["detail"]
    assert installed.get("policy_hooks") == ["p.guard@1.0.0"]
    # Everyone can still name p.guard: it resolves to its owner's version.
    assert install(world, "cy", effector(world, "c.effector"),
                   submitter="cy")["policy_hooks"] == ["p.guard@1.0.0"]


def test_a_pinned_hook_changes_only_when_the_instance_is_upgraded() -> None:
    world = effect_world()
    deny, allow = deploy(world, constant_guest(DENY)), deploy(world, constant_guest(ALLOW))
    install(world, "ada", hook(deny), activate=False, submitter="ada")
    install(world, "bob", effector(world, "b.effector"), submitter="bob")
    install(world, "ada", hook(allow, "2.0.0"), activate=False, submitter="ada")
    world.step_with_modules()
    assert world.pending_effects() == []  # still pinned to p.guard@1.0.0
    assert world.instances["b.effector#2"].policy_hooks == ["p.guard@1.0.0"]
    upgrade = act(world, "bob", "module.upgrade", upgrader_agent_id="bob",
                  instance_id="b.effector#2", from_version="1.0.0",
                  manifest=effector(world, "b.effector", "1.1.0"))
    world.step_with_modules()
    (upgraded,) = [d for k, d in outcome(world, upgrade) if k == "domain.module_upgraded"]
    assert upgraded["policy_hooks"] == ["p.guard@2.0.0"]
    assert [intent.instance_id for intent in world.pending_effects()] == ["b.effector#2"]


def test_a_hook_must_be_a_pure_module_when_it_is_pinned() -> None:
    world = effect_world()
    counter = deploy(world, guest_wasm("counter"))
    install(world, "ada", hook(counter, kind="reducer"), activate=False, submitter="ada")
    refused = install(world, "bob", effector(world, "b.effector"), submitter="bob")
    assert refused["code"] == "invalid_manifest"
    assert any("p.guard@1.0.0) must be a pure module" in note for note in refused["notes"])


@pytest.mark.parametrize("ctx_key", ["module_id", "module_version", "manifest_hash"])
def test_a_hook_runs_with_its_own_modules_context(ctx_key: str) -> None:
    world = effect_world()
    echo = hook(deploy(world, policy_echo_guest(ctx_key)), version="3.1.0")
    install(world, "ada", echo, activate=False, submitter="ada")
    install(world, "bob", effector(world, "b.effector"), submitter="bob")
    world.step_with_modules()
    failure = events(world, "module.call_failed")[-1]
    expected = {"module_id": "p.guard", "module_version": "3.1.0",
                "manifest_hash": world.state.manifests["p.guard@3.1.0"].manifest_hash()}
    assert failure["instance_id"] == "b.effector#2"
    assert failure["detail"] == (f"policy hook p.guard@3.1.0 denied 'bank.pay': "
                                 f"{expected[ctx_key]}")


def test_a_long_deny_reason_is_cut_short_in_the_journal() -> None:
    world = effect_world()
    long = {"emits": [{"kind": "policy.deny", "payload": {"reason": "n" * 5000}}]}
    install(world, "ada", hook(deploy(world, constant_guest(long))), activate=False,
            submitter="ada")
    install(world, "bob", effector(world, "b.effector"), submitter="bob")
    world.step_with_modules()
    detail = events(world, "module.call_failed")[-1]["detail"]
    assert detail.endswith("n" * 200 + "...") and len(detail) < 300


# -- overrides ----------------------------------------------------------------------------------


def bob_rule(world: World, override: dict[str, Any]) -> None:
    """bob, a rule author, installs a rule rewriting his own moves into `override`."""
    grant_role(world, "bob")
    rule = manifest("b.rule", deploy(world, rule_guest("modify", override)), kind="pure",
                    subscriptions=[{"stage": "pre_action", "action_kinds": ["action.move_agent"],
                                    "filters": {"action": [{"path": "/data/agent_id",
                                                            "eq": "bob"}]}}])
    assert install(world, "bob", rule, submitter="bob")["kind"] == "domain.module_installed"


FORGED = [
    ({"type": "module.set_active",
      "data": {"agent_id": "ada", "instance_id": "m.counter#1", "active": False}},
     "must be a move_agent, not module.set_active"),
    ({"type": "module.rollback",
      "data": {"operator_agent_id": "ada", "instance_id": "m.counter#1",
               "target_version": "0.9.0"}},
     "must be a move_agent, not module.rollback"),
    ({"type": "module.upgrade",
      "data": {"upgrader_agent_id": "ada", "instance_id": "m.counter#1",
               "from_version": "1.0.0", "manifest": {}}},
     "must be a move_agent, not module.upgrade"),
    ({"type": "move_agent", "data": {"agent_id": "ada", "to": [66, 66]}},
     "must keep agent_id 'bob', not 'ada'"),
]


@pytest.mark.parametrize(("override", "problem"), FORGED)
def test_door_2_a_rules_override_cannot_forge_another_action(
    override: dict[str, Any], problem: str,
) -> None:
    world, counter = counters("ada", "bob")
    # ada's instance has a registered older version, so a forged rollback could succeed.
    install(world, "ada", manifest("m.counter", counter, version="0.9.0"), activate=False,
            submitter="ada")
    bob_rule(world, override)
    before = {i.instance_id: (i.active, i.module_version) for i in world.instances.values()}
    move = act(world, "bob", "move_agent", agent_id="bob", to=[3, 3])
    world.step_with_modules()
    assert code_of(world, move) == "rule_denied"  # fail-closed
    failure = events(world, "module.call_failed")[-1]
    assert (failure["instance_id"], failure["code"]) == ("b.rule#4", "invalid_output")
    assert problem in failure["detail"]
    assert {i.instance_id: (i.active, i.module_version)
            for i in world.instances.values()} == before
    assert world.state.agents["ada"].position == (0, 0)
    assert events(world, "rule.action_overridden") == []


def test_a_governance_action_can_only_be_allowed_or_denied() -> None:
    world, _ = counters("ada", "bob")
    grant_role(world, "bob")
    same = {"type": "module.set_active",
            "data": {"agent_id": "bob", "instance_id": "m.counter#2", "active": True}}
    rule = manifest("b.rule", deploy(world, rule_guest("modify", same)), kind="pure",
                    subscriptions=[{"stage": "pre_action",
                                    "action_kinds": ["action.module.set_active"]}])
    install(world, "bob", rule, submitter="bob")
    off = act(world, "bob", "module.set_active", agent_id="bob", instance_id="m.counter#2",
              active=False)
    world.step_with_modules()
    assert code_of(world, off) == "rule_denied"
    assert "can only be allowed or denied" in events(world, "module.call_failed")[-1]["detail"]


def test_an_override_keeps_the_submitter_and_passes_the_same_checks() -> None:
    world, _ = counters("ada", "bob")
    bob_rule(world, {"type": "move_agent", "data": {"agent_id": "bob", "to": [8, 8]}})
    move = act(world, "bob", "move_agent", agent_id="bob", to=[3, 3])
    world.step_with_modules()
    assert code_of(world, move) is None
    (moved,) = [e for e in world.journal if e.kind == "domain.agent_moved"]
    assert moved.data["to"] == [8, 8]
    assert moved.caused_by == {"action": move, "submitter": "bob"}


# -- governance by the system actor -------------------------------------------------------------


def test_door_4_a_failing_rule_module_cannot_lock_the_host_out() -> None:
    world, _ = counters("ada", "bob")
    trap = manifest("b.trap", deploy(world, guest_wasm("unreachable")), kind="pure",
                    subscriptions=[{"stage": "pre_action", "action_kinds": ["*"]}])
    assert install(world, "bob", trap, submitter="bob").get("code") == "role_required"
    grant_role(world, "bob")
    assert install(world, "bob", trap, submitter="bob")["kind"] == "domain.module_installed"
    # A rule author's failing rule denies everyone's actions, the system actor's moves too.
    own = act(world, "ada", "module.set_active", agent_id="ada", instance_id="m.counter#1",
              active=False)
    hosts_move = act(world, None, "move_agent", agent_id="ada", to=[2, 2])
    world.step_with_modules()
    assert code_of(world, own) == code_of(world, hosts_move) == "rule_denied"
    # The host's governance actions are never routed to pre_action.
    calls = len(events(world, "module.call_failed"))
    off = act(world, None, "module.set_active", agent_id="ada", instance_id="b.trap#3",
              active=False)
    world.step_with_modules()
    assert code_of(world, off) is None and not world.instances["b.trap#3"].active
    assert len(events(world, "module.call_failed")) == calls
    own = act(world, "ada", "module.set_active", agent_id="ada", instance_id="m.counter#1",
              active=False)
    world.step_with_modules()
    assert code_of(world, own) is None and not world.instances["m.counter#1"].active


def test_the_system_actor_may_change_any_instance() -> None:
    world, _ = counters("ada", "bob")
    sleeper = deploy(world, guest_wasm("sleeper"))
    install(world, "ada", manifest("m.counter", sleeper, version="2.0.0"), activate=False,
            submitter="ada")
    ids = [act(world, None, "module.set_active", agent_id="ada", instance_id="m.counter#2",
               active=False),
           act(world, None, "module.upgrade", upgrader_agent_id="ada",
               instance_id="m.counter#2", from_version="1.0.0",
               manifest=manifest("m.counter", sleeper, version="2.0.0")),
           act(world, None, "module.rollback", operator_agent_id="ada",
               instance_id="m.counter#2", target_version="1.0.0")]
    world.step_with_modules()
    assert [code_of(world, i) for i in ids] == [None, None, None]
    instance = world.instances["m.counter#2"]
    assert (instance.owner_agent_id, instance.module_version) == ("bob", "1.0.0")


# -- canonical identity -------------------------------------------------------------------------


def watch(wasm_hash: str, flag: Any, version: str = "1.0.0") -> dict[str, Any]:
    return manifest("m.watch", wasm_hash, kind="pure", version=version, subscriptions=[
        {"stage": "post_event", "event_kinds": ["domain.agent_moved"],
         "filters": {"event": [{"path": "/data/agent_id", "eq": flag}]}}])


def test_door_3_an_upgrade_runs_exactly_the_manifest_it_was_judged_on() -> None:
    world = world_with_agents("ada", "bob")
    observer = deploy(world, guest_wasm("observer"))
    install(world, "ada", watch(observer, True), submitter="ada")
    # bob pre-registers ada's next version with `1` where she will write `true`.
    squat = install(world, "bob", watch(observer, 1, "2.0.0"), activate=False, submitter="bob")
    candidate = watch(observer, True, "2.0.0")
    upgrade = act(world, "ada", "module.upgrade", upgrader_agent_id="ada",
                  instance_id="m.watch#1", from_version="1.0.0", manifest=candidate)
    world.step_with_modules()
    assert code_of(world, upgrade) is None
    assert squat.get("code") == "not_module_owner"
    judged = parse_manifest(candidate).manifest_hash()
    assert world.state.manifests["m.watch@2.0.0"].manifest_hash() == judged
    assert world.instances["m.watch#1"].manifest_hash == judged
    (upgraded,) = events(world, "domain.module_upgraded")
    assert upgraded["manifest_hash"] == judged


def test_a_registered_manifest_differs_from_one_with_1_for_true() -> None:
    world = world_with_agents("ada")
    observer = deploy(world, guest_wasm("observer"))
    install(world, "ada", watch(observer, True), submitter="ada")
    install(world, "ada", watch(observer, 1, "2.0.0"), activate=False, submitter="ada")
    for flag in (True, 1.0):
        upgrade = act(world, "ada", "module.upgrade", upgrader_agent_id="ada",
                      instance_id="m.watch#1", from_version="1.0.0",
                      manifest=watch(observer, flag, "2.0.0"))
        world.step_with_modules()
        assert code_of(world, upgrade) == "manifest_conflict"
    for instance in world.instances.values():
        key = f"{instance.module_id}@{instance.module_version}"
        assert instance.manifest_hash == world.state.manifests[key].manifest_hash()


@pytest.mark.parametrize(("path", "matching"), [("/data/amount", "m.w1"), ("/data/to", "m.w3")])
def test_filters_match_values_by_their_canonical_encoding(path: str, matching: str) -> None:
    world = world_with_agents("ada")
    observer = deploy(world, guest_wasm("observer"))
    values = [True, 1, 1.0, [1, 1], [True, 1], [1.0, 1]]
    for n, value in enumerate(values):
        install(world, "ada", manifest(f"m.w{n}", observer, kind="pure", subscriptions=[
            {"stage": "post_action", "action_kinds": ["action.*"],
             "filters": {"action": [{"path": path, "eq": value}]}}]))
    act(world, None, "transfer_resource", from_agent_id="ada", to_agent_id="ada", kind="ore",
        amount=1)
    act(world, None, "move_agent", agent_id="ada", to=[1, 1])
    world.step_with_modules()
    called = {e.data["module_id"] for e in world.journal if e.kind == "module.emitted"}
    assert called == {matching}
