"""The demo's commit log: who submits what, height by height.

`demo_heights(n)` scripts a world of four agents (ada, bob, cy and mal, who runs hostile
modules) through the whole product: artifacts deployed and installed as owned instances on
their owners and at locations, a rule module that allows, denies and rewrites moves, an observer,
ticking counters, effects answered by the host with receipts, a hostile module stopped by its gas
and another by its memory limit, refusals for acting as someone else and for touching someone
else's instance, an accepted upgrade that migrates state, an incompatible one refused with every
violation, and a rollback. Heights after the script are quiet ticks with an occasional move.

Everything here is a pure function of the height count: the same log, byte for byte, on every
run, machine and engine. Bytes (the artifacts) travel as base64 text, as in any commit log.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from typing import Any

from attrs import frozen

from agentworld.canonical import canonical_json, sha256_hex
from agentworld.commits import Commit, make_commit
from agentworld.testing.guests import guest_wasm

WORLD_ID = "demo"
DEFAULT_HEIGHTS = 24
# A fixed clock for `committed_at_ms`: recorded in every record, it never changes a result.
EPOCH_MS = 1_700_000_000_000

# Which example guest each agent publishes, and the module each becomes.
ARTIFACTS: tuple[tuple[str, str], ...] = (
    ("ada", "counter_v1"), ("ada", "counter_v2"), ("ada", "rule"), ("cy", "observer"),
    ("bob", "effector"), ("mal", "loop"), ("mal", "membomb"),
)
# The hostile modules' limits: gas ends the spinner and the memory limit the hog, long before
# their wall-clock limit could matter, so every engine and machine stops them at the same point.
SPIN_LIMITS = {"max_gas": 250_000, "max_call_ms": 5_000}
HOG_LIMITS = {"max_mem_bytes": 1024 * 1024, "max_call_ms": 5_000}


@frozen(kw_only=True)
class ScriptedHeight:
    """One height of the demo: what it shows, and the actions committed for it."""

    height: int
    story: str
    actions: tuple[dict[str, Any], ...]


def _hash(guest: str) -> str:
    return sha256_hex(guest_wasm(guest))


def _manifest(module_id: str, guest: str, kind: str, version: str = "1.0.0",
              **extra: Any) -> dict[str, Any]:
    entrypoint = "reduce" if kind == "reducer" else "call"
    return {"module_id": module_id, "name": module_id, "version": version, "kind": kind,
            "wasm_hash": _hash(guest), "interface_version": "wasm-1",
            "exports": ["memory", "alloc", entrypoint], **extra}


def counter_manifest(version: str = "1.0.0") -> dict[str, Any]:
    """ada's counter: v1 keeps a 4-byte count, v2 a 16-byte state; both export `migrate`."""
    guest = "counter_v1" if version == "1.0.0" else "counter_v2"
    return _manifest("demo.counter", guest, "reducer", version,
                     exports=["memory", "alloc", "reduce", "migrate"],
                     subscriptions=[{"stage": "tick"}])


def incompatible_counter() -> dict[str, Any]:
    """A counter candidate that breaks its promises: a lower version, no `migrate`, and no tick
    subscription (it only watches `counter.*` events)."""
    return {**counter_manifest("2.0.0"), "version": "1.5.0",
            "exports": ["memory", "alloc", "reduce"],
            "subscriptions": [{"stage": "post_event", "event_kinds": ["counter.*"]}]}


RULE = _manifest("demo.rule", "rule", "pure", role="rule", subscriptions=[
    {"stage": "pre_action", "action_kinds": ["action.move_agent"]}])
OBSERVER = _manifest("demo.observer", "observer", "pure", role="observer", subscriptions=[
    {"stage": "post_event", "event_kinds": ["domain.agent_moved"],
     "filters": {"event": [{"path": "/data/agent_id", "eq": "cy"}]}}])
PAYER = _manifest("demo.payer", "effector", "pure", required_caps=["cap.bank"],
                  abi_contract={"cap_slots": {"pay": "cap.bank"}},
                  subscriptions=[{"stage": "tick", "every_ticks": 3}])
SPIN = _manifest("mal.spin", "loop", "pure", limits=SPIN_LIMITS,
                 subscriptions=[{"stage": "tick"}])
HOG = _manifest("mal.hog", "membomb", "pure", limits=HOG_LIMITS, subscriptions=[
    {"stage": "post_event", "event_kinds": ["domain.agent_moved"]}])

