"""Deterministic gas: the cost schedules and the instrumentation pass every engine runs.

At deploy, `instrument(wasm, schedule)` rewrites a module so that results do not depend on the
engine that runs it (docs/executors.md, "Gas"):

- **Gas.** Every function body is cut into *metered segments*: a segment starts at the
  function's entry and right after each `loop`, `if`, `else`, `end`, `br`, `br_if`, `br_table`,
  `return` and `unreachable`, and runs to the next of them (inclusive). At its start a segment
  charges the sum of its instructions' costs (from the schedule) to an i64 gas global; if the
  global falls below zero the code traps there. `memory.grow` additionally charges per page
  requested, bulk memory and table instructions per byte or element, `table.grow` per element.
- **Floating point.** After every instruction that can produce a NaN (arithmetic, rounding,
  min/max, square root, promotion and demotion, scalar and SIMD), a NaN result is replaced by
  the canonical NaN, so engines that do not canonicalize give the same bits.
- **Limits.** `memory.grow` and `table.grow` go through helpers that refuse (return -1 and set a
  flag the host reads) growth that would make the memory's bytes plus `TABLE_ELEMENT_BYTES` per
  table element exceed the call's memory limit.
- **Stack** (schedules with a `stack_limit`). Each function has a static cost in stack units
  (`STACK_LIMIT_V2` says how it is counted); entering a function takes its units from an i32
  budget global, trapping when the budget would fall below zero, and every exit (`return`, or
  the end of the body, which runs inside an added block so that branches to the function's
  label leave the same way) gives them back. How deep calls nest is then the same on every
  engine, and no engine's native stack is reached first.
- **Resetting.** An export `() -> i32` puts a used instance back in the state instantiation
  left it in (memory, tables, globals; the start function runs again when the instance is
  next armed), or returns 0 when it cannot, for engines where a new instance is costly.
- **Calling.** The module gains an export that arms an instance with its gas, memory limit and
  stack budget and calls the guest's `alloc` (running the start function first, which no
  longer runs at instantiation), and one wrapper per exported function of a `wasm-1` entrypoint
  shape, `(op: i32, a: i64, b: i64, size: i32) -> (i32, i32, i64)`: with op 0 it arms the
  instance (gas `a`, memory limit `b`) and returns the guest's buffer of `size` bytes as
  `(pointer, 0, gas_left)`; otherwise it calls the entrypoint on `(pointer a, length size)` and
  returns `(out_pointer, out_length, gas_left)` whatever the guest's shape. One export then
  serves a whole call (an engine's export lookups cost more than the call through them).

Only indices are added (types, a few globals, functions, exports and passive copies of the
active segments at the end of their index spaces, and scratch locals at the end of each
function's locals), so no existing index moves.
"""

from __future__ import annotations

from typing import Any

from attrs import evolve, frozen

from agentworld.executor import CURRENT_GAS_SCHEDULE as CURRENT_GAS_SCHEDULE
from agentworld.wasm_module import (
    EXTERN_FUNC,
    EXTERN_GLOBAL,
    EXTERN_MEMORY,
    EXTERNREF,
    F32,
    F64,
    FUNCREF,
    I32,
    I64,
    INSTANCE_BYTES_PER_ESCAPED_FUNCTION,
    INSTANCE_BYTES_PER_GLOBAL,
    MAX_BODY_BYTES,
    MAX_BR_TABLE_TARGETS,
    MAX_INSTANCE_BYTES,
    MAX_LOCALS,
    MAX_NESTING,
    PAGE_BYTES,
    V128,
    VALTYPE_NAMES,
    Export,
    FuncType,
    Module,
    encode_module,
    func_type_bytes,
    parse_module,
    read_sleb,
    read_u32,
    refuse,
    skip_sleb,
    sleb,
    uleb,
)

RESERVED_PREFIX = "__agentworld_"
"""Export names the instrumentation adds; an artifact may not export names starting with it."""
GAS_EXPORT = RESERVED_PREFIX + "gas"
REFUSED_EXPORT = RESERVED_PREFIX + "refused"
RESET_EXPORT = RESERVED_PREFIX + "reset"
STACK_EXPORT = RESERVED_PREFIX + "stack"
ALLOC_EXPORT = RESERVED_PREFIX + "alloc"
ENTRY_PREFIX = RESERVED_PREFIX + "entry:"

TABLE_ELEMENT_BYTES = 8
"""What one table element counts against a call's memory limit."""

INSTRUMENTATION_FORMAT = 4
"""Bumped whenever the rewrite, or what it accepts, changes for an unchanged schedule (it keys
cached modules, and a cached rewrite is not checked again)."""

# Entrypoint shapes of wasm-1.
MULTI, PACKED, RET_AREA = "(i32,i32)->(i32,i32)", "(i32,i32)->(i64)", "(i32,i32,i32)->()"
SHAPES = {
    FuncType((I32, I32), (I32, I32)): MULTI,
    FuncType((I32, I32), (I64,)): PACKED,
    FuncType((I32, I32, I32), ()): RET_AREA,
}


@frozen
class GasSchedule:
    """A versioned cost table. Costs are per instruction; unlisted instructions cost `base`."""

    version: int
    base: int
    free: frozenset[str]
    costs: dict[str, int]
    grow_page: int
    """Extra gas per page `memory.grow` requests (charged even when refused)."""
    bulk_byte_shift: int
    """`memory.fill/copy/init` charge `length >> shift` extra."""
    table_element_shift: int
    """`table.fill/copy/init/grow` charge `count >> shift` extra."""
    stack_limit: int | None = None
    """Stack units the functions active at once may use together (see `STACK_LIMIT_V2`); None:
    no deterministic limit, so the engine's native stack decides how deep calls nest."""
    frame_cost: int = 0
    """Stack units every function costs beyond its values (return address, saved registers,
    the instrumentation's own scratch values)."""


