"""Structural limits: what one engine accepts, every engine accepts, and the rest is refused at
deploy by agentworld, in the same words on every engine.

The modules are real binaries built here, checked by the real engines: wasmtime in-process and
wasmer 1.1 in its host process (when `AGENTWORLD_WASMER_PYTHON` or the provisioned interpreter
is there; see tests/test_wasmer_executor.py). Past each bound one engine used to refuse, panic
or stall where the other accepted, so the same deploy gave different journals.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Iterator

import pytest
from test_wasmer_executor import PROBLEM, PYTHON, needs_host

from agentworld import World
from agentworld.backends import wasmer_host as wire
from agentworld.backends.wasmer_executor import (
    HOST_SCRIPT,
    WasmerBackend,
    WasmerEngine,
    WasmerExecutor,
)
from agentworld.canonical import sha256_hex
from agentworld.engine import EngineCompileError
from agentworld.engine_executor import EngineExecutor
from agentworld.executor import CallRequest, Executor, ExecutorConfig, InvalidArtifactError
from agentworld.manager import PluginManager
from agentworld.testing.guests import guest_wasm
from agentworld.wasm_module import (
    F32,
    I32,
    I64,
    MAGIC,
    MAX_BODY_BYTES,
    MAX_BR_TABLE_TARGETS,
    MAX_DATA_SEGMENTS,
    MAX_ELEMENT_SEGMENTS,
    MAX_EXPORT_WEIGHT,
    MAX_EXPORTS,
    MAX_FUNCTIONS,
    MAX_GLOBALS,
    MAX_INSTANCE_BYTES,
    MAX_LOCALS,
    MAX_NESTING,
    MAX_TABLE_ELEMENTS,
    MAX_TABLES,
    MAX_TYPE_VALUES,
    MAX_TYPES,
    V128,
    func_type_bytes,
    section,
    uleb,
    vector,
)
from golden_scenarios import journal_lines
from worldkit import events, world_with_agents

ENGINES = ["wasmtime", pytest.param("wasmer", marks=needs_host)]


@pytest.fixture(scope="module")
def executors() -> Iterator[dict[str, Executor]]:
    made: dict[str, Executor] = {
        "wasmtime": PluginManager(entrypoints=False).create_executor("wasmtime")}
    if PROBLEM is None:
        made["wasmer"] = WasmerExecutor(ExecutorConfig(options={"python": PYTHON}))
    yield made
    for executor in made.values():
        executor.close()


# -- building modules ---------------------------------------------------------------------------

CONST = {I32: b"\x41\x00", I64: b"\x42\x00", F32: b"\x43" + bytes(4), V128: b"\xfd\x0c" + bytes(16)}
EMPTY = func_type_bytes([], [])


def _body(code: bytes, locals_: bytes = b"\x00") -> bytes:
    body = locals_ + code + b"\x0b"
    return uleb(len(body)) + body


def _module(
    types: list[bytes],
    functions: list[int],
    bodies: list[bytes],
    *,
    tables: list[bytes] | None = None,
    memory: bool = False,
    globals_: list[bytes] | None = None,
    exports: list[bytes] | None = None,
    elements: list[bytes] | None = None,
    data: list[bytes] | None = None,
) -> bytes:
    out = [MAGIC, section(1, vector(types)), section(3, vector([uleb(t) for t in functions]))]
    if tables is not None:
        out.append(section(4, vector(tables)))
    if memory:
        out.append(section(5, vector([b"\x00\x01"])))
    if globals_ is not None:
        out.append(section(6, vector(globals_)))
    if exports is not None:
        out.append(section(7, vector(exports)))
    if elements is not None:
        out.append(section(9, vector(elements)))
    out.append(section(10, vector(bodies)))
    if data is not None:
        out.append(section(11, vector(data)))
    return b"".join(out)


def _export(name: str, kind: int, index: int) -> bytes:
    return uleb(len(name)) + name.encode() + bytes([kind]) + uleb(index)


def _typed(params: list[int], results: list[int]) -> bytes:
    """A function of that type, returning zeros, called by a function that drops its results."""
    call = b"".join(CONST[t] for t in params) + b"\x10\x00" + b"\x1a" * len(results)
    return _module([func_type_bytes(params, results), EMPTY], [0, 1],
                   [_body(b"".join(CONST[t] for t in results)), _body(call)])


def _br_table(targets: int) -> bytes:
    code = b"\x02\x40\x41\x00\x0e" + uleb(targets) + bytes(targets + 1) + b"\x0b"
    return _module([EMPTY], [0], [_body(code)])


def _nested(depth: int) -> bytes:
    return _module([EMPTY], [0], [_body(b"\x02\x40" * depth + b"\x0b" * depth)])


def _table(minimum: int, count: int = 1) -> bytes:
    return _module([], [], [], tables=[b"\x70\x00" + uleb(minimum)] * count)


def _locals(count: int) -> bytes:
    return _module([EMPTY], [0], [_body(b"", b"\x01" + uleb(count) + bytes([I64]))])


def _active_data(count: int) -> bytes:
    segment = b"\x00\x41\x00\x0b\x01x"
    return _module([], [], [], memory=True, data=[segment] * count)


def _active_elements(count: int) -> bytes:
    segment = b"\x00\x41\x00\x0b\x01\x00"
    return _module([EMPTY], [0], [_body(b"")], tables=[b"\x70\x00\x01"], elements=[segment] * count)


def _passive_data(count: int) -> bytes:
    return _module([], [], [], data=[b"\x01\x00"] * count)


def _passive_elements(count: int) -> bytes:
    return _module([], [], [], elements=[b"\x01\x00\x00"] * count)


def _ret_area_exports(count: int) -> bytes:
    """`count` exports of a `(i32,i32,i32)->()` function (each weighs 4) and the memory (2):
    the shape whose exports instrumentation adds the most to (an entry weighing 8 each)."""
    exports = [_export("memory", 2, 0)] + [_export(f"e{k}", 0, 0) for k in range(count)]
    return _module([func_type_bytes([I32] * 3, [])], [0], [_body(b"")], memory=True,
                   exports=exports)


def _heavy_exports(weight: int) -> bytes:
    """Exports of one function of `MAX_TYPE_VALUES - 1` parameters, weighing just over
    `weight`."""
    count = weight // MAX_TYPE_VALUES + 1
    exports = [_export(f"e{k}", 0, 0) for k in range(count)]
    return _module([func_type_bytes([I32] * (MAX_TYPE_VALUES - 1), [])], [0], [_body(b"")],
                   exports=exports)


def _passive_exports(count: int) -> bytes:
    return _module([], [], [], globals_=[b"\x7f\x00\x41\x00\x0b"],
                   exports=[_export(f"g{k}", 3, 0) for k in range(count)])


def _metered_body(traps: int) -> bytes:
    """One function of `traps` `unreachable`s: one byte each, 19 once metered (each ends a
    metered segment, which charges its gas)."""
    return _module([EMPTY], [0], [_body(b"\x00" * traps)])


def _functions(count: int) -> bytes:
    return _module([EMPTY], [0] * count, [_body(b"")] * count)


def _types(count: int) -> bytes:
    return _module([EMPTY] * count, [], [])


def _globals(count: int) -> bytes:
    return _module([], [], [], globals_=[b"\x7f\x00\x41\x00\x0b"] * count)


GLOBAL = b"\x7f\x00\x41\x00\x0b"
ECHO_TYPES = [EMPTY, func_type_bytes([I32], [I32]), func_type_bytes([I32, I32], [I32, I32])]
ECHO_BODIES = [_body(b"\x41\x10"), _body(b"\x20\x00\x20\x01")]
ECHO_EXPORTS = [_export("memory", 2, 0), _export("alloc", 0, 0), _export("call", 0, 1)]
# The functions that escape besides the listed ones (alloc and call, and what instrumentation
# adds: the arming export, call's entry wrapper and reset), and the globals instrumentation adds.
ECHO_ESCAPING, ADDED_GLOBALS = 5, 5


def _escaping(count: int, globals_: int = 1) -> bytes:
    """A callable echo module whose `count` other functions escape, each listed twice (in a
    passive and in a declarative element segment, counted once), with `globals_` globals."""
    listed = vector([uleb(2 + k) for k in range(count)])
    return _module(ECHO_TYPES, [1, 2] + [0] * count, ECHO_BODIES + [_body(b"")] * count,
                   memory=True, globals_=[GLOBAL] * globals_, exports=ECHO_EXPORTS,
                   elements=[b"\x01\x00" + listed, b"\x03\x00" + listed])


def _escaping_at_bound(globals_: int) -> int:
    """How many listed functions `_escaping` may have with `globals_` globals (an even number
    of globals in all puts the module exactly at the bound)."""
    room = MAX_INSTANCE_BYTES - 32 * (globals_ + ADDED_GLOBALS)
    return room // 64 - ECHO_ESCAPING


def _escaping_by_expressions(count: int) -> bytes:
    """`count` functions referenced by `ref.func` in an element segment of expressions."""
    items = vector([b"\xd2" + uleb(k) + b"\x0b" for k in range(count)])
    return _module([EMPTY], [0] * count, [_body(b"")] * count, elements=[b"\x05\x70" + items])


def _escaping_by_exports(count: int, globals_: int) -> bytes:
    """`count` exported functions of an entrypoint shape (instrumentation wraps each in an
    exported entry function: two escape each) and `globals_` globals."""
    packed = func_type_bytes([I32, I32], [I64])
    return _module([packed], [0] * count, [_body(b"\x42\x00")] * count,
                   globals_=[GLOBAL] * globals_,
                   exports=[_export(f"e{k}", 0, k) for k in range(count)])


def _escaping_by_globals(count: int, listed: int) -> bytes:
    """`count` funcref globals, each initialized with `ref.func` of its own function, and
    `listed` more functions in an element segment."""
    functions = count + listed
    return _module([EMPTY], [0] * functions, [_body(b"")] * functions,
                   globals_=[b"\x70\x00\xd2" + uleb(k) + b"\x0b" for k in range(count)],
                   elements=[b"\x01\x00" + vector([uleb(count + k) for k in range(listed)])])


# -- past every bound: refused by agentworld, the same words on every engine ------------------

OVER: dict[str, tuple[Callable[[], bytes], str]] = {
    # wasmer 1.1 panicked (its host died) compiling these; wasmtime accepted them.
    "600 i32 parameters": (lambda: _typed([I32] * 600, []),
                           "600 parameters in a type, more than 256"),
    "600 i32 results": (lambda: _typed([], [I32] * 600), "600 results in a type, more than 256"),
    "300 v128 parameters": (lambda: _typed([V128] * 300, []),
                            "300 parameters in a type, more than 256"),
    "200 + 100 v128 values": (lambda: _typed([V128] * 200, [V128] * 100),
                              "200 parameters and 100 results, more than 256 together"),
    # wasmer refused more than 10 000 000 elements, wasmtime on demand accepted any size (and
    # wasmtime's pooling allocator more than 20 000).
    "a table of 20 000 000 elements": (lambda: _table(20_000_000), "larger than 10000"),
    "a table just over the bound": (lambda: _table(MAX_TABLE_ELEMENTS + 1),
                                    "larger than 10000"),
    # wasmtime refused more than 65 520 targets, wasmer accepted them.
    "br_table of 65 521 targets": (lambda: _br_table(65_521), "br_table of 65521 targets"),
    "br_table just over the bound": (lambda: _br_table(MAX_BR_TABLE_TARGETS + 1),
                                     "br_table of 32769 targets"),
    # wasmer refused the instrumented module (its exported signatures weigh over 100 000),
    # wasmtime accepted it.
    "exported signatures": (lambda: _heavy_exports(MAX_EXPORT_WEIGHT),
                            "exports weigh 30208"),
    "ret-area exports": (lambda: _ret_area_exports((MAX_EXPORT_WEIGHT - 2) // 4 + 1),
                         "exports weigh 30002"),
    "too many exports": (lambda: _passive_exports(MAX_EXPORTS + 1), "10001 exports"),
    # Metered, this body is over wasmtime's 7 654 321 bytes: wasmtime refused, wasmer accepted.
    "a body that metering makes too large": (lambda: _metered_body(450_000),
                                             "bytes once metered, more than 4000000"),
    "nesting": (lambda: _nested(MAX_NESTING + 1), "nests blocks more than 4096 deep"),
    "locals": (lambda: _locals(MAX_LOCALS + 1), "more than 40000 locals"),
    # wasmer accepted 100 tables, wasmtime's pooling allocator one.
    "tables": (lambda: _table(1, MAX_TABLES + 1), "2 tables, more than 1"),
    "data segments": (lambda: _passive_data(MAX_DATA_SEGMENTS + 1), "10001 data segments"),
    "element segments": (lambda: _passive_elements(MAX_ELEMENT_SEGMENTS + 1),
                         "10001 element segments"),
    "functions": (lambda: _functions(MAX_FUNCTIONS + 1), "200001 functions"),
    "types": (lambda: _types(MAX_TYPES + 1), "100001 types"),
    # wasmer accepted 1 000 000 globals, wasmtime's pooling allocator 65 518.
    "globals": (lambda: _globals(65_519), "65519 globals"),
    "globals just over the bound": (lambda: _globals(MAX_GLOBALS + 1), "10001 globals"),
    # wasmtime's pooling allocator refused instances over 1 MiB: 32 bytes for each function
    # that escapes, 16 for each global (plus about 1.3 KB). 40 000 escaping functions were
    # refused by wasmtime at deploy and deployed and ran on wasmer.
    "40 000 escaping functions": (lambda: _escaping(40_000),
                                  "needs an estimated 2560512 bytes, more than 1048576"),
    "escaping functions just over the bound": (
        lambda: _escaping(_escaping_at_bound(1) + 1),
        "needs an estimated 1048640 bytes, more than 1048576 (64 for each of its 16382 "
        "functions that are exported, in an element segment or referenced by ref.func, 3 of "
        "them added by instrumentation; 32 for each of its 6 globals, 5 of them added)"),
    "the most globals and escaping functions just over the bound": (
        lambda: _escaping(_escaping_at_bound(MAX_GLOBALS - 1) + 1, MAX_GLOBALS - 1),
        "needs an estimated 1048640 bytes"),
    "functions referenced by ref.func in element expressions": (
        lambda: _escaping_by_expressions(16_382), "16383 functions"),
    "entrypoint exports and their entry wrappers": (
        lambda: _escaping_by_exports(5_700, MAX_GLOBALS), "11401 functions"),
    "functions referenced by ref.func in globals": (
        lambda: _escaping_by_globals(MAX_GLOBALS, 1_400), "11401 functions"),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", sorted(OVER))
def test_past_a_bound_the_deploy_is_refused_in_agentworlds_words(
    executors: dict[str, Executor], engine: str, case: str
) -> None:
    """Each module just past a bound (or past where one engine used to differ from the other)
    is refused by agentworld's own checks, with its reason, before any engine sees it."""
    build, reason = OVER[case]
    with pytest.raises(InvalidArtifactError) as refused:
        executors[engine].check_artifact(build())
    assert str(refused.value).startswith("invalid artifact: ")
    assert reason in str(refused.value)


