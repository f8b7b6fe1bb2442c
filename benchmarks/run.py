"""agentworld benchmarks (SPEC §13): measured side by side in one run, reported as ratios.

    python benchmarks/run.py executor|ticks|persistence [--json] [--quick]

Each subcommand is one function taking the parsed arguments and returning a dict of results;
add one by writing the function and listing it in `COMMANDS`.

Timing: every variant runs `rounds` rounds of `iterations` calls, the variants interleaved
round by round so that machine noise hits all of them alike; a variant's figure is its best
round (as `timeit` recommends: slower rounds measure interference, not the code).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import wasmtime

from agentworld.abi import encode_input
from agentworld.executor import CallRequest, ExecutorConfig
from agentworld.manager import PluginManager
from agentworld.testing.conformance import counter_state, sample_context
from agentworld.testing.guests import guest_wasm

PAYLOAD = bytes(range(256))

# The same echo logic as the `echo` guest, written against Extism's kernel imports the way
# Extism's PDKs do it: read the input 8 bytes at a time, store it, set it as the output.
EXTISM_ECHO_WAT = """
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "echo") (result i32)
    (local $n i64) (local $offset i64) (local $i i64)
    (local.set $n (call $input_length))
    (local.set $offset (call $alloc (local.get $n)))
    (block $words_done
      (loop $words
        (br_if $words_done (i64.gt_u (i64.add (local.get $i) (i64.const 8)) (local.get $n)))
        (call $store_u64 (i64.add (local.get $offset) (local.get $i))
                         (call $input_load_u64 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 8)))
        (br $words)))
    (block $bytes_done
      (loop $bytes
        (br_if $bytes_done (i64.ge_u (local.get $i) (local.get $n)))
        (call $store_u8 (i64.add (local.get $offset) (local.get $i))
                        (call $input_load_u8 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $bytes)))
    (call $output_set (local.get $offset) (local.get $n))
    (i32.const 0)))
"""


def measure(
    variants: dict[str, Callable[[], Any]], *, iterations: int, rounds: int
) -> dict[str, float]:
    """Best per-call time in microseconds for each variant, rounds interleaved."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, call in variants.items():
            started = time.perf_counter()
            for _ in range(iterations):
                call()
            elapsed = (time.perf_counter() - started) / iterations * 1e6
            best[name] = min(best[name], elapsed)
    return best


def _echo_request() -> CallRequest:
    wasm = guest_wasm("echo")
    return CallRequest(
        module_id="bench.echo",
        instance_id="bench.echo#1",
        wasm_hash=hashlib.sha256(wasm).hexdigest(),
        wasm=wasm,
        entrypoint="call",
        input=PAYLOAD,
    )


def _naive_call(engine: Any, module: Any) -> Callable[[], bytes]:
    """The echo call as wasmtime-py's documentation writes it: same engine, same policy."""

    def call() -> bytes:
        store = wasmtime.Store(engine)
        store.set_fuel(10_000_000)
        store.set_epoch_deadline(1_000)
        store.set_limits(memory_size=16 * 1024 * 1024)
        exports = wasmtime.Instance(store, module, []).exports(store)
        memory, alloc, entry = exports["memory"], exports["alloc"], exports["call"]
        assert isinstance(memory, wasmtime.Memory)
        assert isinstance(alloc, wasmtime.Func) and isinstance(entry, wasmtime.Func)
        pointer = alloc(store, len(PAYLOAD))
        memory.write(store, PAYLOAD, pointer)
        out_pointer, out_size = entry(store, pointer, len(PAYLOAD))
        return bytes(memory.read(store, out_pointer, out_pointer + out_size))

    return call