SCHEDULE_V1 = GasSchedule(
    version=1,
    base=1,
    free=frozenset({"block", "loop", "else", "end"}),
    costs={
        "call": 2,
        "call_indirect": 3,
        "integer div and rem": 4,
        "float div and sqrt": 4,
    },
    grow_page=1024,
    bulk_byte_shift=6,
    table_element_shift=3,
)

# The deterministic stack limit (schedule 2). A function's stack units are `FRAME_COST_V2` plus
# its parameters and locals, the highest its operand stack gets, and the number of values it
# computes (an engine may keep a value it computed earlier instead of computing it again, and
# spill it: frames grow with those values even when locals and the operand stack do not). A
# call takes the callee's units from a budget of `STACK_LIMIT_V2` on entry and gives them back
# on exit; a function whose units alone exceed the budget can never run and is refused.
#
# So at most 2 * STACK_LIMIT_V2 units are on the native stack at once (the frames that fit, and
# the frame whose entry check fails). Measured on both engines, the worst hostile shapes (v128
# values passed through hundreds of parameters or results, GVN-merged values, v128 locals
# live across calls) need at most 18 bytes of native stack per unit; with a margin of 2, 36
# bytes per unit gives 3.4 MiB, below wasmtime's 4 MiB `max_wasm_stack` and the wasmer host's
# 5 MiB engine thread (4 MiB plus its own Python frames). docs/executors.md has the table.
STACK_LIMIT_V2 = 50_000
FRAME_COST_V2 = 4

SCHEDULE_V2 = evolve(SCHEDULE_V1, version=2, stack_limit=STACK_LIMIT_V2, frame_cost=FRAME_COST_V2)

GAS_SCHEDULES: dict[int, GasSchedule] = {1: SCHEDULE_V1, 2: SCHEDULE_V2}
"""Every schedule this version of agentworld can meter with, by version."""


def gas_schedule(version: int) -> GasSchedule:
    """The schedule `version`, or `InvalidArtifactError` if this agentworld does not know it."""
    schedule = GAS_SCHEDULES.get(version)
    if schedule is None:
        raise refuse(f"gas schedule {version} is unknown to this version of agentworld "
                     f"(known: {', '.join(map(str, GAS_SCHEDULES))})")
    return schedule


# -- opcode classes ------------------------------------------------------------------------------

(K_PLAIN, K_LOCAL, K_I32CONST, K_MEM, K_CALL, K_END, K_BR_IF, K_GLOBAL, K_BLOCK, K_LOOP, K_IF,
 K_ELSE, K_BR, K_BR_TABLE, K_STOP, K_I64CONST, K_F32CONST, K_F64CONST, K_CANON32, K_CANON64,
 K_CALL_INDIRECT, K_SELECT_T, K_MEMSIZE, K_MEMGROW, K_REF_NULL, K_REF_FUNC, K_TABLE, K_FC, K_FD,
 K_BAD) = range(30)

_REFUSED_OPS: dict[int, str] = {}
for _op in (0x06, 0x07, 0x08, 0x09, 0x0A, 0x18, 0x19, 0x1F):
    _REFUSED_OPS[_op] = "exception handling is not supported"
for _op in (0x12, 0x13):
    _REFUSED_OPS[_op] = "tail calls are not supported"
for _op in (0x14, 0x15, 0xD3, 0xD4, 0xD5, 0xD6):
    _REFUSED_OPS[_op] = "typed function references are not supported"
_REFUSED_OPS[0xFB] = "garbage collection instructions are not supported"
_REFUSED_OPS[0xFE] = "threads (atomic instructions) are not allowed: results would depend on timing"

_KIND = [K_BAD] * 256
for _op in range(0x45, 0xC5):
    _KIND[_op] = K_PLAIN
for _op in (*range(0x8D, 0x98), 0xB6):
    _KIND[_op] = K_CANON32
for _op in (*range(0x9B, 0xA6), 0xBB):
    _KIND[_op] = K_CANON64
for _op in range(0x28, 0x3F):
    _KIND[_op] = K_MEM
for _op, _kind in {
    0x00: K_STOP, 0x01: K_PLAIN, 0x02: K_BLOCK, 0x03: K_LOOP, 0x04: K_IF, 0x05: K_ELSE,
    0x0B: K_END, 0x0C: K_BR, 0x0D: K_BR_IF, 0x0E: K_BR_TABLE, 0x0F: K_STOP, 0x10: K_CALL,
    0x11: K_CALL_INDIRECT, 0x1A: K_PLAIN, 0x1B: K_PLAIN, 0x1C: K_SELECT_T, 0x20: K_LOCAL,
    0x21: K_LOCAL, 0x22: K_LOCAL, 0x23: K_GLOBAL, 0x24: K_GLOBAL, 0x25: K_TABLE, 0x26: K_TABLE,
    0x3F: K_MEMSIZE, 0x40: K_MEMGROW, 0x41: K_I32CONST, 0x42: K_I64CONST, 0x43: K_F32CONST,
    0x44: K_F64CONST, 0xD0: K_REF_NULL, 0xD1: K_PLAIN, 0xD2: K_REF_FUNC, 0xFC: K_FC, 0xFD: K_FD,
}.items():
    _KIND[_op] = _kind

_INT_DIV = frozenset({0x6D, 0x6E, 0x6F, 0x70, 0x7F, 0x80, 0x81, 0x82})
_FLOAT_DIV = frozenset({0x91, 0x95, 0x9F, 0xA3})
_STRUCTURAL = {0x02: "block", 0x03: "loop", 0x05: "else", 0x0B: "end"}

# Fixed-width SIMD (0xFD prefix): immediates and NaN-producing float operations.
_SIMD_MEMARG = frozenset({*range(0, 12), 92, 93})
_SIMD_MEMARG_LANE = frozenset(range(84, 92))
_SIMD_LANE = frozenset(range(21, 35))
_SIMD_BYTES16 = frozenset({12, 13})
_SIMD_CANON32 = frozenset({94, 103, 104, 105, 106, 227, 228, 229, 230, 231, 232, 233})
_SIMD_CANON64 = frozenset({95, 116, 117, 122, 148, 239, 240, 241, 242, 243, 244, 245})
_SIMD_DIV = frozenset({227, 231, 239, 243})
_SIMD_UNASSIGNED = frozenset({0x9A, 0xA2, 0xA5, 0xA6, 0xAF, 0xB0, 0xB2, 0xB3, 0xB4, 0xBB, 0xC2,
                              0xC5, 0xC6, 0xCF, 0xD0, 0xD2, 0xD3, 0xD4, 0xE2, 0xEE})

