"""A small WebAssembly binary decoder and encoder for the features the `wasm-1` ABI allows.

Allowed: the core specification's MVP plus multi-value, sign extension, non-trapping float to
int conversions, bulk memory, reference types (one table) and fixed-width SIMD. Refused at
deploy, each with its reason: imports, relaxed SIMD, threads and shared memory, 64-bit or
several memories, tail calls, exceptions, garbage collection, typed function references,
extended constant expressions. Nothing here runs code: `parse_module` reads the sections and
checks their structure and indices, `encode_module` writes a module back with added types,
globals, functions and exports. Instruction bodies are walked by `agentworld.metering`.

Also enforced here (and, for what only code or what instrumentation adds shows, in
`agentworld.metering`): structural bounds, so that every engine accepts what the ABI accepts and
compiling any accepted artifact takes bounded time whatever its shape. Engines have limits of
their own, and not the same ones (wasmer 1.1 panics on a function type with a few hundred
values, refuses tables over ten million elements and more than 100 000 units of exported
signatures; wasmtime refuses `br_table`s over 65 520 targets, bodies over 7 654 321 bytes and,
with its pooling allocator, instances over 1 MiB, which about 32 700 escaping functions fill);
each bound here lies below the lower of the two engines' limits, measured on real modules, with
room for what instrumentation adds, so that a module past one is refused by agentworld, in the
same words on every engine.
docs/executors.md ("Structural limits") has the table.
"""

from __future__ import annotations

from attrs import Factory, define, frozen

from agentworld.executor import InvalidArtifactError

MAGIC = b"\0asm\x01\0\0\0"
PAGE_BYTES = 65536

I32, I64, F32, F64, V128, FUNCREF, EXTERNREF = 0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F
VALTYPE_NAMES: dict[int, str] = {
    I32: "i32", I64: "i64", F32: "f32", F64: "f64", V128: "v128",
    FUNCREF: "funcref", EXTERNREF: "externref",
}
REFTYPES = frozenset({FUNCREF, EXTERNREF})

EXTERN_FUNC, EXTERN_TABLE, EXTERN_MEMORY, EXTERN_GLOBAL = 0, 1, 2, 3
EXTERN_NAMES = {EXTERN_FUNC: "func", EXTERN_TABLE: "table", EXTERN_MEMORY: "memory",
                EXTERN_GLOBAL: "global"}

# Structural bounds (docs/executors.md, "Structural limits"). Instrumentation adds a few
# types, functions, globals and exports, a copy of every active segment, up to five locals per
# function and two levels of nesting; each bound leaves room for that below both engines' limits.
MAX_TYPES = 100_000
MAX_FUNCTIONS = 200_000
MAX_TYPE_VALUES = 256
"""Parameters plus results of one function type (wasmer 1.1 panics from 270 v128 values)."""
MAX_LOCALS = 40_000
"""Parameters plus declared locals of one function."""
MAX_GLOBALS = 10_000
"""wasmtime's pooling allocator (the default) refuses an instance over 1 MiB: 16 bytes a global."""
MAX_TABLES = 1
"""wasmtime's pooling allocator (the default) refuses a second table."""
MAX_TABLE_ELEMENTS = 10_000
"""A table's initial size (wasmtime's pooling allocator refuses more than 20 000; its maximum is
not bounded here: growth is limited per call)."""
MAX_DATA_SEGMENTS = 10_000
MAX_ELEMENT_SEGMENTS = 10_000
MAX_ELEMENTS = 10_000_000
MAX_EXPORTS = 10_000
MAX_EXPORT_WEIGHT = 30_000
"""Sum over exports of 1 plus the function type's parameters and results, 2 for other kinds."""
MAX_BODY_BYTES = 4_000_000
"""One function body, both as deployed and once metered."""
MAX_BR_TABLE_TARGETS = 32_768
MAX_NESTING = 4_096
"""Blocks, loops and ifs open at once in one function."""
MAX_NAME_BYTES = 100_000
INSTANCE_BYTES_PER_ESCAPED_FUNCTION = 64
INSTANCE_BYTES_PER_GLOBAL = 32
MAX_INSTANCE_BYTES = 1_048_576
"""An estimate of what one instance of the instrumented module needs: 64 bytes for each function
that escapes (is exported, in an element segment or referenced by `ref.func`) and 32 for each
global. wasmtime's pooling allocator (the default) refuses an instance over 1 MiB and needs 32
and 16 bytes for them (plus about 1.3 KB): twice that leaves room for its layout to grow."""

