"""The wasmer executor: runs `wasm-1` guests on wasmer, in-process or in a host process.

The wasmer package has no wheels for the Pythons agentworld supports, so the engine usually
runs in a *host process*: `wasmer_host.py` (next to this file) run by the interpreter named in
`AGENTWORLD_WASMER_PYTHON` (scripts/provision-wasmer-host.sh builds one), speaking the
length-prefixed protocol described in docs/wasmer.md over pipes. Where `import wasmer` works
in this interpreter the same host code runs in-process instead. Without either, the executor
registers as unavailable and says how to provision an interpreter.

The executor is the engine-neutral core (`agentworld.engine_executor.EngineExecutor`:
instrumentation, planning, caches, failure wording, output decoding) on `WasmerBackend`, which
holds the engine code: `WasmerEngine` sends a batch of calls to the host in one message and
reads one result per call as the host finishes it. The host process is the watchdog's target:
a call that runs past `max_call_ms` gets the host killed (the call fails with `timeout`), and a
host that dies is restarted transparently; the calls it had not answered are sent again to the
new one (calls are stateless, so a retry gives the same result).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import queue
import re
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from attrs import define, field

from agentworld.engine import (
    ALLOC_OUT_OF_BOUNDS,
    ENGINE_ERROR,
    OUTPUT_OUT_OF_BOUNDS,
    OUTPUT_TOO_LARGE,
    TIMEOUT,
    TRAP,
    BackendDefaults,
    CallPlan,
    EngineCompileError,
    EngineFailure,
    Job,
    RunResult,
)
from agentworld.engine_executor import EngineExecutor
from agentworld.errors import AgentWorldError, ExecutorConfigError, ExecutorUnavailableError
from agentworld.executor import (
    CallLimits,
    ExecutorConfig,
    InvalidArtifactError,
)
from agentworld.hookspecs import hookimpl

from . import wasmer_host as wire

ENV_PYTHON = "AGENTWORLD_WASMER_PYTHON"
HOST_SCRIPT = Path(__file__).with_name("wasmer_host.py")
DESCRIPTION = "wasmer 1.1 (Cranelift): in-process, or a host process over pipes; batched calls"
PROVISION_HINT = (
    "run scripts/provision-wasmer-host.sh from agentworld's source tree and set "
    f"{ENV_PYTHON} to the path it prints (or to any Python <= 3.10 with wasmer==1.1.0 and "
    "wasmer-compiler-cranelift==1.1.0 installed)"
)

DEFAULT_OPTIONS: dict[str, Any] = {
    # "auto": in-process where `import wasmer` works, else the host process; "host" forces
    # the host process.
    "mode": "auto",
    # The host's interpreter; None reads AGENTWORLD_WASMER_PYTHON.
    "python": None,
    # Engine-wide ceiling on one guest memory; a call's `max_mem_bytes` is capped by it.
    "max_memory_bytes": 256 * 1024 * 1024,
    # How long the host may take to start, and to compile the modules of one batch.
    "start_timeout_s": 60.0,
    "compile_timeout_s": 60.0,
    # Let a call run in an instance an earlier call of its batch used, reset to the fresh
    # state by the instrumented module (a new wasmer instance costs 40-60 µs).
    "reuse_instances": True,
}

_PAGE = 65536
_MULTI, _PACKED, _RETAREA = "(i32,i32)->(i32,i32)", "(i32,i32)->i64", "(i32,i32,i32)->()"
_SHAPES = {_MULTI: wire.SHAPE_MULTI, _PACKED: wire.SHAPE_PACKED, _RETAREA: wire.SHAPE_RETAREA}
_STAGE_PREFIX = {wire.STAGE_INSTANTIATE: "instantiating: ", wire.STAGE_ALLOC: "in alloc: "}

TRAP_DETAILS: dict[str, str] = {
    "unknown": "wasm trap",
    "unreachable": "wasm trap: wasm `unreachable` instruction executed",
    "integer divide by zero": "wasm trap: integer divide by zero",
    "integer overflow": "wasm trap: integer overflow",
    "invalid conversion to integer": "wasm trap: invalid conversion to integer",
    "out of bounds memory access": "wasm trap: out of bounds memory access",
    "out of bounds table access": "wasm trap: undefined element: out of bounds table access",
    "uninitialized element": "wasm trap: uninitialized element",
    "indirect call type mismatch": "wasm trap: indirect call type mismatch",
    "call stack exhausted": "wasm trap: call stack exhausted",
    "null reference": "wasm trap: null reference",
}
"""The failure detail of each engine-neutral trap kind: engine text never reaches a journal."""


@define
class HostStats:
    """Counters a user can observe: host processes started, killed, and messages sent."""

    starts: int = 0
    timeouts: int = 0
    deaths: int = 0
    batches: int = 0
    calls: int = 0
    compiled: int = 0
    reused: int = 0
    """Calls that ran in a reset instance of an earlier call of their batch."""


class HostDied(AgentWorldError):
    """The host process ended (or broke the protocol) while a message was outstanding."""


class _Deadline(AgentWorldError):
    """The host did not answer in time."""


# -- availability -------------------------------------------------------------------------


def _import_error() -> str | None:
    """Why `import wasmer` fails in this interpreter, or None when it works."""
    try:
        import wasmer  # type: ignore[import-not-found]  # noqa: F401
        import wasmer_compiler_cranelift  # type: ignore[import-not-found]  # noqa: F401
    except Exception as exc:  # the PyPI stub on Python >= 3.11 fails in several ways
        return f"{type(exc).__name__}: {exc}"
    return None


@functools.cache
def _probe(python: str, stamp: float) -> tuple[str | None, str]:
    """(why `python` cannot run the host or None, the engine it reports), cached per file
    version."""
    try:
        done = subprocess.run(
            [python, "-s", "-B", str(HOST_SCRIPT), "--probe"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=DEFAULT_OPTIONS["start_timeout_s"],
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{ENV_PYTHON}={python} cannot be run: {exc}", ""
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        last = lines[-1] if lines else f"exit status {done.returncode}"
        return f"{ENV_PYTHON}={python} cannot run the wasmer host: {last}", ""
    return None, done.stdout.decode("utf-8", "replace").strip()


def host_problem(python: str | None) -> str | None:
    """Why the host process cannot run with interpreter `python`, or None when it can."""
    if not python:
        return f"the wasmer package cannot be imported here and {ENV_PYTHON} is not set"
    try:
        stamp = os.stat(python).st_mtime
    except OSError as exc:
        return f"{ENV_PYTHON}={python} cannot be run: {exc.strerror}"
    return _probe(python, stamp)[0]


def engine_version(python: str | None) -> str:
    """The engine wasmer runs as (`wasmer 1.1.0 cranelift`): in this interpreter (None) or in
    the host process `python` starts."""
    if python is None:
        import wasmer

        return f"wasmer {wasmer.__version__} cranelift"
    return _probe(python, os.stat(python).st_mtime)[1]


def unavailable_reason(options: dict[str, Any] | None = None) -> str | None:
    """Why this machine cannot run the wasmer executor (with how to fix it), or None."""
    options = {**DEFAULT_OPTIONS, **(options or {})}
    if options["mode"] == "auto" and _import_error() is None:
        return None
    problem = host_problem(options["python"] or os.environ.get(ENV_PYTHON))
    return None if problem is None else f"{problem}; {PROVISION_HINT}"


# -- transports -----------------------------------------------------------------------------


class _HostProcess:
    """One host process and the framed pipes to it; `kill` ends it at once."""

    def __init__(self, python: str, cache_size: int, max_pages: int, start_timeout: float) -> None:
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        self._last_words = ""
        self.process = subprocess.Popen(
            [python, "-s", "-B", str(HOST_SCRIPT), str(cache_size), str(max_pages)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            close_fds=True,
            # Its own session: a terminal's Ctrl-C goes to the world, which then closes it.
            start_new_session=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in = self.process.stdin.fileno()
        self._out = self.process.stdout.fileno()
        self._buffer = bytearray()
        try:
            hello = self.receive(time.monotonic() + start_timeout)
        except (HostDied, _Deadline):
            self.kill()
            raise ExecutorUnavailableError(
                f"the wasmer host process did not start: {self._last_words}"
            ) from None
        reader = wire.Reader(hello, 1)
        if hello[:1] != bytes([wire.HELLO]) or reader.u32() != wire.PROTOCOL_VERSION:
            self.kill()
            raise ExecutorUnavailableError("the wasmer host speaks another protocol version")
        self.engine = reader.text()
        self.python_version = reader.text()

    @property
    def pid(self) -> int:
        """The host's process id."""
        return self.process.pid

    def send(self, body: bytes) -> None:
        """Write one frame; raises `HostDied` when the host is gone."""
        data = memoryview(wire.frame(body))
        try:
            while data:
                written = os.write(self._in, data)
                data = data[written:]
        except OSError:
            raise HostDied("the wasmer host process closed its input") from None

    def receive(self, deadline: float | None) -> bytes:
        """The next frame's body; `_Deadline` past `deadline`, `HostDied` at end of output."""
        buffer = self._buffer
        while True:
            if len(buffer) >= 4:
                size = int.from_bytes(buffer[:4], "little")
                if size > wire.MAX_FRAME:
                    raise HostDied("the wasmer host sent an oversized frame")
                if len(buffer) >= 4 + size:
                    body = bytes(buffer[4 : 4 + size])
                    del buffer[: 4 + size]
                    if body[:1] == bytes([wire.FAULT]):
                        raise HostDied("the wasmer host refused a message: "
                                       + wire.Reader(body, 1).text())
                    return body
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._out], [], [], left)[0]:
                    raise _Deadline()
            chunk = os.read(self._out, 1 << 20)
            if not chunk:
                raise HostDied("the wasmer host process exited")
            buffer += chunk

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def kill(self) -> None:
        """End the process now and reap it; idempotent."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                self.process.kill()
        self.process.wait()
        if not self._stderr.closed:
            self._last_words = self.stderr_tail()
            self._stderr.close()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def quit(self) -> None:
        """Ask the host to exit, then make sure it has."""
        if self.process.poll() is None:
            try:
                self.send(bytes([wire.QUIT]))
                self.process.wait(timeout=2)
            except (HostDied, subprocess.TimeoutExpired):
                pass
        self.kill()

    def stderr_tail(self) -> str:
        """The last line the host wrote to stderr (for startup failures)."""
        try:
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            return "no diagnostics"
        return lines[-1] if lines else f"exit status {self.process.poll()}"


class _InProcess:
    """The host's engine in this interpreter: the same messages, no pipes, no watchdog.

    wasmer's objects are bound to the thread that made them, and that thread's stack bounds
    guest recursion, so the engine lives on one thread of its own (see
    `wasmer_host.on_engine_thread`) and messages reach it through queues. A runaway call
    cannot be interrupted in-process: there, the gas limit is what ends it.
    """

    engine: str

    def __init__(self, cache_size: int, max_pages: int) -> None:
        self._requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._replies: queue.SimpleQueue[bytes | Exception] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=wire.on_engine_thread,
            args=(functools.partial(self._serve, cache_size, max_pages),),
            name="agentworld-wasmer", daemon=True)
        self._thread.start()
        reply = self._replies.get()
        if isinstance(reply, Exception):
            raise ExecutorUnavailableError(f"wasmer cannot start here: {reply}")
        self.engine = wire.Reader(reply, 5).text()

    def _serve(self, cache_size: int, max_pages: int) -> int:
        try:
            host = wire.Host(cache_size, max_pages)
        except Exception as exc:  # whatever the engine raises, the client reports it
            self._replies.put(exc)
            return 1
        self._replies.put(host.hello())
        while (body := self._requests.get()) is not None:
            try:
                for reply in host.handle(body):
                    self._replies.put(reply)
            except wire.ProtocolError as exc:
                self._replies.put(exc)
        return 0

    def send(self, body: bytes) -> None:
        """Hand one message to the engine thread."""
        self._requests.put(body)

    def receive(self, deadline: float | None) -> bytes:
        """The next reply (waiting as long as it takes: in-process calls are not interrupted)."""
        reply = self._replies.get()
        if isinstance(reply, Exception):
            raise HostDied(f"the wasmer engine refused a message: {reply}")
        return reply

    def alive(self) -> bool:
        """True while the engine thread runs."""
        return self._thread.is_alive()

    def kill(self) -> None:
        """Stop the engine thread once it is idle."""
        self._requests.put(None)

    def quit(self) -> None:
        """Stop the engine thread once it is idle."""
        self._requests.put(None)


# -- the engine: one host, restarted when it dies ---------------------------------------------


@define
class HostCall:
    """One call for the host: its module (kept to send again to a restarted host), the encoded
    call (`wasmer_host.call_message`) and its wall-clock limit."""

    digest: bytes
    wasm: bytes = field(repr=False)
    message: bytes = field(repr=False)
    max_call_ms: int
    deaths: int = 0


class TimedOut:
    """The call ran past its wall-clock limit; the host running it was killed."""


class CompileTimedOut:
    """Compiling the batch's modules took longer than `compile_timeout_s`."""