# Operand-stack effects, for the stack cost of each function: the net change of the stack's
# height and the number of new values an instruction computes (`local.get` and `local.tee`
# name values that exist already). Instructions not listed here are handled by their kind.
_NET = [0] * 256
_MADE = [0] * 256
for _op in range(0x45, 0xC5):
    _MADE[_op] = 1
for _low, _high in ((0x46, 0x4F), (0x51, 0x66), (0x6A, 0x78), (0x7C, 0x8A), (0x92, 0x98),
                    (0xA0, 0xA6)):
    for _op in range(_low, _high + 1):
        _NET[_op] = -1  # binary operators and comparisons
_NET[0x1A] = -1  # drop
_NET[0x1B], _MADE[0x1B] = -2, 1  # select
_MADE[0xD1] = 1  # ref.is_null
# 0xFC: saturating truncations, memory.init, data.drop, memory.copy, memory.fill, table.init,
# elem.drop, table.copy, table.grow, table.size, table.fill.
_BULK_NET = [0] * 8 + [-3, 0, -3, -3, -3, 0, -3, -1, 1, -3]
_BULK_MADE = [1] * 8 + [0] * 7 + [1, 1, 0]
_SIMD_UNARY = frozenset({
    *range(0, 11), *range(15, 23), 24, 25, 27, 29, 31, 33, 77, 83, *range(92, 101),
    *range(103, 107), 116, 117, 122, *range(124, 130), 131, 132, *range(135, 139), 148, 160,
    161, 163, 164, *range(167, 171), 192, 193, 195, 196, *range(199, 203), 224, 225, 227, 236,
    237, 239, *range(248, 256)})
_SIMD_NET = [0 if sub in _SIMD_UNARY else -1 for sub in range(256)]
_SIMD_NET[12] = 1  # v128.const
for _sub in (11, 82, 88, 89, 90, 91):  # v128.store, bitselect, v128.storeN_lane
    _SIMD_NET[_sub] = -2
_SIMD_MADE = [0 if sub in (11, 88, 89, 90, 91) else 1 for sub in range(256)]


def _cost_tables(schedule: GasSchedule) -> tuple[list[int], list[int], list[int]]:
    """Per-opcode costs: single-byte opcodes, 0xFC sub-opcodes, 0xFD sub-opcodes."""
    named = schedule.costs
    single = [schedule.base] * 256
    for op, name in _STRUCTURAL.items():
        if name in schedule.free:
            single[op] = 0
    single[0x10] = named.get("call", schedule.base)
    single[0x11] = named.get("call_indirect", schedule.base)
    for op in _INT_DIV:
        single[op] = named.get("integer div and rem", schedule.base)
    for op in _FLOAT_DIV:
        single[op] = named.get("float div and sqrt", schedule.base)
    bulk = [schedule.base] * 18
    simd = [schedule.base] * 256
    for op in _SIMD_DIV:
        simd[op] = named.get("float div and sqrt", schedule.base)
    return single, bulk, simd


# -- snippets ------------------------------------------------------------------------------------

_NAN32 = b"\x00\x00\xc0\x7f"
_NAN64 = b"\x00\x00\x00\x00\x00\x00\xf8\x7f"


def _canon32(temp: bytes) -> bytes:
    # x -> (x == x) ? x : canonical NaN, without a branch: select picks x unless x is a NaN.
    return b"\x22" + temp + b"\x43" + _NAN32 + b"\x20" + temp + b"\x20" + temp + b"\x5b\x1b"


def _canon64(temp: bytes) -> bytes:
    return b"\x22" + temp + b"\x44" + _NAN64 + b"\x20" + temp + b"\x20" + temp + b"\x61\x1b"


def _canon_f32x4(temp: bytes) -> bytes:
    # Lane-wise: bitselect(x, NaN, x == x).
    return (b"\x22" + temp + b"\xfd\x0c" + _NAN32 * 4 + b"\x20" + temp + b"\x20" + temp
            + b"\xfd\x41\xfd\x52")


def _canon_f64x2(temp: bytes) -> bytes:
    return (b"\x22" + temp + b"\xfd\x0c" + _NAN64 * 2 + b"\x20" + temp + b"\x20" + temp
            + b"\xfd\x47\xfd\x52")


@frozen
class _Context:
    """What every body's rewrite needs: counts of the original module and the added indices."""

    types: list[FuncType]
    functions: list[int]
    function_count: int
    globals_count: int
    table_count: int
    has_memory: bool
    gas: bytes
    stack: bytes
    charge_call: bytes
    grow_call: bytes
    table_grow_calls: list[bytes]
    single: list[int]
    bulk: list[int]
    simd: list[int]
    bulk_byte_shift: int
    table_element_shift: int
    type_arity: list[tuple[int, int]]
    """(parameters, results) of each type."""
    block_types: list[bytes]
    """Each type's results as the block type of a block that takes nothing."""
    stack_limit: int | None
    frame_cost: int