# Section ids in the order a module must hold them (datacount sits before code).
SECTION_ORDER = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9, 12: 10, 10: 11, 11: 12}
SECTION_NAMES = {1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global",
                 7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "datacount"}


def refuse(reason: str) -> InvalidArtifactError:
    """The error for bytes this ABI does not accept (engine-neutral words only)."""
    return InvalidArtifactError(f"invalid artifact: {reason}")


def uleb(value: int) -> bytes:
    """Unsigned LEB128."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def sleb(value: int) -> bytes:
    """Signed LEB128."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def read_u32(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """An unsigned 32-bit LEB128 at `pos`: (value, next position)."""
    result = shift = 0
    while True:
        if pos >= end:
            raise refuse("truncated module (a number runs past its section)")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if result > 0xFFFFFFFF:
                raise refuse("malformed module (an unsigned 32-bit number is too large)")
            return result, pos
        shift += 7
        if shift > 28:
            raise refuse("malformed module (an unsigned 32-bit number is too long)")


def skip_sleb(data: bytes, pos: int, end: int, max_bytes: int) -> int:
    """The position after a signed LEB128 of at most `max_bytes` bytes."""
    limit = min(end, pos + max_bytes)
    while pos < limit:
        byte = data[pos]
        pos += 1
        if byte < 0x80:
            return pos
    raise refuse("malformed module (a signed number is too long or truncated)")


def read_sleb(data: bytes, pos: int, end: int, max_bytes: int) -> tuple[int, int]:
    """A signed LEB128 of at most `max_bytes` bytes: (value, next position)."""
    result = shift = 0
    limit = min(end, pos + max_bytes)
    while pos < limit:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if byte & 0x40:
                result -= 1 << shift
            return result, pos
    raise refuse("malformed module (a signed number is too long or truncated)")


@frozen
class FuncType:
    """A function type: parameter and result value types (codes)."""

    params: tuple[int, ...]
    results: tuple[int, ...]

    def describe(self) -> str:
        """`(i32,i32)->(i64)`."""
        params = ",".join(VALTYPE_NAMES[t] for t in self.params)
        results = ",".join(VALTYPE_NAMES[t] for t in self.results)
        return f"({params})->({results})"


@frozen
class Limits:
    """Minimum and optional maximum of a memory (pages) or a table (elements)."""

    minimum: int
    maximum: int | None


@frozen
class Export:
    """One export: its name, kind (`EXTERN_*`) and index in that kind's index space."""

    name: str
    kind: int
    index: int


@frozen
class Global:
    """One global the module defines: its value type, mutability and initial value."""

    valtype: int
    mutable: bool
    init: bytes
    """Its constant instruction (without the closing `end`), valid as code in a function."""


@frozen
class ActiveSegment:
    """An active data or element segment: where instantiation copies it, and its contents
    re-encoded as a passive segment (so that code can copy them again)."""

    target: int
    """The memory (0) or table it is copied into."""
    offset: bytes
    """The offset's constant instruction (without the closing `end`)."""
    size: int
    """Bytes or elements."""
    passive: bytes


@define
class Module:
    """A parsed module: what instrumentation and entrypoint planning need, plus raw sections."""

    types: list[FuncType]
    functions: list[int]
    """The type index of each function."""
    tables: list[tuple[int, Limits]]
    """(reference type, limits) of each table."""
    memory: Limits | None
    globals_count: int
    exports: list[Export]
    start: int | None
    bodies: list[tuple[int, int]]
    """(start, end) of each function body's bytes in `data` (locals included)."""
    data: bytes
    sections: dict[int, bytes]
    """Raw payload of every known section, by id."""
    element_count: int = 0
    data_count: int = 0
    escaped: bytearray = Factory(bytearray)
    """One byte per function: 1 if it escapes (is exported, in an element segment or referenced
    by `ref.func` in a constant expression; code may only take a reference to one of those)."""
    globals: list[Global] = Factory(list)
    active_elements: list[ActiveSegment] = Factory(list)
    active_data: list[ActiveSegment] = Factory(list)