class WasmerEngine:
    """wasmer behind one transport: a host process (restarted when it dies) or in-process.

    Thread-safe; calls are serialized. `run` sends a batch as one message and reads one result
    per call as the host finishes it, so each call's wall clock starts when the previous
    result arrives: a call past its limit gets the host killed and the calls after it go to a
    new host. A host that dies otherwise is replaced and the unanswered calls are sent again
    (calls are stateless); one that dies twice on the same call raises
    `ExecutorUnavailableError`, because that is the engine failing, not the guest.
    """

    def __init__(
        self,
        python: str | None,
        *,
        cache_size: int = 256,
        max_pages: int = wire.MAX_PAGES,
        start_timeout_s: float = 60.0,
        compile_timeout_s: float = 60.0,
    ) -> None:
        self.python = python
        self.stats = HostStats()
        self._cache_size = max(1, cache_size)
        self._max_pages = max_pages
        self._start_timeout = start_timeout_s
        self._compile_timeout = compile_timeout_s
        self._lock = threading.Lock()
        self._host: _HostProcess | _InProcess | None = None
        # Modules the current host holds (it forgets them all when it is restarted).
        self._sent: set[bytes] = set()
        self._closed = False

    @property
    def host_pid(self) -> int | None:
        """The running host process's id (None in-process or before the first call)."""
        host = self._host
        return host.pid if isinstance(host, _HostProcess) and host.alive() else None

    def _ensure_host(self) -> _HostProcess | _InProcess:
        if self._closed:
            raise ExecutorUnavailableError("this wasmer engine is closed")
        host = self._host
        if host is not None and host.alive():
            return host
        if host is not None:
            host.kill()
        self._sent.clear()
        if self.python is None:
            host = _InProcess(self._cache_size, self._max_pages)
        else:
            host = _HostProcess(self.python, self._cache_size, self._max_pages,
                                self._start_timeout)
        self._host = host
        self.stats.starts += 1
        return host

    def _drop_host(self) -> None:
        """Kill the host (it may be stuck in a call); the next message starts a new one."""
        if self._host is not None:
            self._host.kill()
            self._host = None
        self._sent.clear()

    def inspect(self, digest: bytes, wasm: bytes) -> tuple[int, dict[str, Any] | None]:
        """Have the host compile and keep `wasm`: (INSPECTED status, its summary when OK).
        Raises `InvalidArtifactError` when compiling outlasts `compile_timeout_s`."""
        body = wire.inspect_message(digest, wasm)
        with self._lock:
            for attempt in (0, 1):
                host = self._ensure_host()
                try:
                    host.send(body)
                    reply = host.receive(time.monotonic() + self._compile_timeout)
                    break
                except _Deadline:
                    self.stats.timeouts += 1
                    self._drop_host()
                    raise InvalidArtifactError(
                        f"compiling the module took longer than {self._compile_timeout} s"
                    ) from None
                except HostDied:
                    self.stats.deaths += 1
                    self._drop_host()
                    if attempt:
                        raise ExecutorUnavailableError(
                            "the wasmer host process died twice compiling one module") from None
            if reply[:1] != bytes([wire.INSPECTED]):
                self._drop_host()
                raise ExecutorUnavailableError("the wasmer host answered out of turn")
            reader = wire.Reader(reply, 1)
            status, payload = reader.u8(), reader.blob()
            self.stats.compiled += 1
            if status != wire.MODULE_OK:
                return status, None
            self._sent.add(digest)
            summary: dict[str, Any] = json.loads(payload)
            return status, summary

    def run(self, calls: Sequence[HostCall]) -> list[wire.Result | TimedOut | CompileTimedOut]:
        """Run calls in order, in as few round trips as the host's health allows."""
        results: dict[int, wire.Result | TimedOut | CompileTimedOut] = {}
        queue = list(enumerate(calls))
        with self._lock:
            while queue:
                queue = self._round_trip(queue, results)
        self.stats.calls += len(calls)
        return [results[index] for index in range(len(calls))]

    def _round_trip(
        self,
        queue: list[tuple[int, HostCall]],
        results: dict[int, wire.Result | TimedOut | CompileTimedOut],
    ) -> list[tuple[int, HostCall]]:
        """Send `queue` as one batch and read what comes back; the calls still to run."""
        host = self._ensure_host()
        modules: dict[bytes, bytes] = {}
        for _, call in queue:
            if call.digest not in self._sent:
                modules.setdefault(call.digest, call.wasm)
        self.stats.batches += 1
        try:
            host.send(wire.batch_message(list(modules.items()), [c.message for _, c in queue]))
            self._sent.update(modules)
            prepared = host.receive(time.monotonic() + self._compile_timeout)
            if prepared[:1] != bytes([wire.PREPARED]):
                raise HostDied("the wasmer host answered BATCH out of turn")
        except _Deadline:
            self.stats.timeouts += 1
            self._drop_host()
            for index, _ in queue:
                results[index] = CompileTimedOut()
            return []
        except HostDied:
            self._host_died(queue[0][1])
            return queue
        retry: list[tuple[int, HostCall]] = []
        done = 0
        try:
            for index, call in queue:
                body = host.receive(time.monotonic() + call.max_call_ms / 1000)
                done += 1
                result = wire.parse_result(body)
                if result.outcome == wire.UNKNOWN_MODULE:
                    # The host evicted it between messages: send it again.
                    self._sent.discard(call.digest)
                    retry.append((index, call))
                else:
                    results[index] = result
                    self.stats.reused += result.reused
        except _Deadline:
            # The call at `done` overran its wall-clock limit: the host is killed, the call
            # fails, and the calls after it go to a new host.
            self.stats.timeouts += 1
            self._drop_host()
            results[queue[done][0]] = TimedOut()
            done += 1
        except (HostDied, wire.ProtocolError):
            self._host_died(queue[done][1])
        return sorted(retry + queue[done:], key=lambda pair: pair[0])

    def _host_died(self, call: HostCall) -> None:
        """The host died running `call`: replace it, or give up if it died there before."""
        self.stats.deaths += 1
        self._drop_host()
        call.deaths += 1
        if call.deaths > 1:
            raise ExecutorUnavailableError("the wasmer host process died twice running one call")

    def close(self) -> None:
        """End the host; later calls raise `ExecutorUnavailableError`."""
        with self._lock:
            self._closed = True
            if self._host is not None:
                self._host.quit()
                self._host = None