def _body(
    data: bytes, start: int, end: int, function: int, ctx: _Context
) -> tuple[bytes, int, bool]:
    """One function body, metered, NaN-canonicalized and stack-limited, with its size prefix;
    its stack units; whether it drops a data or element segment (`data.drop`, `elem.drop`)."""
    type_index = ctx.functions[function]
    params, results = ctx.type_arity[type_index]
    groups, pos = read_u32(data, start, end)
    locals_start = pos
    count = params
    for _ in range(groups):
        n, pos = read_u32(data, pos, end)
        if pos >= end or data[pos] not in VALTYPE_NAMES:
            raise refuse("a function declares locals of a type that is not allowed")
        pos += 1
        count += n
        if count > MAX_LOCALS:
            raise refuse(f"a function declares more than {MAX_LOCALS} locals")
    locals_raw = data[locals_start:pos]
    local_count = count
    temps: dict[int, bytes] = {}
    order: list[int] = []

    def temp(valtype: int) -> bytes:
        index = temps.get(valtype)
        if index is None:
            index = temps[valtype] = uleb(local_count + len(order))
            order.append(valtype)
        return index

    kinds, single, bulk_costs, simd_costs = _KIND, ctx.single, ctx.bulk, ctx.simd
    net, made_by = _NET, _MADE
    gas = ctx.gas
    functions, type_arity = ctx.functions, ctx.type_arity
    n_types, n_funcs, n_globals = len(ctx.types), ctx.function_count, ctx.globals_count
    n_tables = ctx.table_count
    out: list[bytes] = [b""]
    segment = 0
    cost = 0
    copied = pos
    # The operand stack: its height, its highest height, the values computed, and one frame
    # (height below the block, its parameters, its results) per open block.
    height = top = made = 0
    frames: list[tuple[int, int, int]] = [(0, 0, results)]
    returns: list[int] = []
    drops = False
    charge_pre = charge_post = b""
    canon32 = canon64 = b""
    while True:
        if pos >= end:
            raise refuse("malformed module (a function body does not end with `end`)")
        op = data[pos]
        pos += 1
        kind = kinds[op]
        if kind == K_PLAIN:
            cost += single[op]
            height += net[op]
            made += made_by[op]
            continue
        if kind == K_LOCAL:
            index, pos = read_u32(data, pos, end)
            if index >= local_count:
                raise refuse("an instruction refers to a local that does not exist")
            cost += single[op]
            if op == 0x20:
                height += 1
                if height > top:
                    top = height
            elif op == 0x21:
                height -= 1
            continue
        if kind == K_I32CONST:
            pos = skip_sleb(data, pos, end, 5)
            cost += single[op]
            height += 1
            made += 1
            if height > top:
                top = height
            continue
        if kind == K_MEM:
            align, pos = read_u32(data, pos, end)
            if align >= 0x40:
                raise refuse("memory instructions with a memory index (multiple memories) "
                             "are not supported")
            _, pos = read_u32(data, pos, end)
            cost += single[op]
            if op < 0x36:
                made += 1
            else:
                height -= 2
            continue
        if kind == K_CALL or kind == K_REF_FUNC:
            index, pos = read_u32(data, pos, end)
            if index >= n_funcs:
                raise refuse("an instruction refers to a function that does not exist")
            cost += single[op]
            if kind == K_CALL:
                taken, given = type_arity[functions[index]]
            else:
                taken, given = 0, 1
            height += given - taken
            made += given
            if height > top:
                top = height
            continue
        if kind == K_GLOBAL:
            index, pos = read_u32(data, pos, end)
            if index >= n_globals:
                raise refuse("an instruction refers to a global that does not exist")
            cost += single[op]
            if op == 0x23:
                height += 1
                made += 1
                if height > top:
                    top = height
            else:
                height -= 1
            continue
        if kind == K_CANON32 or kind == K_CANON64:
            cost += single[op]
            height += net[op]
            made += 1
            out.append(data[copied:pos])
            if kind == K_CANON32:
                if not canon32:
                    canon32 = _canon32(temp(F32))
                out.append(canon32)
            else:
                if not canon64:
                    canon64 = _canon64(temp(F64))
                out.append(canon64)
            copied = pos
            continue
        if kind == K_I64CONST or kind == K_F32CONST or kind == K_F64CONST:
            if kind == K_I64CONST:
                pos = skip_sleb(data, pos, end, 10)
            else:
                pos += 4 if kind == K_F32CONST else 8
            cost += single[op]
            height += 1
            made += 1
            if height > top:
                top = height
            continue
        if kind == K_BLOCK or kind == K_LOOP or kind == K_IF:
            byte = data[pos] if pos < end else 0
            if byte == 0x40:
                pos += 1
                taken = given = 0
            elif byte in VALTYPE_NAMES:
                pos += 1
                taken, given = 0, 1
            else:
                index, pos = read_sleb(data, pos, end, 5)
                if not 0 <= index < n_types:
                    raise refuse("a block refers to a type that does not exist")
                taken, given = type_arity[index]
            if kind == K_IF:
                height -= 1
            frames.append((height - taken, taken, given))
            if len(frames) > MAX_NESTING + 1:
                raise refuse(f"function {function} nests blocks more than {MAX_NESTING} deep")
            cost += single[op]
            if kind == K_BLOCK:
                continue
        elif kind == K_END:
            cost += single[op]
            if len(frames) == 1:
                if pos != end:
                    raise refuse("malformed module (code after a function's final `end`)")
                break
            base, _, given = frames.pop()
            height = base + given
        elif kind == K_ELSE:
            cost += single[op]
            base, taken, _ = frames[-1]
            height = base + taken
        elif kind == K_STOP:
            cost += single[op]
            height = frames[-1][0]
            if op == 0x0F:  # return: leave the function's stack units first
                out.append(data[copied : pos - 1])
                returns.append(len(out))
                out.append(b"")
                copied = pos - 1
        elif kind == K_BR or kind == K_BR_IF:
            _, pos = read_u32(data, pos, end)
            cost += single[op]
            if kind == K_BR:
                height = frames[-1][0]
            else:
                height -= 1
        elif kind == K_BR_TABLE:
            targets, pos = read_u32(data, pos, end)
            if targets > MAX_BR_TABLE_TARGETS:
                raise refuse(f"a br_table of {targets} targets is larger than "
                             f"{MAX_BR_TABLE_TARGETS}")
            for _ in range(targets + 1):
                _, pos = read_u32(data, pos, end)
            cost += single[op]
            height = frames[-1][0]
        elif kind == K_CALL_INDIRECT:
            index, pos = read_u32(data, pos, end)
            table, pos = read_u32(data, pos, end)
            if index >= n_types or table >= n_tables:
                raise refuse("call_indirect refers to a type or table that does not exist")
            cost += single[op]
            taken, given = type_arity[index]
            height += given - taken - 1
            made += given
            if height > top:
                top = height
            continue
        elif kind == K_SELECT_T:
            n, pos = read_u32(data, pos, end)
            if n != 1 or pos >= end or data[pos] not in VALTYPE_NAMES:
                raise refuse("a typed select must name exactly one allowed value type")
            pos += 1
            cost += single[op]
            height -= 2
            made += 1
            continue
        elif kind == K_MEMSIZE or kind == K_MEMGROW:
            if pos >= end or data[pos] != 0x00:
                raise refuse("memory.size and memory.grow must use memory 0")
            if not ctx.has_memory:
                raise refuse("an instruction uses a memory the module does not have")
            cost += single[op]
            made += 1
            if kind == K_MEMGROW:
                out.append(data[copied : pos - 1])
                out.append(ctx.grow_call)
                copied = pos + 1
            else:
                height += 1
                if height > top:
                    top = height
            pos += 1
            continue
        elif kind == K_REF_NULL:
            if pos >= end or data[pos] not in (FUNCREF, EXTERNREF):
                raise refuse("ref.null must name funcref or externref")
            pos += 1
            cost += single[op]
            height += 1
            made += 1
            if height > top:
                top = height
            continue
        elif kind == K_TABLE:
            table, pos = read_u32(data, pos, end)
            if table >= n_tables:
                raise refuse("an instruction refers to a table that does not exist")
            cost += single[op]
            if op == 0x25:
                made += 1
            else:
                height -= 2
            continue
        elif kind == K_FC:
            op_start = pos - 1
            sub, pos = read_u32(data, pos, end)
            if sub > 17:
                raise refuse(f"instruction 0xfc {sub} is not supported")
            cost += bulk_costs[sub]
            height += _BULK_NET[sub]
            made += _BULK_MADE[sub]
            if height > top:
                top = height
            if sub <= 7:  # saturating float-to-int conversions
                continue
            if sub == 9 or sub == 13:
                drops = True
            if sub in (8, 9, 12, 13):  # a data or element segment index
                _, pos = read_u32(data, pos, end)
            if sub in (8, 10, 11):  # memory 0 (twice for memory.copy)
                zeros = 2 if sub == 10 else 1
                if data[pos : pos + zeros] != bytes(zeros) or not ctx.has_memory:
                    raise refuse("bulk memory instructions must use memory 0")
                pos += zeros
            table = 0
            for _ in range({12: 1, 14: 2, 15: 1, 16: 1, 17: 1}.get(sub, 0)):
                table, pos = read_u32(data, pos, end)
                if table >= n_tables:
                    raise refuse("a table instruction refers to a table that does not exist")
            if sub in (8, 10, 11, 12, 14, 17):
                # The length is on top of the stack: charge for it before the instruction.
                shift = ctx.bulk_byte_shift if sub in (8, 10, 11) else ctx.table_element_shift
                scratch = temp(I32)
                out.append(data[copied:op_start])
                out.append(b"\x22" + scratch + b"\xad\x42" + sleb(shift) + b"\x88"
                           + ctx.charge_call + b"\x20" + scratch)
                copied = op_start
            elif sub == 15:
                out.append(data[copied:op_start])
                out.append(ctx.table_grow_calls[table])
                copied = pos
            continue
        elif kind == K_FD:
            sub, pos = read_u32(data, pos, end)
            if sub in _SIMD_MEMARG or sub in _SIMD_MEMARG_LANE:
                align, pos = read_u32(data, pos, end)
                if align >= 0x40:
                    raise refuse("memory instructions with a memory index (multiple "
                                 "memories) are not supported")
                _, pos = read_u32(data, pos, end)
                if sub in _SIMD_MEMARG_LANE:
                    pos += 1
            elif sub in _SIMD_BYTES16:
                pos += 16
            elif sub in _SIMD_LANE:
                pos += 1
            elif sub > 255:
                if sub <= 0x113:
                    raise refuse("relaxed SIMD is not allowed: its results depend on the CPU")
                raise refuse(f"SIMD instruction {sub} is not supported")
            elif sub in _SIMD_UNASSIGNED:
                raise refuse(f"SIMD instruction {sub} does not exist")
            cost += simd_costs[sub]
            height += _SIMD_NET[sub]
            made += _SIMD_MADE[sub]
            if height > top:
                top = height
            if sub in _SIMD_CANON32:
                out.append(data[copied:pos])
                out.append(_canon_f32x4(temp(V128)))
                copied = pos
            elif sub in _SIMD_CANON64:
                out.append(data[copied:pos])
                out.append(_canon_f64x2(temp(V128)))
                copied = pos
            continue
        else:
            reason = _REFUSED_OPS.get(op)
            raise refuse(reason or f"opcode 0x{op:02x} is not supported")
        # A control instruction ended the segment: charge it, and start the next one after it.
        out.append(data[copied:pos])
        copied = pos
        if cost:
            if not charge_pre:
                scratch = temp(I64)
                charge_pre = b"\x23" + gas + b"\x42"
                charge_post = (b"\x7d\x22" + scratch + b"\x24" + gas + b"\x20" + scratch
                               + b"\x42\x00\x53\x04\x40\x00\x0b")
            out[segment] = charge_pre + _sleb_cost(cost) + charge_post
            cost = 0
        segment = len(out)
        out.append(b"")
    out.append(data[copied:pos])
    if cost:
        if not charge_pre:
            scratch = temp(I64)
            charge_pre = b"\x23" + gas + b"\x42"
            charge_post = (b"\x7d\x22" + scratch + b"\x24" + gas + b"\x20" + scratch
                           + b"\x42\x00\x53\x04\x40\x00\x0b")
        out[segment] = charge_pre + _sleb_cost(cost) + charge_post
    if order:
        locals_vec = (uleb(groups + len(order)) + locals_raw
                      + b"".join(b"\x01" + bytes([valtype]) for valtype in order))
    else:
        locals_vec = data[start:locals_start] + locals_raw
    units = ctx.frame_cost + local_count + top + made
    limit = ctx.stack_limit
    if limit is None:
        body = locals_vec + b"".join(out)
        return _sized(body, function), units, drops
    if units > limit:
        raise refuse(f"function {function} needs {units} units of stack, more than the gas "
                     f"schedule's limit of {limit}")
    # Entry takes the function's units from the stack budget (trapping when it would go below
    # zero); every exit gives them back. The body runs inside a block, so that branches to the
    # function's own label leave through the same exit as falling off its end.
    stack, amount = ctx.stack, _sleb_cost(units)
    leave = b"\x23" + stack + b"\x41" + amount + b"\x6a\x24" + stack
    for index in returns:
        out[index] = leave
    enter = (b"\x23" + stack + b"\x41" + amount + b"\x6b\x24" + stack
             + b"\x23" + stack + b"\x41\x00\x48\x04\x40\x00\x0b")
    body = (locals_vec + enter + b"\x02" + ctx.block_types[type_index] + b"".join(out) + leave
            + b"\x0b")
    return _sized(body, function), units, drops


