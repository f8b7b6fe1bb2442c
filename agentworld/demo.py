"""`agentworld demo`: the whole product on one small world, driven live, then checked.

The demo writes a commit log (`agentworld.demo_scenario`: four agents, seven instances, rules,
effects, hostile modules, upgrades, refusals), applies it height by height through the live
driver (`ExecutionDriver`, checkpoints with their module stores), saves the final world with
its module store, reloads and verifies it, and replays the recorded heights on every built-in
engine available here. Every engine and every run gives the same state root: that is what the
replays check, height by height.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from attrs import frozen

from agentworld.canonical import sha256_hex
from agentworld.commits import CommitResult, parse_commit
from agentworld.demo_scenario import (
    ARTIFACTS,
    DEFAULT_HEIGHTS,
    SCRIPTED_HEIGHTS,
    WORLD_ID,
    ScriptedHeight,
    demo_commits,
    demo_heights,
    read_commit_log,
    write_commit_log,
)
from agentworld.errors import AgentWorldError, InvalidInputError
from agentworld.live import ExecutionDriver, replay
from agentworld.manager import PluginManager
from agentworld.model import Event
from agentworld.persistence import verify_dir
from agentworld.store import copy_store
from agentworld.testing.guests import guest_wasm
from agentworld.world import World, WorldConfig

__all__ = ["DEFAULT_HEIGHTS", "SCRIPTED_HEIGHTS", "DemoListener", "HeightSummary", "SilentListener",
           "run_demo"]

# The engines the demo replays on when they are available: the two built in.
REPLAY_ENGINES = ("wasmtime", "wasmer")
CHECKPOINT_EVERY = 8
# Event kinds that are counted rather than told one by one.
_COUNTED = {"module.emitted": "emits", "module.state_updated": "state updates",
            "module.tick_scheduled": "tick schedules"}


@frozen(kw_only=True)
class HeightSummary:
    """One applied height: its hashes and what happened, in a few readable lines."""

    height: int
    story: str
    block_hash: str
    state_root: str
    events: int
    lines: tuple[str, ...]


class DemoListener(Protocol):
    """What the demo tells as it goes (the command line prints it; tests may collect it)."""

    def begin(self, directory: Path, engine: str, heights: int, actions: int) -> None:
        """The demo starts: where it writes, which engine, how many heights and actions."""

    def height(self, summary: HeightSummary) -> None:
        """A height was applied."""

    def step(self, text: str, ok: bool | None = None) -> None:
        """One step after the heights (a save, a check); `ok` is its verdict, if it has one."""

    def progress(self, what: str, done: int, total: int) -> None:
        """Progress of a long part (`what`: "heights", "replay on <engine>")."""


class SilentListener:
    """A listener that tells nothing."""

    def begin(self, directory: Path, engine: str, heights: int, actions: int) -> None:
        """Nothing to tell."""

    def height(self, summary: HeightSummary) -> None:
        """Nothing to tell."""

    def step(self, text: str, ok: bool | None = None) -> None:
        """Nothing to tell."""

    def progress(self, what: str, done: int, total: int) -> None:
        """Nothing to tell."""


def _fresh_directory(directory: str | os.PathLike[str] | None) -> Path:
    """The demo's folder: a new one when none is given; a given one must be absent or empty."""
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="agentworld-demo-")).absolute()
    path = Path(directory).expanduser().absolute()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidInputError("demo directory", [f"{path} exists and is not an empty folder"])
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Narrator:
    """Turns a height's events into a few lines a newcomer can follow."""

    def __init__(self, commits: Sequence[dict[str, Any]]) -> None:
        self._artifacts = {sha256_hex(guest_wasm(guest)): f"{guest} (by {agent})"
                           for agent, guest in ARTIFACTS}
        # World action ids count every committed action from 1, in commit order.
        self.actions: dict[int, dict[str, Any]] = {}
        for commit in commits:
            for action in commit["actions"]:
                self.actions[len(self.actions) + 1] = action

    def who(self, action_id: int | None) -> str:
        """The committed id (`h04.2-bob-moves`) of world action `action_id`."""
        action = self.actions.get(action_id or 0)
        return action["action_id"] if action else f"action {action_id}"

    def lines(self, events: Iterable[Event]) -> tuple[str, ...]:
        """The readable lines of one height's events."""
        told: list[str] = []
        counted: Counter[str] = Counter()
        failures: Counter[str] = Counter()
        for event in events:
            if event.kind in _COUNTED and not (
                    event.kind == "module.state_updated"
                    and event.data["trace_id"].startswith("migrate-")):
                counted[_COUNTED[event.kind]] += 1
                if event.kind == "module.emitted":
                    counted[f"emit {event.data['kind']}"] += 1
                continue
            if event.kind == "module.call_failed":
                failures[f"{event.data['instance_id']} {event.data['stage']}: "
                         f"{event.data['code']} ({event.data['detail']})"] += 1
                continue
            line = self._line(event)
            if line:
                told.append(line)
        told += [f"contained: {text}" + (f" (x{n})" if n > 1 else "")
                 for text, n in failures.items()]
        emits = [f"{kind.removeprefix('emit ')} x{n}" for kind, n in sorted(counted.items())
                 if kind.startswith("emit ")]
        routine = [f"{n} {what if n > 1 else what.removesuffix('s')}"
                   for what, n in sorted(counted.items()) if not what.startswith("emit")]
        if emits:
            routine.append(f"emits {', '.join(emits)}")
        if routine:
            told.append("modules: " + "; ".join(routine))
        return tuple(told)

    def _line(self, event: Event) -> str | None:
        data = event.data
        kind = event.kind
        action_id = _action_of(event)
        if kind == "domain.agent_registered":
            return f"{data['agent_id']} registered at {data['position']}"
        if kind == "domain.role_granted":
            return f"{data['agent_id']} holds the role {data['role']}"
        if kind == "domain.capability_granted":
            return f"{data['cap_ref']} granted for {', '.join(data['allowed_effect_kinds'])}"
        if kind == "domain.module_artifact_deployed":
            name = self._artifacts.get(data["wasm_hash"], data["wasm_hash"][:12])
            return f"artifact {name}: {data['size']} bytes, sha256 {data['wasm_hash'][:12]}"
        if kind == "domain.module_installed":
            target = data["install_target"]
            where = (f"at {target['location_id']}" if target.get("type") == "location"
                     else f"on {data['installer_agent_id']}")
            return (f"{data['instance_id']} ({data['module_id']} {data['module_version']}) "
                    f"installed by {data['installer_agent_id']} {where}")
        if kind == "rule.decision_recorded":
            action = self.actions.get(action_id or 0, {})
            what = action.get("payload", {}).get("data", {})
            return (f"rule on {self.who(action_id)} (to {what.get('to')}): {data['verdict']}")
        if kind == "rule.action_overridden":
            return (f"rule rewrote {self.who(action_id)}: now "
                    f"{_json(data['override_action']['data'])}")
        if kind == "domain.agent_moved":
            return f"{data['agent_id']} moved {data['from']} -> {data['to']}"
        if kind == "domain.resource_transferred":
            return (f"{data['from_agent_id']} gave {data['to_agent_id']} {data['amount']} "
                    f"{data['kind']}")
        if kind == "domain.action_rejected":
            notes = "; ".join(data.get("notes", []))
            if len(notes) > 110:
                notes = notes[:107] + "..."
            return f"refused {self.who(data['action_id'])}: {data['code']} ({notes})"
        if kind == "domain.module_active_set":
            state = "on" if data["active"] else "off"
            return f"{data['instance_id']} switched {state}"
        if kind == "effect.queued":
            return (f"{data['instance_id']} asks for {data['kind']} {_json(data['params'])} "
                    f"with {data['cap_ref']}: {data['intent_id']}")
        if kind == "effect.receipt_recorded":
            return f"receipt for {data['intent_id']}: {data['status']} {_json(data['result'])}"
        if kind in ("domain.module_upgraded", "domain.module_rolled_back"):
            verb = "upgraded" if kind.endswith("upgraded") else "rolled back"
            return (f"{data['instance_id']} {verb} {data['from_module_version']} -> "
                    f"{data['to_module_version']}")
        if kind == "module.state_updated":  # a migration's new state
            size = len(base64.b64decode(data["state"]))
            return f"{data['instance_id']} state migrated to {size} bytes"
        return None


