"""The wasmer executor, run for real: its host process on the provisioned Python 3.9 interpreter.

`scripts/provision-wasmer-host.sh` builds that interpreter; `.ci/run` exports its path as
AGENTWORLD_WASMER_PYTHON. Without it these tests skip locally and fail under CI.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from attrs import evolve

from agentworld import World
from agentworld.abi import encode_input
from agentworld.backends import wasmer_host as wire
from agentworld.backends.wasmer_executor import (
    ENV_PYTHON,
    HOST_SCRIPT,
    PROVISION_HINT,
    WasmerBackend,
    WasmerEngine,
    WasmerExecutor,
    host_problem,
    unavailable_reason,
)
from agentworld.engine import (
    OUTPUT_TOO_LARGE,
    TIMEOUT,
    TRAP,
    TRAP_REASONS,
    CallPlan,
    EngineBackend,
    EngineCompileError,
    EngineFailure,
)
from agentworld.errors import ExecutorUnavailableError
from agentworld.executor import (
    CallLimits,
    CallRequest,
    Executor,
    ExecutorConfig,
    InvalidArtifactError,
    ModuleCallError,
    ModuleOutput,
)
from agentworld.manager import PluginManager
from agentworld.metering import STACK_LIMIT_V2, instrument
from agentworld.testing.conformance import (
    ExecutorConformance,
    counter_output,
    counter_request,
    counter_state,
    guest_request,
    sample_context,
)
from agentworld.testing.guests import guest_wasm
from agentworld.world import MAX_LIMITS, WorldConfig
from golden_scenarios import GOLDEN_DIR, SCENARIOS, _agents, _install, _manifest, journal_lines

ROOT = Path(__file__).resolve().parent.parent


def _interpreter() -> str | None:
    configured = os.environ.get(ENV_PYTHON)
    if configured:
        return configured
    provisioned = ROOT / ".cache" / "wasmer-host" / "bin" / "python"
    return str(provisioned) if provisioned.exists() else None


PYTHON = _interpreter()
PROBLEM = host_problem(PYTHON)
if PROBLEM is not None and os.environ.get("CI"):
    raise RuntimeError(f"CI must run the wasmer executor for real: {PROBLEM}")
needs_host = pytest.mark.skipif(
    PROBLEM is not None, reason=f"no wasmer host interpreter: {PROBLEM}; {PROVISION_HINT}"
)


def _executor(**options: Any) -> WasmerExecutor:
    return WasmerExecutor(ExecutorConfig(options={"python": PYTHON, **options}))


@pytest.fixture(scope="module")
def wasmer_executor() -> Iterator[WasmerExecutor]:
    executor = _executor()
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def wasmtime_executor() -> Iterator[Executor]:
    executor = PluginManager(entrypoints=False).create_executor("wasmtime")
    yield executor
    executor.close()


def _request(wat: str, *, entrypoint: str = "call", **limits: int) -> CallRequest:
    wasm = bytes(wasmtime.wat2wasm(wat))
    base = guest_request("echo", **limits)
    return CallRequest(module_id="m.t", instance_id="m.t#1",
                       wasm_hash=hashlib.sha256(wasm).hexdigest(), wasm=wasm,
                       entrypoint=entrypoint, input=base.input, limits=base.limits, kind="pure")


# A guest that computes for a while (hundreds of milliseconds on wasmer), then returns {}.
SPIN = """(module (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "call") (param i32 i32) (result i32 i32) (local $i i64)
    (loop $l (local.set $i (i64.add (local.get $i) (i64.const 1)))
             (br_if $l (i64.lt_u (local.get $i) (i64.const 1500000000))))
    (i32.store8 (i32.const 0) (i32.const 0xa0)) (i32.const 0) (i32.const 1)))"""


# -- the wire, without an engine ------------------------------------------------------------


def test_frames_and_calls_round_trip() -> None:
    """A call message and a result parse back field by field; truncations are refused."""
    header = wire.call_header(
        b"h" * 32, entry="e", shape=wire.SHAPE_METERED, max_output=4096, ret_area=True, alloc="a",
        alloc_args=[(wire.VAL_I64, -5), (wire.VAL_I64, 7)], set_globals=[("g", wire.VAL_I32, 3)],
        get_globals=["gas"], reset="r")
    call = wire.Reader(wire.call_message(header, b"input"))
    assert call.blob() == header and call.blob() == b"input"
    call.end()
    reader = wire.Reader(header)
    assert reader.take(32) == b"h" * 32
    assert (reader.u8(), reader.u32(), reader.u8()) == (wire.SHAPE_METERED, 4096, 1)
    assert (reader.text(), reader.text(), reader.u8()) == ("memory", "a", 2)
    assert [(reader.u8(), reader.i64()) for _ in range(2)] == [(wire.VAL_I64, -5),
                                                                (wire.VAL_I64, 7)]
    assert reader.text() == "e"
    assert (reader.u8(), reader.text(), reader.u8(), reader.i64()) == (1, "g", wire.VAL_I32, 3)
    assert reader.u8() == 1 and reader.text() == "gas"
    assert reader.text() == "r"
    reader.end()
    result = wire._result(wire.TRAP, wire.STAGE_ENTRY, 9, 3, 7, 8, [42, -1], b"out", -2, True)
    assert wire.parse_result(result) == wire.Result(wire.TRAP, wire.STAGE_ENTRY, 9, 3, 7, 8, -2,
                                                    [42, -1], b"out", True)
    for cut in (1, len(result) - 1):
        with pytest.raises(wire.ProtocolError):
            wire.parse_result(result[:cut])
    assert wire.frame(b"abc") == b"\x03\0\0\0abc"


def test_trap_messages_map_to_neutral_kinds() -> None:
    """wasmer's trap texts become the neutral reasons; anything unknown is `unknown`."""
    assert wire.TRAP_KINDS[wire.trap_kind("RuntimeError: unreachable\n    at f")] == "unreachable"
    assert wire.TRAP_KINDS[wire.trap_kind("call stack exhausted")] == "call stack exhausted"
    table = "RuntimeError: undefined element: out of bounds table access"
    assert wire.TRAP_KINDS[wire.trap_kind(table)] == "out of bounds table access"
    assert wire.TRAP_KINDS[wire.trap_kind("something new")] == "unknown"
    assert set(wire.TRAP_KINDS) == TRAP_REASONS


