"""The instrumentation pass: what it accepts and refuses, and that it keeps modules' meaning.

Instrumented modules are run here on raw wasmtime engines (not through our executor), including
one that does not canonicalize NaNs, to show they behave alike on any engine.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator

import pytest
import wasmtime
from hypothesis import given
from hypothesis import strategies as st

from agentworld.executor import ExecutorConfig, InvalidArtifactError
from agentworld.manager import PluginManager
from agentworld.metering import ALLOC_EXPORT, GAS_EXPORT, instrument
from agentworld.testing.conformance import guest_request
from agentworld.testing.guests import GUESTS, guest_wasm
from agentworld.wasm_module import MAX_LOCALS, read_sleb, read_u32, sleb, uleb

ABI = """
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
"""


def wasm(body: str) -> bytes:
    """A module from WAT text (module fields only)."""
    return bytes(wasmtime.wat2wasm(f"(module {body})"))


def raw_engine(*, canonicalize_nans: bool) -> wasmtime.Engine:
    config = wasmtime.Config()
    config.cranelift_nan_canonicalization = canonicalize_nans
    return wasmtime.Engine(config)


def run_export(engine: wasmtime.Engine, module_bytes: bytes, name: str, gas: int = 10**9,
               *args: int) -> tuple[object, int | None]:
    """Call export `name` on a fresh instance: (its result, gas left or None if not metered)."""
    store = wasmtime.Store(engine)
    exports = wasmtime.Instance(store, wasmtime.Module(engine, module_bytes), []).exports(store)
    meter = exports.get(GAS_EXPORT)
    arm = exports.get(ALLOC_EXPORT)
    if isinstance(arm, wasmtime.Func):  # sets the gas and a 16 MiB memory limit
        arm(store, gas, 16 << 20, 0)
    function = exports[name]
    assert isinstance(function, wasmtime.Func)
    result = function(store, *args)
    left = meter.value(store) if isinstance(meter, wasmtime.Global) else None
    return result, left if isinstance(left, int) else None


# -- the binary helpers ---------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_unsigned_leb_round_trips(value: int) -> None:
    encoded = uleb(value)
    assert read_u32(encoded, 0, len(encoded)) == (value, len(encoded))


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_signed_leb_round_trips(value: int) -> None:
    encoded = sleb(value)
    assert read_sleb(encoded, 0, len(encoded), 10) == (value, len(encoded))


@given(st.binary(max_size=64))
def test_arbitrary_bytes_are_refused_or_instrumented_never_crash(data: bytes) -> None:
    for blob in (data, b"\0asm\x01\0\0\0" + data):
        try:
            instrument(blob, 1)
        except InvalidArtifactError as exc:
            assert str(exc).startswith("invalid artifact: ")


# -- every shipped guest ---------------------------------------------------------------------

REFUSED_GUESTS = {"imports", "relaxed", "atomics"}


@pytest.mark.parametrize("name", sorted(set(GUESTS) - REFUSED_GUESTS))
def test_every_guest_instruments_into_a_valid_module(name: str) -> None:
    result = instrument(guest_wasm(name), 1)
    wasmtime.Module.validate(raw_engine(canonicalize_nans=True), result.wasm)
    assert [entry[0] for entry in result.info["exports"]] == [
        export.name for export in wasmtime.Module(wasmtime.Engine(), guest_wasm(name)).exports]


@pytest.fixture(scope="module")
def executors() -> Iterator[tuple[object, object]]:
    manager = PluginManager(entrypoints=False)
    plain = manager.create_executor("wasmtime", ExecutorConfig())
    backstop = manager.create_executor(
        "wasmtime", ExecutorConfig(options={"fuel_backstop": True}))
    yield plain, backstop
    plain.close()  # type: ignore[attr-defined]
    backstop.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["counter", "observer", "rule", "effector", "loop", "membomb",
                                  "tablebomb", "gas_loop", "gas_grow", "nan", "divzero"])
def test_wasmtime_fuel_on_or_off_gives_identical_results_and_gas(
    executors: tuple[object, object], name: str
) -> None:
    outcomes = []
    for executor in executors:
        kind = "reducer" if name in ("counter", "nan") else "pure"
        request = guest_request(name, entrypoint="reduce" if kind == "reducer" else "call",
                                kind=kind, max_gas=500_000)
        try:
            output = executor.call(request)  # type: ignore[attr-defined]
            outcomes.append(("ok", output, output.gas_used))
        except Exception as exc:
            outcomes.append((type(exc).__name__, getattr(exc, "code", None),
                             getattr(exc, "detail", None), getattr(exc, "gas_used", None)))
    assert outcomes[0] == outcomes[1]


# -- floating point --------------------------------------------------------------------------

NAN_FUNCTIONS = ABI + """
  (func (export "f32_div") (result i32)
    (i32.reinterpret_f32 (f32.div (f32.const 0) (f32.const 0))))
  (func (export "f64_sqrt") (result i64)
    (i64.reinterpret_f64 (f64.sqrt (f64.const -1))))
  (func (export "f32_payload") (result i32)
    (i32.reinterpret_f32 (f32.add (f32.const -nan:0x200001) (f32.const 1))))
  (func (export "f64_promote") (result i64)
    (i64.reinterpret_f64 (f64.promote_f32 (f32.const -nan:0x200001))))
  (func (export "f32x4_lane") (result i32)
    (i32x4.extract_lane 2 (f32x4.mul (v128.const f32x4 0 1 -nan:0x1234 2)
                                     (v128.const f32x4 0 1 3 2))))
  (func (export "f64x2_lane") (result i64)
    (i64x2.extract_lane 0 (f64x2.div (v128.const f64x2 0 0) (v128.const f64x2 0 0))))
  (func (export "not_nan") (result i32)
    (i32.reinterpret_f32 (f32.div (f32.const 1) (f32.const 4))))
