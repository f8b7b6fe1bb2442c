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
from attrs import evolve
from hypothesis import given
from hypothesis import strategies as st

from agentworld.executor import ExecutorConfig, InvalidArtifactError, ModuleCallError
from agentworld.manager import PluginManager
from agentworld.metering import (
    ALLOC_EXPORT,
    ENTRY_PREFIX,
    GAS_EXPORT,
    RESET_EXPORT,
    STACK_EXPORT,
    STACK_LIMIT_V2,
    instrument,
)
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


@pytest.mark.parametrize("schedule", [1, 2])
@pytest.mark.parametrize("name", sorted(set(GUESTS) - REFUSED_GUESTS))
def test_every_guest_instruments_into_a_valid_module(name: str, schedule: int) -> None:
    result = instrument(guest_wasm(name), schedule)
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


@pytest.mark.parametrize("schedule", [1, 2])
def test_an_engine_that_does_not_canonicalize_gives_canonical_nans_once_instrumented(
    schedule: int,
) -> None:
    original = wasm(NAN_FUNCTIONS)
    instrumented = instrument(original, schedule).wasm
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


@pytest.mark.parametrize("schedule", [1, 2])
@pytest.mark.parametrize(("name", "args", "expected"), [
    ("mix", (10,), 45), ("blocks", (2,), 8 * 2 + 7 + 6), ("blocks", (5,), 8 * 5 + 100 + 6),
    ("bulk", (), 7 + 5), ("simd", (), 44),
])
def test_instrumented_functions_compute_what_the_originals_compute(
    name: str, args: tuple[int, ...], expected: int, schedule: int
) -> None:
    engine = raw_engine(canonicalize_nans=True)
    original = wasm(SEMANTICS)
    metered = instrument(original, schedule).wasm
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


# -- the stack limit (schedule 2) -------------------------------------------------------------


@pytest.mark.parametrize(("function", "units"), [
    ("(func)", 4),
    ("(func $f (call $f))", 4),
    # 2 parameters, 2 locals, the stack reaches 2, and 3 values are computed (two constants and
    # the sum; `local.get` computes nothing new).
    ("(func (param i32 i64) (local f32 f32) (i32.const 1) (i32.const 2) (i32.add) (drop))", 13),
    ("(func (param i32) (local.get 0) (local.get 0) (local.get 0) (drop) (drop) (drop))", 8),
    # A call's results are values it computes; its arguments leave the stack.
    ("(func $g (param i32 i32) (result i32 i32 i32) (call $g (local.get 0) (local.get 1)))", 12),
    # Code after `br` counts from the block's base (the stack reaches 2 there): 4 values.
    ("(func (result i32) (block (result i32) (i32.const 1) (br 0) (i32.const 2) (i32.const 3)"
     " (i32.add)))", 10),
])
def test_stack_units_count_a_frame_its_parameters_locals_stack_and_values(
    function: str, units: int
) -> None:
    assert instrument(wasm(function), 2).stack_units[0] == units


STACK_EXITS = ABI + """
  (global $left (export "left") (mut i32) (i32.const 0))
  (func $leave (param $how i32) (result i32) (local $v i32)
    block $b (result i32)
      local.get $how
      i32.const 5
      i32.eq
      if
        i32.const 6
        br 2                  ;; how 5: br to the function's label
      end
      i32.const 1
      local.get $how
      i32.const 1
      i32.eq
      br_if 1                 ;; how 1: br_if to the function's label
      drop
      i32.const 3
      local.get $how
      i32.const 2
      i32.sub
      br_table $b 1 $b        ;; how 3: br_table to the function's label; others to $b
    end
    local.set $v
    local.get $how
    i32.const 4
    i32.eq
    if
      i32.const 4
      return                  ;; how 4: return
    end
    local.get $v
    i32.const 20
    i32.add)                  ;; how 0 and 2: the end of the body
  (func (export "exits") (param $times i32) (result i32)
    (local $i i32) (local $sum i32)
    (loop $next
      (local.set $sum (i32.add (local.get $sum) (call $leave (i32.rem_u (local.get $i)
                                                                         (i32.const 6)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $i) (local.get $times))))
    (local.get $sum))
"""


def test_every_way_out_of_a_function_gives_its_stack_units_back() -> None:
    """`return`, `br`/`br_if`/`br_table` to the function's label and the end of the body: a
    function left 30 000 times that way must leave the whole budget (units leaking on any exit
    would exhaust it after a few thousand calls)."""
    metered = instrument(wasm(STACK_EXITS), 2)
    engine = raw_engine(canonicalize_nans=True)
    store = wasmtime.Store(engine)
    exports = wasmtime.Instance(store, wasmtime.Module(engine, metered.wasm), []).exports(store)
    arm, exits, stack = exports[ALLOC_EXPORT], exports["exits"], exports[STACK_EXPORT]
    assert isinstance(arm, wasmtime.Func) and isinstance(exits, wasmtime.Func)
    assert isinstance(stack, wasmtime.Global)
    arm(store, 10**9, 1 << 20, 0)
    assert stack.value(store) == STACK_LIMIT_V2
    assert exits(store, 30_000) == 5_000 * (23 + 1 + 23 + 3 + 4 + 6)
    assert stack.value(store) == STACK_LIMIT_V2


