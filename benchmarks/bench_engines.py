"""Per-call cost of wasmtime in-process against the wasmer host process, unbatched and batched.

One batch is 100 tick calls of the `counter` reducer (fresh instance, input, output decoding),
as routing hands a stage's independent calls to `call_batch`. Variants, µs per call, measured
side by side (rounds interleaved, best round kept, as `run.py` does):

- `wasmtime_call_us`: the wasmtime executor, in-process, one `call` at a time (its
  `call_batch` is the same loop).
- `host_unbatched_call_us`: the wasmer executor through its host process, one `call` (one
  round trip) at a time.
- `host_batched_call_us`: the wasmer executor, the 100 calls as one `call_batch` (one round
  trip for the whole batch; after the first, each call runs in the first call's instance,
  reset to its freshly instantiated state: see docs/wasmer.md, "Batching").
- `host_batched_over_unbatched` (target ≤ 0.2) and `host_batched_over_wasmtime`.

Without a wasmer host interpreter (AGENTWORLD_WASMER_PYTHON) the wasmer figures are null and
`wasmer_unavailable` says why.
"""

from __future__ import annotations

import time
from typing import Any

from agentworld.backends.wasmer_executor import WasmerExecutor, unavailable_reason
from agentworld.executor import CallRequest, Executor, ExecutorConfig
from agentworld.manager import PluginManager
from agentworld.testing.conformance import counter_request

BATCH = 100


def _one_at_a_time(executor: Executor, requests: list[CallRequest]) -> None:
    for request in requests:
        executor.call(request)


def _rounds(variants: dict[str, Any], rounds: int) -> dict[str, float]:
    """Best µs per call of each variant; each round runs every variant once on one batch."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, run in variants.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], (time.perf_counter() - started) / BATCH * 1e6)
    return best


def measure(*, quick: bool = False) -> dict[str, Any]:
    """The figures described in the module docstring."""
    requests = [counter_request(count) for count in range(BATCH)]
    wasmtime = PluginManager(entrypoints=False).create_executor("wasmtime", ExecutorConfig())
    reason = unavailable_reason({"mode": "host"})
    wasmer = None if reason is not None else WasmerExecutor(
        ExecutorConfig(options={"mode": "host"}))
    try:
        variants: dict[str, Any] = {
            "wasmtime_call_us": lambda: _one_at_a_time(wasmtime, requests)}
        if wasmer is not None:
            variants["host_unbatched_call_us"] = lambda: _one_at_a_time(wasmer, requests)
            variants["host_batched_call_us"] = lambda: wasmer.call_batch(requests)
            assert wasmer.call_batch(requests) == wasmtime.call_batch(requests)  # and warm up
        best = _rounds(variants, 3 if quick else 15)
    finally:
        wasmtime.close()
        if wasmer is not None:
            wasmer.close()
    wasmtime_us = best["wasmtime_call_us"]
    unbatched = best.get("host_unbatched_call_us")
    batched = best.get("host_batched_call_us")
    return {
        "batch": BATCH,
        "wasmtime_call_us": round(wasmtime_us, 2),
        "host_unbatched_call_us": None if unbatched is None else round(unbatched, 2),
        "host_batched_call_us": None if batched is None else round(batched, 2),
        "host_batched_over_unbatched": (
            None if batched is None or unbatched is None else round(batched / unbatched, 3)),
        "host_batched_over_wasmtime": None if batched is None else round(batched / wasmtime_us, 3),
        "wasmer_unavailable": reason,
    }