def _action_of(event: Event) -> int | None:
    """The world action id that caused `event` (None for ticks)."""
    action = (event.caused_by or {}).get("action")
    return action if isinstance(action, int) else None


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _upgrade_rows(
    heights: Sequence[tuple[int, Sequence[Event]]], narrator: _Narrator
) -> list[dict[str, Any]]:
    """Every upgrade and rollback attempted, with its verdict and violations."""
    rows = []
    for height, events in heights:
        outcomes: dict[int, Event] = {}
        for event in events:
            if event.kind in ("domain.module_upgraded", "domain.module_rolled_back",
                              "domain.action_rejected"):
                action_id = event.data.get("action_id") or _action_of(event)
                if isinstance(action_id, int):
                    outcomes[action_id] = event
        for action_id, event in outcomes.items():
            action = narrator.actions[action_id]
            payload = action["payload"]
            if payload["type"] not in ("module.upgrade", "module.rollback"):
                continue
            data = payload["data"]
            accepted = event.kind != "domain.action_rejected"
            report = event.data.get("report") or {}
            rows.append({
                "height": height,
                "action_id": action["action_id"],
                "operation": payload["type"].removeprefix("module."),
                "instance_id": data["instance_id"],
                "submitter": action["submitter"],
                "from_version": (event.data["from_module_version"] if accepted
                                 else data.get("from_version")),
                "to_version": (event.data["to_module_version"] if accepted
                               else data.get("manifest", {}).get("version",
                                                                 data.get("target_version"))),
                "accepted": accepted,
                "code": None if accepted else event.data["code"],
                "violations": [{"rule": v["rule"], "severity": v["severity"],
                                "message": v["message"]} for v in report.get("violations", [])],
            })
    return rows


