"""Metering: our instrumented gas against wasmtime's own fuel, and the cost of instrumenting.

A compute-heavy guest (a loop of integer arithmetic, loads and stores) runs, side by side in
one run, as (a) the original module on a wasmtime engine with its own fuel on (how a wasmtime
user meters) and (b) the instrumented module through our executor (fuel off: our gas meters
it), and (c) likewise with wasmtime's fuel as a backstop. Each call runs long enough (ms) that
per-call overhead does not matter. `instrumented_over_native` = b / a (target: at most 1.3).

Deploy-time cost: a synthetic module of about 1 MB of code (many functions of loops, branches,
memory and float instructions) is instrumented and compiled; `instrument_ms_per_mb` and
`compile_ms_per_mb` are per MB of the original artifact.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import wasmtime

from agentworld.backends.wasmtime_executor import WasmtimeBackend
from agentworld.executor import CURRENT_GAS_SCHEDULE, CallLimits, CallRequest, ExecutorConfig
from agentworld.manager import PluginManager
from agentworld.metering import instrument

ITERATIONS = 2_000_000

COMPUTE_WAT = f"""
(module
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (local $i i32) (local $x i32) (local $acc i64)
    (loop $again
      (local.set $x (i32.add (i32.mul (local.get $i) (i32.const -1640531535))
                             (i32.const 12345)))
      (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 13))))
      (i32.store (i32.and (i32.shl (local.get $i) (i32.const 2)) (i32.const 0xfffc))
                 (local.get $x))
      (local.set $acc (i64.add (local.get $acc)
        (i64.load32_u (i32.and (i32.mul (local.get $x) (i32.const 4)) (i32.const 0xfffc)))))
      (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (local.get $x))))
      (br_if $again (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                              (i32.const {ITERATIONS}))))
    (i64.store (i32.const 0) (local.get $acc))
    (i32.const 0) (i32.const 8)))
"""


def _synthetic_function(index: int) -> str:
    return f"""
  (func $f{index} (param $a i32) (param $b i32) (result i32)
    (local $x i32) (local $y f64)
    (block $out
      (loop $top
        (local.set $x (i32.add (i32.mul (local.get $a) (i32.const 31)) (local.get $b)))
        (i32.store (i32.and (local.get $x) (i32.const 0xfff0)) (local.get $x))
        (local.set $y (f64.add (local.get $y) (f64.convert_i32_s (local.get $x))))
        (br_if $out (i32.gt_u (local.get $x) (i32.const {1000 + index})))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (br_if $top (i32.lt_u (local.get $a) (i32.const 10)))))
    (if (result i32) (i32.eqz (local.get $b))
      (then (call $f{max(index - 1, 0)} (local.get $x) (i32.const 1)))
      (else (i32.add (local.get $x) (i32.trunc_sat_f64_s (local.get $y))))))"""


def synthetic_module(target_bytes: int) -> bytes:
    """A module of roughly `target_bytes` bytes of varied code."""
    functions = max(1, target_bytes // 95)
    text = "(module (memory 1)" + "".join(_synthetic_function(i) for i in range(functions)) + ")"
    return bytes(wasmtime.wat2wasm(text))


def measure(quick: bool = False) -> dict[str, Any]:
    """Run the comparison; every figure is the best of its rounds."""
    original = bytes(wasmtime.wat2wasm(COMPUTE_WAT))
    native_backend = WasmtimeBackend({"fuel_backstop": True})
    native_backend.close()  # only its engine (fuel, same settings as ours) is used
    engine = native_backend.engine
    module = wasmtime.Module(engine, original)
    manager = PluginManager(entrypoints=False)
    ours = manager.create_executor("wasmtime", ExecutorConfig())
    backstop = manager.create_executor("wasmtime", ExecutorConfig(options={"fuel_backstop": True}))
    request = CallRequest(
        module_id="bench.compute", instance_id="bench.compute#1",
        wasm_hash=hashlib.sha256(original).hexdigest(), wasm=original, entrypoint="call",
        input=b"", limits=CallLimits(max_gas=10**12, max_call_ms=60_000), kind="pure",
    )

    def native() -> bytes:
        store = wasmtime.Store(engine)
        store.set_fuel(10**12)
        store.set_epoch_deadline(10**9)
        exports = wasmtime.Instance(store, module, []).exports(store)
        call, memory = exports["call"], exports["memory"]
        assert isinstance(call, wasmtime.Func) and isinstance(memory, wasmtime.Memory)
        pointer, size = call(store, 1024, 0)
        return bytes(memory.read(store, pointer, pointer + size))

    variants = {
        "native": native,
        "instrumented": lambda: ours.invoke(request),
        "backstop": lambda: backstop.invoke(request),
    }
    try:
        results = {name: run() for name, run in variants.items()}
        assert len(set(results.values())) == 1, "the variants computed different results"
        best = dict.fromkeys(variants, float("inf"))
        for _ in range(2 if quick else 7):
            for name, run in variants.items():
                started = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - started)
    finally:
        ours.close()
        backstop.close()

    big = synthetic_module(100_000 if quick else 1_000_000)
    megabytes = len(big) / 1e6
    instrument_s = compile_s = float("inf")
    compiler = WasmtimeBackend()
    compiler.close()
    for _ in range(1 if quick else 3):
        started = time.perf_counter()
        instrumented = instrument(big, CURRENT_GAS_SCHEDULE)
        instrument_s = min(instrument_s, time.perf_counter() - started)
        started = time.perf_counter()
        compiler.compile(instrumented.wasm)
        compile_s = min(compile_s, time.perf_counter() - started)
    return {
        "native_call_ms": round(best["native"] * 1e3, 3),
        "instrumented_call_ms": round(best["instrumented"] * 1e3, 3),
        "instrumented_backstop_call_ms": round(best["backstop"] * 1e3, 3),
        "instrumented_over_native": round(best["instrumented"] / best["native"], 3),
        "backstop_over_native": round(best["backstop"] / best["native"], 3),
        "artifact_mb": round(megabytes, 3),
        "instrument_ms_per_mb": round(instrument_s * 1e3 / megabytes, 1),
        "compile_ms_per_mb": round(compile_s * 1e3 / megabytes, 1),
        "instrumented_size_ratio": round(len(instrumented.wasm) / len(big), 3),
    }
