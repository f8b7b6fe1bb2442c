"""Kernel scale: what a routed call, an unmatched action, an install step, a state root and a
save cost as the world grows, and how fast a journal replays (the scale rule).

Every figure is a ratio of two variants measured side by side, rounds interleaved, each
variant's best round taken (see `run.measure`):

- `routed_over_engine`: one routed post_event call of the `observer` guest in a world of 100
  observers (a step with one move: 100 calls, their outputs decoded and recorded) over one bare
  fresh-instance engine call of the same guest on the same input bytes (`invoke`: no decoding).
- `unmatched_10000_over_1`: a step with one action no instance subscribes to, 10 000 installed
  instances over 1.
- `install_2000_over_1000`: one `step_with_modules` installing 2 000 instances over 1 000.
- `root_50000_over_500`: `state_root()` after one move, 50 000 agents over 500.
- `save_100k_over_1k`: `save_to_dir` into the directory saved before, after one small step,
  a 100 000-event journal over a 1 000-event one.
- `replay_events_per_s`: reading the saved journal, parsing it and applying every event from
  genesis (checked against the state root).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentworld import World
from agentworld.abi import encode_input
from agentworld.canonical import sha256_hex
from agentworld.executor import CallRequest
from agentworld.persistence import journal_files, parse_journal
from agentworld.testing.guests import guest_wasm
from agentworld.world import rebuild_state

Timed = Callable[[], Callable[[], float]]
"""A variant: called once per round (untimed setup); returns a function doing the timed work
and returning its own duration in seconds (so untimed work can surround the timed part)."""


def best_of(variants: dict[str, Timed], rounds: int) -> dict[str, float]:
    """Best duration (seconds) of each variant over `rounds` interleaved rounds."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, start in variants.items():
            best[name] = min(best[name], start()())
    return best


def _timed(work: Callable[[], Any], repeat: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        work()
    return (time.perf_counter() - started) / repeat


def _world_with_agents(count: int) -> World:
    world = World()
    for index in range(count):
        world.submit({"type": "register_agent", "data": {
            "agent_id": f"a{index:06d}", "position": [index, 0], "resources": {"gold": 100}}})
    world.step()
    return world


def _manifest(wasm_hash: str, subscriptions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"module_id": "bench.observer", "name": "observer", "version": "1", "kind": "pure",
            "wasm_hash": wasm_hash, "interface_version": "wasm-1",
            "exports": ["memory", "alloc", "call"], "subscriptions": subscriptions}


def _observer_world(instances: int, subscriptions: list[dict[str, Any]]) -> World:
    """Agent `a000000` and `instances` observers, installed with `step` (no routing)."""
    world = _world_with_agents(1)
    wasm = guest_wasm("observer")
    wasm_hash = sha256_hex(wasm)
    world.submit({"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": "a000000", "wasm_bytes": wasm, "wasm_hash": wasm_hash}})
    world.step()
    manifest = _manifest(wasm_hash, subscriptions)
    for _ in range(instances):
        world.submit({"type": "module.install",
                      "data": {"installer_agent_id": "a000000", "manifest": manifest}})
    world.step()
    assert len(world.instances) == instances, "installs were rejected"
    return world


def _move(world: World, agent: str = "a000000") -> None:
    world.submit({"type": "move_agent", "data": {"agent_id": agent, "to": [world.time, 1]}})