def _rejection_rows(
    heights: Sequence[tuple[int, Sequence[Event]]], narrator: _Narrator
) -> list[dict[str, Any]]:
    """Every refused action: its height, committed id, submitter, type and code."""
    rows = []
    for height, events in heights:
        for event in events:
            if event.kind == "domain.action_rejected":
                action = narrator.actions[event.data["action_id"]]
                rows.append({"height": height, "action_id": action["action_id"],
                             "submitter": action["submitter"],
                             "type": action["payload"]["type"], "code": event.data["code"]})
    return rows


def _instance_rows(world: World) -> list[dict[str, Any]]:
    return [{"instance_id": i.instance_id, "module_id": i.module_id,
             "version": i.module_version, "owner": i.owner_agent_id,
             "target": (i.install_target.get("location_id")
                        if i.install_target.get("type") == "location" else "self_agent"),
             "active": i.active}
            for i in world.instances.values()]


def _available_engines(plugins: PluginManager, engine: str) -> tuple[list[str], dict[str, str]]:
    """The engines to replay on (the demo's first) and why the others are skipped."""
    executors = plugins.executors()
    run, skipped = [engine], {}
    for name in REPLAY_ENGINES:
        if name == engine:
            continue
        entry = executors.get(name)
        if entry is None:
            skipped[name] = "not registered"
        elif not entry.available:
            skipped[name] = entry.unavailable_reason or "unavailable"
        else:
            run.append(name)
    return run, skipped


def run_demo(
    directory: str | os.PathLike[str] | None = None,
    *,
    engine: str = "wasmtime",
    store: str | None = None,
    heights: int = DEFAULT_HEIGHTS,
    plugins: PluginManager | None = None,
    listener: DemoListener | None = None,
) -> dict[str, Any]:
    """Run the demo in `directory` (a new folder when None); return its summary.

    The summary holds `state_root`, `journal_len`, `heights`, `instances`, `upgrades`,
    `rejections`, `verified` (the saved world reloads with the same root and its journal
    replays from genesis to it), `replayed` (every recorded height re-executes to the same
    hashes on every available built-in engine), `engine` and `dir`.
    """
    if heights < SCRIPTED_HEIGHTS:
        raise InvalidInputError("demo", [f"--heights must be at least {SCRIPTED_HEIGHTS}"])
    tell = listener or SilentListener()
    own_plugins = plugins is None
    manager = plugins or PluginManager()
    try:
        entry = manager.executors().get(engine)
        if entry is None or not entry.available:
            reason = "not registered" if entry is None else entry.unavailable_reason
            raise AgentWorldError(f"engine_unavailable: executor {engine!r}: {reason}")
        if store is not None:
            manager.open_store(store)  # an unusable URI fails here, before any work
        root = _fresh_directory(directory)
        return _run(root, engine, store, heights, manager, tell)
    finally:
        if own_plugins:
            manager.close()