def _sized(body: bytes, function: int) -> bytes:
    """A metered body with its size prefix; refused when metering made it too large for
    every engine to accept."""
    if len(body) > MAX_BODY_BYTES:
        raise refuse(f"function {function} is {len(body)} bytes once metered, more than "
                     f"{MAX_BODY_BYTES}")
    return uleb(len(body)) + body


_SLEB_CACHE: dict[int, bytes] = {}


def _sleb_cost(cost: int) -> bytes:
    encoded = _SLEB_CACHE.get(cost)
    if encoded is None:
        encoded = _SLEB_CACHE[cost] = sleb(cost)
    return encoded


# -- the whole module ----------------------------------------------------------------------------


@frozen
class Instrumented:
    """An instrumented module and what the core needs to call it (JSON-able `info`)."""

    wasm: bytes
    info: dict[str, Any]
    stack_units: tuple[int, ...] = ()
    """The stack units of each of the module's own functions (see `STACK_LIMIT_V2`)."""


def _func(locals_: list[tuple[int, int]], code: bytes) -> bytes:
    body = uleb(len(locals_)) + b"".join(uleb(n) + bytes([t]) for n, t in locals_) + code
    return uleb(len(body)) + body


def _export(name: str, kind: int, index: int) -> bytes:
    raw = name.encode("utf-8")
    return uleb(len(raw)) + raw + bytes([kind]) + uleb(index)


