"""The call model shared by the world and every executor plugin.

An executor runs one module call: `call(request) -> ModuleOutput`, or raises `ModuleCallError`
with one of `FAILURE_CODES`. It is built once from an `ExecutorConfig` and reused for every call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from attrs import field, frozen

from agentworld.errors import AgentWorldError

FAILURE_CODES: tuple[str, ...] = (
    "trap",
    "out_of_fuel",
    "timeout",
    "memory_limit",
    "output_too_large",
    "effect_limit_exceeded",
    "emit_limit_exceeded",
    "invalid_output",
    "caps_denied",
    "policy_denied",
    "artifact_missing",
    "engine_unavailable",
)


CURRENT_GAS_SCHEDULE = 2
"""The gas schedule new worlds (and requests that name none) are metered with."""


class ModuleCallError(AgentWorldError):
    """A module call failed; `code` is one of `FAILURE_CODES`, `detail` says what happened.

    `gas_used` is set for `out_of_fuel` (the call's whole gas limit).
    """

    def __init__(self, code: str, detail: str, *, gas_used: int | None = None) -> None:
        if code not in FAILURE_CODES:
            raise ValueError(f"unknown module call failure code {code!r}")
        self.code = code
        self.detail = detail
        self.gas_used = gas_used
        super().__init__(f"{code}: {detail}")


class InvalidArtifactError(AgentWorldError):
    """Bytes are not a module this ABI accepts (not WASM, imports something, missing exports)."""


@frozen(kw_only=True)
class CallLimits:
    """Per-call resource limits; a manifest's `limits` map onto these fields."""

    max_mem_bytes: int = 16 * 1024 * 1024
    max_gas: int = 10_000_000
    max_output_bytes: int = 64 * 1024
    max_effects: int = 16
    max_emits: int = 64
    max_call_ms: int = 1_000


WasmSource = bytes | Callable[[], bytes]


@frozen(kw_only=True)
class CallRequest:
    """One module call: which code, which entrypoint, which input bytes, under which limits.

    `wasm` is the artifact's bytes or a loader returning them; executors that hold a compiled
    module for `wasm_hash` never touch it. `kind` is `reducer` or `pure`: a pure module's output
    carrying `new_state` is invalid. `gas_schedule` is the world's gas schedule version: the
    artifact is metered under it.
    """

    module_id: str
    instance_id: str
    wasm_hash: str
    wasm: WasmSource = field(repr=False)
    entrypoint: str
    input: bytes = field(repr=False)
    limits: CallLimits = CallLimits()
    kind: str = "reducer"
    gas_schedule: int = CURRENT_GAS_SCHEDULE

    def wasm_bytes(self) -> bytes:
        """The artifact's bytes, loading them if a loader was given."""
        return self.wasm if isinstance(self.wasm, bytes) else self.wasm()


@frozen(kw_only=True)
class ModuleOutput:
    """A decoded, validated module output and the gas the call used.

    `gas_used` is a measurement, not content: two outputs with the same content are equal
    whatever gas they took.
    """

    new_state: bytes | None = None
    effects: tuple[dict[str, Any], ...] = ()
    emits: tuple[dict[str, Any], ...] = ()
    tick_lifecycle: dict[str, Any] | None = None
    gas_used: int = field(default=0, eq=False)


@frozen(kw_only=True)
class ExecutorConfig:
    """How to build an executor.

    `cache_dir` enables the on-disk cache of instrumented and compiled modules (it must be a
    directory, or not exist yet); its entries are authenticated with the key in
    `cache_key_file` (see `agentworld.compile_cache` for the default location).
    `memory_cache_size` is how many compiled modules stay in memory (least recently used go
    first); 0 keeps none, so every call loads its module from the disk cache or compiles it.
    `options` are the engine's own settings.
    """

    cache_dir: Path | None = None
    memory_cache_size: int = 256
    options: dict[str, Any] = field(factory=dict)
    cache_key_file: Path | None = None


@runtime_checkable
class Executor(Protocol):
    """What an executor plugin's factory returns."""

    name: str

    def call(self, request: CallRequest) -> ModuleOutput:
        """Run one call; raise `ModuleCallError` on any failure."""
        ...

    def call_batch(self, requests: Sequence[CallRequest]) -> list[ModuleOutput | ModuleCallError]:
        """Run independent calls in order; failures are returned in place, not raised."""
        ...

    def check_artifact(
        self, wasm: bytes, gas_schedule: int = CURRENT_GAS_SCHEDULE
    ) -> list[str]:
        """The module's export names; raise `InvalidArtifactError` unless `wasm` is a module
        this ABI accepts (valid WebAssembly that imports nothing and that the meter of
        `gas_schedule` can instrument)."""
        ...

    def close(self) -> None:
        """Release engine resources (threads, caches)."""
        ...


ExecutorFactory = Callable[[ExecutorConfig], Executor]
