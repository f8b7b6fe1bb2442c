"""An artifact's interface read from its bytes: imports, exports, signatures, wasm-1 problems.

Engine-independent: it walks the binary's type, import, function, memory and export sections
and nothing else (validating the code is the engine's job). `agentworld guest inspect` uses it
to show what a module offers, what the ABI would refuse, and a manifest to start from.
"""

from __future__ import annotations

import re
from typing import Any

from attrs import frozen

from agentworld.executor import InvalidArtifactError
from agentworld.manifest import MODULE_ID

ENTRY_SHAPES = {
    (("i32", "i32"), ("i32", "i32")): "multi-value",
    (("i32", "i32"), ("i64",)): "packed i64",
    (("i32", "i32", "i32"), ()): "ret_area",
}
"""The wasm-1 entrypoint signatures, by (params, results), and the name of each shape."""

ENTRYPOINTS = ("reduce", "call", "migrate")
"""Exports the world calls: `reduce` (reducers), `call` (pure modules), `migrate` (upgrades)."""

_VALTYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128",
             0x70: "funcref", 0x6F: "externref"}
_KINDS = ("func", "table", "memory", "global", "tag")


@frozen
class Signature:
    """A function type."""

    params: tuple[str, ...]
    results: tuple[str, ...]

    def __str__(self) -> str:
        return f"({','.join(self.params)})->({','.join(self.results)})"

    @property
    def entry_shape(self) -> str | None:
        """The wasm-1 entrypoint shape this signature has, if any."""
        return ENTRY_SHAPES.get((self.params, self.results))


@frozen
class Memory:
    """A memory type: its minimum in pages, 64-bit addressing, sharing."""

    min_pages: int
    is_64: bool
    shared: bool


@frozen
class Extern:
    """One import or export: its kind, and its signature (functions) or type (memories)."""

    name: str
    kind: str
    signature: Signature | None = None
    memory: Memory | None = None

    def describe(self) -> str:
        """The kind, with the signature of a function."""
        return f"func {self.signature}" if self.signature is not None else self.kind


@frozen
class WasmInterface:
    """What a module imports and exports."""

    imports: tuple[Extern, ...]
    exports: tuple[Extern, ...]

    def export(self, name: str) -> Extern | None:
        """The export called `name`, if any."""
        return next((e for e in self.exports if e.name == name), None)


class _Reader:
    """Bounds-checked reading of one byte range; any overrun is an invalid artifact."""

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data, self.pos = data, start
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise InvalidArtifactError("truncated WebAssembly module")
        self.pos += 1
        return self.data[self.pos - 1]

    def uleb(self) -> int:
        result = shift = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7
            if shift > 63:
                raise InvalidArtifactError("malformed LEB128 integer")

    def take(self, size: int) -> bytes:
        if size > self.end - self.pos:
            raise InvalidArtifactError("truncated WebAssembly module")
        self.pos += size
        return self.data[self.pos - size:self.pos]

    def name(self) -> str:
        try:
            return self.take(self.uleb()).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArtifactError("a name is not UTF-8") from None

    def valtype(self) -> str:
        code = self.byte()
        if code not in _VALTYPES:
            raise InvalidArtifactError(f"unsupported value type 0x{code:02x}")
        return _VALTYPES[code]

    def limits(self) -> Memory:
        flags = self.byte()
        minimum = self.uleb()
        if flags & 1:
            self.uleb()
        return Memory(minimum, bool(flags & 4), bool(flags & 2))