def engine_for(options: dict[str, Any], cache_size: int, max_pages: int) -> WasmerEngine:
    """The engine `options` (see `DEFAULT_OPTIONS`) ask for; `ExecutorUnavailableError` with
    how to provision an interpreter when neither mode can run here."""
    if options["mode"] not in ("auto", "host"):
        raise ValueError(f"mode must be 'auto' or 'host', not {options['mode']!r}")
    python = None
    if not (options["mode"] == "auto" and _import_error() is None):
        python = options["python"] or os.environ.get(ENV_PYTHON)
        problem = host_problem(python)
        if problem is not None:
            raise ExecutorUnavailableError(f"{problem}; {PROVISION_HINT}")
    return WasmerEngine(
        python,
        cache_size=cache_size,
        max_pages=max_pages,
        start_timeout_s=float(options["start_timeout_s"]),
        compile_timeout_s=float(options["compile_timeout_s"]),
    )


# -- the engine backend of the executor core ------------------------------------------------


@define(eq=False)
class HostModule:
    """A module compiled by the host: its hash and its bytes, to send again to a new host."""

    digest: bytes
    wasm: bytes = field(repr=False)


class WasmerBackend(BackendDefaults):
    """wasmer as an `agentworld.engine.EngineBackend`: the executor core instruments, plans,
    caches, classifies and decodes; this runs instrumented modules on a `WasmerEngine`, a whole
    batch in one round trip. Gas and growth limits are in the instrumented code; the engine's
    own ceiling on one memory (the host lowers every module's declared maximum to it) is only a
    backstop."""

    name = "wasmer"
    # Calls run on the engine's own thread (in the host, or in-process), with its own stack.
    native_stack_bytes: int | None = None

    def __init__(self, engine: WasmerEngine, *, reuse_instances: bool = True) -> None:
        self.engine = engine
        self.reuse_instances = reuse_instances
        # Engine and version, file-name safe: it keys compiled code on disk.
        self.fingerprint = re.sub(r"[^A-Za-z0-9.]+", "-", engine_version(engine.python))
        self._headers: dict[tuple[Any, ...], bytes] = {}

    def compile(self, wasm: bytes) -> HostModule:
        """Have the host compile (and keep) instrumented bytes."""
        digest = hashlib.sha256(wasm).digest()
        try:
            status, _ = self.engine.inspect(digest, wasm)
        except InvalidArtifactError as exc:
            raise EngineCompileError(str(exc)) from None
        if status != wire.MODULE_OK:
            raise EngineCompileError("wasmer refused the module")
        return HostModule(digest, wasm)

    def run(self, module: Any, plan: CallPlan, data: bytes, limits: CallLimits) -> RunResult:
        """One call in a fresh instance; raise `EngineFailure`."""
        (result,) = self.run_batch([(module, plan, data, limits)])
        if isinstance(result, EngineFailure):
            raise result
        return result

    def run_batch(self, jobs: Sequence[Job]) -> list[RunResult | EngineFailure]:
        """Independent calls in order, in one round trip to the host; failures in place."""
        calls = []
        for module, plan, data, limits in jobs:
            assert isinstance(module, HostModule)
            header = self._headers.get((module, plan, limits))
            if header is None:
                header = self._header(module, plan, limits)
            message = wire.call_message(header, data)
            calls.append(HostCall(module.digest, module.wasm, message, limits.max_call_ms))
        return [_engine_result(answer) for answer in self.engine.run(calls)]

    def _header(self, module: HostModule, plan: CallPlan, limits: CallLimits) -> bytes:
        """The call header for a module, plan and limits (built once, then looked up)."""
        if len(self._headers) >= 4096:
            self._headers.clear()
        header = self._headers[(module, plan, limits)] = wire.call_header(
            module.digest, entry=plan.entry_export, shape=wire.SHAPE_METERED,
            max_output=min(limits.max_output_bytes, 0xFFFFFFFF), ret_area=plan.ret_area,
            memory=plan.memory_export, alloc=plan.entry_export,
            alloc_args=[(wire.VAL_I32, 0), (wire.VAL_I64, limits.max_gas),
                        (wire.VAL_I64, limits.max_mem_bytes)],
            get_globals=[plan.gas_export, plan.refused_export, plan.stack_export],
            reset=plan.reset_export if self.reuse_instances else "",
        )
        return header

    def close(self) -> None:
        """End the host process."""
        self.engine.close()