@pytest.mark.parametrize(
    ("memory", "pages", "maximum"),
    [("1", 4, 4), ("1 10", 4, 4), ("1 3", 4, 3), ("5", 4, None), ("0", 0, 0)],
)
def test_memory_limit_rewrites_the_declared_maximum(
    memory: str, pages: int, maximum: int | None
) -> None:
    """The rewritten module is valid and declares at most `pages` (unchanged if over it)."""
    wat = f'(module (memory (export "memory") {memory}) (func (export "f")) (data (i32.const 0)))'
    wasm = bytes(wasmtime.wat2wasm(wat))
    rewritten, minimum = wire.limit_memory(wasm, pages)
    assert minimum == int(memory.split()[0])
    module = wasmtime.Module(wasmtime.Engine(), rewritten)
    (export,) = [e for e in module.exports if e.name == "memory"]
    assert isinstance(export.type, wasmtime.MemoryType)
    if maximum is None:
        assert rewritten == wasm
    else:
        assert export.type.limits.max == maximum


# -- availability ---------------------------------------------------------------------------


def test_unavailable_without_an_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    """No wasmer here and no interpreter configured: unavailable, with how to provision one."""
    monkeypatch.delenv(ENV_PYTHON, raising=False)
    reason = unavailable_reason({"mode": "host"})
    assert reason is not None
    assert f"{ENV_PYTHON} is not set" in reason and "provision-wasmer-host.sh" in reason
    with pytest.raises(ExecutorUnavailableError, match="is not set"):
        WasmerExecutor(ExecutorConfig(options={"mode": "host"}))


def test_unavailable_with_a_python_that_lacks_wasmer(tmp_path: Path) -> None:
    """A missing file, and a real Python without wasmer, are each named with the cause."""
    missing = str(tmp_path / "nothing")
    reason = unavailable_reason({"python": missing})
    assert reason is not None and missing in reason and "provision" in reason
    reason = unavailable_reason({"python": sys.executable})
    assert reason is not None and "cannot run the wasmer host" in reason
    assert "wasmer" in reason.split("cannot run the wasmer host", 1)[1]


def _plugins_json(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "agentworld", "plugins", "--json"],
                          capture_output=True, text=True, env=env, timeout=120, check=True)
    executors = json.loads(done.stdout)["executors"]
    entry: dict[str, Any] = next(e for e in executors if e["name"] == "wasmer")
    return entry


def test_plugins_lists_wasmer_unavailable_with_the_reason() -> None:
    """`agentworld plugins --json` shows the executor and why it cannot run."""
    env = {k: v for k, v in os.environ.items() if k != ENV_PYTHON}
    entry = _plugins_json(env)
    assert entry["available"] is False
    assert f"{ENV_PYTHON} is not set" in entry["reason"]


@needs_host
def test_plugins_lists_wasmer_available_with_the_interpreter() -> None:
    """With the provisioned interpreter the executor is available."""
    assert PYTHON is not None
    entry = _plugins_json({**os.environ, ENV_PYTHON: PYTHON})
    assert entry == {**entry, "available": True, "reason": None}