def routed_variants(quick: bool) -> dict[str, Timed]:
    """A routed post_event call among 100 observers, and the bare engine call it makes."""
    observers = 100
    world = _observer_world(observers, [
        {"stage": "post_event", "event_kinds": ["domain.agent_moved"]}])
    _move(world)
    events = world.step_with_modules()  # warm-up: compile, build the routing tables
    assert sum(e.kind == "module.emitted" for e in events) == observers, events[-1]
    moved = next(e for e in events if e.kind == "domain.agent_moved")
    instance = next(iter(world.instances.values()))
    context = {"v": "wasm-1", "module_id": instance.module_id,
               "instance_id": instance.instance_id, "module_version": instance.module_version,
               "install_target": instance.install_target,
               "manifest_hash": instance.manifest_hash, "world_config_hash": "00" * 32,
               "trace_id": f"event-{moved.id}-{instance.instance_id}", "stage": "post_event",
               "time": moved.time, "origin": {"kind": "event", "id": moved.id}}
    document = {"id": moved.id, "time": moved.time, "caused_by": moved.caused_by,
                "kind": moved.kind, "data": moved.data}
    wasm = guest_wasm("observer")
    request = CallRequest(module_id=instance.module_id, instance_id=instance.instance_id,
                          wasm_hash=instance.wasm_hash, wasm=wasm, entrypoint="call",
                          input=encode_input(context, event=document), kind="pure")
    executor: Any = world.executor
    steps = 3 if quick else 10

    def routed() -> Callable[[], float]:
        def run() -> float:
            total = 0.0
            for _ in range(steps):
                _move(world)
                total += _timed(world.step_with_modules)
            return total / (steps * observers)
        return run

    def engine() -> Callable[[], float]:
        return lambda: _timed(lambda: executor.invoke(request), steps * observers)

    return {"routed": routed, "engine": engine}


def unmatched_variants(quick: bool) -> dict[str, Timed]:
    """One step with an action nobody subscribes to, at 1 and 10 000 installed instances."""
    sizes = (1, 1_000) if quick else (1, 10_000)
    subscriptions = [{"stage": "post_event", "event_kinds": ["bench.never"]},
                     {"stage": "pre_action", "action_kinds": ["action.transfer_resource"]},
                     {"stage": "post_action", "action_kinds": ["action.grant_capability"]}]
    variants: dict[str, Timed] = {}
    for size in sizes:
        world = _observer_world(size, subscriptions)
        _move(world)
        world.step_with_modules()  # warm-up: build the routing tables
        repeat = 20 if quick else 200

        def start(world: World = world, repeat: int = repeat) -> Callable[[], float]:
            def run() -> float:
                total = 0.0
                for _ in range(repeat):
                    _move(world)
                    total += _timed(world.step_with_modules)
                return total / repeat
            return run

        variants[str(size)] = start
    return variants


def install_variants(quick: bool) -> dict[str, Timed]:
    """One `step_with_modules` installing 1 000 (or 2 000) instances into a fresh world."""
    sizes = (100, 200) if quick else (1_000, 2_000)
    variants: dict[str, Timed] = {}
    for size in sizes:
        def start(size: int = size) -> Callable[[], float]:
            world = _observer_world(0, [])
            manifest = _manifest(sha256_hex(guest_wasm("observer")), [
                {"stage": "post_event", "event_kinds": ["domain.agent_moved"]},
                {"stage": "tick", "every_ticks": 5}])
            for _ in range(size):
                world.submit({"type": "module.install",
                              "data": {"installer_agent_id": "a000000", "manifest": manifest}})

            def run() -> float:
                took = _timed(world.step_with_modules)
                assert len(world.instances) == size
                return took
            return run

        variants[str(size)] = start
    return variants


def root_variants(quick: bool) -> dict[str, Timed]:
    """`state_root()` right after a step moving one agent, at 500 and 50 000 agents."""
    sizes = (500, 5_000) if quick else (500, 50_000)
    variants: dict[str, Timed] = {}
    for size in sizes:
        world = _world_with_agents(size)
        world.state_root()
        repeat = 5 if quick else 20

        def start(world: World = world, size: int = size, repeat: int = repeat
                  ) -> Callable[[], float]:
            def run() -> float:
                total = 0.0
                for index in range(repeat):
                    # An agent in the middle of the (sorted) agent map.
                    _move(world, f"a{(size // 2 + index) % size:06d}")
                    world.step()
                    total += _timed(world.state_root)
                return total / repeat
            return run

        variants[str(size)] = start
    return variants


