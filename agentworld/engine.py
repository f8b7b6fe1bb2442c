"""The engine-backend interface: the only part of an executor that knows a WebAssembly engine.

The core (`agentworld.engine_executor.EngineExecutor`) does everything that is the same on every
engine: it parses and instruments artifacts (`agentworld.metering`), plans entrypoints, keeps the
in-memory and authenticated on-disk compile caches, checks static limits, classifies failures,
encodes nothing and decodes every output (`agentworld.abi`), and batches calls. A backend only
compiles instrumented bytes, runs one call in a fresh instance and reports what happened in the
engine-neutral terms defined here. See docs/executors.md, "Writing an executor".

A call, as the backend runs it (`EngineBackend.run`):

1. Instantiate the compiled module in a fresh instance (nothing survives between calls).
2. Call the export `plan.entry_export`, `(op: i32, a: i64, b: i64, size: i32) -> (i32, i32,
   i64)`, with `(0, gas, memory_limit, size)`: `gas` is `limits.max_gas`, `memory_limit` is
   `limits.max_mem_bytes` and `size` is the input's length, plus, when `plan.ret_area` is set,
   padding to a multiple of 4 and 8 more bytes. It sets the gas counter, the memory limit and
   the stack budget inside the instance and returns `(pointer, 0, gas left)`: the guest's
   buffer.
3. Check that `[pointer, pointer + size)` lies in the memory exported as `plan.memory_export`,
   then write the input at `pointer`.
4. Call `plan.entry_export` again with `(1, pointer, 0, len(input))`: it returns the output's
   pointer and length and the gas left.
5. If the length exceeds `limits.max_output_bytes` fail with `OUTPUT_TOO_LARGE`; if the range
   lies outside the memory fail with `OUTPUT_OUT_OF_BOUNDS`; otherwise return
   `(output bytes, gas left)`.

Any failure raises `EngineFailure`. After a trap the backend reads the i64 global exported as
`plan.gas_export` (negative: the guest ran out of gas), the i32 global exported as
`plan.stack_export` (negative: the guest's calls nested past the stack limit) and the i32 global
exported as `plan.refused_export` (non-zero: a memory or table growth was refused) into the
failure; the core decides what the failure means. The backend must stop a call after
`limits.max_call_ms` (`TIMEOUT`). It needs no fuel, no memory limiter and no stack limit of its
own: gas, growth and stack limits are in the instrumented code, so every engine stops at the
same instruction (its own stack must only be deep enough, see docs/executors.md, "Limits").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from attrs import frozen

from agentworld.executor import CallLimits

# -- what can go wrong, in engine-neutral words --------------------------------------------------

TRAP = "trap"
"""The guest trapped; `EngineFailure.trap` says why (one of `TRAP_REASONS`)."""
TIMEOUT = "timeout"
"""The call ran longer than `limits.max_call_ms` and was interrupted."""
ALLOC_OUT_OF_BOUNDS = "alloc_out_of_bounds"
"""The guest's allocator returned a buffer outside its memory (`pointer`, `size`)."""
OUTPUT_OUT_OF_BOUNDS = "output_out_of_bounds"
"""The output range (`pointer`, `size`) lies outside guest memory."""
OUTPUT_TOO_LARGE = "output_too_large"
"""The output's length (`size`) exceeds `limits.max_output_bytes`; it was not copied."""
ENGINE_LIMIT = "engine_limit"
"""The engine's own resource ceiling (a backstop) refused memory, a table or an instance."""
ENGINE_FUEL = "engine_fuel"
"""The engine's own fuel (a backstop, if the backend uses one) ran out before the gas did."""
ENGINE_ERROR = "engine_error"
"""Anything else the engine reports; its own words never reach the journal."""

FAILURE_KINDS: frozenset[str] = frozenset({
    TRAP, TIMEOUT, ALLOC_OUT_OF_BOUNDS, OUTPUT_OUT_OF_BOUNDS, OUTPUT_TOO_LARGE, ENGINE_LIMIT,
    ENGINE_FUEL, ENGINE_ERROR,
})

TRAP_REASONS: frozenset[str] = frozenset({
    "unreachable",
    "integer divide by zero",
    "integer overflow",
    "invalid conversion to integer",
    "out of bounds memory access",
    "out of bounds table access",
    "indirect call type mismatch",
    "uninitialized element",
    "null reference",
    "call stack exhausted",
    "unknown",
})
"""Why a guest trapped, as the WebAssembly specification names it; `unknown` for anything else."""


class EngineFailure(Exception):
    """One call failed inside the engine; the core turns it into a `ModuleCallError`.

    `kind` is one of `FAILURE_KINDS`; `trap` one of `TRAP_REASONS` when `kind` is `TRAP`.
    `gas_left` is the gas global read after the failure (None when it could not be read, e.g.
    before the instance existed); `stack_left` likewise the stack global; `grow_refused` is true
    when the instance's refused-growth flag was set. `pointer` and `size` describe the offending
    range for the bounds failures.
    """

    def __init__(
        self,
        kind: str,
        *,
        trap: str | None = None,
        gas_left: int | None = None,
        stack_left: int | None = None,
        grow_refused: bool = False,
        pointer: int = 0,
        size: int = 0,
    ) -> None:
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown engine failure kind {kind!r}")
        if kind == TRAP and trap not in TRAP_REASONS:
            raise ValueError(f"unknown trap reason {trap!r}")
        super().__init__(kind if trap is None else f"{kind}: {trap}")
        self.kind = kind
        self.trap = trap
        self.gas_left = gas_left
        self.stack_left = stack_left
        self.grow_refused = grow_refused
        self.pointer = pointer
        self.size = size


class EngineCompileError(Exception):
    """The engine refused to compile instrumented bytes (its reason stays out of the journal)."""