# -- the host process -----------------------------------------------------------------------


@needs_host
def test_host_protocol_round_trip() -> None:
    """HELLO, INSPECT, a BATCH of three calls, a malformed message (FAULT, exit 2)."""
    assert PYTHON is not None
    process = subprocess.Popen([PYTHON, "-s", "-B", str(HOST_SCRIPT)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None

    def send(body: bytes) -> None:
        assert process.stdin is not None
        process.stdin.write(wire.frame(body))
        process.stdin.flush()

    def receive() -> bytes:
        assert process.stdout is not None
        size = int.from_bytes(process.stdout.read(4), "little")
        return process.stdout.read(size)

    try:
        hello = wire.Reader(receive(), 1)
        assert hello.u32() == wire.PROTOCOL_VERSION and hello.text().startswith("wasmer 1.1.0")
        wasm = guest_wasm("counter")
        digest = hashlib.sha256(wasm).digest()
        send(wire.inspect_message(digest, wasm))
        inspected = wire.Reader(receive(), 1)
        assert inspected.u8() == wire.MODULE_OK
        summary = json.loads(inspected.blob())
        assert summary["imports"] == []
        assert summary["exports"][:3] == [["memory", ["memory", False, False, 1]],
                                          ["alloc", ["func", ["i32"], ["i32"]]],
                                          ["reduce", ["func", ["i32", "i32"], ["i32", "i32"]]]]
        data = counter_request(4).input
        header = wire.call_header(digest, entry="reduce", shape=wire.SHAPE_MULTI,
                                  max_output=65536)
        call = wire.call_message(header, data)
        send(wire.batch_message([], [call] * 3))
        assert receive() == bytes([wire.PREPARED])
        for _ in range(3):
            result = wire.parse_result(receive())
            assert (result.outcome, result.pages) == (wire.OK, 1)
            assert result.output.startswith(b"\xa3inew_state")
        send(bytes([wire.INSPECT]) + b"short")
        fault = receive()
        assert fault[:1] == bytes([wire.FAULT])
        assert process.wait(timeout=10) == 2
    finally:
        process.kill()
        process.wait()


@needs_host
class TestWasmerConformance(ExecutorConformance):
    """The whole conformance kit on one wasmer executor (hostile calls included)."""

    @pytest.fixture
    def executor(self, wasmer_executor: WasmerExecutor) -> Executor:
        return wasmer_executor


@needs_host
def test_a_batch_is_one_round_trip(wasmer_executor: WasmerExecutor) -> None:
    """A hundred tick calls go to the host as one message and come back in order."""
    requests = [counter_request(count) for count in range(100)]
    wasmer_executor.call(requests[0])
    before = wasmer_executor.host_stats.batches
    results = wasmer_executor.call_batch(requests)
    assert wasmer_executor.host_stats.batches == before + 1
    assert results == [counter_output(count + 1) for count in range(100)]


@needs_host
def test_timeout_kills_the_host_and_the_next_call_works() -> None:
    """A runaway call fails with `timeout` on time; its batch neighbours are unaffected."""
    with _executor() as executor:
        executor.call(counter_request(1))
        first_pid = executor.host_pid
        runaway = guest_request("loop", max_gas=10**15, max_call_ms=100)
        started = time.monotonic()
        results = executor.call_batch([counter_request(1), runaway, counter_request(2)])
        elapsed_ms = (time.monotonic() - started) * 1000
        assert results[0] == counter_output(2) and results[2] == counter_output(3)
        assert isinstance(results[1], ModuleCallError) and results[1].code == "timeout"
        assert elapsed_ms < 100 + 1000  # the watchdog, plus a restart for the third call
        assert executor.host_pid not in (None, first_pid)
        assert executor.host_stats.timeouts == 1
        assert executor.call(counter_request(5)) == counter_output(6)


@needs_host
@pytest.mark.slow
def test_host_killed_mid_batch_is_restarted_and_the_batch_completes() -> None:
    """Killing the host while it runs a batch loses nothing: the unanswered calls are sent
    again to a new host, and every result is the one an undisturbed run gives."""
    spin = _request(SPIN, max_gas=10**15, max_call_ms=60_000)
    with _executor() as executor:
        executor.check_artifact(spin.wasm_bytes())
        executor.call(counter_request(1))
        victim = executor.host_pid
        assert victim is not None
        killer = threading.Timer(0.2, os.kill, (victim, signal.SIGKILL))
        killer.start()
        results = executor.call_batch([counter_request(1), spin, counter_request(7)])
        killer.join()
        assert results == [counter_output(2), ModuleOutput(), counter_output(8)]
        assert executor.host_stats.deaths == 1 and executor.host_stats.starts == 2
        assert executor.host_pid not in (None, victim)


@needs_host
def test_a_host_killed_while_idle_is_restarted_transparently() -> None:
    """The next call after the host died between calls simply works."""
    with _executor() as executor:
        executor.call(counter_request(1))
        pid = executor.host_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert executor.call(counter_request(3)) == counter_output(4)
        assert executor.host_pid not in (None, pid)


@needs_host
def test_a_call_that_kills_every_host_stops_the_batch() -> None:
    """A host that dies twice on the same call is an engine failure, not a guest result."""
    spin = _request(SPIN, max_gas=10**15, max_call_ms=60_000)
    stop = threading.Event()
    with _executor() as executor:
        executor.check_artifact(spin.wasm_bytes())

        def kill_every_host() -> None:
            seen: set[int] = set()
            while not stop.is_set():
                pid = executor.host_pid
                if pid is not None and pid not in seen:
                    time.sleep(0.1)
                    seen.add(pid)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.01)

        killer = threading.Thread(target=kill_every_host)
        killer.start()
        try:
            with pytest.raises(ExecutorUnavailableError, match="died twice"):
                executor.call(spin)
        finally:
            stop.set()
            killer.join()
        assert executor.call(counter_request(0)) == counter_output(1)


@needs_host
def test_invalid_artifacts_are_refused_in_the_same_words(
    wasmer_executor: WasmerExecutor, wasmtime_executor: Executor
) -> None:
    """Refusals are worded by agentworld: the same bytes give the same words on both engines."""
    for junk in (b"\0asm\x01\0\0\0junk", b"(module)", guest_wasm("imports")):
        words = []
        for executor in (wasmtime_executor, wasmer_executor):
            with pytest.raises(InvalidArtifactError) as refused:
                executor.check_artifact(junk)
            words.append(str(refused.value))
        assert words[0] == words[1]


# -- cross-engine identity ------------------------------------------------------------------

_TRAPS = {
    "unreachable": "unreachable",
    "(drop (i32.div_s (i32.const 1) (i32.const 0)))": "integer divide by zero",
    "(drop (i32.div_s (i32.const 0x80000000) (i32.const -1)))": "integer overflow",
    "(drop (i32.trunc_f32_s (f32.const nan)))": "invalid conversion to integer",
    "(memory.fill (i32.const 65000) (i32.const 0) (i32.const 1000))":
        "out of bounds memory access",
    "(call_indirect (type $v) (i32.const 5))": "out of bounds table access",
    "(call_indirect (type $v) (i32.const 1))": "uninitialized element",
    "(call_indirect (type $v) (i32.const 0))": "indirect call type mismatch",
    "(call $dive)": "call stack exhausted",
}


def _trap_guest(body: str) -> str:
    return f"""(module (memory (export "memory") 1) (type $v (func))
      (table 2 funcref) (elem (i32.const 0) $takes)
      (func $takes (param i32)) (func $dive call $dive)
      (func (export "alloc") (param i32) (result i32) i32.const 1024)
      (func (export "call") (param i32 i32) (result i32 i32) {body} i32.const 0 i32.const 0))"""


@needs_host
@pytest.mark.parametrize(("body", "kind"), sorted(_TRAPS.items()))
def test_traps_have_the_same_code_on_both_engines(
    wasmer_executor: WasmerExecutor, wasmtime_executor: Executor, body: str, kind: str
) -> None:
    """Each WebAssembly trap condition fails with `trap` and the same detail on both engines,
    the executor core's wording of that condition."""
    request = _request(_trap_guest(body))
    failures = []
    for executor in (wasmtime_executor, wasmer_executor):
        with pytest.raises(ModuleCallError) as failure:
            executor.call(request)
        failures.append(failure.value)
    assert [failure.code for failure in failures] == ["trap", "trap"]
    assert failures[0].detail == failures[1].detail == f"trap: {kind}"


@needs_host
@pytest.mark.parametrize("entrypoint", ["reduce", "reduce_packed", "reduce_retarea"])
def test_outputs_are_identical_on_both_engines(
    wasmer_executor: WasmerExecutor, wasmtime_executor: Executor, entrypoint: str
) -> None:
    """The same calls give equal outputs on both engines, for every entrypoint shape."""
    requests = [counter_request(count, entrypoint) for count in (0, 1, 2**40)]
    requests.append(guest_request("observer", input=encode_input(
        sample_context("post_event"), event={"id": 1, "kind": "k", "data": {"x": [1, 2.5]}})))
    assert wasmer_executor.call_batch(requests) == wasmtime_executor.call_batch(requests)


NAN_GUEST = """(module (memory (export "memory") 1)
  ;; {"new_state": h'<the 4 bytes of 0/0>'}
  (data (i32.const 0) "\\a1\\69new_state\\44")
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "call") (param i32 i32) (result i32 i32)
    (i32.store (i32.const 12) (i32.reinterpret_f32 (f32.div (f32.const 0) (f32.const 0))))
    (i32.const 0) (i32.const 16)))"""


@needs_host
def test_nan_bits_are_identical_on_both_engines(
    wasmer_executor: WasmerExecutor, wasmtime_executor: Executor
) -> None:
    """A NaN computed by the guest has the same bits on both engines."""
    request = evolve(_request(NAN_GUEST), kind="reducer")
    assert wasmtime_executor.call(request) == ModuleOutput(new_state=b"\0\0\xc0\x7f")
    assert wasmer_executor.call(request) == wasmtime_executor.call(request)


# -- reusing reset instances within a batch ---------------------------------------------------


def _reused(executor: WasmerExecutor, requests: list[CallRequest]) -> tuple[list[Any], int]:
    """The batch's results and how many of its calls ran in a reset instance."""
    before = executor.host_stats.reused
    results = executor.call_batch(requests)
    return results, executor.host_stats.reused - before


@needs_host
def test_a_batch_reuses_reset_instances_and_no_state_survives(
    wasmer_executor: WasmerExecutor, wasmtime_executor: Executor
) -> None:
    """In a batch, calls of one module after the first run in the first call's instance, reset:
    the `leaky` guest, which changes its globals, memory and tables on every call, reports a
    fresh instance's state every time (as on wasmtime, which never reuses an instance). Alone,
    a call never reuses one, and calls of several modules interleave."""
    leaky = guest_request("leaky", entrypoint="reduce", kind="reducer")
    fresh = wasmtime_executor.call(leaky)
    results, reused = _reused(wasmer_executor, [leaky] * 10)
    assert results == [fresh] * 10 and reused == 9
    mixed = [leaky, counter_request(1), leaky, counter_request(1), leaky]
    results, reused = _reused(wasmer_executor, mixed)
    assert results == wasmtime_executor.call_batch(mixed) and reused == 3
    assert _reused(wasmer_executor, [leaky]) == ([fresh], 0)
    with _executor(reuse_instances=False) as strict:
        assert _reused(strict, [leaky] * 3) == ([fresh] * 3, 0)


def _outcome(result: ModuleOutput | ModuleCallError) -> object:
    return (result.code, result.detail) if isinstance(result, ModuleCallError) else result


def _changer(body: str) -> CallRequest:
    """A guest that reports its memory and table sizes and its first memory byte, then runs
    `body` and writes that byte."""
    return evolve(_request(f"""(module (memory (export "memory") 1) (table 1 funcref)
      (data $d "x")
      ;; {{"new_state": h'<9 bytes>'}}
      (data (i32.const 0) "\\a1\\69new_state\\49")
      (func (export "alloc") (param i32) (result i32) i32.const 1024)
      (func (export "call") (param i32 i32) (result i32 i32)
        (i32.store (i32.const 12) (memory.size))
        (i32.store (i32.const 16) (table.size))
        (i32.store8 (i32.const 20) (i32.load8_u (i32.const 500)))
        (i32.store8 (i32.const 500) (i32.const 1))
        {body}
        (i32.const 0) (i32.const 21)))"""), kind="reducer")


@needs_host
@pytest.mark.parametrize("body", [
    "(drop (memory.grow (i32.const 1)))",
    "(drop (table.grow (ref.null func) (i32.const 1)))",
    "(data.drop $d)",
    "(drop (i32.div_u (i32.const 1) (i32.const 0)))",
])
def test_instances_that_cannot_be_reset_are_not_reused(
    wasmer_executor: WasmerExecutor, wasmtime_executor: Executor, body: str
) -> None:
    """After a call that grew a memory or a table, dropped a segment or failed, the next call
    of the batch gets a new instance, and the same results as on wasmtime."""
    request = _changer(body)
    results, reused = _reused(wasmer_executor, [request] * 3)
    expected = wasmtime_executor.call_batch([request] * 3)
    assert [_outcome(result) for result in results] == [_outcome(result) for result in expected]
    assert reused == 0
    if "div" not in body:
        assert results == [ModuleOutput(new_state=struct.pack("<iiB", 1, 1, 0))] * 3


# -- the stack limit: the same depth on both engines (schedule 2) ------------------------------


def _zeros(count: int, value: str = "(v128.const i64x2 0 0)") -> str:
    return " ".join([value] * count)


def _stores(count: int, value: str) -> str:
    return "".join(f"(i64.store offset={8 * (k % 8)} (i32.const 256) {value.format(k=k + 3)})"
                   for k in range(count))


# Guests whose function $f recurses as deep as the input is long, each shaped to need as much
# native stack per stack unit as we could make it (measured on both engines; see
# agentworld/metering.py): v128 values passed through parameters or results, values an engine
# keeps instead of computing them again, v128 locals live across the call, many locals.
_DEEP = {
    "v128 parameters": f"""
      (func $f (param $n i32) {'(param v128) ' * 200} (result i64)
        (if (result i64) (i32.eqz (local.get $n)) (then (i64.const 0))
          (else (call $f (i32.sub (local.get $n) (i32.const 1))
                         {' '.join(f'(local.get {k})' for k in range(1, 201))}))))
      (func (export "call") (param i32 i32) (result i32 i32)
        (drop (call $f (local.get 1) {_zeros(200)})) (i32.const 16) (i32.const 1))""",
    "v128 results": f"""
      (func $f (param $n i32) (result {'v128 ' * 200})
        (if (i32.eqz (local.get $n)) (then (return {_zeros(200)})))
        (call $f (i32.sub (local.get $n) (i32.const 1))))
      (func (export "call") (param i32 i32) (result i32 i32)
        (call $f (local.get 1)) {'drop ' * 200} (i32.const 16) (i32.const 1))""",
    "recomputed values": f"""
      (func $f (param $n i32) (param $x i64)
        {_stores(500, "(i64.mul (local.get $x) (i64.const {k}))")}
        (if (local.get $n) (then (call $f (i32.sub (local.get $n) (i32.const 1)) (local.get $x))))
        {_stores(500, "(i64.mul (local.get $x) (i64.const {k}))")})
      (func (export "call") (param i32 i32) (result i32 i32)
        (call $f (local.get 1) (i64.const 7)) (i32.const 16) (i32.const 1))""",
    "v128 locals": f"""
      (func $f (param $n i32) {'(local v128) ' * 300}
        {''.join(f'(local.set {k} (v128.load offset={16 * k} (i32.const 0)))'
                 for k in range(1, 301))}
        (if (local.get $n) (then (call $f (i32.sub (local.get $n) (i32.const 1)))))
        {''.join(f'(v128.store offset={16 * k} (i32.const 0) (local.get {k}))'
                 for k in range(1, 301))})
      (func (export "call") (param i32 i32) (result i32 i32)
        (call $f (local.get 1)) (i32.const 16) (i32.const 1))""",
    "many locals": f"""
      (func $f (param $n i32) {'(local i64) ' * 2000}
        (local.set 2000 (i64.load (i32.const 8)))
        (if (local.get $n) (then (call $f (i32.sub (local.get $n) (i32.const 1)))))
        (i64.store (i32.const 8) (i64.add (local.get 2000) (local.get 1))))
      (func (export "call") (param i32 i32) (result i32 i32)
        (call $f (local.get 1)) (i32.const 16) (i32.const 1))""",
}


def _deep_request(shape: str, depth: int, **limits: int) -> CallRequest:
    wasm = bytes(wasmtime.wat2wasm(f"""(module (memory (export "memory") 1)
      (data (i32.const 16) "\\a0")
      (func (export "alloc") (param i32) (result i32) i32.const 1024)
      {_DEEP[shape]})"""))
    return CallRequest(module_id="m.deep", instance_id="m.deep#1",
                       wasm_hash=hashlib.sha256(wasm).hexdigest(), wasm=wasm, entrypoint="call",
                       input=b"x" * depth, limits=CallLimits(**limits), kind="pure")


@needs_host
@pytest.mark.parametrize("shape", sorted(_DEEP))
def test_the_deepest_recursion_that_fits_is_the_same_on_both_engines(
    wasmer_executor: WasmerExecutor, wasmtime_executor: Executor, shape: str
) -> None:
    """At the deepest recursion the stack limit allows, neither engine's native stack has run
    out (the call succeeds, with the same gas); one frame more is `call stack exhausted` on
    both."""
    units = instrument(_deep_request(shape, 0).wasm_bytes(), 2).stack_units
    recursive, entry = units[1], units[2]
    deepest = (STACK_LIMIT_V2 - entry) // recursive - 1  # frames for n = deepest .. 0
    assert deepest >= 10
    outputs = [executor.call(_deep_request(shape, deepest))
               for executor in (wasmtime_executor, wasmer_executor)]
    assert outputs[0] == outputs[1] == ModuleOutput()
    assert outputs[0].gas_used == outputs[1].gas_used > 0
    for executor in (wasmtime_executor, wasmer_executor):
        with pytest.raises(ModuleCallError) as failure:
            executor.call(_deep_request(shape, deepest + 1))
        assert failure.value.detail == "trap: call stack exhausted"


@needs_host
def test_unbounded_recursion_stops_at_the_same_gas_on_both_engines(
    wasmer_executor: WasmerExecutor, wasmtime_executor: Executor
) -> None:
    """The `recursion` guest: with less gas than the stack limit's depth needs it runs out of
    gas, with that much it traps, at the same gas on both engines (before the stack limit,
    wasmtime's native stack stopped it after about 115 000 gas and wasmer's after 168 000)."""
    def outcome(executor: Executor, gas: int) -> str:
        with pytest.raises(ModuleCallError) as failure:
            executor.call(guest_request("recursion", max_gas=gas))
        return failure.value.code

    low, high = 1, 10**6  # out_of_fuel at low, trap at high
    assert outcome(wasmtime_executor, high) == "trap"
    while high - low > 1:
        middle = (low + high) // 2
        if outcome(wasmtime_executor, middle) == "trap":
            high = middle
        else:
            low = middle
    assert high < 40_000
    assert [outcome(wasmer_executor, gas) for gas in (low, high)] == ["out_of_fuel", "trap"]


@needs_host
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_journals_are_byte_identical_on_wasmer(
    wasmer_executor: WasmerExecutor, name: str
) -> None:
    """The recorded scenarios, run on wasmer, give the recorded journal and state root."""
    world = SCENARIOS[name](executor=wasmer_executor)
    assert journal_lines(world) == (GOLDEN_DIR / f"{name}.jsonl").read_bytes()
    assert world.state_root() + "\n" == (GOLDEN_DIR / f"{name}.root").read_text()


# -- the engine backend of the executor core ------------------------------------------------

# A module shaped as the gas instrumentation leaves one: entry wrappers that arm the instance
# (op 0) and run the entrypoint (op 1), returning (pointer, length, gas left), the gas,
# refused-growth and stack globals.
METERED = """(module
  (memory (export "memory") 1)
  (global $gas (export "__agentworld_gas") (mut i64) (i64.const 0))
  (global $refused (export "__agentworld_refused") (mut i32) (i32.const 0))
  (global $stack (export "__agentworld_stack") (mut i32) (i32.const 0))
  ;; op 0: arm with the gas and hand out the buffer at 1024
  (func $arm (param $gas i64) (result i32 i32 i64)
    (global.set $gas (local.get $gas)) (i32.const 1024) (i32.const 0) (global.get $gas))
  ;; echo, charging 10 gas per byte
  (func (export "__agentworld_entry:call") (param $op i32) (param $a i64) (param i64)
        (param $len i32) (result i32 i32 i64)
    (if (i32.eqz (local.get $op)) (then (return (call $arm (local.get $a)))))
    (global.set $gas (i64.sub (global.get $gas)
                              (i64.mul (i64.extend_i32_u (local.get $len)) (i64.const 10))))
    (if (i64.lt_s (global.get $gas) (i64.const 0)) (then unreachable))
    (i32.wrap_i64 (local.get $a)) (local.get $len) (global.get $gas))
  (func (export "__agentworld_entry:grow") (param $op i32) (param $a i64) (param i64 i32)
        (result i32 i32 i64)
    (if (i32.eqz (local.get $op)) (then (return (call $arm (local.get $a)))))
    (global.set $refused (i32.const 1)) unreachable)
  (func (export "__agentworld_entry:deep") (param $op i32) (param $a i64) (param i64 i32)
        (result i32 i32 i64)
    (if (i32.eqz (local.get $op)) (then (return (call $arm (local.get $a)))))
    (global.set $stack (i32.const -3)) unreachable)
  (func (export "__agentworld_entry:spin") (param $op i32) (param $a i64) (param i64 i32)
        (result i32 i32 i64)
    (if (i32.eqz (local.get $op)) (then (return (call $arm (local.get $a)))))
    (loop $l (br $l)) unreachable))"""


def _plan(entrypoint: str) -> CallPlan:
    return CallPlan(entrypoint=entrypoint, memory_export="memory", memory_index=0,
                    entry_export=f"__agentworld_entry:{entrypoint}", entry_index=4,
                    gas_export="__agentworld_gas", gas_index=1,
                    refused_export="__agentworld_refused", refused_index=2,
                    stack_export="__agentworld_stack", stack_index=3,
                    reset_export="", reset_index=0, ret_area=False,
                    memory_floor=65536)


@pytest.fixture(scope="module")
def backend() -> Iterator[WasmerBackend]:
    assert PYTHON is not None
    backend = WasmerBackend(WasmerEngine(PYTHON))
    yield backend
    backend.close()


@needs_host
def test_backend_runs_instrumented_calls_in_one_round_trip(backend: WasmerBackend) -> None:
    """Outputs and gas left come back in order, a whole batch in one message."""
    assert isinstance(backend, EngineBackend)
    assert backend.fingerprint.startswith("wasmer-1.1.0")
    module = backend.compile(bytes(wasmtime.wat2wasm(METERED)))
    limits = CallLimits(max_gas=1000)
    assert backend.run(module, _plan("call"), b"hello", limits) == (b"hello", 950)
    before = backend.engine.stats.batches
    jobs = [(module, _plan("call"), bytes(size), limits) for size in range(100)]
    assert backend.run_batch(jobs) == [(bytes(size), 1000 - 10 * size) for size in range(100)]
    assert backend.engine.stats.batches == before + 1


@needs_host
def test_backend_reports_failures_in_neutral_terms(backend: WasmerBackend) -> None:
    """Gas and stack left after a trap, the refused-growth flag, output bounds and the wall
    clock."""
    module = backend.compile(bytes(wasmtime.wat2wasm(METERED)))
    results = backend.run_batch([
        (module, _plan("call"), bytes(20), CallLimits(max_gas=100)),
        (module, _plan("deep"), b"", CallLimits()),
        (module, _plan("grow"), b"", CallLimits()),
        (module, _plan("call"), bytes(20), CallLimits(max_output_bytes=19)),
        (module, _plan("spin"), b"", CallLimits(max_call_ms=100)),
        (module, _plan("call"), b"ok", CallLimits(max_gas=100)),
    ])
    out_of_gas, deep, refused, too_large, runaway, fine = results
    assert isinstance(out_of_gas, EngineFailure) and isinstance(refused, EngineFailure)
    assert isinstance(deep, EngineFailure)
    assert (deep.kind, deep.trap, deep.stack_left, deep.grow_refused) == (
        TRAP, "unreachable", -3, False)
    assert isinstance(too_large, EngineFailure) and isinstance(runaway, EngineFailure)
    assert (out_of_gas.kind, out_of_gas.trap, out_of_gas.gas_left) == (TRAP, "unreachable", -100)
    assert not out_of_gas.grow_refused
    assert (refused.kind, refused.grow_refused) == (TRAP, True)
    assert (too_large.kind, too_large.size) == (OUTPUT_TOO_LARGE, 20)
    assert runaway.kind == TIMEOUT
    assert fine == (b"ok", 80)
    with pytest.raises(EngineCompileError):
        backend.compile(b"\0asm\x01\0\0\0junk")


@needs_host
@pytest.mark.slow
def test_killing_the_host_mid_step_changes_nothing(wasmer_executor: WasmerExecutor) -> None:
    """A world whose host is killed in the middle of a step records exactly the journal of an
    undisturbed run, and its next step works."""
    spin = bytes(wasmtime.wat2wasm(SPIN))
    spin_hash = hashlib.sha256(spin).hexdigest()

    def world() -> World:
        # The spin must outlast the kill timer on any machine: 4e9 gas takes about a second here.
        config = WorldConfig(max_limits=evolve(MAX_LIMITS, max_gas=4 * 10**9))
        world = World(executor=wasmer_executor, config=config)
        _agents(world, "ada")
        for wasm in (spin, guest_wasm("counter")):
            world.submit({"type": "module.deploy_artifact", "data": {
                "publisher_agent_id": "ada", "wasm_bytes": wasm,
                "wasm_hash": hashlib.sha256(wasm).hexdigest()}})
        counter_hash = hashlib.sha256(guest_wasm("counter")).hexdigest()
        _install(world, "ada", _manifest("c.one", counter_hash, subscriptions=[{"stage": "tick"}]))
        _install(world, "ada", _manifest("s.spin", spin_hash, "pure",
                                         limits={"max_call_ms": 10_000, "max_gas": 4 * 10**9},
                                         subscriptions=[{"stage": "tick"}]))
        _install(world, "ada", _manifest("c.two", counter_hash, subscriptions=[{"stage": "tick"}]))
        world.step_with_modules()
        return world

    reference, disturbed = world(), world()
    reference.step_with_modules()
    victim = wasmer_executor.host_pid
    assert victim is not None
    deaths = wasmer_executor.host_stats.deaths
    killer = threading.Timer(0.3, os.kill, (victim, signal.SIGKILL))
    killer.start()
    disturbed.step_with_modules()
    killer.join()
    assert wasmer_executor.host_stats.deaths == deaths + 1  # it died during a call of the step
    assert journal_lines(disturbed) == journal_lines(reference)
    assert disturbed.state_root() == reference.state_root()
    disturbed.step_with_modules()
    (counter,) = [key for key, instance in disturbed.instances.items()
                  if instance.module_id == "c.two"]
    assert disturbed.module_state(counter) == counter_state(2)
