"""The wasmer host: runs wasm-1 calls on wasmer for a client over pipes (see docs/wasmer.md).

The wasmer package has no wheels for the Pythons agentworld supports, so this file is run as a
script by a separate interpreter that has it (`AGENTWORLD_WASMER_PYTHON`). It therefore uses
the standard library only and stays compatible with Python 3.9. It holds engine code only:
compile, describe, instantiate, call, read memory and globals, and name traps with
engine-neutral kinds. Entrypoint planning, output decoding and failure classification stay
with the client. Where `import wasmer` works in agentworld's own interpreter, the client runs
`Host.handle` in-process instead, with the same frames.

Framing: every message, both ways, is a 4-byte little-endian length, then that many bytes; the
first byte of a message is its type. Integers are little-endian.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any, Callable, NamedTuple

PROTOCOL_VERSION = 2
MAX_FRAME = 512 * 1024 * 1024
PAGE = 65536
MAX_PAGES = 65536
# The engine thread's stack: wasm's frames share it with a few of the host's own. Under a gas
# schedule with a stack limit, the instrumented code stops recursion long before wasm's frames
# need 4 MiB (agentworld/metering.py, STACK_LIMIT_V2); the fifth MiB is for the host's frames.
# Under schedule 1 this stack alone bounds recursion.
STACK_BYTES = 5 * 1024 * 1024
# Instances whose memory is larger are not reused: zeroing it costs about as much as a new
# instance there (measured: 64 KiB 2 µs, 1 MiB 14 µs, 2 MiB 25 µs, a new instance 26-28 µs).
RESET_MAX_BYTES = 1536 * 1024

# Message types. Client to host: INSPECT, BATCH, QUIT. Host to client: HELLO (once, at
# start), INSPECTED (answers INSPECT), PREPARED (a BATCH is parsed and compiled: its calls
# start now), RESULT (one per call of a BATCH, in order, each sent as soon as it is ready),
# FAULT (a protocol error; the host exits after sending it).
HELLO = ord("H")
INSPECT = ord("I")
INSPECTED = ord("i")
BATCH = ord("B")
PREPARED = ord("p")
RESULT = ord("r")
QUIT = ord("Q")
FAULT = ord("x")

# INSPECTED status.
MODULE_OK, MODULE_NOT_WASM, MODULE_INVALID, MODULE_HASH_MISMATCH = 0, 1, 2, 3

# What the entrypoint returns: the three shapes of wasm-1, and the instrumented module's
# wrapper: called (0, alloc arguments..., size) it returns (pointer, 0, gas left), called
# (1, pointer, 0, length) it returns (out_pointer, out_length, gas_left) whatever the guest's
# shape (so `alloc` names the wrapper too).
SHAPE_MULTI, SHAPE_PACKED, SHAPE_RETAREA, SHAPE_METERED = 0, 1, 2, 3

# Value types of globals the client sets or reads.
VAL_I32, VAL_I64 = 1, 2

# RESULT outcomes; `a` and `b` carry numbers the client needs to word its detail.
OK = 0  # the output follows
TRAP = 1  # `stage` and `trap` say where and which
ALLOC_OUT_OF_BOUNDS = 2  # alloc(b) returned a, which is not inside memory
OUTPUT_TOO_LARGE = 3  # the output is a bytes long, the limit is b
OUTPUT_OUT_OF_BOUNDS = 4  # the output (a, b) is not inside memory
UNKNOWN_MODULE = 5  # no module with that hash was inspected or sent
BAD_EXPORT = 6  # an export the call names is missing or of the wrong kind

# Where a call failed.
STAGE_INSTANTIATE, STAGE_ALLOC, STAGE_ENTRY = 0, 1, 2

# Why a guest trapped, as the WebAssembly specification words it, numbered for the wire (the
# executor core's engine-neutral trap reasons; "unknown" for anything else).
TRAP_KINDS = (
    "unknown",
    "unreachable",
    "integer divide by zero",
    "integer overflow",
    "invalid conversion to integer",
    "out of bounds memory access",
    "out of bounds table access",
    "uninitialized element",
    "indirect call type mismatch",
    "call stack exhausted",
    "null reference",
)
# wasmer's messages that differ from those words.
_TRAP_ALIASES = {
    "memory out of bounds: data segment does not fit": "out of bounds memory access",
    "undefined element: out of bounds table access": "out of bounds table access",
    "table out of bounds: elements segment does not fit": "out of bounds table access",
}

_U32 = struct.Struct("<I")
# type, outcome, stage, trap, reused, memory pages, a, b, gas left, number of globals read
_RESULT_HEAD = struct.Struct("<BBBBBIIIqB")
# module hash, shape, max output bytes, ret-area padding (0 or 1)
_CALL_HEAD = struct.Struct("<32sBIB")
_WASM_MAGIC = b"\0asm"
_VALTYPES = {1: "i32", 2: "i64", 3: "f32", 4: "f64", 5: "v128", 6: "externref", 7: "funcref"}


class ProtocolError(Exception):
    """A malformed message: the peer does not speak this protocol."""


def trap_kind(message: str) -> int:
    """The neutral trap kind (an index into `TRAP_KINDS`) of one of wasmer's trap messages."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    if first.startswith("RuntimeError: "):
        first = first[len("RuntimeError: "):]
    first = _TRAP_ALIASES.get(first.strip(), first.strip())
    return TRAP_KINDS.index(first) if first in TRAP_KINDS else 0


