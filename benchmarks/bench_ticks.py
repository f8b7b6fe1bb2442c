"""Tick routing cost per call as the number of active instances grows.

Each size gets a fresh world with N instances of the counter reducer (tick every step); after a
warm-up step, a few timed steps route N tick calls each. The per-call figure must not grow with
N: routing is per instance, with no work that scales with the number of other instances.
"""

from __future__ import annotations

import time
from typing import Any

from agentworld import World
from agentworld.canonical import sha256_hex
from agentworld.testing.guests import guest_wasm

SIZES = (1, 10, 100, 1_000, 10_000)


def build_world(instances: int, wasm: bytes | None = None) -> World:
    """A world with `instances` active instances of counter `wasm` (default: the WAT counter),
    one per install action, ticking every step."""
    world = World()
    world.submit({"type": "register_agent", "data": {"agent_id": "ada", "position": [0, 0]}})
    wasm = guest_wasm("counter") if wasm is None else wasm
    wasm_hash = sha256_hex(wasm)
    world.submit({"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": "ada", "wasm_bytes": wasm, "wasm_hash": wasm_hash}})
    world.step()
    manifest = {
        "module_id": "bench.counter", "name": "counter", "version": "1", "kind": "reducer",
        "wasm_hash": wasm_hash, "interface_version": "wasm-1", "exports": ["reduce"],
        "subscriptions": [{"stage": "tick"}],
    }
    for _ in range(instances):
        world.submit({"type": "module.install",
                      "data": {"installer_agent_id": "ada", "manifest": manifest}})
    world.step()
    assert len(world.instances) == instances, "installs were rejected"
    world.step_with_modules()  # warm-up: compile once, fill caches
    return world


def measure_size(instances: int, calls_target: int) -> float:
    """Microseconds per tick call at `instances` active instances."""
    world = build_world(instances)
    steps = max(2, calls_target // instances)
    started = time.perf_counter()
    for _ in range(steps):
        world.step_with_modules()
    elapsed = time.perf_counter() - started
    failures = [e for e in world.journal if e.kind == "module.call_failed"]
    assert not failures, failures[0].data
    return elapsed / (steps * instances) * 1e6


def measure(quick: bool = False) -> dict[str, Any]:
    """Per-call µs at every size, and the largest/smallest ratio (target ≤ 1.5)."""
    sizes = SIZES[:4] if quick else SIZES
    calls_target = 2_000 if quick else 20_000
    per_call = {str(n): round(measure_size(n, calls_target), 2) for n in sizes}
    values = list(per_call.values())
    return {
        "us_per_call": per_call,
        "ratio_largest_to_smallest": round(values[-1] / values[0], 3),
    }