# Instance ids follow install order (one world-wide counter), so the script can name them.
ADA_COUNTER, BOB_COUNTER, ADA_RULE = "demo.counter#1", "demo.counter#2", "demo.rule#3"
CY_OBSERVER, BOB_PAYER, MAL_SPIN, MAL_HOG = (
    "demo.observer#4", "demo.payer#5", "mal.spin#6", "mal.hog#7")


class _Height:
    """Collects one height's actions, numbering their ids."""

    def __init__(self, height: int) -> None:
        self.height = height
        self.actions: list[dict[str, Any]] = []

    def add(self, submitter: str | None, label: str, action_type: str, **data: Any) -> None:
        action_id = f"h{self.height:02d}.{len(self.actions) + 1}-{label}"
        self.actions.append({"action_id": action_id, "submitter": submitter,
                             "payload": {"type": action_type, "data": data}})

    def move(self, agent: str, to: list[int], as_agent: str | None = None) -> None:
        who = as_agent or agent
        self.add(who, f"{who}-moves", "move_agent", agent_id=agent, to=to)


def _install(h: _Height, agent: str, manifest: dict[str, Any], location: str | None = None) -> None:
    target = ({"type": "location", "location_id": location} if location
              else {"type": "self_agent"})
    h.add(agent, f"{agent}-installs", "module.install", installer_agent_id=agent,
          manifest=manifest, install_target=target)


def _script() -> list[tuple[str, _Height]]:
    """The scripted heights, in order (height n is the n-th entry)."""
    heights: list[tuple[str, _Height]] = []

    def height(story: str) -> _Height:
        h = _Height(len(heights) + 1)
        heights.append((story, h))
        return h

    h = height("four agents register themselves; the host makes ada a rule author and grants "
               "the bank capability")
    for index, agent in enumerate(("ada", "bob", "cy", "mal")):
        h.add(agent, f"{agent}-registers", "register_agent", agent_id=agent,
              position=[index * 3, 0], resources={"ore": 10})
    h.add(None, "host-grants-role", "grant_role", agent_id="ada", role="rule_author")
    h.add(None, "host-grants-cap", "grant_capability", cap_ref="cap.bank",
          allowed_effect_kinds=["bank.*"], expires_at=None)

    h = height("agents publish seven artifacts (mal's two are hostile)")
    for agent, guest in ARTIFACTS:
        wasm = guest_wasm(guest)
        h.add(agent, f"{agent}-deploys-{guest}", "module.deploy_artifact",
              publisher_agent_id=agent, wasm_bytes=base64.b64encode(wasm).decode("ascii"),
              wasm_hash=sha256_hex(wasm))

    h = height("seven instances for four owners: counters on ada and at the hub, ada's rule, "
               "cy's observer at the plaza, bob's payer, mal's spinner and memory hog")
    _install(h, "ada", counter_manifest())
    _install(h, "bob", counter_manifest(), location="hub")
    _install(h, "ada", RULE)
    _install(h, "cy", OBSERVER, location="plaza")
    _install(h, "bob", PAYER)
    _install(h, "mal", SPIN)
    _install(h, "mal", HOG)

    h = height("ada's rule judges three moves: allow, deny, modify; ada pays bob 3 ore")
    h.move("ada", [2, 2])
    h.move("bob", [13, 13])
    h.move("cy", [7, 7])
    h.add("ada", "ada-pays", "transfer_resource", from_agent_id="ada", to_agent_id="bob",
          kind="ore", amount=3)

    h = height("refusals: bob moves as ada, mal switches off ada's rule, mal grants himself a "
               "role, bob overspends")
    h.move("ada", [5, 5], as_agent="bob")
    h.add("mal", "mal-disables-rule", "module.set_active", agent_id="mal",
          instance_id=ADA_RULE, active=False)
    h.add("mal", "mal-grants-role", "grant_role", agent_id="mal", role="rule_author")
    h.add("bob", "bob-overspends", "transfer_resource", from_agent_id="bob", to_agent_id="cy",
          kind="ore", amount=50)

    height("ticks: counters count, bob's payer asks the bank for a payment (an effect)")

    h = height("the host pays: a receipt for the first effect")
    h.add(None, "host-receipt", "effect.receipt", intent_id="intent-1", status="ok",
          result={"paid": 1})

    h = height("bob tries to upgrade ada's counter (refused); ada upgrades it to v2, whose "
               "migrate converts the state")
    upgrade = {"instance_id": ADA_COUNTER, "from_version": "1.0.0",
               "manifest": counter_manifest("2.0.0")}
    h.add("bob", "bob-upgrades-ada", "module.upgrade", upgrader_agent_id="bob", **upgrade)
    h.add("ada", "ada-upgrades", "module.upgrade", upgrader_agent_id="ada", **upgrade)

    height("ticks: ada's counter runs v2, bob's stays on v1; a second effect")

    h = height("the host answers the second effect with an error receipt")
    h.add(None, "host-receipt", "effect.receipt", intent_id="intent-2", status="error",
          result={"reason": "insufficient funds"})

    h = height("ada tries an incompatible upgrade: refused with every violation")
    h.add("ada", "ada-upgrades-badly", "module.upgrade", upgrader_agent_id="ada",
          instance_id=ADA_COUNTER, from_version="2.0.0", manifest=incompatible_counter())

    h = height("ada and cy move again; the rule rewrites ada's own move too")
    h.move("ada", [7, 7])
    h.move("cy", [1, 1])

    h = height("ada rolls her counter back to v1 (its migrate narrows the state again)")
    h.add("ada", "ada-rolls-back", "module.rollback", operator_agent_id="ada",
          instance_id=ADA_COUNTER, target_version="1.0.0")

    h = height("the host switches off mal's spinner, which any instance owner or the host may do")
    h.add(None, "host-disables-spin", "module.set_active", agent_id="mal",
          instance_id=MAL_SPIN, active=False)

    h = height("bob pauses his hub counter; mal's hog still fails on every move")
    h.add("bob", "bob-pauses", "module.set_active", agent_id="bob", instance_id=BOB_COUNTER,
          active=False)
    h.move("mal", [9, 1])

    height("ticks")

    h = height("bob resumes his counter; cy heads for [7, 7] and lands on [8, 8]")
    h.add("bob", "bob-resumes", "module.set_active", agent_id="bob", instance_id=BOB_COUNTER,
          active=True)
    h.move("cy", [7, 7])

    h = height("the host pays the third effect")
    h.add(None, "host-receipt", "effect.receipt", intent_id="intent-3", status="ok",
          result={"paid": 1})

    h = height("ada and bob trade ore both ways")
    h.add("ada", "ada-pays", "transfer_resource", from_agent_id="ada", to_agent_id="bob",
          kind="ore", amount=2)
    h.add("bob", "bob-pays", "transfer_resource", from_agent_id="bob", to_agent_id="ada",
          kind="ore", amount=5)

    height("ticks")
    return heights