class _Reader:
    """Sequential reads over one section payload with bounds checks."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data = data
        self.pos = pos
        self.end = end

    def u32(self) -> int:
        value, self.pos = read_u32(self.data, self.pos, self.end)
        return value

    def byte(self) -> int:
        if self.pos >= self.end:
            raise refuse("truncated module (a section ends early)")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, size: int) -> bytes:
        if self.end - self.pos < size:
            raise refuse("truncated module (a section ends early)")
        value = self.data[self.pos : self.pos + size]
        self.pos += size
        return value

    def count(self, limit: int, what: str) -> int:
        value = self.u32()
        if value > limit:
            raise refuse(f"the module declares {value} {what}, more than {limit}")
        return value

    def name(self) -> str:
        size = self.u32()
        if size > MAX_NAME_BYTES:
            raise refuse(f"a name of {size} bytes is longer than {MAX_NAME_BYTES}")
        raw = self.take(size)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise refuse("malformed module (a name is not valid UTF-8)") from None

    def valtype(self) -> int:
        code = self.byte()
        if code not in VALTYPE_NAMES:
            raise refuse(f"value type 0x{code:02x} is not allowed (only numbers, v128, "
                         "funcref and externref)")
        return code

    def reftype(self) -> int:
        code = self.byte()
        if code not in REFTYPES:
            raise refuse(f"reference type 0x{code:02x} is not allowed (only funcref and "
                         "externref)")
        return code

    def limits(self, what: str) -> Limits:
        flags = self.byte()
        if flags in (0x02, 0x03):
            raise refuse(f"shared {what} (the threads proposal) is not allowed")
        if flags not in (0x00, 0x01):
            raise refuse(f"{what} limits with flags 0x{flags:02x} are not allowed (64-bit "
                         f"{what}s and custom page sizes are not supported)")
        minimum = self.u32()
        maximum = self.u32() if flags == 0x01 else None
        if maximum is not None and maximum < minimum:
            raise refuse(f"a {what}'s maximum is below its minimum")
        return Limits(minimum, maximum)

    def done(self, section: str) -> None:
        if self.pos != self.end:
            raise refuse(f"malformed module (unexpected bytes at the end of the {section} "
                         "section)")


def _const_expr(
    reader: _Reader, functions: int, globals_count: int, escaped: bytearray
) -> bytes:
    """Check one constant expression (a single constant instruction, then `end`); its
    instruction. A function it references (`ref.func`) is marked in `escaped`."""
    start = reader.pos
    op = reader.byte()
    data, end = reader.data, reader.end
    if op == 0x41:
        reader.pos = skip_sleb(data, reader.pos, end, 5)
    elif op == 0x42:
        reader.pos = skip_sleb(data, reader.pos, end, 10)
    elif op == 0x43:
        reader.take(4)
    elif op == 0x44:
        reader.take(8)
    elif op == 0xFD:
        if reader.u32() != 12:
            raise refuse("a constant expression may only use v128.const among SIMD")
        reader.take(16)
    elif op == 0xD0:
        reader.reftype()
    elif op == 0xD2:
        index = reader.u32()
        if index >= functions:
            raise refuse("a constant expression refers to a function that does not exist")
        escaped[index] = 1
    elif op == 0x23:
        if reader.u32() >= globals_count:
            raise refuse("a constant expression refers to a global that does not exist")
    else:
        raise refuse(f"constant expressions may hold one constant instruction, not opcode "
                     f"0x{op:02x} (extended constant expressions are not supported)")
    instruction = reader.data[start : reader.pos]
    if reader.byte() != 0x0B:
        raise refuse("constant expressions may hold one constant instruction (extended "
                     "constant expressions are not supported)")
    return instruction


def _types(reader: _Reader) -> list[FuncType]:
    types = []
    for _ in range(reader.count(MAX_TYPES, "types")):
        form = reader.byte()
        if form != 0x60:
            raise refuse(f"type form 0x{form:02x} is not allowed (garbage collection types "
                         "are not supported)")
        params = tuple(reader.valtype() for _ in range(reader.count(MAX_TYPE_VALUES,
                                                                    "parameters in a type")))
        results = tuple(reader.valtype() for _ in range(reader.count(MAX_TYPE_VALUES,
                                                                     "results in a type")))
        if len(params) + len(results) > MAX_TYPE_VALUES:
            raise refuse(f"a function type has {len(params)} parameters and {len(results)} "
                         f"results, more than {MAX_TYPE_VALUES} together")
        types.append(FuncType(params, results))
    reader.done("type")
    return types


def _imports(reader: _Reader) -> list[str]:
    names = []
    for _ in range(reader.count(MAX_EXPORTS, "imports")):
        module, name = reader.name(), reader.name()
        kind = reader.byte()
        if kind == 0x00:
            reader.u32()
        elif kind == 0x01:
            reader.reftype()
            reader.limits("table")
        elif kind == 0x02:
            reader.limits("memory")
        elif kind == 0x03:
            reader.valtype()
            reader.byte()
        else:
            raise refuse(f"import kind 0x{kind:02x} is not supported")
        names.append(f"{module}.{name} ({EXTERN_NAMES.get(kind, 'tag')})")
    return names


def _elements(reader: _Reader, module: Module) -> int:
    functions, globals_count = len(module.functions), module.globals_count
    escaped = module.escaped
    segments = reader.count(MAX_ELEMENT_SEGMENTS, "element segments")
    total = 0
    for _ in range(segments):
        flags = reader.u32()
        if flags > 7:
            raise refuse(f"element segment flags {flags} are not allowed")
        active = flags & 1 == 0
        table, offset = 0, b""
        if active:
            table = reader.u32() if flags & 2 else 0
            if table >= len(module.tables):
                raise refuse("an element segment refers to a table that does not exist")
            offset = _const_expr(reader, functions, globals_count, escaped)
        if flags & 4:  # expressions
            kind = reader.reftype() if flags & 3 else FUNCREF
            items = reader.pos
            count = reader.count(MAX_ELEMENTS, "elements in a segment")
            for _ in range(count):
                _const_expr(reader, functions, globals_count, escaped)
            passive = b"\x05" + bytes([kind])
        else:
            if flags & 3 and reader.byte() != 0x00:
                raise refuse("an element segment has an unknown element kind")
            items = reader.pos
            count = reader.count(MAX_ELEMENTS, "elements in a segment")
            for _ in range(count):
                index = reader.u32()
                if index >= functions:
                    raise refuse("an element segment refers to a function that does not exist")
                escaped[index] = 1
            passive = b"\x01\x00"
        if active:
            module.active_elements.append(ActiveSegment(
                table, offset, count, passive + reader.data[items : reader.pos]))
        total += count
        if total > MAX_ELEMENTS:
            raise refuse(f"the module's element segments hold more than {MAX_ELEMENTS} elements")
    reader.done("element")
    return segments


def _data(reader: _Reader, module: Module) -> int:
    segments = reader.count(MAX_DATA_SEGMENTS, "data segments")
    for _ in range(segments):
        flags = reader.u32()
        offset = b""
        if flags in (0, 2):
            if (reader.u32() if flags == 2 else 0) != 0 or module.memory is None:
                raise refuse("a data segment refers to a memory that does not exist")
            offset = _const_expr(reader, len(module.functions), module.globals_count,
                                 module.escaped)
        elif flags != 1:
            raise refuse(f"data segment flags {flags} are not allowed")
        contents = reader.pos
        size = reader.u32()
        reader.take(size)
        if flags != 1:
            module.active_data.append(ActiveSegment(
                0, offset, size, b"\x01" + reader.data[contents : reader.pos]))
    reader.done("data")
    return segments


def parse_module(data: bytes) -> Module:
    """Parse and check a module's sections; raise `InvalidArtifactError` with the reason."""
    if not data.startswith(b"\0asm"):
        raise refuse("not a WebAssembly binary (missing the \\0asm header)")
    if data[:8] != MAGIC:
        raise refuse("unsupported WebAssembly binary version (only version 1 modules)")
    module = Module(types=[], functions=[], tables=[], memory=None, globals_count=0, exports=[],
                    start=None, bodies=[], data=data, sections={})
    pos, end = 8, len(data)
    last = 0
    data_count: int | None = None
    while pos < end:
        section_id = data[pos]
        size, pos = read_u32(data, pos + 1, end)
        if size > end - pos:
            raise refuse("truncated module (a section runs past the end)")
        payload_end = pos + size
        reader = _Reader(data, pos, payload_end)
        if section_id == 0:
            reader.name()  # custom sections are checked for shape and dropped
            pos = payload_end
            continue
        order = SECTION_ORDER.get(section_id)
        if order is None:
            raise refuse(f"section id {section_id} is not allowed (exception tags and other "
                         "proposals are not supported)")
        if order <= last:
            raise refuse(f"malformed module ({SECTION_NAMES[section_id]} section duplicated "
                          "or out of order)")
        last = order
        module.sections[section_id] = data[pos:payload_end]
        if section_id == 1:
            module.types = _types(reader)
        elif section_id == 2:
            imports = _imports(reader)
            if imports:
                raise refuse("module imports " + ", ".join(imports)
                             + "; wasm-1 modules import nothing")
        elif section_id == 3:
            for _ in range(reader.count(MAX_FUNCTIONS, "functions")):
                index = reader.u32()
                if index >= len(module.types):
                    raise refuse("a function refers to a type that does not exist")
                module.functions.append(index)
            module.escaped = bytearray(len(module.functions))
            reader.done("function")
        elif section_id == 4:
            for _ in range(reader.count(MAX_TABLES, "tables")):
                reftype, limits = reader.reftype(), reader.limits("table")
                if limits.minimum > MAX_TABLE_ELEMENTS:
                    raise refuse(f"a table of {limits.minimum} elements is larger than "
                                 f"{MAX_TABLE_ELEMENTS}")
                module.tables.append((reftype, limits))
            reader.done("table")
        elif section_id == 5:
            count = reader.u32()
            if count > 1:
                raise refuse("a module may have one memory (multiple memories are not "
                              "supported)")
            if count:
                module.memory = reader.limits("memory")
                if module.memory.minimum > 65536 or (module.memory.maximum or 0) > 65536:
                    raise refuse("a memory may have at most 65536 pages")
            reader.done("memory")
        elif section_id == 6:
            for _ in range(reader.count(MAX_GLOBALS, "globals")):
                valtype = reader.valtype()
                mutable = reader.byte()
                if mutable not in (0, 1):
                    raise refuse("malformed module (a global's mutability is not 0 or 1)")
                init = _const_expr(reader, len(module.functions), module.globals_count,
                                   module.escaped)
                module.globals.append(Global(valtype, mutable == 1, init))
                module.globals_count += 1
            reader.done("global")
        elif section_id == 7:
            module.exports = _exports(reader, module)
        elif section_id == 8:
            module.start = reader.u32()
            if module.start >= len(module.functions):
                raise refuse("the start function does not exist")
            start_type = module.types[module.functions[module.start]]
            if start_type.params or start_type.results:
                raise refuse("the start function must take and return nothing")
            reader.done("start")
        elif section_id == 9:
            module.element_count = _elements(reader, module)
        elif section_id == 12:
            data_count = reader.u32()
            reader.done("datacount")
        elif section_id == 10:
            count = reader.count(MAX_FUNCTIONS, "function bodies")
            if count != len(module.functions):
                raise refuse("malformed module (function and code sections disagree)")
            for _ in range(count):
                body_size = reader.u32()
                if body_size > MAX_BODY_BYTES:
                    raise refuse(f"a function body of {body_size} bytes is larger than "
                                 f"{MAX_BODY_BYTES}")
                start = reader.pos
                reader.take(body_size)
                module.bodies.append((start, reader.pos))
            reader.done("code")
        elif section_id == 11:
            module.data_count = _data(reader, module)
        pos = payload_end
    if len(module.bodies) != len(module.functions):
        raise refuse("malformed module (function and code sections disagree)")
    if data_count is not None and data_count != module.data_count:
        raise refuse("malformed module (the data count does not match the data section)")
    return module