def read_interface(wasm: bytes) -> WasmInterface:
    """Imports and exports of `wasm`; `InvalidArtifactError` if it is not a module binary."""
    if wasm[:8] != b"\0asm\x01\0\0\0":
        raise InvalidArtifactError("not a WebAssembly module (no \\0asm version 1 header)")
    reader = _Reader(wasm, 8)
    types: list[Signature] = []
    imports: list[Extern] = []
    func_types: list[int] = []  # the function index space: imports first
    memories: list[Memory] = []
    raw_exports: list[tuple[str, int, int]] = []
    while reader.pos < reader.end:
        section, size = reader.byte(), reader.uleb()
        body = _Reader(wasm, reader.pos, reader.pos + size)
        if body.end > reader.end:
            raise InvalidArtifactError("truncated WebAssembly module")
        reader.pos = body.end
        if section == 1:
            for _ in range(body.uleb()):
                if body.byte() != 0x60:
                    raise InvalidArtifactError("unsupported type form (only function types)")
                params = tuple(body.valtype() for _ in range(body.uleb()))
                types.append(Signature(params, tuple(body.valtype() for _ in range(body.uleb()))))
        elif section == 2:
            for _ in range(body.uleb()):
                module, field, kind = body.name(), body.name(), body.byte()
                name = f"{module}.{field}"
                if kind == 0:
                    func_types.append(body.uleb())
                    imports.append(Extern(name, "func", _signature(types, func_types[-1])))
                elif kind == 1:
                    body.byte()
                    body.limits()
                    imports.append(Extern(name, "table"))
                elif kind == 2:
                    memories.append(body.limits())
                    imports.append(Extern(name, "memory", memory=memories[-1]))
                elif kind == 3:
                    body.valtype()
                    body.byte()
                    imports.append(Extern(name, "global"))
                elif kind == 4:
                    body.byte()
                    body.uleb()
                    imports.append(Extern(name, "tag"))
                else:
                    raise InvalidArtifactError(f"unknown import kind {kind}")
        elif section == 3:
            func_types.extend(body.uleb() for _ in range(body.uleb()))
        elif section == 5:
            memories.extend(body.limits() for _ in range(body.uleb()))
        elif section == 7:
            raw_exports.extend((body.name(), body.byte(), body.uleb()) for _ in range(body.uleb()))
    exports = []
    for name, kind, index in raw_exports:
        if kind >= len(_KINDS):
            raise InvalidArtifactError(f"unknown export kind {kind}")
        if kind == 0:
            if index >= len(func_types):
                raise InvalidArtifactError(f"export {name!r} names a missing function")
            exports.append(Extern(name, "func", _signature(types, func_types[index])))
        elif kind == 2:
            if index >= len(memories):
                raise InvalidArtifactError(f"export {name!r} names a missing memory")
            exports.append(Extern(name, "memory", memory=memories[index]))
        else:
            exports.append(Extern(name, _KINDS[kind]))
    return WasmInterface(tuple(imports), tuple(exports))


def _signature(types: list[Signature], index: int) -> Signature:
    if index >= len(types):
        raise InvalidArtifactError(f"function type {index} does not exist")
    return types[index]


def module_kind(interface: WasmInterface) -> str | None:
    """`reducer` when the module exports `reduce`, `pure` when it exports `call`, else None."""
    if interface.export("reduce") is not None:
        return "reducer"
    if interface.export("call") is not None:
        return "pure"
    return None


def abi_problems(interface: WasmInterface) -> list[str]:
    """Everything the wasm-1 ABI would refuse about this module (empty when callable)."""
    problems = [f"imports {imp.name} ({imp.describe()}); wasm-1 modules import nothing"
                for imp in interface.imports]
    memory = interface.export("memory")
    if memory is None:
        problems.append("does not export 'memory'")
    elif memory.memory is None:
        problems.append(f"export 'memory' is a {memory.kind}, not a memory")
    elif memory.memory.is_64 or memory.memory.shared:
        problems.append("export 'memory' must be a 32-bit memory that is not shared")
    alloc = interface.export("alloc")
    if alloc is None:
        problems.append("does not export 'alloc'")
    elif alloc.signature != Signature(("i32",), ("i32",)):
        problems.append(f"export 'alloc' must be func (i32)->(i32), not {alloc.describe()}")
    if module_kind(interface) is None:
        problems.append("exports neither 'reduce' (a reducer) nor 'call' (a pure module)")
    for name in ENTRYPOINTS:
        entry = interface.export(name)
        if entry is not None and (entry.signature is None or entry.signature.entry_shape is None):
            problems.append(f"entrypoint {name!r} is {entry.describe()}; wasm-1 accepts "
                            f"{', '.join(str(Signature(*shape)) for shape in ENTRY_SHAPES)}")
    return problems


def default_module_id(filename: str) -> str:
    """A valid module id derived from a file name (`Counter V2.wasm` -> `counter-v2`)."""
    stem = re.sub(r"\.wasm$", "", filename.rsplit("/", 1)[-1].lower())
    candidate = re.sub(r"[^a-z0-9._-]+", "-", stem).lstrip("._-")[:128]
    return candidate if MODULE_ID.fullmatch(candidate) else "guest"


def manifest_skeleton(interface: WasmInterface, wasm_hash: str, module_id: str) -> dict[str, Any]:
    """A manifest to start from: the module's kind, ABI exports and one subscription."""
    kind = module_kind(interface) or "reducer"
    subscription: dict[str, Any] = (
        {"stage": "tick"} if kind == "reducer" else {"stage": "post_event", "event_kinds": ["*"]})
    return {
        "module_id": module_id,
        "name": module_id,
        "version": "0.1.0",
        "kind": kind,
        "role": "domain",
        "wasm_hash": wasm_hash,
        "interface_version": "wasm-1",
        "exports": [name for name in ("memory", "alloc", *ENTRYPOINTS)
                    if interface.export(name) is not None],
        "subscriptions": [subscription],
        "required_caps": [],
        "limits": {},
    }