def _journal_world(events: int) -> World:
    world = _world_with_agents(100)
    step = 0
    while len(world.journal) < events:
        for index in range(min(1_000, events - len(world.journal))):
            agent = f"a{index % 100:06d}"
            if index % 2:
                world.submit({"type": "move_agent",
                              "data": {"agent_id": agent, "to": [step, index]}})
            else:  # back and forth, so that nobody runs out
                world.submit({"type": "transfer_resource", "data": {
                    "from_agent_id": agent, "to_agent_id": f"a{(index + 1) % 100:06d}",
                    "kind": "gold", "amount": 1 + step % 2}})
        world.step()
        step += 1
    return world


def save_variants(quick: bool, scratch: Path) -> tuple[dict[str, Timed], dict[str, World]]:
    """Saving after one small step into the directory saved before, 1 000 vs 100 000 events."""
    sizes = (1_000, 10_000) if quick else (1_000, 100_000)
    variants: dict[str, Timed] = {}
    worlds: dict[str, World] = {}
    for size in sizes:
        world = _journal_world(size)
        target = scratch / f"save-{size}"
        world.save_to_dir(target)
        worlds[str(size)] = world

        def start(world: World = world, target: Path = target) -> Callable[[], float]:
            def run() -> float:
                _move(world)
                world.step()
                return _timed(lambda: world.save_to_dir(target))
            return run

        variants[str(size)] = start
    return variants, worlds


def replay(world: World, directory: Path, rounds: int) -> float:
    """Events per second: read, parse and apply the saved journal of `world` from genesis."""
    world.save_to_dir(directory)

    def once() -> float:
        started = time.perf_counter()
        events: list[Any] = []
        for path in journal_files(directory):
            events += parse_journal(path.read_bytes(), str(path), len(events) + 1)
        state = rebuild_state(events)
        took = time.perf_counter() - started
        assert len(state.agents) == len(world.state.agents)
        return took

    took = min(once() for _ in range(rounds))
    assert World.load_from_dir(directory).state_root() == world.state_root()
    return len(world.journal) / took


def measure(quick: bool = False) -> dict[str, Any]:
    """Every ratio of the kernel benchmark, and the replay rate."""
    rounds = 2 if quick else 5
    scratch = Path(tempfile.mkdtemp(prefix="agentworld-kernel-"))
    try:
        # Short rounds, many of them: the engine's fresh instances make both variants sensitive
        # to the machine's moment (page faults), so each variant gets many chances at a quiet one.
        routed = best_of(routed_variants(quick), rounds if quick else 15)
        unmatched = best_of(unmatched_variants(quick), rounds)
        installs = best_of(install_variants(quick), 2 if quick else 3)
        roots = best_of(root_variants(quick), rounds)
        save, worlds = save_variants(quick, scratch)
        saves = best_of(save, rounds)
        rate = replay(worlds[max(worlds, key=int)], scratch / "replay", 2 if quick else 3)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def ratio(figures: dict[str, float]) -> float:
        small, large = sorted(figures, key=int) if "engine" not in figures else ("engine",
                                                                                  "routed")
        return round(figures[large] / figures[small], 3)

    return {
        "routed_call_us": round(routed["routed"] * 1e6, 2),
        "engine_call_us": round(routed["engine"] * 1e6, 2),
        "routed_over_engine": ratio(routed),
        "unmatched_us": {k: round(v * 1e6, 2) for k, v in unmatched.items()},
        "unmatched_10000_over_1": ratio(unmatched),
        "install_s": {k: round(v, 4) for k, v in installs.items()},
        "install_2000_over_1000": ratio(installs),
        "root_ms": {k: round(v * 1e3, 4) for k, v in roots.items()},
        "root_50000_over_500": ratio(roots),
        "save_ms": {k: round(v * 1e3, 3) for k, v in saves.items()},
        "save_100k_over_1k": ratio(saves),
        "replay_events_per_s": round(rate),
    }