def _exports(reader: _Reader, module: Module) -> list[Export]:
    exports = []
    seen: set[str] = set()
    weight = 0
    bounds = {EXTERN_FUNC: len(module.functions), EXTERN_TABLE: len(module.tables),
              EXTERN_MEMORY: 0 if module.memory is None else 1,
              EXTERN_GLOBAL: module.globals_count}
    for _ in range(reader.count(MAX_EXPORTS, "exports")):
        name = reader.name()
        kind = reader.byte()
        index = reader.u32()
        if kind not in bounds:
            raise refuse(f"export {name!r} has an unknown kind 0x{kind:02x}")
        if index >= bounds[kind]:
            raise refuse(f"export {name!r} refers to a {EXTERN_NAMES[kind]} that does not exist")
        if name in seen:
            raise refuse(f"export name {name!r} is used twice")
        seen.add(name)
        exports.append(Export(name, kind, index))
        if kind == EXTERN_FUNC:
            module.escaped[index] = 1
            func_type = module.types[module.functions[index]]
            weight += 1 + len(func_type.params) + len(func_type.results)
        else:
            weight += 2
    if weight > MAX_EXPORT_WEIGHT:
        raise refuse(f"the module's exports weigh {weight} (1 plus each exported function's "
                     f"parameters and results, 2 for other exports), more than "
                     f"{MAX_EXPORT_WEIGHT}")
    reader.done("export")
    return exports