# -- what the core hands a backend ---------------------------------------------------------------


@frozen(eq=False)
class CallPlan:
    """How to call one entrypoint of one instrumented module; computed once by the core.

    Plans compare and hash by identity, so a backend may key what it derives from a plan (its
    own export handles, say) by the plan itself. Export positions (`*_index`) count from 0 in
    the instrumented module's export section, for engines that look exports up by position;
    engines that look them up by name use `*_export`.
    """

    entrypoint: str
    """The guest's own export name (for messages only)."""
    memory_export: str
    memory_index: int
    entry_export: str
    """`(op: i32, a: i64, b: i64, size: i32) -> (i32, i32, i64)`: op 0 arms the instance (gas
    `a`, memory limit `b`) and returns its buffer of `size` bytes, `(pointer, 0, gas_left)`;
    op 1 calls the entrypoint on `(pointer a, length size)`: `(out_pointer, out_length,
    gas_left)`. One export serves a whole call."""
    entry_index: int
    gas_export: str
    """A mutable i64 global: the gas left (negative once exhausted)."""
    gas_index: int
    refused_export: str
    """A mutable i32 global: non-zero once a memory or table growth was refused."""
    refused_index: int
    stack_export: str
    """A mutable i32 global: the stack units left (negative once the stack limit was hit)."""
    stack_index: int
    reset_export: str
    """`() -> i32`: puts a used instance back in its freshly instantiated state and returns 1,
    or returns 0 when it cannot (see `agentworld.metering`). An engine where a new instance is
    costly may run a call in an instance an earlier call of the same batch used, reset."""
    reset_index: int
    ret_area: bool
    """True when the alloc size is the input's length rounded up to 4, plus 8."""
    memory_floor: int
    """Bytes of memory every fresh instance has (its declared minimum): ranges below are valid."""


def alloc_size(plan: CallPlan, length: int) -> int:
    """The size a backend passes to the alloc export for an input of `length` bytes."""
    return ((length + 3) & ~3) + 8 if plan.ret_area else length


Job = tuple[Any, CallPlan, bytes, CallLimits]
"""One call of a batch: (compiled module, plan, input bytes, limits)."""

RunResult = tuple[bytes, int]
"""A successful call: (output bytes, gas left)."""


@runtime_checkable
class WarmSession(Protocol):
    """One instance kept open across calls (benchmarks and diagnostics; never used by worlds)."""

    @property
    def closed(self) -> bool:
        """True once the instance has been freed."""
        ...

    def invoke(self, data: bytes) -> RunResult:
        """Run steps 2-5 of a call on the open instance; raise `EngineFailure`."""
        ...

    def close(self) -> None:
        """Free the instance; idempotent."""
        ...


@runtime_checkable
class EngineBackend(Protocol):
    """What an engine implements. The core serializes calls: a backend is never re-entered."""

    name: str
    """The executor name it is registered under (e.g. `wasmtime`)."""
    fingerprint: str
    """Engine, version and every setting that changes compiled code, as a short file-name-safe
    string: compiled modules on disk are keyed by it."""
    native_stack_bytes: int | None
    """Native stack one call may use when it runs on the caller's thread (in-process engines);
    None when calls run elsewhere (a host process). The core runs a call on a thread of its own
    when the caller's thread has too little stack."""

    def compile(self, wasm: bytes) -> Any:
        """Compile instrumented bytes; raise `EngineCompileError` if the engine refuses them."""
        ...

    def serialize(self, module: Any) -> bytes | None:
        """Native code for the disk cache, or None when the engine cannot serialize."""
        ...

    def deserialize(self, data: bytes) -> Any:
        """A module from bytes `serialize` produced (authenticated by the core); raise on any
        problem, and the core recompiles."""
        ...

    def run(self, module: Any, plan: CallPlan, data: bytes, limits: CallLimits) -> RunResult:
        """One call in a fresh instance (see the module docstring); raise `EngineFailure`."""
        ...

    def run_batch(self, jobs: Sequence[Job]) -> list[RunResult | EngineFailure]:
        """Independent calls in order, each in a fresh instance; failures returned in place.
        An engine in another process answers a whole batch in one round trip."""
        ...

    def open_warm(self, module: Any, plan: CallPlan, limits: CallLimits) -> WarmSession:
        """A fresh instance kept open for repeated calls; raise `EngineFailure` (or
        `NotImplementedError` when the engine offers none)."""
        ...

    def close(self) -> None:
        """Release the engine (threads, processes); calls after this raise `EngineFailure`."""
        ...


class BackendDefaults:
    """Defaults a backend may inherit: serial batches, no serialization, no warm instances."""

    native_stack_bytes: int | None = None

    def run(self, module: Any, plan: CallPlan, data: bytes, limits: CallLimits) -> RunResult:
        """Subclasses implement this."""
        raise NotImplementedError

    def run_batch(self, jobs: Sequence[Job]) -> list[RunResult | EngineFailure]:
        """Run each job in turn with `run`."""
        results: list[RunResult | EngineFailure] = []
        for module, plan, data, limits in jobs:
            try:
                results.append(self.run(module, plan, data, limits))
            except EngineFailure as failure:
                results.append(failure)
        return results

    def serialize(self, module: Any) -> bytes | None:
        """No native code on disk by default."""
        return None

    def deserialize(self, data: bytes) -> Any:
        """Never called when `serialize` returns None."""
        raise NotImplementedError

    def open_warm(self, module: Any, plan: CallPlan, limits: CallLimits) -> WarmSession:
        """No warm instances by default."""
        raise NotImplementedError(f"{type(self).__name__} offers no warm instances")

    def close(self) -> None:
        """Nothing to release by default."""