# -- the wire -------------------------------------------------------------------------------


class Reader:
    """Reads the fields of one message body."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def take(self, size: int) -> bytes:
        """The next `size` bytes."""
        end = self.offset + size
        if size < 0 or end > len(self.data):
            raise ProtocolError("message ends early")
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk

    def u8(self) -> int:
        """An unsigned byte."""
        return self.take(1)[0]

    def u32(self) -> int:
        """An unsigned 32-bit integer."""
        value: int = _U32.unpack(self.take(4))[0]
        return value

    def i64(self) -> int:
        """A signed 64-bit integer."""
        value: int = struct.unpack("<q", self.take(8))[0]
        return value

    def blob(self) -> bytes:
        """A u32 length, then that many bytes."""
        return self.take(self.u32())

    def text(self) -> str:
        """A u16 length, then that many bytes of UTF-8."""
        size = struct.unpack("<H", self.take(2))[0]
        return self.take(size).decode("utf-8")

    def end(self) -> None:
        """Refuse trailing bytes."""
        if self.offset != len(self.data):
            raise ProtocolError("trailing bytes after the message")


def blob(data: bytes) -> bytes:
    """A u32 length, then the bytes."""
    return _U32.pack(len(data)) + data


def text(value: str) -> bytes:
    """A u16 length, then the UTF-8 bytes."""
    raw = value.encode("utf-8")
    return struct.pack("<H", len(raw)) + raw


def frame(body: bytes) -> bytes:
    """One frame: the body's length, then the body."""
    return _U32.pack(len(body)) + body


def inspect_message(wasm_hash: bytes, wasm: bytes) -> bytes:
    """The body of an INSPECT message."""
    return bytes([INSPECT]) + wasm_hash + blob(wasm)


def batch_message(modules: list[tuple[bytes, bytes]], calls: list[bytes]) -> bytes:
    """The body of a BATCH message: modules the host lacks, then encoded calls."""
    parts = [bytes([BATCH]), struct.pack("<H", len(modules))]
    for wasm_hash, wasm in modules:
        parts.append(wasm_hash)
        parts.append(blob(wasm))
    parts.append(_U32.pack(len(calls)))
    parts.extend(calls)
    return b"".join(parts)