def _i32(value: int) -> bytes:
    """`i32.const value`, for a value read as unsigned 32 bits."""
    return b"\x41" + sleb(value - (1 << 32) if value >= 1 << 31 else value)


_NOT_RESET = b"\x41\x00\x0f\x0b"  # i32.const 0, return, end (of an `if`)


def _reset_code(module: Module, drops: bool, added_globals: list[bytes]) -> bytes:
    """The body of `$reset() -> i32`: 1 once the instance is as instantiation left it, 0 when
    it cannot be (a memory or table grew, or the guest can drop a segment, which nothing can
    restore). The meter's own globals are in `added_globals` (type, mutability, initializer).

    Memory is zeroed and the active data segments copied in again from passive copies of them
    appended to the module (the originals were dropped by instantiation, as the guest sees
    them); tables are emptied and their active element segments copied in the same way; every
    mutable global gets its initializer again, and the start function runs again when the
    instance is next armed.
    """
    memory, tables = module.memory, module.tables
    if drops or (memory is not None and memory.minimum * PAGE_BYTES >= 1 << 32):
        return b"\x41\x00\x0b"
    code = b""
    if memory is not None:
        code += b"\x3f\x00" + _i32(memory.minimum) + b"\x47\x04\x40" + _NOT_RESET
    for index, (_, limits) in enumerate(tables):
        code += b"\xfc\x10" + uleb(index) + _i32(limits.minimum) + b"\x47\x04\x40" + _NOT_RESET
    if memory is not None and memory.minimum:
        code += _i32(0) + _i32(0) + _i32(memory.minimum * PAGE_BYTES) + b"\xfc\x0b\x00"
    for index, segment in enumerate(module.active_data):
        code += (segment.offset + _i32(0) + _i32(segment.size) + b"\xfc\x08"
                 + uleb(module.data_count + index) + b"\x00")
    for index, (reftype, limits) in enumerate(tables):
        if limits.minimum:
            code += (_i32(0) + b"\xd0" + bytes([reftype]) + _i32(limits.minimum) + b"\xfc\x11"
                     + uleb(index))
    for index, segment in enumerate(module.active_elements):
        code += (segment.offset + _i32(0) + _i32(segment.size) + b"\xfc\x0c"
                 + uleb(module.element_count + index) + uleb(segment.target))
    globals_ = [(g.mutable, g.init) for g in module.globals]
    globals_ += [(encoded[1] == 1, encoded[2:]) for encoded in added_globals]
    for index, (mutable, init) in enumerate(globals_):
        if mutable:
            code += init + b"\x24" + uleb(index)
    return code + b"\x41\x01\x0b"


def _alloc_export(module: Module) -> Export | None:
    """The guest's `alloc` export if it is a function `(i32) -> i32`, which arming calls."""
    for export in module.exports:
        if export.name == "alloc":
            if (export.kind == EXTERN_FUNC
                    and module.types[module.functions[export.index]] == FuncType((I32,), (I32,))):
                return export
            return None
    return None


def _entry_exports(module: Module) -> list[tuple[Export, str]]:
    """The exported functions of an entrypoint shape, each with its shape (a ret-area one only
    with an exported memory to return through): each gets an entry wrapper."""
    has_memory_export = any(e.kind == EXTERN_MEMORY for e in module.exports)
    entries = []
    for export in module.exports:
        if export.kind != EXTERN_FUNC:
            continue
        shape = SHAPES.get(module.types[module.functions[export.index]])
        if shape is not None and (shape != RET_AREA or has_memory_export):
            entries.append((export, shape))
    return entries