# -- at every bound: accepted by both engines (instrumented) ------------------------------------

AT: dict[str, Callable[[], bytes]] = {
    "256 v128 parameters": lambda: _typed([V128] * MAX_TYPE_VALUES, []),
    "256 v128 results": lambda: _typed([], [V128] * MAX_TYPE_VALUES),
    "128 + 128 v128 values": lambda: _typed([V128] * 128, [V128] * 128),
    "256 i32 parameters": lambda: _typed([I32] * MAX_TYPE_VALUES, []),
    "a table of the largest size": lambda: _table(MAX_TABLE_ELEMENTS),
    "the most tables": lambda: _table(1, MAX_TABLES),
    "the most globals": lambda: _globals(MAX_GLOBALS),
    "the largest br_table": lambda: _br_table(MAX_BR_TABLE_TARGETS),
    "the deepest nesting": lambda: _nested(MAX_NESTING),
    "the most locals": lambda: _locals(MAX_LOCALS),
    "the most active data segments": lambda: _active_data(MAX_DATA_SEGMENTS),
    "the most active element segments": lambda: _active_elements(MAX_ELEMENT_SEGMENTS),
    "the heaviest ret-area exports": lambda: _ret_area_exports((MAX_EXPORT_WEIGHT - 2) // 4),
    "a body just under the metered bound": lambda: _metered_body(210_000),
    "entrypoint exports with the most globals": lambda: _escaping_by_exports(5_600, MAX_GLOBALS),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", sorted(AT))
def test_at_a_bound_every_engine_accepts_the_instrumented_module(
    executors: dict[str, Executor], engine: str, case: str
) -> None:
    """The bounds lie below both engines' limits, with what instrumentation adds: a module at
    each bound deploys on both."""
    assert isinstance(executors[engine].check_artifact(AT[case]()), list)


AT_INSTANCE_BOUND = {
    "the most escaping functions": (_escaping_at_bound(1), 1),
    "the most globals and escaping functions": (_escaping_at_bound(MAX_GLOBALS - 1),
                                                MAX_GLOBALS - 1),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(AT_INSTANCE_BOUND))
def test_at_the_instance_bound_every_engine_deploys_and_calls_the_module(
    executors: dict[str, Executor], case: str
) -> None:
    """A module exactly at the instance-size estimate's bound deploys and runs on both engines
    (wasmtime's pooling allocator included), with the same output and gas."""
    count, globals_ = AT_INSTANCE_BOUND[case]
    wasm = _escaping(count, globals_)
    escaping, all_globals = count + ECHO_ESCAPING, globals_ + ADDED_GLOBALS
    assert 64 * escaping + 32 * all_globals == MAX_INSTANCE_BYTES
    request = CallRequest(module_id="m", instance_id="i", wasm_hash=sha256_hex(wasm), wasm=wasm,
                          entrypoint="call", input=b"at the bound")
    results = []
    for executor in executors.values():
        assert executor.check_artifact(wasm) == ["memory", "alloc", "call"]
        assert isinstance(executor, EngineExecutor)
        results.append(executor.invoke_with_gas(request))
    assert results[0][0] == b"at the bound"
    assert all(result == results[0] for result in results)


def test_the_metered_body_bound_is_the_one_a_body_may_not_pass() -> None:
    """The body-size case at the bound is close to it, so that test means something."""
    from agentworld.metering import instrument

    size = len(instrument(_metered_body(210_000), 2).wasm)
    assert 0.9 * MAX_BODY_BYTES < size <= MAX_BODY_BYTES + 1000


# -- the same journal on both engines -----------------------------------------------------------


@needs_host
@pytest.mark.parametrize("case", ["600 i32 parameters", "br_table of 65 521 targets",
                                  "a table of 20 000 000 elements",
                                  "40 000 escaping functions"])
def test_a_refused_deploy_journals_the_same_bytes_on_both_engines(
    executors: dict[str, Executor], case: str
) -> None:
    """A deploy past a bound is `domain.action_rejected` with code `invalid_artifact` and the
    same detail on both engines: the journals are byte-identical."""
    wasm = OVER[case][0]()
    journals = []
    for engine in ("wasmtime", "wasmer"):
        world: World = world_with_agents("ada", executor=executors[engine])
        world.submit({"type": "module.deploy_artifact", "data": {
            "publisher_agent_id": "ada", "wasm_bytes": wasm, "wasm_hash": sha256_hex(wasm)}})
        world.step_with_modules()
        (rejection,) = events(world, "domain.action_rejected")
        assert rejection["code"] == "invalid_artifact"
        journals.append(journal_lines(world))
    assert journals[0] == journals[1]


# -- the wasmer host survives a panic -----------------------------------------------------------


def _panicking_module() -> bytes:
    """Raw bytes (never instrumented) that make wasmer 1.1 panic while compiling."""
    return _typed([I32] * 600, [])


@needs_host
def test_the_wasmer_host_survives_a_panic_while_compiling() -> None:
    """The host answers INSPECT of a module wasmer panics on with `MODULE_INVALID` and keeps
    serving: the next module compiles in the same process."""
    assert PYTHON is not None
    process = subprocess.Popen([PYTHON, "-s", "-B", str(HOST_SCRIPT)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdin is not None and process.stdout is not None

    def exchange(wasm: bytes) -> int:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(wire.frame(wire.inspect_message(hashlib.sha256(wasm).digest(),
                                                            wasm)))
        process.stdin.flush()
        size = int.from_bytes(process.stdout.read(4), "little")
        reply = wire.Reader(process.stdout.read(size))
        assert reply.u8() == wire.INSPECTED
        return reply.u8()

    try:
        hello = process.stdout.read(int.from_bytes(process.stdout.read(4), "little"))
        assert hello[:1] == bytes([wire.HELLO])
        assert exchange(_panicking_module()) == wire.MODULE_INVALID
        assert exchange(guest_wasm("counter")) == wire.MODULE_OK
        assert process.poll() is None
    finally:
        process.kill()
        process.wait()


@needs_host
def test_the_wasmer_backend_refuses_a_panicking_module_without_losing_its_host() -> None:
    """Compiling bytes wasmer panics on is an ordinary `EngineCompileError`; the host did not
    die, and the next module compiles in it."""
    assert PYTHON is not None
    backend = WasmerBackend(WasmerEngine(PYTHON))
    try:
        backend.compile(guest_wasm("counter"))
        with pytest.raises(EngineCompileError):
            backend.compile(_panicking_module())
        backend.compile(guest_wasm("echo"))
        assert backend.engine.stats.deaths == 0 and backend.engine.stats.starts == 1
    finally:
        backend.close()