"""

CANONICAL = {
    "f32_div": 0x7FC00000, "f64_sqrt": 0x7FF8000000000000, "f32_payload": 0x7FC00000,
    "f64_promote": 0x7FF8000000000000, "f32x4_lane": 0x7FC00000,
    "f64x2_lane": 0x7FF8000000000000, "not_nan": struct.unpack("<i", struct.pack("<f", 0.25))[0],
}


def _bits(value: object, name: str) -> int:
    assert isinstance(value, int)
    return value & (0xFFFFFFFFFFFFFFFF if name.startswith(("f64", "i64")) or "64" in name
                    else 0xFFFFFFFF)


def test_an_engine_that_does_not_canonicalize_gives_canonical_nans_once_instrumented() -> None:
    original = wasm(NAN_FUNCTIONS)
    instrumented = instrument(original, 1).wasm
    engine = raw_engine(canonicalize_nans=False)
    differs = 0
    for name, expected in CANONICAL.items():
        raw, _ = run_export(engine, original, name)
        metered, _ = run_export(engine, instrumented, name)
        assert _bits(metered, name) == _bits(expected, name), name
        differs += _bits(raw, name) != _bits(expected, name)
    assert differs  # the engine on its own really gives other NaNs: the rewrite is what fixes it


# -- meaning is kept ------------------------------------------------------------------------

SEMANTICS = ABI + """
  (type $pair (func (param i32) (result i32 i32)))
  (type $unary (func (param i32) (result i32)))
  (table $funcs 2 funcref)
  (elem (table $funcs) (i32.const 0) func $inc $dec)
  (global $g (mut i64) (i64.const 5))
  (func $inc (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func $dec (param i32) (result i32) (i32.sub (local.get 0) (i32.const 1)))
  (func $split (type $pair) (local.get 0) (i32.mul (local.get 0) (i32.const 3)))
  (func (export "mix") (param $n i32) (result i64)
    (local $i i32) (local $acc i64)
    (block $out
      (loop $next
        (br_if $out (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc (i64.add (local.get $acc)
          (i64.extend_i32_u (call_indirect (type $unary) (local.get $i)
                                           (i32.and (local.get $i) (i32.const 1))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_table $next $out (i32.const 0))))
    (local.get $acc))
  (func (export "blocks") (param $x i32) (result i32)
    (call $split (local.get $x))
    (i32.add)
    (block (param i32) (result i32) (i32.const 2) (i32.mul))
    (if (param i32) (result i32) (i32.gt_u (local.get $x) (i32.const 3))
      (then (i32.const 100) (i32.add))
      (else (select (i32.const 7) (i32.const 9) (local.get $x)) (i32.add)))
    (global.set $g (i64.add (global.get $g) (i64.const 1)))
    (i32.add (i32.wrap_i64 (global.get $g))))
  (func (export "bulk") (result i32)
    (memory.fill (i32.const 100) (i32.const 7) (i32.const 300))
    (memory.copy (i32.const 1000) (i32.const 100) (i32.const 300))
    (drop (table.grow $funcs (ref.null func) (i32.const 3)))
    (i32.add (i32.load8_u (i32.const 1299)) (table.size $funcs)))
  (func (export "simd") (result i32)
    (i32x4.extract_lane 3 (i32x4.add (v128.const i32x4 1 2 3 4)
                                     (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
                                       (v128.const i32x4 10 20 30 40) (v128.const i32x4 0 0 0 0)))))
"""


@pytest.mark.parametrize(("name", "args", "expected"), [
    ("mix", (10,), 45), ("blocks", (2,), 8 * 2 + 7 + 6), ("blocks", (5,), 8 * 5 + 100 + 6),
    ("bulk", (), 7 + 5), ("simd", (), 44),
])
def test_instrumented_functions_compute_what_the_originals_compute(
    name: str, args: tuple[int, ...], expected: int
) -> None:
    engine = raw_engine(canonicalize_nans=True)
    original = wasm(SEMANTICS)
    metered = instrument(original, 1).wasm
    assert run_export(engine, original, name, 0, *args)[0] == expected
    result, left = run_export(engine, metered, name, 10**6, *args)
    assert result == expected
    assert left is not None and 0 < left < 10**6


def test_gas_charged_per_segment_is_deterministic() -> None:
    engine = raw_engine(canonicalize_nans=True)
    metered = instrument(wasm(SEMANTICS), 1).wasm
    used = [10**6 - (run_export(engine, metered, "mix", 10**6, n)[1] or 0) for n in range(5)]
    # Each iteration runs the same segments: the gas grows by the same step.
    steps = {b - a for a, b in itertools.pairwise(used)}
    assert len(steps) == 1 and steps.pop() > 0


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "reason"), [
    ('(import "env" "f" (func))', r"imports env\.f \(func\)"),
    ("(memory 1 1 shared)", "shared memory"),
    ("(memory i64 1)", "64-bit"),
    ("(memory 1) (memory 1)", "one memory"),
    ("(func (drop (i32.atomic.load (i32.const 0)))) (memory 1 1 shared)", "shared memory"),
    ("(memory 1) (func (drop (i32.atomic.load (i32.const 0))))", "atomic"),
    ("(func (drop (i32x4.relaxed_trunc_f32x4_s (v128.const i64x2 0 0))))", "relaxed SIMD"),
    ("(func $f (return_call $f))", "tail calls"),
    ("(tag $e) (func (throw $e))", "section id 13|exception"),
    ('(func (export "__agentworld_gas"))', "reserved prefix"),
    ("(global i32 (i32.add (i32.const 1) (i32.const 2)))", "extended constant"),
])
def test_features_the_meter_cannot_handle_are_refused(body: str, reason: str) -> None:
    with pytest.raises(InvalidArtifactError, match=reason):
        instrument(wasm(body), 1)


def _index_beyond(kind: str) -> bytes:
    """A module whose only function refers to the first global/function index past its own."""
    # (func (global.get 0) drop) / (func (call 1)): hand-encoded, since WAT refuses them.
    code = {"global": b"\x23\x00\x1a\x0b", "function": b"\x10\x01\x0b",
            "local": b"\x20\x00\x1a\x0b"}[kind]
    body = b"\x00" + code
    return (b"\0asm\x01\0\0\0" + b"\x01\x04\x01\x60\x00\x00" + b"\x03\x02\x01\x00"
            + b"\x0a" + uleb(len(body) + 2) + b"\x01" + uleb(len(body)) + body)


@pytest.mark.parametrize("kind", ["global", "function", "local"])
def test_indices_past_the_modules_own_are_refused(kind: str) -> None:
    # Otherwise code could reach the gas global or the meter's helpers the rewrite adds there.
    with pytest.raises(InvalidArtifactError, match=f"{kind} that does not exist"):
        instrument(_index_beyond(kind), 1)


def test_too_many_locals_are_refused_to_bound_compile_time() -> None:
    with pytest.raises(InvalidArtifactError, match=f"more than {MAX_LOCALS} locals"):
        instrument(wasm(f"(func (local {' '.join(['i64'] * (MAX_LOCALS + 1))}))"), 1)


def test_unknown_schedule_is_refused() -> None:
    with pytest.raises(InvalidArtifactError, match="gas schedule 7 is unknown"):
        instrument(wasm("(memory 1)"), 7)