def call_header(
    wasm_hash: bytes,
    *,
    entry: str,
    shape: int,
    max_output: int,
    ret_area: bool = False,
    memory: str = "memory",
    alloc: str = "alloc",
    alloc_args: Sequence[tuple[int, int]] = (),
    set_globals: Sequence[tuple[str, int, int]] = (),
    get_globals: Sequence[str] = (),
    reset: str = "",
) -> bytes:
    """Everything about a call but its input; calls of one module under the same limits share
    it, so the client builds it once and the host parses it once.

    The host instantiates the module in a fresh instance, sets
    `set_globals` (name, value type, value), calls export `alloc` with `alloc_args` (value
    type, value) followed by the i32 size of the buffer it needs (the input's length; with
    `ret_area`, that rounded up to 4 plus 8), writes the input at the pointer it returns,
    calls export `entry` with (pointer, length) (or (ret_area, pointer, length) for
    SHAPE_RETAREA), reads the output from export `memory` (at most `max_output` bytes) and the
    i64 or i32 globals named in `get_globals`, also after a trap.

    With `reset` (an export `() -> i32` that puts a used instance back in its freshly
    instantiated state, or returns 0 when it cannot), a later call of the same module in the
    same batch may run in this call's instance once `reset` has returned 1, instead of in a new
    one: only after a call that succeeded, and only for a memory of at most
    `RESET_MAX_BYTES`.
    """
    parts = [
        _CALL_HEAD.pack(wasm_hash, shape, max_output, 1 if ret_area else 0),
        text(memory),
        text(alloc),
        bytes([len(alloc_args)]),
    ]
    parts.extend(struct.pack("<Bq", valtype, value) for valtype, value in alloc_args)
    parts.append(text(entry))
    parts.append(bytes([len(set_globals)]))
    for name, valtype, value in set_globals:
        parts.append(text(name) + struct.pack("<Bq", valtype, value))
    parts.append(bytes([len(get_globals)]))
    parts.extend(text(name) for name in get_globals)
    parts.append(text(reset))
    return b"".join(parts)


def call_message(header: bytes, data: bytes) -> bytes:
    """One call inside a BATCH: its header (`call_header`), then its input."""
    return _U32.pack(len(header)) + header + _U32.pack(len(data)) + data


class Result(NamedTuple):
    """A RESULT message, decoded."""

    outcome: int
    stage: int
    trap: int
    pages: int
    a: int
    b: int
    gas_left: int
    values: list[int]
    output: bytes
    reused: bool = False
    """The call ran in a reset instance of an earlier call of its batch, not a new one."""


def parse_result(body: bytes) -> Result:
    """Decode a RESULT body."""
    if len(body) < _RESULT_HEAD.size or body[0] != RESULT:
        raise ProtocolError("not a RESULT message")
    _, outcome, stage, trap, reused, pages, a, b, gas_left, count = _RESULT_HEAD.unpack_from(body)
    reader = Reader(body, _RESULT_HEAD.size)
    values = [reader.i64() for _ in range(count)]
    output = reader.blob()
    reader.end()
    return Result(outcome, stage, trap, pages, a, b, gas_left, values, output, bool(reused))


def _result(
    outcome: int,
    stage: int = 0,
    trap: int = 0,
    pages: int = 0,
    a: int = 0,
    b: int = 0,
    values: list[int] | None = None,
    output: bytes = b"",
    gas_left: int = 0,
    reused: bool = False,
) -> bytes:
    values = values or []
    head = _RESULT_HEAD.pack(RESULT, outcome, stage, trap, reused, pages, a, b, gas_left,
                             len(values))
    return head + b"".join(struct.pack("<q", value) for value in values) + blob(output)


# -- memory limits by rewriting the module --------------------------------------------------


def _leb(data: bytes, offset: int) -> tuple[int, int]:
    """An unsigned LEB128 at `offset`: (value, offset after it)."""
    value = shift = 0
    while True:
        if offset >= len(data) or shift > 35:
            raise ValueError("bad LEB128")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, offset


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def limit_memory(wasm: bytes, pages: int) -> tuple[bytes, int]:
    """The module with its memory's maximum lowered to at most `pages`, and the memory's
    declared minimum. wasmer-python has no resource limiter: a declared maximum makes
    `memory.grow` past the limit return -1, as a limiter refusing it does."""
    offset = 8
    while offset < len(wasm):
        section = wasm[offset]
        size, body = _leb(wasm, offset + 1)
        end = body + size
        if section == 5:
            count, cursor = _leb(wasm, body)
            if count != 1:
                return wasm, 0
            flags = wasm[cursor]
            if flags not in (0, 1):
                return wasm, 0  # shared or 64-bit: refused by planning, never called
            minimum, cursor = _leb(wasm, cursor + 1)
            maximum = MAX_PAGES
            if flags == 1:
                maximum, cursor = _leb(wasm, cursor)
            if cursor != end or maximum <= pages or minimum > pages:
                return wasm, minimum
            payload = _uleb(1) + b"\x01" + _uleb(minimum) + _uleb(pages)
            rewritten = wasm[:offset] + b"\x05" + _uleb(len(payload)) + payload + wasm[end:]
            return rewritten, minimum
        offset = end
    return wasm, 0


