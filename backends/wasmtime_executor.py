"""The wasmtime backend: compiles instrumented modules and runs calls in fresh instances.

Only engine code lives here (docs/executors.md, "Writing an executor"): the core
(`agentworld.engine_executor.EngineExecutor`) instruments, plans, caches, classifies and
decodes. wasmtime is configured for determinism (NaN canonicalization on, relaxed SIMD off,
threads off) and bounds each call with an epoch watchdog (one daemon thread per backend) for
`max_call_ms` and a store limiter as a backstop behind the instrumented memory and table
limits. Its own fuel is off unless the `fuel_backstop` option turns it on as a backstop: gas is
metered by the instrumented code.

The per-call path is the hot path of the whole system, so it does not go through
`Func.__call__`: each call drives wasmtime's C API directly through untyped ctypes prototypes
declared here, passing ctypes objects built once (no per-argument conversion), with export
lookups by position and `memoryview`s over the raw argument slots and over guest memory. A call
is (a) a fresh store and instance (`_Session.open`) and (b) the bytes-in/bytes-out call-through
on it (`_Session.call`).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import threading
import weakref
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

from agentworld.engine import (
    ALLOC_OUT_OF_BOUNDS,
    ENGINE_ERROR,
    ENGINE_FUEL,
    ENGINE_LIMIT,
    OUTPUT_OUT_OF_BOUNDS,
    OUTPUT_TOO_LARGE,
    TIMEOUT,
    TRAP,
    BackendDefaults,
    CallPlan,
    EngineCompileError,
    EngineFailure,
    Job,
    RunResult,
)
from agentworld.engine_executor import EngineExecutor
from agentworld.errors import ExecutorConfigError
from agentworld.executor import CallLimits, ExecutorConfig
from agentworld.hookspecs import hookimpl

try:
    import wasmtime
    from wasmtime import _bindings as _raw
    from wasmtime import _ffi
except ImportError as exc:  # the executor still registers, as unavailable
    _IMPORT_ERROR: str | None = f"the wasmtime package cannot be imported: {exc}"
else:
    _IMPORT_ERROR = None

DESCRIPTION = "wasmtime (default): epoch watchdog, store limits, compiled-module cache"

# Guest-memory views kept by base address (pooled memories reuse a few fixed bases).
_VIEW_CACHE_SIZE = 256
# Fuel per unit of gas when the engine's fuel is a backstop: the instrumented code and its
# helpers execute far fewer engine instructions than this per unit of gas they charge, so the
# backstop never fires before the gas meter does.
_BACKSTOP_FUEL_PER_GAS = 64
_BACKSTOP_FUEL_EXTRA = 1_000_000

DEFAULT_OPTIONS: dict[str, Any] = {
    # "pooling" preallocates instance slots, which makes a fresh instance per call cheap;
    # "on-demand" maps memory per instance (slower, no up-front address-space reservation).
    "allocator": "pooling",
    "pool_slots": 16,
    # Engine-wide ceiling on one guest memory (a backstop behind the calls' own limits).
    "max_memory_bytes": 256 * 1024 * 1024,
    # Bytes of each pooled memory kept resident and reset with memset instead of madvise.
    "keep_resident_bytes": 64 * 1024,
    "max_wasm_stack": 4 * 1024 * 1024,
    # Watchdog resolution: a runaway call is interrupted within max_call_ms + 2 ticks.
    "epoch_tick_ms": 5,
    # wasmtime's own fuel as a backstop behind the instrumented gas meter (results are the
    # same either way; off is faster).
    "fuel_backstop": False,
    # Let a call of a batch run in the instance of the call before it (same module, entrypoint
    # and limits) once the module's reset export has put it back in its freshly instantiated
    # state; only for memories up to `reuse_max_bytes`, which reset zeroes whole.
    "reuse_instances": True,
    "reuse_max_bytes": 64 * 1024,
}


class _Ptr(ctypes.c_void_p):
    """A pointer the C API returns and takes back as it is.

    As a `restype`, a subclass of `c_void_p` makes ctypes return the ctypes object instead of
    converting it to an int, so it can be passed on to an untyped prototype unconverted.
    """


def _native(name: str, restype: Any) -> Any:
    """An untyped ctypes prototype for one wasmtime C API function.

    wasmtime-py's bindings (and typed prototypes) convert every argument on every call. These
    declare no argument types: every argument must already be a ctypes object (`_Ptr`,
    `c_void_p`, `c_size_t`, `c_uint64`, ...) or None for NULL, never a plain int (which ctypes
    would pass as a C int). The call path builds those objects once and passes them as they are.
    """
    function = ctypes.CFUNCTYPE(restype)((name, _ffi.dll))
    function.argtypes = None  # type: ignore[assignment]  # None: no conversion at all
    return function


if _IMPORT_ERROR is None:
    _P, _SIZE = ctypes.c_void_p, ctypes.c_size_t
    _store_new = _native("wasmtime_store_new", _Ptr)  # (engine, data, finalizer)
    _store_context = _native("wasmtime_store_context", _Ptr)  # (store)
    _store_delete = _native("wasmtime_store_delete", None)  # (store)
    # (store, memory_size, table_elements, instances, tables, memories), all int64_t
    _store_limiter = _native("wasmtime_store_limiter", None)
    _set_fuel = _native("wasmtime_context_set_fuel", _P)  # (context, uint64) -> error
    _set_deadline = _native("wasmtime_context_set_epoch_deadline", None)  # (context, uint64)
    # (instance_pre, context, instance out, trap out) -> error
    _instantiate = _native("wasmtime_instance_pre_instantiate", _P)
    # (context, instance, index, name out, name_len out, extern out) -> found
    _export_nth = _native("wasmtime_instance_export_nth", ctypes.c_bool)
    # (context, func, args_and_results, args_and_results_len, trap out) -> error
    _call = _native("wasmtime_func_call_unchecked", _P)
    _memory_data = _native("wasmtime_memory_data", _P)  # (context, memory) -> base
    _memory_size = _native("wasmtime_memory_data_size", _SIZE)  # (context, memory) -> bytes
    _global_get = _native("wasmtime_global_get", None)  # (context, global, val out)
    _EXTERN_SIZE = ctypes.sizeof(_raw.wasmtime_extern_t)
    _EXTERN_OF = _raw.wasmtime_extern_t.of.offset
    _RAW_VAL_SIZE = ctypes.sizeof(_raw.wasmtime_val_raw_t)
    _NO_LIMIT = ctypes.c_int64(-1)
    _FOUR = _SIZE(4)
    _ONE = _SIZE(1)
    _codes = _raw.wasmtime_trap_code_enum
    _TRAP_FUEL = _codes.WASMTIME_TRAP_CODE_OUT_OF_FUEL.value
    _TRAP_INTERRUPT = _codes.WASMTIME_TRAP_CODE_INTERRUPT.value
    _TRAP_REASONS: dict[int, str] = {
        _codes.WASMTIME_TRAP_CODE_STACK_OVERFLOW.value: "call stack exhausted",
        _codes.WASMTIME_TRAP_CODE_MEMORY_OUT_OF_BOUNDS.value: "out of bounds memory access",
        _codes.WASMTIME_TRAP_CODE_HEAP_MISALIGNED.value: "out of bounds memory access",
        _codes.WASMTIME_TRAP_CODE_TABLE_OUT_OF_BOUNDS.value: "out of bounds table access",
        _codes.WASMTIME_TRAP_CODE_INDIRECT_CALL_TO_NULL.value: "uninitialized element",
        _codes.WASMTIME_TRAP_CODE_BAD_SIGNATURE.value: "indirect call type mismatch",
        _codes.WASMTIME_TRAP_CODE_INTEGER_OVERFLOW.value: "integer overflow",
        _codes.WASMTIME_TRAP_CODE_INTEGER_DIVISION_BY_ZERO.value: "integer divide by zero",
        _codes.WASMTIME_TRAP_CODE_BAD_CONVERSION_TO_INTEGER.value:
            "invalid conversion to integer",
        _codes.WASMTIME_TRAP_CODE_UNREACHABLE_CODE_REACHED.value: "unreachable",
        _codes.WASMTIME_TRAP_CODE_NULL_REFERENCE.value: "null reference",
    }


def _trap_code(pointer: int) -> int | None:
    """The code of a `wasm_trap_t*` (takes ownership and frees it)."""
    trap = wasmtime.Trap._from_ptr(ctypes.cast(pointer, ctypes.POINTER(_raw.wasm_trap_t)))
    code = trap.trap_code
    return None if code is None else int(code.value)


def _error_message(pointer: int) -> str:
    """The message of a `wasmtime_error_t*` (takes ownership and frees it)."""
    error_type = ctypes.POINTER(_raw.wasmtime_error_t)
    return str(wasmtime.WasmtimeError._from_ptr(ctypes.cast(pointer, error_type)))


class _Session:
    """One store and instance, and the bytes-in/bytes-out call-through on it.

    `open` is step (a) of a call: a fresh store with the backstop limits, a fresh instance, its
    two exports resolved (the memory and the entry wrapper: each lookup costs about as much as
    a call). `call` is step (b): re-arm the watchdog deadline (and the fuel backstop) for calls
    after the first, arm the instance through the entry wrapper (op 0: gas, memory limit,
    buffer), copy the input in, call the entrypoint through the entry wrapper (op 1), both
    through `wasmtime_func_call_unchecked`, bounds-check the output and copy it out. `close`
    deletes the store. The backend runs every call as `open`, one `call`, `close` on one reused
    session object; a warm instance keeps a session of its own open across calls.

    Everything the C API receives is a ctypes object built once (see `_native`). Raw argument
    slots are read and written through `memoryview`s, and guest memory through a `memoryview`
    over its base, which stays valid for the instance's life because the engine is configured
    so that memory never moves (`memory_may_move = False`). Not thread-safe: the core
    serializes calls, a warm session is its owner's.
    """

    __slots__ = (
        "_args",
        "_args_buffer",
        "_backstop",
        "_deadline",
        "_engine",
        "_entry",
        "_externs",
        "_found",
        "_fuel",
        "_instance",
        "_limit_elements",
        "_limit_memory",
        "_limits_set",
        "_memory",
        "_memory_type",
        "_name",
        "_name_len",
        "_positions",
        "_probe",
        "_probe_of",
        "_quads",
        "_resets",
        "_scratch",
        "_signed",
        "_slot",
        "_trap",
        "_trap_slot",
        "_val",
        "_views",
        "armed",
        "context",
        "known_size",
        "limits",
        "plan",
        "store",
        "view",
        "words",
    )

    def __init__(self, backend: WasmtimeBackend) -> None:
        self._engine = backend._engine_ptr
        self._views = backend._views
        self._positions = backend._positions
        self._resets = backend._resets
        self._memory_type = backend._memory_type
        self._backstop = backend.fuel_backstop
        instance = _raw.wasmtime_instance_t()
        self._trap_slot = ctypes.c_void_p()
        # One extern per export used by a call, one for reading globals after a failure.
        self._externs = ctypes.create_string_buffer(3 * _EXTERN_SIZE)
        # Four argument slots (op, a, b, size); the three results come back in the first three.
        self._args_buffer = (ctypes.c_uint64 * (4 * _RAW_VAL_SIZE // 8))()
        name, name_len = ctypes.c_void_p(), ctypes.c_size_t()
        self._val = _raw.wasmtime_val_t()
        # Kept alive: we pass their addresses. The engine, too, must outlive our stores.
        self._scratch = (instance, name, name_len, backend.engine)
        externs = ctypes.addressof(self._externs)
        self._instance = _P(ctypes.addressof(instance))
        self._trap = _P(ctypes.addressof(self._trap_slot))
        self._name = _P(ctypes.addressof(name))
        self._name_len = _P(ctypes.addressof(name_len))
        self._found = tuple(_P(externs + index * _EXTERN_SIZE) for index in range(3))
        self._memory = _P(externs + _EXTERN_OF)
        self._entry = _P(externs + _EXTERN_SIZE + _EXTERN_OF)
        self._probe = self._found[2]
        self._probe_of = _P(externs + 2 * _EXTERN_SIZE + _EXTERN_OF)
        self._args = _P(ctypes.addressof(self._args_buffer))
        # Raw slots as unsigned 32-bit words (slot k's i32 is word k * _slot) and as signed
        # 64-bit quads (slot k's i64 is quad k * _slot // 2): one indexing operation a value.
        raw = memoryview(self._args_buffer).cast("B")
        self.words = raw.cast("I")
        self._quads = raw.cast("q")
        self._slot = _RAW_VAL_SIZE // 4
        self._signed = self._slot // 2
        self._fuel = ctypes.c_uint64()
        self._deadline = ctypes.c_uint64()
        self._limit_memory = ctypes.c_int64()
        self._limit_elements = ctypes.c_int64()
        self._limits_set: Any = None
        self.store: Any = None
        self.context: Any = None
        self.plan: Any = None
        self.limits: Any = None
        self.view: Any = None
        self.known_size = 0
        self.armed = False

    def open(self, pre: Any, plan: CallPlan, limits: CallLimits, tick_ms: int) -> None:
        """Step (a): a fresh store and instance for `plan`'s module; raises `EngineFailure`."""
        self.plan = plan
        self.limits = limits
        if limits is not self._limits_set:  # calls of one route share their limits object
            self._limits_set = limits
            self._deadline.value = -(-limits.max_call_ms // tick_ms) + 1
            self._limit_memory.value = limits.max_mem_bytes
            self._limit_elements.value = limits.max_mem_bytes // 8
        store = self.store = _store_new(self._engine, None, None)
        context = self.context = _store_context(store)
        _store_limiter(store, self._limit_memory, self._limit_elements, _NO_LIMIT, _NO_LIMIT,
                       _NO_LIMIT)
        # One deadline covers instantiation and the first call; `call` re-arms it for every
        # later call.
        _set_deadline(context, self._deadline)
        if self._backstop:
            gas = limits.max_gas
            self._fuel.value = min(gas * _BACKSTOP_FUEL_PER_GAS + _BACKSTOP_FUEL_EXTRA, 2**63 - 1)
            error = _set_fuel(context, self._fuel)
            if error:
                _error_message(error)
                raise EngineFailure(ENGINE_ERROR)
        self.armed = True
        instance = self._instance
        error = _instantiate(pre, context, instance, self._trap)
        if error or self._trap_slot.value:
            raise self._failure(error, instantiated=False)
        name, name_len = self._name, self._name_len
        memory, entry = self._found[:2]
        positions = self._positions.get(plan)
        if positions is None:
            positions = self._position_of(plan)
        memory_at, entry_at = positions
        if not (
            _export_nth(context, instance, memory_at, name, name_len, memory)
            and _export_nth(context, instance, entry_at, name, name_len, entry)
        ):
            raise EngineFailure(ENGINE_ERROR)
        base = _memory_data(context, self._memory) or 0
        view = self._views.get(base)
        if view is None:
            view = self._view(base)
        self.view = view
        self.known_size = plan.memory_floor

    def _position_of(self, plan: CallPlan) -> tuple[Any, Any]:
        # Export positions as ctypes objects, built once per plan (plans hash by identity).
        positions = self._positions
        if len(positions) >= _VIEW_CACHE_SIZE * 16:
            positions.clear()
        found = positions[plan] = (_SIZE(plan.memory_index), _SIZE(plan.entry_index))
        return found

    def _view(self, base: int) -> memoryview:
        # A byte view from the memory's base over the engine's ceiling on one memory. Only the
        # first `known_size` bytes are live, and every slice is bounds-checked against that
        # first. Pooled memories sit at a few fixed bases, so views are cached by base.
        views = self._views
        if len(views) >= _VIEW_CACHE_SIZE:
            views.clear()  # the on-demand allocator maps memories at ever new addresses
        view = views[base] = memoryview(self._memory_type.from_address(base)).cast("B")
        return view

    def call(self, data: bytes) -> RunResult:
        """Step (b): one bytes-in/bytes-out call on the open instance; raises `EngineFailure`."""
        context = self.context
        trap = self._trap
        words = self.words
        quads = self._quads
        plan = self.plan
        limits = self.limits
        if self.armed:
            self.armed = False
        else:
            # A reused (warm) instance: re-arm the deadline and the backstop as a fresh one.
            _set_deadline(context, self._deadline)
            if self._backstop:
                error = _set_fuel(context, self._fuel)
                if error:
                    _error_message(error)
                    raise EngineFailure(ENGINE_ERROR)
        size = len(data)
        request_size = ((size + 3) & ~3) + 8 if plan.ret_area else size
        signed, slot, entry, args = self._signed, self._slot, self._entry, self._args
        words[0] = 0
        quads[signed] = limits.max_gas
        quads[2 * signed] = limits.max_mem_bytes
        words[3 * slot] = request_size
        error = _call(context, entry, args, _FOUR, trap)
        if error or self._trap_slot.value:
            raise self._failure(error)
        pointer = words[0]
        end = pointer + request_size
        if end > self.known_size and end > self._grown():
            raise EngineFailure(ALLOC_OUT_OF_BOUNDS, pointer=pointer, size=request_size)
        view = self.view
        view[pointer : pointer + size] = data
        words[0] = 1
        quads[signed] = pointer
        words[3 * slot] = size
        error = _call(context, entry, args, _FOUR, trap)
        if error or self._trap_slot.value:
            raise self._failure(error)
        out_pointer = words[0]
        out_size = words[slot]
        gas_left = quads[2 * signed]
        if out_size > limits.max_output_bytes:
            raise EngineFailure(OUTPUT_TOO_LARGE, size=out_size)
        end = out_pointer + out_size
        if end > self.known_size and end > self._grown():
            raise EngineFailure(OUTPUT_OUT_OF_BOUNDS, pointer=out_pointer, size=out_size)
        return view[out_pointer:end].tobytes(), gas_left

    def reset(self) -> bool:
        """Put the open instance back in its freshly instantiated state through the module's
        reset export (for the next `call`); False when it cannot be (then close it)."""
        context, plan = self.context, self.plan
        _set_deadline(context, self._deadline)
        at = self._resets.get(plan)
        if at is None:
            at = self._resets[plan] = _SIZE(plan.reset_index)
        if not _export_nth(context, self._instance, at, self._name, self._name_len, self._probe):
            return False
        error = _call(context, self._probe_of, self._args, _ONE, self._trap)
        if error or self._trap_slot.value:
            self._failure(error)  # frees what the engine gave
            return False
        if self.words[0] != 1:
            return False
        self.known_size = plan.memory_floor
        self.armed = False  # `call` re-arms the deadline and the backstop
        return True

    def _grown(self) -> int:
        """The memory's current size, asked of the engine (it only grows, never shrinks)."""
        size: int = _memory_size(self.context, self._memory)
        self.known_size = size
        return size

    def close(self) -> None:
        """Delete the store (and with it the instance); idempotent."""
        store = self.store
        if store is not None:
            self.store = self.context = None
            _store_delete(store)

    def _global(self, index: int) -> int | None:
        """The value of the global exported at position `index`, or None."""
        context = self.context
        if not _export_nth(context, self._instance, _SIZE(index), self._name, self._name_len,
                           self._probe):
            return None
        _global_get(context, self._probe_of, ctypes.byref(self._val))
        kind: Any = self._val.kind  # WASMTIME_I64 is 1, WASMTIME_I32 is 0
        value: int = self._val.of.i64 if kind == 1 else self._val.of.i32
        return value

    def _failure(self, error: int | None, *, instantiated: bool = True) -> EngineFailure:
        """Turn an engine error or trap into an `EngineFailure`, freeing what the engine gave."""
        trap = self._trap_slot.value
        self._trap_slot.value = None
        if error:
            if trap:
                _trap_code(trap)  # free it; the error is what we report
            message = _error_message(error).lower()
            if not instantiated and "limit" in message:
                return EngineFailure(ENGINE_LIMIT)
            return EngineFailure(ENGINE_ERROR)
        assert trap is not None
        code = _trap_code(trap)
        if code == _TRAP_INTERRUPT:
            return EngineFailure(TIMEOUT)
        reason = _TRAP_REASONS.get(-1 if code is None else code, "unknown")
        if not instantiated:
            return EngineFailure(TRAP, trap=reason)
        plan = self.plan
        gas_left = self._global(plan.gas_index)
        if code == _TRAP_FUEL:
            return EngineFailure(ENGINE_FUEL, gas_left=gas_left)
        return EngineFailure(TRAP, trap=reason, gas_left=gas_left,
                             stack_left=self._global(plan.stack_index),
                             grow_refused=bool(self._global(plan.refused_index)))


class _WarmSession:
    """A session kept open: `invoke` runs step (b) again on the same instance."""

    def __init__(self, session: _Session) -> None:
        self._session = session
        self._finalizer = weakref.finalize(self, session.close)

    @property
    def closed(self) -> bool:
        """True once the store has been deleted."""
        return self._session.store is None

    def invoke(self, data: bytes) -> RunResult:
        """One call on the open instance; raises `EngineFailure`."""
        if self._session.store is None:
            raise EngineFailure(ENGINE_ERROR)
        return self._session.call(data)

    def close(self) -> None:
        """Delete the instance's store; idempotent."""
        self._finalizer()


class _Compiled:
    """A compiled module and its pre-instantiation, ready for the C API."""

    __slots__ = ("module", "pre", "pre_ptr")

    def __init__(self, module: Any, engine: Any) -> None:
        self.module = module
        self.pre = wasmtime.Linker(engine).instantiate_pre(module)
        self.pre_ptr = ctypes.c_void_p(ctypes.cast(self.pre.ptr(), ctypes.c_void_p).value)


class WasmtimeBackend(BackendDefaults):
    """wasmtime as an `EngineBackend`: compile, serialize, run in fresh instances."""

    name = "wasmtime"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        options = dict(options or {})
        unknown = set(options) - set(DEFAULT_OPTIONS)
        if unknown:
            raise ExecutorConfigError(
                f"unknown wasmtime executor options: {', '.join(sorted(unknown))}")
        self.options = {**DEFAULT_OPTIONS, **options}
        self.fuel_backstop = bool(self.options["fuel_backstop"])
        self.native_stack_bytes = int(self.options["max_wasm_stack"])
        self._max_memory = int(self.options["max_memory_bytes"])
        self._tick_ms = max(1, int(self.options["epoch_tick_ms"]))
        self.engine = wasmtime.Engine(self._engine_config())
        self._engine_ptr = ctypes.c_void_p(ctypes.cast(self.engine.ptr(), ctypes.c_void_p).value)
        settings = json.dumps({"options": self.options, "deterministic": 1}, sort_keys=True)
        digest = hashlib.sha256(settings.encode()).hexdigest()[:16]
        self.fingerprint = f"wasmtime-{version('wasmtime')}-{digest}"
        self._memory_type = ctypes.c_ubyte * self._max_memory
        self._views: dict[int, memoryview] = {}
        self._positions: dict[CallPlan, tuple[Any, Any, Any]] = {}
        self._resets: dict[CallPlan, Any] = {}  # the reset export's position, by plan
        self._reuse_max = (int(self.options["reuse_max_bytes"])
                           if self.options["reuse_instances"] else -1)
        self.reused_calls = 0
        self._session = _Session(self)
        self._stop = threading.Event()
        self._closed = False
        self.watchdog = threading.Thread(
            target=_tick_epochs,
            args=(self.engine, self._stop, self._tick_ms / 1000),
            name="agentworld-wasmtime-watchdog",
            daemon=True,
        )
        self.watchdog.start()
        # A backend that is dropped without close() still stops its thread.
        self._finalizer = weakref.finalize(self, self._stop.set)

    def _engine_config(self) -> Any:
        config = wasmtime.Config()
        config.consume_fuel = self.fuel_backstop
        config.epoch_interruption = True
        config.max_wasm_stack = self.native_stack_bytes
        # wasmtime refuses (by aborting the process) a wasm stack larger than its async stack
        # size, even with async off; no async stack is ever allocated here.
        _raw.wasmtime_config_async_stack_size_set(
            config.ptr(), max(self.native_stack_bytes, 2 * 1024 * 1024))
        # Deterministic features only: results must not depend on the CPU or on timing.
        config.cranelift_nan_canonicalization = True
        config.wasm_relaxed_simd = False
        config.wasm_threads = False
        config.shared_memory = False
        config.wasm_simd = True
        for feature in ("wasm_tail_call", "wasm_exceptions", "wasm_gc", "wasm_memory64",
                        "wasm_multi_memory", "wasm_function_references",
                        "wasm_wide_arithmetic", "wasm_custom_page_sizes",
                        "wasm_stack_switching", "wasm_component_model"):
            setattr(config, feature, False)
        # Guest memory never moves, so a base pointer read once stays valid for the call.
        config.memory_may_move = False
        # Guests' data segments are small: copying them per instance is cheaper than building
        # a copy-on-write memory image per module, which made every first instantiation slow.
        config.memory_init_cow = False
        allocator = self.options["allocator"]
        if allocator == "pooling":
            slots = int(self.options["pool_slots"])
            pool = _raw.wasmtime_pooling_allocation_config_new()
            try:
                for setter in ("total_memories", "total_tables", "total_core_instances"):
                    getattr(_raw, f"wasmtime_pooling_allocation_config_{setter}_set")(pool, slots)
                _raw.wasmtime_pooling_allocation_config_max_memory_size_set(pool, self._max_memory)
                _raw.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(
                    pool, int(self.options["keep_resident_bytes"])
                )
                _raw.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
            finally:
                _raw.wasmtime_pooling_allocation_config_delete(pool)
        elif allocator != "on-demand":
            raise ExecutorConfigError(
                f"allocator must be 'pooling' or 'on-demand', not {allocator!r}")
        return config

    def compile(self, wasm: bytes) -> _Compiled:
        """Compile instrumented bytes; `EngineCompileError` if wasmtime refuses them."""
        try:
            return _Compiled(wasmtime.Module(self.engine, wasm), self.engine)
        except wasmtime.WasmtimeError as exc:
            raise EngineCompileError(str(exc)) from None

    def serialize(self, module: _Compiled) -> bytes:
        """wasmtime's native code for the disk cache."""
        return bytes(module.module.serialize())

    def deserialize(self, data: bytes) -> _Compiled:
        """A module from authenticated native code."""
        return _Compiled(wasmtime.Module.deserialize(self.engine, data), self.engine)

    def run(self, module: _Compiled, plan: CallPlan, data: bytes, limits: CallLimits) -> RunResult:
        """One call in a fresh store and instance; raises `EngineFailure`."""
        if self._closed:
            # Without its watchdog a closed backend could not enforce max_call_ms.
            raise EngineFailure(ENGINE_ERROR)
        session = self._session
        try:
            session.open(module.pre_ptr, plan, limits, self._tick_ms)
            return session.call(data)
        finally:
            session.close()

    def run_batch(self, jobs: Sequence[Job]) -> list[RunResult | EngineFailure]:
        """Each job in turn, failures in place. A job of the module, plan and limits of the
        job before it, which succeeded, runs in that job's instance once the module's reset
        export has put it back in its freshly instantiated state (`reuse_instances`): one
        instance instead of one per call. Counted in `reused_calls`."""
        if self._closed:
            return [EngineFailure(ENGINE_ERROR) for _ in jobs]
        session = self._session
        reuse_max = self._reuse_max
        results: list[RunResult | EngineFailure] = []
        spare: _Compiled | None = None  # the module of the open instance, ready for reset
        try:
            for module, plan, data, limits in jobs:
                try:
                    if (spare is module and plan is session.plan
                            and (limits is session.limits or limits == session.limits)
                            and session.reset()):
                        self.reused_calls += 1
                        session.limits = limits
                    else:
                        session.close()
                        session.open(module.pre_ptr, plan, limits, self._tick_ms)
                    results.append(session.call(data))
                    spare = module if plan.memory_floor <= reuse_max else None
                except EngineFailure as failure:
                    results.append(failure)
                    session.close()
                    spare = None
        finally:
            session.close()
        return results

    def open_warm(self, module: _Compiled, plan: CallPlan, limits: CallLimits) -> _WarmSession:
        """A fresh instance kept open for repeated calls."""
        if self._closed:
            raise EngineFailure(ENGINE_ERROR)
        session = _Session(self)
        try:
            session.open(module.pre_ptr, plan, limits, self._tick_ms)
        except EngineFailure:
            session.close()
            raise
        return _WarmSession(session)

    def close(self) -> None:
        """Stop the watchdog thread."""
        self._closed = True
        self._stop.set()
        if self.watchdog.is_alive() and self.watchdog is not threading.current_thread():
            self.watchdog.join()


def _tick_epochs(engine: Any, stop: threading.Event, interval: float) -> None:
    """The watchdog: advance the engine's epoch every `interval` seconds until stopped.

    A store's epoch deadline is set relative to the epoch at call start, so a call that runs
    past its deadline traps with an interrupt; the thread never touches a store.
    """
    while not stop.wait(interval):
        engine.increment_epoch()


class WasmtimeExecutor(EngineExecutor):
    """The engine-neutral executor core on the wasmtime backend."""

    def __init__(self, config: ExecutorConfig | None = None) -> None:
        config = config or ExecutorConfig()
        self.wasmtime = WasmtimeBackend(config.options)
        super().__init__(self.wasmtime, config)

    @property
    def engine(self) -> Any:
        """The wasmtime engine (for benchmarks that compare against wasmtime-py directly)."""
        return self.wasmtime.engine

    @property
    def watchdog(self) -> threading.Thread:
        """The epoch watchdog thread."""
        return self.wasmtime.watchdog


@hookimpl
def agentworld_register_executors(register: Callable[..., None]) -> None:
    """Register the wasmtime executor (as unavailable when wasmtime cannot be imported)."""
    if _IMPORT_ERROR is not None:
        register(
            "wasmtime", WasmtimeExecutor, unavailable_reason=_IMPORT_ERROR, description=DESCRIPTION
        )
    else:
        register("wasmtime", WasmtimeExecutor, description=DESCRIPTION)
