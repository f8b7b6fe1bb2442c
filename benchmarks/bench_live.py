"""The live driver's cost per height on a small world and on one 100 times larger.

Both worlds run one ticking counter instance and get the same work at every height: one
`move_agent` action, one `step_with_modules` (the move and a tick: three events), the state
root, the block hash and the height's record, written atomically and fsynced. Only the world
differs: `SMALL` agents and about `SMALL_EVENTS` journal events against 100 times both. The
heights run in rounds, the two worlds interleaved round by round; a world's figure is its best
round. Checkpoints (a whole-world save, every 64 heights by default) are timed on their own.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from agentworld import World, WorldConfig
from agentworld.canonical import sha256_hex
from agentworld.commits import make_commit
from agentworld.live import DEFAULT_CHECKPOINT_EVERY, ExecutionDriver
from agentworld.testing.guests import guest_wasm

SMALL = 20
SMALL_EVENTS = 1_000
SCALE = 100
WORLD_ID = "bench-live"
MOVES_PER_STEP = 2_000


def build_world(agents: int, events: int) -> World:
    """A genesis world: `agents` agents, one ticking counter, about `events` journal events."""
    world = World(config=WorldConfig(world_id=WORLD_ID))
    for index in range(agents):
        world.submit({"type": "register_agent", "data": {
            "agent_id": f"a{index}", "position": [index, 0], "resources": {"gold": 100}}})
    wasm = guest_wasm("counter")
    wasm_hash = sha256_hex(wasm)
    world.submit({"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": "a0", "wasm_bytes": wasm, "wasm_hash": wasm_hash}})
    world.submit({"type": "module.install", "data": {
        "installer_agent_id": "a0", "manifest": {
            "module_id": "bench.tick", "name": "tick", "version": "1.0.0", "kind": "reducer",
            "wasm_hash": wasm_hash, "interface_version": "wasm-1",
            "exports": ["memory", "alloc", "reduce"], "subscriptions": [{"stage": "tick"}]}}})
    world.step_with_modules()
    moved = 0
    # History without modules running (`step`): the journal grows by exactly one event a move.
    while len(world.journal) < events:
        for _ in range(min(MOVES_PER_STEP, events - len(world.journal))):
            world.submit({"type": "move_agent", "data": {
                "agent_id": f"a{moved % agents}", "to": [moved % 97, moved % 89]}})
            moved += 1
        world.step()
    return world


def _commit(height: int) -> Any:
    return make_commit(WORLD_ID, height, [{
        "action_id": f"move-{height}", "submitter": "a1",
        "payload": {"type": "move_agent", "data": {"agent_id": "a1",
                                                   "to": [height % 50, height % 40]}}}])


def measure(quick: bool = False) -> dict[str, Any]:
    """ms per height on both worlds, their ratio, heights/s, and a checkpoint's cost."""
    rounds, per_round = (2, 10) if quick else (5, 200)
    scale = 10 if quick else SCALE
    sizes = {"small": (SMALL, SMALL_EVENTS), "large": (SMALL * scale, SMALL_EVENTS * scale)}
    scratch = Path(tempfile.mkdtemp(prefix="bench-live-"))
    drivers: dict[str, ExecutionDriver] = {}
    try:
        for name, (agents, events) in sizes.items():
            # No checkpoint inside the timed heights: they are measured on their own below.
            drivers[name] = ExecutionDriver(scratch / name, genesis=build_world(agents, events),
                                            checkpoint_every=10**9)
        best = dict.fromkeys(drivers, float("inf"))
        for _ in range(rounds):
            for name, driver in drivers.items():
                first = driver.height + 1
                commits = [_commit(height) for height in range(first, first + per_round)]
                started = time.perf_counter()
                for commit in commits:
                    driver.on_commit(commit)
                elapsed = (time.perf_counter() - started) / per_round * 1e3
                best[name] = min(best[name], elapsed)
        checkpoint_ms = {}
        journal = {}
        for name, driver in drivers.items():
            journal[name] = len(driver.world.journal)
            started = time.perf_counter()
            driver.checkpoint()
            checkpoint_ms[name] = (time.perf_counter() - started) * 1e3
    finally:
        for driver in drivers.values():
            driver.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "heights": rounds * per_round,
        "agents": {name: agents for name, (agents, _) in sizes.items()},
        "journal_events": journal,
        "ms_per_height": {name: round(value, 3) for name, value in best.items()},
        "large_over_small": round(best["large"] / best["small"], 2),
        "heights_per_s_with_fsync": {name: round(1e3 / value, 1) for name, value in best.items()},
        "checkpoint_ms": {name: round(value, 1) for name, value in checkpoint_ms.items()},
        "ms_per_height_with_checkpoints": {
            name: round(best[name] + checkpoint_ms[name] / DEFAULT_CHECKPOINT_EVERY, 3)
            for name in best},
    }