# -- the engine -----------------------------------------------------------------------------


def _descriptor(kind: Any) -> list[Any]:
    """A JSON description of an extern type, in the client's engine-neutral vocabulary."""
    name = type(kind).__name__
    if name == "FunctionType":
        return [
            "func",
            [_VALTYPES.get(int(p), str(p)) for p in kind.params],
            [_VALTYPES.get(int(r), str(r)) for r in kind.results],
        ]
    if name == "MemoryType":
        # wasmer 1.1 has no 64-bit memories.
        return ["memory", False, bool(kind.shared), int(kind.minimum)]
    if name == "GlobalType":
        return ["global", _VALTYPES.get(int(kind.type), str(kind.type)), bool(kind.mutable)]
    return [name[: -len("Type")].lower() if name.endswith("Type") else name.lower()]


class _Module:
    """A loaded module: its compiled form and its summary."""

    __slots__ = ("module", "summary")

    def __init__(self, module: Any, summary: dict[str, Any]) -> None:
        self.module = module
        self.summary = summary


class _Live:
    """An instance and the exports calls have looked up on it."""

    __slots__ = ("exports", "found")

    def __init__(self, instance: Any) -> None:
        self.exports = instance.exports
        self.found: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        """The export `name` (`LookupError` when there is none)."""
        found = self.found.get(name)
        if found is None:
            try:
                found = self.found[name] = getattr(self.exports, name)
            except AttributeError:
                raise LookupError(name) from None
        return found