def _run(
    root: Path, engine: str, store: str | None, heights: int, plugins: PluginManager,
    tell: DemoListener,
) -> dict[str, Any]:
    log = root / "commits.jsonl"
    write_commit_log(log, demo_commits(heights))
    commits = read_commit_log(log)
    scripted = {h.height: h for h in demo_heights(heights)}
    narrator = _Narrator(commits)
    tell.begin(root, engine, len(commits), len(narrator.actions))

    # The genesis world is judged by the standard upgrade rules whatever rule plugins are
    # installed here, so the demo decides alike everywhere.
    genesis = World(config=WorldConfig(world_id=WORLD_ID),
                    plugins=PluginManager(entrypoints=False, environ={}))
    live_dir = root / "live"
    applied: list[tuple[int, list[Event]]] = []
    with ExecutionDriver(live_dir, engine=engine, genesis=genesis, plugins=plugins,
                         checkpoint_every=CHECKPOINT_EVERY, archive=True) as driver:
        for number, raw in enumerate(commits, 1):
            before = len(driver.world.journal)
            result = driver.on_commit(parse_commit(raw))
            events = list(driver.world.journal[before:])
            applied.append((result.height, events))
            tell.height(_summary(scripted[result.height], result, narrator.lines(events)))
            tell.progress("heights", number, len(commits))
        driver.checkpoint()
        world = driver.world
        state_root, journal_len = driver.state_root, len(world.journal)
        checkpoints = driver.checkpoints
        instances = _instance_rows(world)
        tell.step("checkpoints (saved worlds with their module stores) at heights "
                  + ", ".join(str(h) for h in checkpoints))
        saved = root / "world"
        target_uri = _save(world, saved, store, plugins)
    tell.step(f"saved the final world to {saved} (module store: {target_uri})")

    reloaded = World.load_from_dir(saved, plugins=plugins, executor=engine)
    same_root = reloaded.state_root() == state_root
    tell.step(f"reloaded from disk: state root {'matches' if same_root else 'DIFFERS'}",
              same_root)
    report = verify_dir(saved, open_store=plugins.open_store)
    tell.step(f"world verify: {report.journal_length} events replayed from genesis, "
              f"{len(report.missing_artifacts)} artifacts missing, "
              f"{len(report.problems)} problems" + "".join(f"; {p}" for p in report.problems),
              report.ok)
    verified = same_root and report.ok and report.state_root == state_root

    engines, skipped = _available_engines(plugins, engine)
    replayed = True
    for name in engines:
        def progress(done: int, total: int, what: str = f"replay on {name}") -> None:
            tell.progress(what, done, total)

        try:
            outcome = replay(live_dir, engine=name, plugins=plugins, progress=progress)
        except AgentWorldError as exc:  # the engine itself failed: a check that did not pass
            replayed = False
            tell.step(f"live replay on {name}: could not run: {exc}", False)
            continue
        replayed = replayed and outcome.ok
        if outcome.ok:
            tell.step(f"live replay on {name}: heights {outcome.from_height + 1}.."
                      f"{outcome.to_height}, every block hash and state root equal", True)
        else:
            assert outcome.divergence is not None
            tell.step(f"live replay on {name}: diverges at height {outcome.divergence.height}: "
                      f"{outcome.divergence.to_json()}", False)
    for name, reason in skipped.items():
        tell.step(f"live replay on {name}: skipped ({reason})")

    return {
        "state_root": state_root,
        "journal_len": journal_len,
        "heights": len(commits),
        "instances": instances,
        "upgrades": _upgrade_rows(applied, narrator),
        "rejections": _rejection_rows(applied, narrator),
        "verified": verified,
        "replayed": replayed,
        "engine": engine,
        "dir": str(root),
    }


def _save(world: World, path: Path, store: str | None, plugins: PluginManager) -> str:
    """Save `world` to `path` with its module store in `store` (default: `path/modules`)."""
    if store is None:
        world.save_to_dir(path)
        return str(path / "modules")
    # The running world keeps its artifacts in memory: copy them into the chosen store, then
    # save a copy of the world that uses it (its journal and state are the running world's).
    target = plugins.open_store(store)
    copy_store(world.store, target)
    staging = path.with_name(f".{path.name}.staging")
    world.save_to_dir(staging)
    copy = World.load_from_dir(staging, store=target, plugins=plugins)
    copy.save_to_dir(path)
    shutil.rmtree(staging)
    return store


def _summary(scripted: ScriptedHeight, result: CommitResult, lines: tuple[str, ...]
             ) -> HeightSummary:
    return HeightSummary(height=result.height, story=scripted.story,
                         block_hash=result.block_hash, state_root=result.state_root,
                         events=result.events, lines=lines)
