"""Per-call cost of the SDK counters (C and Rust, built from guest-sdk/) against the WAT counter.

Three worlds, one per counter, each with the same number of ticking instances; the worlds are
stepped round by round in turn (interleaved, so machine noise hits all alike) and a variant's
figure is its best round, in µs per module call. Alongside: one full executor call (fresh
instance, context encoding, output decoding) per variant, and each artifact's size. Every
variant must produce the same states: the comparison is of equal work.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_ticks import build_world

from agentworld import World
from agentworld.abi import encode_input
from agentworld.executor import CallRequest
from agentworld.testing.conformance import counter_state, sample_context
from agentworld.testing.guests import guest_wasm

ROOT = Path(__file__).resolve().parent.parent


def sdk_counters() -> dict[str, bytes]:
    """The C and Rust counters, built from source into a temporary directory."""
    path = ROOT / "guest-sdk" / "build.py"
    spec = importlib.util.spec_from_file_location("guest_sdk_build", path)
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = build
    spec.loader.exec_module(build)
    with tempfile.TemporaryDirectory() as folder:
        built = build.build_all(Path(folder), ["c/counter", "rust/counter"])
        return {name.split("/")[0]: path.read_bytes() for name, path in built.items()}


def _best(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Best µs per call of each variant, rounds interleaved."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, run_round in variants.items():
            best[name] = min(best[name], run_round())
    return {name: round(value, 2) for name, value in best.items()}


def measure(quick: bool = False) -> dict[str, Any]:
    """µs per call in a world and per full executor call, for the WAT, C and Rust counters."""
    wasms = {"wat": guest_wasm("counter"), **sdk_counters()}
    instances, steps, rounds = (20, 5, 2) if quick else (100, 20, 5)
    worlds = {name: build_world(instances, wasm) for name, wasm in wasms.items()}

    def world_round(world: World) -> Callable[[], float]:
        def run_round() -> float:
            started = time.perf_counter()
            for _ in range(steps):
                world.step_with_modules()
            return (time.perf_counter() - started) / (steps * instances) * 1e6
        return run_round

    in_world = _best({name: world_round(world) for name, world in worlds.items()}, rounds)
    states = {name: world.module_state("bench.counter#1") for name, world in worlds.items()}
    assert len(set(states.values())) == 1, f"the counters disagree: {states}"
    for world in worlds.values():
        failures = [e.data for e in world.journal if e.kind == "module.call_failed"]
        assert not failures, failures[0]

    executor: Any = worlds["wat"].executor
    payload = encode_input(sample_context(), state=counter_state(41))
    iterations = 200 if quick else 2_000

    def call_round(wasm: bytes) -> Callable[[], float]:
        request = CallRequest(module_id="m.counter", instance_id="m.counter#1",
                              wasm_hash=hashlib.sha256(wasm).hexdigest(), wasm=wasm,
                              entrypoint="reduce", input=payload)
        assert executor.call(request).new_state == counter_state(42)

        def run_round() -> float:
            started = time.perf_counter()
            for _ in range(iterations):
                executor.call(request)
            return (time.perf_counter() - started) / iterations * 1e6
        return run_round

    full_call = _best({name: call_round(wasm) for name, wasm in wasms.items()}, rounds)
    return {
        "instances": instances,
        "world_call_us": in_world,
        "full_call_us": full_call,
        "c_vs_wat": round(in_world["c"] / in_world["wat"], 2),
        "rust_vs_wat": round(in_world["rust"] / in_world["wat"], 2),
        "wasm_bytes": {name: len(wasm) for name, wasm in wasms.items()},
    }