class Host:
    """The engine: compiled modules by hash, and the handler for one message."""

    def __init__(self, cache_size: int = 256, max_pages: int = MAX_PAGES) -> None:
        import wasmer  # type: ignore[import-not-found]
        import wasmer_compiler_cranelift  # type: ignore[import-not-found]

        self._wasmer = wasmer
        self._store = wasmer.Store(wasmer.engine.Universal(wasmer_compiler_cranelift.Compiler))
        self._modules: OrderedDict[bytes, _Module] = OrderedDict()
        self._cache_size = max(1, cache_size)
        # The engine's own ceiling on one memory, a backstop behind the instrumented limits:
        # every module's declared maximum is lowered to it before it is compiled.
        self._max_pages = max(0, min(max_pages, MAX_PAGES))
        # Parsed call headers by their bytes (see `call_header`).
        self._headers: dict[bytes, tuple[bytes, _Call]] = {}
        # Instances of the current batch's modules that may be reset and reused, by module.
        self._spares: dict[int, _Live] = {}
        self.version = "wasmer " + str(getattr(wasmer, "__version__", "?")) + " cranelift"

    def hello(self) -> bytes:
        """The HELLO body: protocol version, engine, interpreter."""
        return (
            bytes([HELLO])
            + _U32.pack(PROTOCOL_VERSION)
            + text(self.version)
            + text(sys.version.split()[0])
        )

    def handle(self, body: bytes) -> Iterator[bytes]:
        """The reply bodies to one message body, each produced when ready (a batch's results
        one call at a time); raises `ProtocolError` on a malformed message before any reply."""
        if not body:
            raise ProtocolError("empty message")
        kind = body[0]
        if kind == INSPECT:
            reader = Reader(body, 1)
            wasm_hash = reader.take(32)
            wasm = reader.blob()
            reader.end()
            return iter([self._inspect(wasm_hash, wasm)])
        if kind == BATCH:
            return self._batch(Reader(body, 1))
        raise ProtocolError(f"unknown message type {kind}")

    def _inspect(self, wasm_hash: bytes, wasm: bytes) -> bytes:
        status, summary = self._load(wasm_hash, wasm)
        self._evict()
        payload = b"" if summary is None else json.dumps(summary).encode("utf-8")
        return bytes([INSPECTED, status]) + blob(payload)

    def _load(self, wasm_hash: bytes, wasm: bytes) -> tuple[int, dict[str, Any] | None]:
        known = self._modules.get(wasm_hash)
        if known is not None:
            self._modules.move_to_end(wasm_hash)
            return MODULE_OK, known.summary
        if hashlib.sha256(wasm).digest() != wasm_hash:
            return MODULE_HASH_MISMATCH, None
        if not wasm.startswith(_WASM_MAGIC):
            # wasmer would otherwise accept WAT text too.
            return MODULE_NOT_WASM, None
        try:
            module = self._wasmer.Module(self._store, limit_memory(wasm, self._max_pages)[0])
        except BaseException as exc:  # RuntimeError, ValueError, ... or a panic (see `_panic`)
            _panic(exc)
            return MODULE_INVALID, None
        summary = {
            "imports": [[i.module, i.name, _descriptor(i.type)] for i in module.imports],
            "exports": [[e.name, _descriptor(e.type)] for e in module.exports],
        }
        self._modules[wasm_hash] = _Module(module, summary)
        return MODULE_OK, summary

    def _evict(self) -> None:
        """Drop the least recently used modules over the cache size; only between messages,
        so that a batch never loses a module it carries."""
        while len(self._modules) > self._cache_size:
            self._modules.popitem(last=False)

    def _batch(self, reader: Reader) -> Iterator[bytes]:
        """Load the batch's modules and compile what its calls need, then run them lazily."""
        count = struct.unpack("<H", reader.take(2))[0]
        for _ in range(count):
            wasm_hash = reader.take(32)
            status, _ = self._load(wasm_hash, reader.blob())
            if status != MODULE_OK:
                raise ProtocolError("a batch carries a module that does not load")
        calls: list[tuple[Any, _Call]] = []
        headers = self._headers
        for _ in range(reader.u32()):
            header = reader.blob()
            parsed = headers.get(header)
            if parsed is None:
                if len(headers) >= 4096:
                    headers.clear()
                parsed = headers[header] = _parse_header(header)
            wasm_hash, template = parsed
            calls.append((self._prepare(wasm_hash), template._replace(data=reader.blob())))
        reader.end()
        self._evict()
        return self._results(calls)

    def _prepare(self, wasm_hash: bytes) -> Any:
        """The compiled module a call runs, or the RESULT body that ends it before it starts."""
        entry = self._modules.get(wasm_hash)
        if entry is None:
            return _result(UNKNOWN_MODULE)
        self._modules.move_to_end(wasm_hash)
        return entry.module

    def _results(self, calls: list[tuple[Any, _Call]]) -> Iterator[bytes]:
        yield bytes([PREPARED])
        try:
            for module, call in calls:
                yield module if isinstance(module, bytes) else self.call(module, call)
        finally:
            # Instances are reused within one batch only.
            self._spares.clear()

    def call(self, module: Any, call: _Call) -> bytes:
        """Run one call of a compiled module in a fresh instance (or one reset to that state,
        see `call_header`); the RESULT body."""
        state: dict[str, Any] = {"stage": STAGE_INSTANTIATE, "memory": None, "live": None,
                                 "reused": False}
        try:
            return self._run(module, state, call)
        except LookupError:
            return _result(BAD_EXPORT, state["stage"], values=self._read(state, call.gets),
                           reused=state["reused"])
        except RuntimeError as exc:
            memory = state["memory"]
            size = memory.data_size // PAGE if memory is not None else 0
            values = self._read(state, call.gets)
            return _result(TRAP, state["stage"], trap_kind(str(exc)), size, values=values,
                           reused=state["reused"])
        except BaseException as exc:  # a call the engine refuses (a type error), or a panic
            _panic(exc)
            return _result(TRAP, state["stage"], values=self._read(state, call.gets),
                           reused=state["reused"])

    def _read(self, state: dict[str, Any], gets: list[str]) -> list[int]:
        """The values of the globals named in `gets` (0 for one that cannot be read)."""
        live = state["live"]
        values = []
        for name in gets:
            try:
                values.append(int(live.get(name).value))
            except Exception:  # no instance yet, or no such global
                values.append(0)
        return values

    def _instance(self, module: Any, state: dict[str, Any], reset: str) -> _Live:
        """A spare instance of `module` reset to its fresh state, or a new one."""
        live: _Live | None = self._spares.pop(id(module), None) if reset else None
        if live is not None:
            try:
                state["reused"] = live.get(reset)() == 1
            except Exception:  # whatever went wrong, a new instance is always right
                state["reused"] = False
            if state["reused"]:
                return live
        return _Live(self._wasmer.Instance(module))

    def _run(self, module: Any, state: dict[str, Any], call: _Call) -> bytes:
        live = state["live"] = self._instance(module, state, call.reset)
        reused = state["reused"]
        for name, value in call.sets:
            live.get(name).value = value
        memory = state["memory"] = live.get(call.memory)
        alloc: Callable[..., Any] = live.get(call.alloc)
        function: Callable[..., Any] = live.get(call.entry)
        data = call.data
        size = len(data)
        request = ((size + 3) & ~3) + 8 if call.ret_area else size
        state["stage"] = STAGE_ALLOC
        allocated = alloc(*call.alloc_args, request)
        if call.shape == SHAPE_METERED:
            allocated = allocated[0]
        pointer = allocated & 0xFFFFFFFF
        view = memoryview(memory.buffer)
        if pointer + request > len(view):
            return _result(ALLOC_OUT_OF_BOUNDS, STAGE_ALLOC, 0, len(view) // PAGE, pointer,
                           request, self._read(state, call.gets), reused=reused)
        view[pointer:pointer + size] = data
        view.release()
        state["stage"] = STAGE_ENTRY
        gas_left = 0
        shape = call.shape
        if shape == SHAPE_MULTI:
            out_pointer, out_size = function(pointer, size)
        elif shape == SHAPE_METERED:
            out_pointer, out_size, gas_left = function(1, pointer, 0, size)
        elif shape == SHAPE_PACKED:
            packed = function(pointer, size) & 0xFFFFFFFFFFFFFFFF
            out_pointer, out_size = packed & 0xFFFFFFFF, packed >> 32
        else:
            ret_area = pointer + ((size + 3) & ~3)
            function(ret_area, pointer, size)
            view = memoryview(memory.buffer)
            out_pointer, out_size = struct.unpack_from("<II", view, ret_area)
            view.release()
        out_pointer &= 0xFFFFFFFF
        out_size &= 0xFFFFFFFF
        values = self._read(state, call.gets)
        view = memoryview(memory.buffer)
        pages = len(view) // PAGE
        if out_size > call.max_output:
            return _result(OUTPUT_TOO_LARGE, STAGE_ENTRY, 0, pages, out_size, call.max_output,
                           values, gas_left=gas_left, reused=reused)
        if out_pointer + out_size > len(view):
            return _result(OUTPUT_OUT_OF_BOUNDS, STAGE_ENTRY, 0, pages, out_pointer, out_size,
                           values, gas_left=gas_left, reused=reused)
        output = view[out_pointer:out_pointer + out_size].tobytes()
        size = len(view)
        view.release()
        if call.reset and size <= RESET_MAX_BYTES:
            self._spares[id(module)] = live
        return _result(OK, STAGE_ENTRY, 0, pages, values=values, output=output,
                       gas_left=gas_left, reused=reused)


