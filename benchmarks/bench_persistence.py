"""Persistence throughput and the compiled-module disk cache.

A world with many events and many distinct artifacts is saved, loaded and replayed from genesis
(events per second); then every artifact is started once by an executor with an empty disk cache
(cold: compile and write the cache) and once by a new executor sharing that cache (warm: load the
compiled module from disk). Targets: replay ≥ 100 000 events/s, warm start at least 20 times faster.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from agentworld import World
from agentworld.abi import encode_input
from agentworld.canonical import sha256_hex
from agentworld.executor import CallRequest, ExecutorConfig
from agentworld.persistence import journal_files, parse_journal
from agentworld.stateroot import state_root
from agentworld.testing.guests import guest_wat
from agentworld.world import rebuild_state

AGENTS = 100
INSTANCES = 10


def artifact(index: int) -> bytes:
    """A distinct, valid counter guest: the counter's WAT plus a global holding `index`."""
    import wasmtime

    wat = guest_wat("counter").rstrip()
    assert wat.endswith(")")
    return bytes(wasmtime.wat2wasm(f"{wat[:-1]} (global (export \"variant\") i32 "
                                   f"(i32.const {index})))"))


def build_world(events: int, artifacts: int) -> tuple[World, list[str]]:
    """A world of about `events` events holding `artifacts` deployed artifacts."""
    world = World()
    for index in range(AGENTS):
        world.submit({"type": "register_agent",
                      "data": {"agent_id": f"a{index}", "position": [index, 0],
                               "resources": {"gold": 1_000_000}}})
    world.step()
    hashes = []
    for index in range(artifacts):
        wasm = artifact(index)
        hashes.append(sha256_hex(wasm))
        world.submit({"type": "module.deploy_artifact", "data": {
            "publisher_agent_id": f"a{index % AGENTS}", "wasm_bytes": wasm,
            "wasm_hash": hashes[-1]}})
    world.step()
    for index, wasm_hash in enumerate(hashes[:INSTANCES]):
        world.submit({"type": "module.install", "data": {
            "installer_agent_id": f"a{index}", "manifest": {
                "module_id": f"bench.m{index}", "name": "counter", "version": "1.0.0",
                "kind": "reducer", "wasm_hash": wasm_hash, "interface_version": "wasm-1",
                "exports": ["memory", "alloc", "reduce"], "subscriptions": [{"stage": "tick"}],
            }}})
    world.step()
    assert len(world.instances) == min(INSTANCES, artifacts), "installs were rejected"
    step = 0
    while len(world.journal) < events:
        for index in range(min(1_000, events - len(world.journal))):
            agent = f"a{index % AGENTS}"
            if index % 2:
                world.submit({"type": "move_agent",
                              "data": {"agent_id": agent, "to": [step % 97, index]}})
            else:
                world.submit({"type": "transfer_resource", "data": {
                    "from_agent_id": agent, "to_agent_id": f"a{(index + 1) % AGENTS}",
                    "kind": "gold", "amount": 1 + step % 5}})
        world.step()
        step += 1
    return world, hashes


def start_artifacts(world: World, hashes: list[str], cache_dir: Path) -> float:
    """Seconds for a new executor using `cache_dir` to run one call of every artifact."""
    executor = world.plugins.create_executor("wasmtime", ExecutorConfig(cache_dir=cache_dir))
    payload = encode_input({"v": "wasm-1"}, state=b"")
    # A loader, as routing passes: a warm start never needs the artifact's bytes.
    requests = [
        CallRequest(module_id="bench", instance_id="bench#1", wasm_hash=wasm_hash,
                    wasm=functools.partial(world.store.get_blob, wasm_hash),
                    entrypoint="reduce", input=payload)
        for wasm_hash in hashes
    ]
    try:
        started = time.perf_counter()
        for request in requests:
            executor.call(request)
        return time.perf_counter() - started
    finally:
        executor.close()


def measure(quick: bool = False) -> dict[str, float]:
    """Save, load and replay throughput (events/s) and cold vs warm artifact start (s)."""
    events, artifacts = (5_000, 10) if quick else (100_000, 100)
    world, hashes = build_world(events, artifacts)
    scratch = Path(tempfile.mkdtemp(prefix="agentworld-bench-"))
    try:
        started = time.perf_counter()
        world.save_to_dir(scratch / "world")
        save_s = time.perf_counter() - started

        started = time.perf_counter()
        loaded = World.load_from_dir(scratch / "world")
        load_s = time.perf_counter() - started
        assert loaded.state_root() == world.state_root()

        files = journal_files(scratch / "world")

        def read_journal() -> list[Any]:
            events: list[Any] = []
            for path in files:
                events += parse_journal(path.read_bytes(), str(path), len(events) + 1)
            return events

        parsed = read_journal()
        # Full replay: read and parse the journal files, then apply every event from genesis.
        replay_s = min(_timed(lambda: rebuild_state(read_journal())) for _ in range(3))
        apply_s = min(_timed(lambda: rebuild_state(parsed)) for _ in range(3))
        assert state_root(rebuild_state(parsed)) == world.state_root()

        cold_s = start_artifacts(world, hashes, scratch / "cache")
        warm_s = min(start_artifacts(world, hashes, scratch / "cache") for _ in range(3))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    count = len(world.journal)
    return {
        "events": float(count),
        "artifacts": float(len(hashes)),
        "save_events_per_s": count / save_s,
        "load_events_per_s": count / load_s,
        "replay_events_per_s": count / replay_s,
        "apply_events_per_s": count / apply_s,
        "cold_start_s": cold_s,
        "warm_start_s": warm_s,
        "warm_vs_cold_speedup": cold_s / warm_s,
    }


def _timed(work: object) -> float:
    started = time.perf_counter()
    work()  # type: ignore[operator]
    return time.perf_counter() - started


if __name__ == "__main__":
    import sys

    print(json.dumps(measure(quick="--quick" in sys.argv), indent=2, sort_keys=True))