def vector(items: list[bytes]) -> bytes:
    """A vector: its length, then its items."""
    return uleb(len(items)) + b"".join(items)


def section(section_id: int, payload: bytes) -> bytes:
    """A section: id, payload size, payload."""
    return bytes([section_id]) + uleb(len(payload)) + payload


def extend_vector(raw: bytes | None, items: list[bytes]) -> bytes:
    """A section payload that is a vector, with `items` appended to its existing items."""
    if raw is None:
        return vector(items)
    count, pos = read_u32(raw, 0, len(raw))
    return uleb(count + len(items)) + raw[pos:] + b"".join(items)


def func_type_bytes(params: list[int], results: list[int]) -> bytes:
    """The encoding of one function type."""
    return b"\x60" + uleb(len(params)) + bytes(params) + uleb(len(results)) + bytes(results)


def encode_module(
    module: Module,
    *,
    types: list[bytes],
    functions: list[int],
    globals_: list[bytes],
    exports: list[bytes],
    bodies: list[bytes],
    elements: list[bytes] | None = None,
    data: list[bytes] | None = None,
) -> bytes:
    """The module with new items appended to its index spaces (no existing index moves).

    `types`, `globals_`, `exports`, `elements` and `data` are encoded items; `functions` the
    type index of each new function; `bodies` the encoded bodies (size prefix included) of
    *every* function, old and new. With new data segments the module gets a data count (code
    may then use `memory.init`). The start section is dropped (the caller decides how the start
    function runs), and so are custom sections.
    """
    raw = module.sections
    out = [MAGIC, section(1, extend_vector(raw.get(1), types))]
    out.append(section(3, extend_vector(raw.get(3), [uleb(index) for index in functions])))
    for section_id in (4, 5):
        if section_id in raw:
            out.append(section(section_id, raw[section_id]))
    out.append(section(6, extend_vector(raw.get(6), globals_)))
    out.append(section(7, extend_vector(raw.get(7), exports)))
    if elements:
        out.append(section(9, extend_vector(raw.get(9), elements)))
    elif 9 in raw:
        out.append(section(9, raw[9]))
    if data:
        out.append(section(12, uleb(module.data_count + len(data))))
    elif 12 in raw:
        out.append(section(12, raw[12]))
    out.append(section(10, uleb(len(bodies)) + b"".join(bodies)))
    if data:
        out.append(section(11, extend_vector(raw.get(11), data)))
    elif 11 in raw:
        out.append(section(11, raw[11]))
    return b"".join(out)