def _extism_calls() -> tuple[Callable[[], bytes], Callable[[], bytes]] | None:
    """(fresh plugin per call, one reused plugin) echo calls, or None without extism."""
    try:
        import extism  # type: ignore[import-untyped]
        from extism.extism import CompiledPlugin  # type: ignore[import-untyped]
    except ImportError:
        return None
    wasm = bytes(wasmtime.wat2wasm(EXTISM_ECHO_WAT))
    compiled = CompiledPlugin(wasm, False, [])
    reused = extism.Plugin(compiled, functions=[])

    def fresh_call() -> bytes:
        # A new plugin instance per call: the isolation wasm-1 requires (SPEC §6).
        plugin = extism.Plugin(compiled, functions=[])
        return bytes(plugin.call("echo", PAYLOAD))

    def reused_call() -> bytes:
        # Extism's usual mode: one instance for every call, its memory surviving between them.
        return bytes(reused.call("echo", PAYLOAD))

    return fresh_call, reused_call


def bench_executor(args: argparse.Namespace) -> dict[str, Any]:
    """Per-call cost of the wasmtime executor against naive wasmtime-py and Extism."""
    executor: Any = PluginManager(entrypoints=False).create_executor("wasmtime", ExecutorConfig())
    try:
        echo = _echo_request()
        # "Warm": the executor exists, the echo module is compiled and its exports are
        # analysed (both cached). Every call still creates a fresh Store and instance,
        # writes 256 B in and reads 256 B out, as the ABI requires (SPEC §6).
        warm = lambda: executor.invoke(echo)  # noqa: E731
        naive = _naive_call(executor.engine, wasmtime.Module(executor.engine, guest_wasm("echo")))

        counter = guest_wasm("counter")
        counter_hash = hashlib.sha256(counter).hexdigest()
        context, state = sample_context(), counter_state(41)

        def full() -> Any:
            # Fresh instance + canonical context encoding + output decoding and validation.
            request = CallRequest(
                module_id="m.counter",
                instance_id="m.counter#1",
                wasm_hash=counter_hash,
                wasm=counter,
                entrypoint="reduce",
                input=encode_input(context, state=state),
            )
            return executor.call(request)

        variants: dict[str, Callable[[], Any]] = {"warm": warm, "naive": naive, "full": full}
        extism_calls = _extism_calls()
        if extism_calls is not None:
            variants["extism"], variants["extism_reused"] = extism_calls
        for name, call in variants.items():
            if name != "full":
                assert call() == PAYLOAD, f"{name} does not echo"
        full()

        quick = args.quick
        timings = measure(variants, iterations=200 if quick else 5_000, rounds=2 if quick else 7)
    finally:
        executor.close()

    def ratio(slow: float | None, fast: float) -> float | None:
        return None if slow is None else round(slow / fast, 2)

    warm_us = timings["warm"]
    extism_us = timings.get("extism")
    extism_reused_us = timings.get("extism_reused")
    return {
        "warm_call_us": round(warm_us, 2),
        "naive_call_us": round(timings["naive"], 2),
        "extism_call_us": None if extism_us is None else round(extism_us, 2),
        "extism_reused_call_us": None if extism_reused_us is None else round(extism_reused_us, 2),
        "full_call_us": round(timings["full"], 2),
        "speedup_vs_extism": ratio(extism_us, warm_us),
        "speedup_vs_extism_reused": ratio(extism_reused_us, warm_us),
        "speedup_vs_naive": ratio(timings["naive"], warm_us),
    }


def bench_ticks(args: argparse.Namespace) -> dict[str, Any]:
    """Tick routing: µs per call at 1 to 10 000 active instances, and the largest/smallest ratio."""
    from bench_ticks import measure as measure_ticks

    return measure_ticks(quick=args.quick)


COMMANDS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "executor": bench_executor,
    "ticks": bench_ticks,
}


def main(argv: list[str] | None = None) -> int:
    """Run one benchmark subcommand and print its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, function in COMMANDS.items():
        command = commands.add_parser(name, help=(function.__doc__ or "").strip())
        command.add_argument("--json", action="store_true", help="print one JSON line")
        command.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    args = parser.parse_args(argv)
    results = COMMANDS[args.command](args)
    if args.json:
        print(json.dumps(results))
    else:
        width = max(map(len, results))
        for key, value in results.items():
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