def _panic(exc: BaseException) -> None:
    """Re-raise `exc` unless it is an engine failure the host survives.

    A panic inside wasmer (1.1 panics compiling a function type with a few hundred values, for
    one) reaches Python as `pyo3_runtime.PanicException`, which derives from `BaseException`,
    not `Exception`: uncaught, it would end the host. The core refuses such modules before an
    engine sees them; this keeps the host serving if an engine panics on anything else.
    """
    if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
        raise exc


def _parse_header(header: bytes) -> tuple[bytes, _Call]:
    """(module hash, the call without its input) from a `call_header`."""
    reader = Reader(header)
    wasm_hash, shape, max_output, ret_area = _CALL_HEAD.unpack(reader.take(_CALL_HEAD.size))
    if shape > SHAPE_METERED:
        raise ProtocolError(f"unknown entrypoint shape {shape}")
    memory, alloc = reader.text(), reader.text()
    alloc_args = [_value(*struct.unpack("<Bq", reader.take(9))) for _ in range(reader.u8())]
    entry = reader.text()
    sets = []
    for _ in range(reader.u8()):
        name = reader.text()
        sets.append((name, _value(*struct.unpack("<Bq", reader.take(9)))))
    gets = [reader.text() for _ in range(reader.u8())]
    reset = reader.text()
    reader.end()
    call = _Call(shape, max_output, bool(ret_area), memory, alloc, alloc_args, entry, sets, gets,
                 reset, b"")
    return wasm_hash, call