def _check_instance_size(module: Module, added_functions: int, added_globals: int) -> None:
    """Refuse a module whose instances, once instrumented, would be too large for some engine.

    `added_functions` and `added_globals` are what instrumentation adds; every function it adds
    is exported, so it escapes. See `MAX_INSTANCE_BYTES`.
    """
    functions = module.escaped.count(1) + added_functions
    globals_count = module.globals_count + added_globals
    estimate = (functions * INSTANCE_BYTES_PER_ESCAPED_FUNCTION
                + globals_count * INSTANCE_BYTES_PER_GLOBAL)
    if estimate > MAX_INSTANCE_BYTES:
        raise refuse(
            f"an instance of the module needs an estimated {estimate} bytes, more than "
            f"{MAX_INSTANCE_BYTES} ({INSTANCE_BYTES_PER_ESCAPED_FUNCTION} for each of its "
            f"{functions} functions that are exported, in an element segment or referenced "
            f"by ref.func, {added_functions} of them added by instrumentation; "
            f"{INSTANCE_BYTES_PER_GLOBAL} for each of its {globals_count} globals, "
            f"{added_globals} of them added)")


def instrument(wasm: bytes, schedule_version: int) -> Instrumented:
    """Parse, check and rewrite `wasm` for metering under schedule `schedule_version`.

    Raises `InvalidArtifactError` with the reason when the module is not one the ABI accepts.
    """
    schedule = gas_schedule(schedule_version)
    module = parse_module(wasm)
    for export in module.exports:
        if export.name.startswith(RESERVED_PREFIX):
            raise refuse(f"export name {export.name!r} uses the reserved prefix "
                         f"{RESERVED_PREFIX!r}")
    n_types, n_funcs, n_globals = len(module.types), len(module.functions), module.globals_count
    tables = module.tables
    alloc = _alloc_export(module)
    entry_exports = _entry_exports(module)
    new_globals = [b"\x7e\x01\x42\x00\x0b", b"\x7e\x01\x42\x00\x0b", b"\x7f\x01\x41\x00\x0b",
                   b"\x7f\x01\x41\x00\x0b", b"\x7f\x01\x41\x00\x0b"]
    # The exported functions instrumentation adds: the arming export, the entry wrappers, reset.
    _check_instance_size(module, (alloc is not None) + len(entry_exports) + 1, len(new_globals))
    g_gas, g_limit, g_refused, g_started = (uleb(n_globals + k) for k in range(4))
    t_charge, t_grow, t_alloc, t_entry = n_types, n_types + 1, n_types + 2, n_types + 3
    t_tgrow = {FUNCREF: n_types + 4, EXTERNREF: n_types + 5}
    new_types = [
        func_type_bytes([I64], []),
        func_type_bytes([I32], [I32]),
        func_type_bytes([I64, I64, I32], [I32]),
        func_type_bytes([I32, I64, I64, I32], [I32, I32, I64]),
        func_type_bytes([FUNCREF, I32], [I32]),
        func_type_bytes([EXTERNREF, I32], [I32]),
    ]
    f_charge, f_grow = n_funcs, n_funcs + 1
    f_tgrow = [n_funcs + 2 + index for index in range(len(tables))]
    next_func = n_funcs + 2 + len(tables)
    g_stack = uleb(n_globals + 4)
    single, bulk, simd = _cost_tables(schedule)
    type_arity = [(len(t.params), len(t.results)) for t in module.types]
    block_types: list[bytes] = []
    if schedule.stack_limit is not None:
        # A block that takes nothing and gives a function's results wraps each body; several
        # results need a type of their own.
        result_types: dict[tuple[int, ...], int] = {}
        for index, func_type in enumerate(module.types):
            if len(func_type.results) < 2:
                block_types.append(bytes(func_type.results) or b"\x40")
                continue
            if func_type.params:
                if func_type.results not in result_types:
                    result_types[func_type.results] = n_types + len(new_types)
                    new_types.append(func_type_bytes([], list(func_type.results)))
                index = result_types[func_type.results]
            block_types.append(sleb(index))
    ctx = _Context(
        types=module.types, functions=module.functions, function_count=n_funcs,
        globals_count=n_globals, table_count=len(tables), has_memory=module.memory is not None,
        gas=g_gas, stack=g_stack, charge_call=b"\x10" + uleb(f_charge),
        grow_call=b"\x10" + uleb(f_grow),
        table_grow_calls=[b"\x10" + uleb(index) for index in f_tgrow], single=single,
        bulk=bulk, simd=simd, bulk_byte_shift=schedule.bulk_byte_shift,
        table_element_shift=schedule.table_element_shift, type_arity=type_arity,
        block_types=block_types, stack_limit=schedule.stack_limit,
        frame_cost=schedule.frame_cost,
    )
    data = module.data
    rewritten = [_body(data, start, end, index, ctx)
                 for index, (start, end) in enumerate(module.bodies)]
    bodies = [body for body, _, _ in rewritten]
    new_functions = [t_charge, t_grow]
    # $charge(amount: i64): the gas meter for amounts known only at run time.
    bodies.append(_func([(1, I64)], b"\x23" + g_gas + b"\x20\x00\x7d\x22\x01\x24" + g_gas
                        + b"\x20\x01\x42\x00\x53\x04\x40\x00\x0b\x0b"))
    memory_bytes = b"\x3f\x00\xad\x42\x10\x86" if module.memory is not None else b"\x42\x00"

    def table_bytes(growing: int | None) -> bytes:
        code = b""
        for index in range(len(tables)):
            code += b"\xfc\x10" + uleb(index) + b"\xad"
            if index == growing:
                code += b"\x20\x01\xad\x7c"
            code += b"\x42\x03\x86\x7c"
        return code

    over_limit = b"\x23" + g_limit + b"\x56"
    refused = b"\x41\x01\x24" + g_refused
    flag_if_refused = b"\x20\x02\x41\x7f\x46\x04\x40" + refused + b"\x0b\x20\x02"
    if module.memory is not None:
        # $grow(delta: i32) -> i32: charge per page; refuse growth past the call's limit.
        grow_code = (
            b"\x20\x00\xad\x42" + sleb(schedule.grow_page) + b"\x7e" + ctx.charge_call
            + b"\x3f\x00\xad\x20\x00\xad\x7c\x42\x10\x86" + table_bytes(None) + over_limit
            + b"\x04\x7f" + refused + b"\x41\x7f\x05"
            + b"\x20\x00\x40\x00\x21\x01\x20\x01\x41\x7f\x46\x04\x40" + refused + b"\x0b\x20\x01"
            + b"\x0b\x0b"
        )
        bodies.append(_func([(1, I32)], grow_code))
    else:
        bodies.append(_func([], b"\x00\x0b"))
    for index, (reftype, _limits) in enumerate(tables):
        new_functions.append(t_tgrow[reftype])
        # $table_grow_N(init, delta: i32) -> i32, likewise, per element.
        code = (
            b"\x20\x01\xad\x42" + sleb(schedule.table_element_shift) + b"\x88"
            + ctx.charge_call + memory_bytes + table_bytes(index) + over_limit
            + b"\x04\x7f" + refused + b"\x41\x7f\x05"
            + b"\x20\x00\x20\x01\xfc\x0f" + uleb(index) + b"\x21\x02" + flag_if_refused
            + b"\x0b\x0b"
        )
        bodies.append(_func([(1, I32)], code))
    new_exports = [_export(GAS_EXPORT, EXTERN_GLOBAL, n_globals),
                   _export(REFUSED_EXPORT, EXTERN_GLOBAL, n_globals + 2),
                   _export(STACK_EXPORT, EXTERN_GLOBAL, n_globals + 4)]
    export_position = len(module.exports)
    info: dict[str, Any] = {
        "format": INSTRUMENTATION_FORMAT,
        "schedule": schedule.version,
        "exports": [[e.name, e.kind, e.index] for e in module.exports],
        "func_types": {e.name: module.types[module.functions[e.index]].describe()
                       for e in module.exports if e.kind == EXTERN_FUNC},
        "memory_min_pages": None if module.memory is None else module.memory.minimum,
        "initial_bytes": (0 if module.memory is None else module.memory.minimum * PAGE_BYTES)
        + sum(limits.minimum for _, limits in tables) * TABLE_ELEMENT_BYTES,
        "gas": [GAS_EXPORT, export_position],
        "refused": [REFUSED_EXPORT, export_position + 1],
        "stack": [STACK_EXPORT, export_position + 2],
        "alloc": None,
        "entries": {},
    }
    export_position += 3
    arm_branch = b"\x20\x00\x45\x04\x40\x00\x0b"  # no alloc to arm with: op 0 traps
    if alloc is not None:
        start = b""
        if module.start is not None:
            start = (b"\x23" + g_started + b"\x45\x04\x40\x41\x01\x24" + g_started + b"\x10"
                     + uleb(module.start) + b"\x0b")
        budget = b"" if schedule.stack_limit is None else (
            b"\x41" + sleb(schedule.stack_limit) + b"\x24" + g_stack)
        code = (b"\x20\x00\x24" + g_gas + b"\x20\x01\x24" + g_limit
                + b"\x41\x00\x24" + g_refused + budget + start + b"\x20\x02\x10"
                + uleb(alloc.index) + b"\x0b")
        bodies.append(_func([], code))
        new_functions.append(t_alloc)
        new_exports.append(_export(ALLOC_EXPORT, EXTERN_FUNC, next_func))
        info["alloc"] = [ALLOC_EXPORT, export_position]
        # op 0: arm, allocate, return (pointer, 0, gas left).
        arm_branch = (b"\x20\x00\x45\x04\x40\x20\x01\x20\x02\x20\x03\x10" + uleb(next_func)
                      + b"\x41\x00\x23" + g_gas + b"\x0f\x0b")
        next_func += 1
        export_position += 1
    for export, shape in entry_exports:
        # op 1: the entrypoint on (pointer = a, length = size); local 4 is the pointer.
        call = b"\x10" + uleb(export.index)
        code = arm_branch + b"\x20\x01\xa7\x21\x04"
        if shape == MULTI:
            code += b"\x20\x04\x20\x03" + call
            locals_ = [(1, I32)]
        elif shape == PACKED:
            code += b"\x20\x04\x20\x03" + call + b"\x22\x05\xa7\x20\x05\x42\x20\x88\xa7"
            locals_ = [(1, I32), (1, I64)]
        else:
            code += (b"\x20\x03\x41\x03\x6a\x41\x7c\x71\x20\x04\x6a\x22\x05\x20\x04\x20\x03"
                     + call + b"\x20\x05\x28\x02\x00\x20\x05\x28\x02\x04")
            locals_ = [(2, I32)]
        bodies.append(_func(locals_, code + b"\x23" + g_gas + b"\x0b"))
        new_functions.append(t_entry)
        name = ENTRY_PREFIX + export.name
        new_exports.append(_export(name, EXTERN_FUNC, next_func))
        info["entries"][export.name] = [name, export_position, shape]
        next_func += 1
        export_position += 1
    new_functions.append(n_types + len(new_types))
    new_types.append(func_type_bytes([], [I32]))
    drops = any(dropping for _, _, dropping in rewritten)
    bodies.append(_func([], _reset_code(module, drops, [g[:-1] for g in new_globals])))
    new_exports.append(_export(RESET_EXPORT, EXTERN_FUNC, next_func))
    info["reset"] = [RESET_EXPORT, export_position]
    encoded = encode_module(
        module, types=new_types, functions=new_functions, globals_=new_globals,
        exports=new_exports, bodies=bodies,
        elements=[segment.passive for segment in module.active_elements],
        data=[segment.passive for segment in module.active_data])
    return Instrumented(encoded, info, tuple(units for _, units, _ in rewritten))