def test_a_function_that_alone_needs_more_than_the_limit_is_refused() -> None:
    # 4 (the frame) + 40 000 locals + 5 000 values at once + 5 000 values computed.
    huge = wasm(f"(func (local {' '.join(['i64'] * MAX_LOCALS)})"
                f" {'i32.const 0 ' * 5_000} {'drop ' * 5_000})")
    with pytest.raises(InvalidArtifactError, match=r"function 0 needs 50004 units of stack, more "
                                                   r"than the gas schedule's limit of 50000"):
        instrument(huge, 2)
    assert instrument(huge, 1).wasm  # schedule 1 has no stack limit


def test_schedule_1_keeps_no_stack_limit(executors: tuple[object, object]) -> None:
    """Worlds pinned to schedule 1 keep their results: recursion there is bounded by the
    engine's native stack only, so the recursion schedule 2 stops goes on."""
    executor = executors[0]
    too_deep = guest_request("stack_depth", input=b"x" * 5554)
    with pytest.raises(ModuleCallError, match="call stack exhausted"):
        executor.call(too_deep)  # type: ignore[attr-defined]
    output = executor.call(evolve(too_deep, gas_schedule=1))  # type: ignore[attr-defined]
    assert output.gas_used == 8 + 7 * 5554


# -- resetting a used instance --------------------------------------------------------------


def _leaky_call(store: wasmtime.Store, exports: wasmtime.instance.InstanceExports) -> bytes:
    """Arm the instrumented `leaky` guest and call it: the output bytes it returns."""
    entry, memory = exports[ENTRY_PREFIX + "reduce"], exports["memory"]
    assert isinstance(entry, wasmtime.Func)
    assert isinstance(memory, wasmtime.Memory)
    pointer, _, _ = entry(store, 0, 10**6, 1 << 20, 0)
    out_pointer, out_length, _ = entry(store, 1, pointer, 0, 0)
    return bytes(memory.read(store, out_pointer, out_pointer + out_length))


@pytest.mark.parametrize("schedule", [1, 2])
def test_reset_puts_an_instance_back_as_instantiation_left_it(schedule: int) -> None:
    engine = raw_engine(canonicalize_nans=True)
    module = wasmtime.Module(engine, instrument(guest_wasm("leaky"), schedule).wasm)

    def instance() -> tuple[wasmtime.Store, wasmtime.instance.InstanceExports]:
        store = wasmtime.Store(engine)
        return store, wasmtime.Instance(store, module, []).exports(store)

    fresh_store, fresh = instance()
    memory = fresh["memory"]
    assert isinstance(memory, wasmtime.Memory)
    instantiated = bytes(memory.read(fresh_store, 0, memory.data_len(fresh_store)))
    first = _leaky_call(fresh_store, fresh)
    store, used = instance()
    reset, used_memory = used[RESET_EXPORT], used["memory"]
    assert isinstance(reset, wasmtime.Func) and isinstance(used_memory, wasmtime.Memory)
    for _ in range(3):
        assert _leaky_call(store, used) == first
        assert reset(store) == 1
        assert bytes(used_memory.read(store, 0, used_memory.data_len(store))) == instantiated


@pytest.mark.parametrize(("body", "why"), [
    ("(drop (memory.grow (i32.const 1)))", "the memory grew"),
    ("(drop (table.grow (ref.null func) (i32.const 1)))", "a table grew"),
    ("(data.drop $later)", "a segment can be dropped"),
])
def test_an_instance_that_cannot_be_put_back_says_so(body: str, why: str) -> None:
    module = wasm(ABI + f"""(table 1 funcref) (data $later "x")
      (func (export "change") {body}) (func (export "nothing"))""")
    engine = raw_engine(canonicalize_nans=True)
    store = wasmtime.Store(engine)
    exports = wasmtime.Instance(store, wasmtime.Module(engine, instrument(module, 2).wasm),
                                []).exports(store)
    reset, change, arm = exports[RESET_EXPORT], exports["change"], exports[ALLOC_EXPORT]
    assert isinstance(reset, wasmtime.Func) and isinstance(change, wasmtime.Func)
    assert isinstance(arm, wasmtime.Func)
    assert reset(store) == (0 if why == "a segment can be dropped" else 1)
    arm(store, 10**6, 1 << 20, 0)
    change(store)
    assert reset(store) == 0, why