def _engine_result(answer: wire.Result | TimedOut | CompileTimedOut) -> RunResult | EngineFailure:
    """One host answer in the executor core's terms."""
    if not isinstance(answer, wire.Result):
        return EngineFailure(TIMEOUT)
    outcome = answer.outcome
    if outcome == wire.OK:
        return answer.output, answer.gas_left
    instance = answer.stage != wire.STAGE_INSTANTIATE
    gas_left = answer.values[0] if instance and answer.values else None
    refused = bool(instance and len(answer.values) > 1 and answer.values[1])
    stack_left = answer.values[2] if instance and len(answer.values) > 2 else None
    if outcome == wire.TRAP:
        reason = wire.TRAP_KINDS[answer.trap] if answer.trap < len(wire.TRAP_KINDS) else "unknown"
        return EngineFailure(TRAP, trap=reason, gas_left=gas_left, stack_left=stack_left,
                             grow_refused=refused)
    if outcome == wire.ALLOC_OUT_OF_BOUNDS:
        return EngineFailure(ALLOC_OUT_OF_BOUNDS, pointer=answer.a, size=answer.b,
                             gas_left=gas_left)
    if outcome == wire.OUTPUT_TOO_LARGE:
        return EngineFailure(OUTPUT_TOO_LARGE, size=answer.a, gas_left=gas_left)
    if outcome == wire.OUTPUT_OUT_OF_BOUNDS:
        return EngineFailure(OUTPUT_OUT_OF_BOUNDS, pointer=answer.a, size=answer.b,
                             gas_left=gas_left)
    return EngineFailure(ENGINE_ERROR, gas_left=gas_left)