SCRIPTED_HEIGHTS = 20


def demo_heights(heights: int = DEFAULT_HEIGHTS) -> list[ScriptedHeight]:
    """The demo's heights 1..`heights` (at least `SCRIPTED_HEIGHTS`)."""
    if heights < SCRIPTED_HEIGHTS:
        raise ValueError(f"the demo needs at least {SCRIPTED_HEIGHTS} heights, not {heights}")
    script = _script()
    assert len(script) == SCRIPTED_HEIGHTS
    for number in range(SCRIPTED_HEIGHTS + 1, heights + 1):
        h = _Height(number)
        story = "ticks"
        if number % 4 == 0:
            h.move("cy", [number % 10, number % 7])
            story = "ticks; cy moves"
        script.append((story, h))
    return [ScriptedHeight(height=h.height, story=story, actions=tuple(h.actions))
            for story, h in script]


def demo_commits(heights: int = DEFAULT_HEIGHTS) -> list[Commit]:
    """The demo's commits, heights 1..`heights`, each with its `action_root`."""
    return [make_commit(WORLD_ID, scripted.height, scripted.actions,
                        committed_at_ms=EPOCH_MS + 1000 * scripted.height)
            for scripted in demo_heights(heights)]


def write_commit_log(path: str | os.PathLike[str], commits: Sequence[Commit]) -> None:
    """Write `commits` as a commit log: one canonical JSON line each."""
    with open(path, "wb") as handle:
        for commit in commits:
            handle.write(canonical_json(commit.to_json()) + b"\n")


def read_commit_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The commits of a commit log, as JSON data (blank lines skipped)."""
    with open(path, "rb") as handle:
        return [json.loads(line) for line in handle if line.strip()]
