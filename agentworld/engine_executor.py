"""The engine-neutral executor: everything about a module call that is the same on every engine.

`EngineExecutor(backend, config)` implements the `Executor` protocol on top of an
`agentworld.engine.EngineBackend`. It instruments each artifact once per (artifact hash, gas
schedule) (`agentworld.metering`), keeps compiled modules in an LRU in memory and, with a
`cache_dir`, in an authenticated disk cache (`agentworld.compile_cache`), plans entrypoints,
checks the limits it can check before running anything, classifies every failure in its own
words (no engine's text reaches the journal), decodes outputs (`agentworld.abi`) and hands
batches to the backend in one go.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attrs import define

from agentworld.abi import decode_output
from agentworld.compile_cache import DiskCache, default_key_file, load_key
from agentworld.engine import (
    ALLOC_OUT_OF_BOUNDS,
    ENGINE_ERROR,
    ENGINE_FUEL,
    ENGINE_LIMIT,
    OUTPUT_OUT_OF_BOUNDS,
    OUTPUT_TOO_LARGE,
    TIMEOUT,
    TRAP,
    CallPlan,
    EngineBackend,
    EngineCompileError,
    EngineFailure,
    Job,
    RunResult,
    WarmSession,
)
from agentworld.errors import AgentWorldError, ExecutorConfigError, ExecutorUnavailableError
from agentworld.executor import (
    CURRENT_GAS_SCHEDULE,
    CallLimits,
    CallRequest,
    ExecutorConfig,
    InvalidArtifactError,
    ModuleCallError,
    ModuleOutput,
)
from agentworld.metering import INSTRUMENTATION_FORMAT, MULTI, PACKED, RET_AREA, instrument
from agentworld.native_stack import StackGuard
from agentworld.wasm_module import EXTERN_MEMORY, EXTERN_NAMES, PAGE_BYTES

_HASH_RE = re.compile(r"[0-9a-f]{64}")
_EXTERN_WORDS = {kind: ("a " + name) for kind, name in EXTERN_NAMES.items()}


@define
class CacheStats:
    """Counters a user can observe: where modules came from and what was discarded."""

    instrumented: int = 0
    compiled: int = 0
    disk_hits: int = 0
    disk_writes: int = 0
    disk_discarded: int = 0
    evictions: int = 0


class Guest:
    """One instrumented, compiled module and its call plans."""

    __slots__ = ("exports", "info", "initial_bytes", "module", "plans")

    def __init__(self, module: Any, info: dict[str, Any]) -> None:
        self.module = module
        self.info = info
        self.initial_bytes: int = info["initial_bytes"]
        self.exports: dict[str, tuple[int, int]] = {
            name: (kind, index) for name, kind, index in info["exports"]}
        self.plans: dict[str, CallPlan | str] = {}

    def plan(self, entrypoint: str) -> CallPlan | str:
        """The plan for `entrypoint`, or why it cannot be called (cached)."""
        plan = self.plans.get(entrypoint)
        if plan is None:
            plan = self.plans[entrypoint] = plan_call(self.info, self.exports, entrypoint)
        return plan


def plan_call(
    info: dict[str, Any], exports: dict[str, tuple[int, int]], entrypoint: str
) -> CallPlan | str:
    """How to call `entrypoint` of an instrumented module, or a message saying why it cannot."""
    missing = [name for name in ("memory", "alloc", entrypoint) if name not in exports]
    if missing:
        return "module does not export " + ", ".join(repr(name) for name in missing)
    memory_kind, _ = exports["memory"]
    if memory_kind != EXTERN_MEMORY:
        return f"export 'memory' must be a memory, not {_EXTERN_WORDS[memory_kind]}"
    types = info["func_types"]
    if info["alloc"] is None:
        found = types.get("alloc")
        what = f"func {found}" if found else _EXTERN_WORDS[exports["alloc"][0]]
        return f"export 'alloc' must be func (i32)->(i32), not {what}"
    entry = info["entries"].get(entrypoint)
    if entry is None:
        found = types.get(entrypoint)
        what = f"func {found}" if found else _EXTERN_WORDS[exports[entrypoint][0]]
        return (f"entrypoint {entrypoint!r} is {what}; wasm-1 accepts {MULTI}, {PACKED} or "
                f"{RET_AREA}")
    entry_name, entry_index, shape = entry
    return CallPlan(
        entrypoint=entrypoint,
        memory_export="memory",
        memory_index=[name for name, _, _ in info["exports"]].index("memory"),
        entry_export=entry_name,
        entry_index=entry_index,
        gas_export=info["gas"][0],
        gas_index=info["gas"][1],
        refused_export=info["refused"][0],
        refused_index=info["refused"][1],
        stack_export=info["stack"][0],
        stack_index=info["stack"][1],
        reset_export=info["reset"][0],
        reset_index=info["reset"][1],
        ret_area=shape == RET_AREA,
        memory_floor=(info["memory_min_pages"] or 0) * PAGE_BYTES,
    )


def classify(failure: EngineFailure, limits: CallLimits) -> ModuleCallError:
    """The `ModuleCallError` an engine failure means, worded by us (never by the engine)."""
    gas_left = failure.gas_left
    if gas_left is not None and gas_left < 0:
        return ModuleCallError("out_of_fuel", f"the call used up its {limits.max_gas} gas",
                               gas_used=limits.max_gas)
    kind = failure.kind
    if kind == TRAP:
        stack_left = failure.stack_left
        reason = "call stack exhausted" if stack_left is not None and stack_left < 0 else (
            failure.trap)
        if failure.grow_refused:
            return ModuleCallError(
                "memory_limit",
                f"the guest tried to grow its memory or tables past {limits.max_mem_bytes} "
                f"bytes and then trapped ({reason})",
            )
        return ModuleCallError("trap", f"trap: {reason}")
    if kind == TIMEOUT:
        return ModuleCallError("timeout", f"the call ran past its {limits.max_call_ms} ms limit "
                                          "and was interrupted")
    if kind == ALLOC_OUT_OF_BOUNDS:
        return ModuleCallError("trap", f"alloc({failure.size}) returned {failure.pointer}, "
                                       "out of bounds")
    if kind == OUTPUT_OUT_OF_BOUNDS:
        return ModuleCallError("invalid_output", f"output ({failure.pointer}, {failure.size}) "
                                                 "lies outside guest memory")
    if kind == OUTPUT_TOO_LARGE:
        return ModuleCallError("output_too_large", f"output is {failure.size} bytes, the limit "
                                                   f"is {limits.max_output_bytes}")
    if kind == ENGINE_LIMIT:
        return ModuleCallError("memory_limit", "the engine's own resource ceiling refused the "
                                               "call's memory or tables")
    if kind == ENGINE_FUEL:
        return ModuleCallError("out_of_fuel", "the engine's fuel backstop ran out",
                               gas_used=limits.max_gas)
    assert kind == ENGINE_ERROR
    return ModuleCallError("trap", "the engine failed to run the call")


class WarmInstance:
    """One instance kept open across calls: for benchmarks and diagnostics only.

    Guest memory survives between calls on it, which the world never allows (every call of a
    module runs in a fresh instance), so the world never uses it. Each `invoke` arms the
    instance afresh (gas, memory limit) and is classified like any call.
    """

    def __init__(self, executor: EngineExecutor, session: WarmSession, limits: CallLimits):
        self._executor = executor
        self._session = session
        self._limits = limits
        self._finalizer = weakref.finalize(self, session.close)

    def invoke(self, data: bytes) -> bytes:
        """Call the entrypoint with `data`; return the raw output bytes or raise ModuleCallError."""
        if self._session.closed:
            raise ModuleCallError("engine_unavailable", "this warm instance is closed")
        try:
            return self._session.invoke(data)[0]
        except EngineFailure as failure:
            raise classify(failure, self._limits) from None

    @property
    def closed(self) -> bool:
        """True once the instance has been freed."""
        return self._session.closed

    def close(self) -> None:
        """Free the instance; idempotent."""
        self._finalizer()

    def __enter__(self) -> WarmInstance:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EngineExecutor:
    """An `Executor` made of the engine-neutral core and one engine backend."""

    def __init__(self, backend: EngineBackend, config: ExecutorConfig | None = None) -> None:
        self.backend = backend
        self.name = backend.name
        self.config = config = config or ExecutorConfig()
        if config.memory_cache_size < 0:
            raise ExecutorConfigError("memory_cache_size must be 0 or more")
        self.stats = CacheStats()
        self._guests: OrderedDict[tuple[str, int], Guest] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False
        self._warm: weakref.WeakSet[WarmInstance] = weakref.WeakSet()
        self._instrumented_cache: DiskCache | None = None
        self._compiled_cache: DiskCache | None = None
        if config.cache_dir is not None:
            root = Path(config.cache_dir)
            if root.exists() and not root.is_dir():
                raise ExecutorConfigError(f"cache_dir {root} exists and is not a directory")
            key = load_key(config.cache_key_file or default_key_file(), root)
            self._instrumented_cache = DiskCache(root / "instrumented", key)
            self._compiled_cache = DiskCache(root / backend.fingerprint, key)
        stack = backend.native_stack_bytes
        self._stack = None if stack is None else StackGuard(stack)

    # -- caches ---------------------------------------------------------------------------------

    def _load(self, key: tuple[str, int], request: CallRequest) -> Guest:
        """A guest missing from memory: from the disk cache, or instrumented and compiled."""
        guest = self._from_disk(key)
        if guest is None:
            guest = self._build(key, self._artifact_bytes(request))
        self._remember(key, guest)
        return guest

    def _artifact_bytes(self, request: CallRequest) -> bytes:
        try:
            wasm = request.wasm_bytes()
        except ModuleCallError:
            raise
        except AgentWorldError as exc:
            raise ModuleCallError("artifact_missing", str(exc)) from None
        if hashlib.sha256(wasm).hexdigest() != request.wasm_hash:
            raise ModuleCallError(
                "artifact_missing", f"the bytes given for {request.wasm_hash} do not match that "
                                    "hash")
        return wasm

    def _remember(self, key: tuple[str, int], guest: Guest) -> None:
        limit = self.config.memory_cache_size
        if limit == 0:
            return
        self._guests[key] = guest
        self._guests.move_to_end(key)
        while len(self._guests) > limit:
            self._guests.popitem(last=False)
            self.stats.evictions += 1

    def _sync_discards(self) -> None:
        self.stats.disk_discarded = sum(
            cache.discarded for cache in (self._instrumented_cache, self._compiled_cache)
            if cache is not None)

    @staticmethod
    def _entry_name(key: tuple[str, int], suffix: str) -> str:
        return f"{key[0]}-g{key[1]}-f{INSTRUMENTATION_FORMAT}.{suffix}"

    def _context(self, kind: str, key: tuple[str, int]) -> bytes:
        return cache_context(kind, self.backend.fingerprint, *key)

    def _from_disk(self, key: tuple[str, int]) -> Guest | None:
        cache = self._compiled_cache
        if cache is None or not _HASH_RE.fullmatch(key[0]):
            return None
        payload = cache.read(self._entry_name(key, "cwasm"), self._context("compiled", key))
        guest = None
        if payload is not None:
            try:
                info, native = _unpack(payload)
                guest = Guest(self.backend.deserialize(native), info)
            except Exception:  # authenticated but unusable (another engine build): rebuild
                cache.discarded += 1
        self._sync_discards()
        if guest is not None:
            self.stats.disk_hits += 1
        return guest

    def _build(self, key: tuple[str, int], wasm: bytes) -> Guest:
        """Instrument (or read the instrumented module from disk) and compile; raises
        `InvalidArtifactError` for bytes the ABI does not accept."""
        name = self._entry_name(key, "wasm")
        cache = self._instrumented_cache if _HASH_RE.fullmatch(key[0]) else None
        payload = None if cache is None else cache.read(name, self._context("instrumented", key))
        if payload is not None:
            info, instrumented = _unpack(payload)
        else:
            result = instrument(wasm, key[1])
            self.stats.instrumented += 1
            info, instrumented = result.info, result.wasm
            if cache is not None:
                cache.write(name, self._context("instrumented", key), _pack(info, instrumented))
        self._sync_discards()
        try:
            module = self.backend.compile(instrumented)
        except EngineCompileError:
            raise InvalidArtifactError(
                "invalid artifact: the module does not validate (it is not well-typed "
                "WebAssembly)") from None
        self.stats.compiled += 1
        compiled = self._compiled_cache if cache is not None else None
        if compiled is not None:
            native = self.backend.serialize(module)
            if native is not None and compiled.write(
                self._entry_name(key, "cwasm"), self._context("compiled", key),
                _pack(info, native),
            ):
                self.stats.disk_writes += 1
        return Guest(module, info)

    # -- one call -------------------------------------------------------------------------------

    def _prepare(self, request: CallRequest) -> tuple[Guest, CallPlan]:
        """The guest and plan for `request`, or `ModuleCallError`; the caller holds the lock."""
        if self._closed:
            raise ModuleCallError("engine_unavailable", f"this {self.name} executor is closed")
        key = (request.wasm_hash, request.gas_schedule)
        guest = self._guests.get(key)
        if guest is None:
            try:
                guest = self._load(key, request)
            except InvalidArtifactError as exc:
                raise ModuleCallError("trap", str(exc)) from None
        else:
            self._guests.move_to_end(key)
        plan = guest.plans.get(request.entrypoint) or guest.plan(request.entrypoint)
        if isinstance(plan, str):
            raise ModuleCallError("trap", plan)
        limit = request.limits.max_mem_bytes
        if guest.initial_bytes > limit:
            raise ModuleCallError(
                "memory_limit", f"the module's initial memory and tables ({guest.initial_bytes} "
                                f"bytes) exceed the limit of {limit} bytes")
        return guest, plan

    # The per-call methods inline the cache hit and the backend call: this is the hot path of
    # every module call, and each Python call on it costs about a tenth of a microsecond.

    def invoke_with_gas(self, request: CallRequest) -> RunResult:
        """Run one call: (raw output bytes, gas left); raise `ModuleCallError`."""
        with self._lock:
            guest, plan = self._prepare(request)
            stack = self._stack
            try:
                if stack is None or stack.enough_here():
                    return self.backend.run(guest.module, plan, request.input, request.limits)
                return stack.run(lambda: self.backend.run(guest.module, plan, request.input,
                                                          request.limits))
            except EngineFailure as failure:
                raise classify(failure, request.limits) from None

    def invoke(self, request: CallRequest) -> bytes:
        """Run one call and return the guest's raw output bytes (no decoding)."""
        with self._lock:
            guest, plan = self._prepare(request)
            stack = self._stack
            try:
                if stack is None or stack.enough_here():
                    return self.backend.run(guest.module, plan, request.input,
                                            request.limits)[0]
                return stack.run(lambda: self.backend.run(guest.module, plan, request.input,
                                                          request.limits))[0]
            except EngineFailure as failure:
                raise classify(failure, request.limits) from None

    def call(self, request: CallRequest) -> ModuleOutput:
        """Run one call; raise `ModuleCallError` on any failure."""
        limits = request.limits
        with self._lock:
            guest, plan = self._prepare(request)
            stack = self._stack
            try:
                if stack is None or stack.enough_here():
                    raw, gas_left = self.backend.run(guest.module, plan, request.input, limits)
                else:
                    raw, gas_left = stack.run(
                        lambda: self.backend.run(guest.module, plan, request.input, limits))
            except EngineFailure as failure:
                raise classify(failure, limits) from None
        return decode_output(raw, limits=limits, kind=request.kind,
                             gas_used=limits.max_gas - gas_left)

    def call_batch(self, requests: Sequence[CallRequest]) -> list[ModuleOutput | ModuleCallError]:
        """Run independent calls in order, in one backend batch; failures returned in place."""
        results: list[ModuleOutput | ModuleCallError | None] = [None] * len(requests)
        jobs: list[Job] = []
        slots: list[int] = []
        # A batch mostly holds runs of calls of one module under one limits object (the
        # instances of one route): a run is prepared once. Preparing the same call again would
        # find the same guest and plan (at the end of the module cache already), unless the
        # cache keeps nothing: then every call loads its module, as a lone call would.
        reuse = self.config.memory_cache_size != 0
        last: tuple[str, int, str, CallLimits] | None = None
        module: Any = None
        plan: Any = None
        with self._lock:
            for slot, request in enumerate(requests):
                limits = request.limits
                key = (request.wasm_hash, request.gas_schedule, request.entrypoint, limits)
                if key != last:
                    try:
                        guest, plan = self._prepare(request)
                    except ModuleCallError as failure:
                        last = None
                        results[slot] = failure
                        continue
                    module = guest.module
                    last = key if reuse else None
                jobs.append((module, plan, request.input, limits))
                slots.append(slot)
            backend, stack = self.backend, self._stack
            if not jobs:
                raw_results: list[RunResult | EngineFailure] = []
            elif stack is None or stack.enough_here():
                raw_results = backend.run_batch(jobs)
            else:
                raw_results = stack.run(lambda: backend.run_batch(jobs))
        for slot, raw in zip(slots, raw_results, strict=True):
            request = requests[slot]
            limits = request.limits
            if isinstance(raw, EngineFailure):
                results[slot] = classify(raw, limits)
                continue
            try:
                results[slot] = decode_output(raw[0], limits=limits, kind=request.kind,
                                              gas_used=limits.max_gas - raw[1])
            except ModuleCallError as failure:
                results[slot] = failure
        return [result for result in results if result is not None]

    def warm_instance(self, request: CallRequest) -> WarmInstance:
        """An instance of `request`'s module kept open for repeated `invoke(data)` calls.

        For benchmarks and diagnostics: guest memory survives between calls on it, so the
        world never uses it. `request.input` is not used. Raises `ModuleCallError`.
        """
        with self._lock:
            guest, plan = self._prepare(request)
            try:
                session = self.backend.open_warm(guest.module, plan, request.limits)
            except EngineFailure as failure:
                raise classify(failure, request.limits) from None
            warm = WarmInstance(self, session, request.limits)
            self._warm.add(warm)
        return warm

    # -- deploys and the rest of the protocol ---------------------------------------------------

    def check_artifact(
        self, wasm: bytes, gas_schedule: int = CURRENT_GAS_SCHEDULE
    ) -> list[str]:
        """The module's export names; `InvalidArtifactError` unless the ABI accepts `wasm`.

        The instrumented and compiled module is kept (in memory and the disk cache).
        """
        wasm = bytes(wasm)
        key = (hashlib.sha256(wasm).hexdigest(), gas_schedule)
        with self._lock:
            if self._closed:
                raise ExecutorUnavailableError(f"this {self.name} executor is closed")
            guest = self._guests.get(key)
            if guest is None:
                guest = self._from_disk(key) or self._build(key, wasm)
            self._remember(key, guest)
        return [name for name, _, _ in guest.info["exports"]]

    def close(self) -> None:
        """Close warm instances, the backend and the stack worker; drop compiled modules."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for warm in list(self._warm):
                warm.close()
            self._guests.clear()
        self.backend.close()
        if self._stack is not None:
            self._stack.close()

    def __enter__(self) -> EngineExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def cache_context(kind: str, fingerprint: str, wasm_hash: str, gas_schedule: int) -> bytes:
    """What a disk-cache entry's MAC binds it to: its kind (`instrumented` or `compiled`), the
    engine build and settings, the artifact, the gas schedule and the instrumentation format."""
    return f"{kind}\0{fingerprint}\0{wasm_hash}\0{gas_schedule}\0{INSTRUMENTATION_FORMAT}".encode()


def _pack(info: dict[str, Any], code: bytes) -> bytes:
    meta = json.dumps(info, sort_keys=True, separators=(",", ":")).encode()
    return len(meta).to_bytes(8, "little") + meta + code


def _unpack(payload: bytes) -> tuple[dict[str, Any], bytes]:
    size = int.from_bytes(payload[:8], "little")
    info: dict[str, Any] = json.loads(payload[8 : 8 + size])
    return info, payload[8 + size :]

