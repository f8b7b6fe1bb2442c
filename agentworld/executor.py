"""The call model shared by the world and every executor plugin (SPEC §5.2, §7).

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


class ModuleCallError(AgentWorldError):
    """A module call failed; `code` is one of `FAILURE_CODES`, `detail` says what happened."""

    def __init__(self, code: str, detail: str) -> None:
        if code not in FAILURE_CODES:
            raise ValueError(f"unknown module call failure code {code!r}")
        self.code = code
        self.detail = detail
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
    carrying `new_state` is invalid.
    """

    module_id: str
    instance_id: str
    wasm_hash: str
    wasm: WasmSource = field(repr=False)
    entrypoint: str
    input: bytes = field(repr=False)
    limits: CallLimits = CallLimits()
    kind: str = "reducer"

    def wasm_bytes(self) -> bytes:
        """The artifact's bytes, loading them if a loader was given."""
        return self.wasm if isinstance(self.wasm, bytes) else self.wasm()


@frozen(kw_only=True)
class ModuleOutput:
    """A decoded, validated module output (SPEC §5.2)."""

    new_state: bytes | None = None
    effects: tuple[dict[str, Any], ...] = ()
    emits: tuple[dict[str, Any], ...] = ()
    tick_lifecycle: dict[str, Any] | None = None


@frozen(kw_only=True)
class ExecutorConfig:
    """How to build an executor. `cache_dir` enables the on-disk compiled-module cache."""

    cache_dir: Path | None = None
    memory_cache_size: int = 256
    options: dict[str, Any] = field(factory=dict)


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

    def check_artifact(self, wasm: bytes) -> list[str]:
        """The module's export names; raise `InvalidArtifactError` unless `wasm` is a module
        this ABI accepts (valid WebAssembly that imports nothing)."""
        ...

    def close(self) -> None:
        """Release engine resources (threads, caches)."""
        ...


ExecutorFactory = Callable[[ExecutorConfig], Executor]
