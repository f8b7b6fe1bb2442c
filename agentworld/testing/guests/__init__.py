"""The example guest modules, written in WAT and compiled on load (see README.md here).

`guest_wasm("counter")` returns the module's bytes; `GUESTS` lists every name. A guest's
source may contain the line `;; @include cbor.wat`, which is replaced by the shared CBOR helper
library before compiling.
"""

from __future__ import annotations

import functools
from importlib import resources

import wasmtime

INCLUDE_MARKER = ";; @include cbor.wat"

GUESTS: tuple[str, ...] = (
    # behaving guests
    "counter",
    "counter_v1",
    "counter_v2",
    "sleeper",
    "suspender",
    "observer",
    "rule",
    "effector",
    "effector_ref",
    "echo",
    "tick_counter",
    # metering and determinism guests (exact gas, canonical NaNs, refused features)
    "gas_straight",
    "gas_loop",
    "gas_branch",
    "gas_call",
    "gas_grow",
    "stack_depth",
    "leaky",
    "nan",
    "relaxed",
    "atomics",
    # hostile guests
    "loop",
    "membomb",
    "tablebomb",
    "bigmem",
    "huge",
    "garbage",
    "badptr",
    "unreachable",
    "divzero",
    "recursion",
    "noalloc",
    "noentry",
    "imports",
)


def _source(filename: str) -> str:
    return resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")


@functools.cache
def guest_wat(name: str) -> str:
    """The complete WAT text of guest `name`, with the shared library spliced in."""
    if name not in GUESTS:
        raise KeyError(f"no example guest named {name!r} (known: {', '.join(GUESTS)})")
    return _source(f"{name}.wat").replace(INCLUDE_MARKER, _source("cbor.wat"))


@functools.cache
def guest_wasm(name: str) -> bytes:
    """The compiled bytes of guest `name` (deterministic for a given wasmtime version)."""
    return bytes(wasmtime.wat2wasm(guest_wat(name)))