class WasmerExecutor(EngineExecutor):
    """The wasmer executor: the engine-neutral core on a `WasmerBackend`.

    `config.options` are described by `DEFAULT_OPTIONS`; `ExecutorUnavailableError` when wasmer
    can run neither in this interpreter nor in a host process.
    """

    def __init__(self, config: ExecutorConfig | None = None) -> None:
        config = config or ExecutorConfig()
        unknown = set(config.options) - set(DEFAULT_OPTIONS)
        if unknown:
            raise ExecutorConfigError(
                f"unknown wasmer executor options: {', '.join(sorted(unknown))}")
        self.options = {**DEFAULT_OPTIONS, **config.options}
        engine = engine_for(self.options, max(1, config.memory_cache_size),
                            int(self.options["max_memory_bytes"]) // _PAGE)
        self.wasmer = WasmerBackend(engine, reuse_instances=bool(self.options["reuse_instances"]))
        super().__init__(self.wasmer, config)

    @property
    def in_process(self) -> bool:
        """True when wasmer runs in this interpreter rather than in a host process."""
        return self.wasmer.engine.python is None

    @property
    def host_stats(self) -> HostStats:
        """The host's counters: starts, timeouts, deaths, batches, calls, compiles."""
        return self.wasmer.engine.stats

    @property
    def host_pid(self) -> int | None:
        """The running host process's id (None in-process or before the first call)."""
        return self.wasmer.engine.host_pid


@hookimpl
def agentworld_register_executors(register: Callable[..., None]) -> None:
    """Register the wasmer executor (as unavailable, with how to fix it, when it cannot run)."""
    register("wasmer", WasmerExecutor, unavailable_reason=unavailable_reason(),
             description=DESCRIPTION)