def _value(valtype: int, value: int) -> int:
    """A typed value from the wire, checked against its type."""
    if valtype == VAL_I32 and not -(2**31) <= value < 2**31:
        raise ProtocolError("an i32 value is out of range")
    if valtype not in (VAL_I32, VAL_I64):
        raise ProtocolError(f"unknown value type {valtype}")
    return value


class _Call(NamedTuple):
    """One parsed call of a batch."""

    shape: int
    max_output: int
    ret_area: bool
    memory: str
    alloc: str
    alloc_args: list[int]
    entry: str
    sets: list[tuple[str, int]]
    gets: list[str]
    reset: str
    data: bytes


# -- the process ----------------------------------------------------------------------------


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def serve(host: Host, fd_in: int, fd_out: int) -> int:
    """Answer messages until QUIT or end of input; the exit status."""
    _write_all(fd_out, frame(host.hello()))
    while True:
        head = _read_exact(fd_in, 4)
        if head is None:
            return 0
        size = _U32.unpack(head)[0]
        if size > MAX_FRAME:
            _write_all(fd_out, frame(bytes([FAULT]) + text("frame too large")))
            return 2
        body = _read_exact(fd_in, size)
        if body is None:
            return 0
        if body[:1] == bytes([QUIT]):
            return 0
        try:
            replies = host.handle(body)
        except ProtocolError as exc:
            _write_all(fd_out, frame(bytes([FAULT]) + text(str(exc))))
            return 2
        for reply in replies:
            # One write per result, as soon as it is ready: the client times each call.
            _write_all(fd_out, frame(reply))


def on_engine_thread(work: Callable[[], int]) -> int:
    """Run `work` on a thread with a stack of `STACK_BYTES`; its result.

    wasmer runs guests on the calling thread's stack, so that stack's size bounds recursion:
    a small one makes deep recursion trap within milliseconds (with the main thread's 8 MiB,
    building the trap's backtrace alone takes a second). wasmer's objects must stay on the
    thread that made them, so all of the engine's work happens on this one thread.
    """
    outcome: list[int] = []
    previous = threading.stack_size(STACK_BYTES)
    try:
        thread = threading.Thread(target=lambda: outcome.append(work()), name="wasmer-engine")
        thread.start()
    finally:
        threading.stack_size(previous)
    thread.join()
    return outcome[0] if outcome else 1


def main(argv: list[str]) -> int:
    """Serve on stdin/stdout (arguments: module cache size, memory ceiling in pages), or with
    `--probe` print the engine version and exit."""
    if argv[1:2] == ["--probe"]:
        print(Host().version)
        return 0
    # The protocol owns the real stdout; a stray print must not corrupt it.
    fd_in, fd_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    cache_size = int(argv[1]) if len(argv) > 1 else 256
    max_pages = int(argv[2]) if len(argv) > 2 else MAX_PAGES
    return on_engine_thread(lambda: serve(Host(cache_size, max_pages), fd_in, fd_out))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
