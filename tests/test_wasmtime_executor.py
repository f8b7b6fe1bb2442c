"""The wasmtime executor beyond the conformance kit: caches, options, watchdog, plugin entry."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from attrs import evolve

from agentworld.backends.wasmtime_executor import WasmtimeExecutor
from agentworld.compile_cache import KEY_ENV, DiskCache, default_key_file
from agentworld.engine_executor import cache_context
from agentworld.errors import ExecutorConfigError, StoreError
from agentworld.executor import (
    CURRENT_GAS_SCHEDULE,
    CallLimits,
    CallRequest,
    ExecutorConfig,
    ModuleCallError,
)
from agentworld.manager import PluginManager
from agentworld.metering import INSTRUMENTATION_FORMAT
from agentworld.testing.conformance import counter_output, counter_request, guest_request
from agentworld.testing.guests import guest_wasm


@pytest.fixture
def make_executor() -> Iterator[type[WasmtimeExecutor]]:
    built: list[WasmtimeExecutor] = []

    class Tracked(WasmtimeExecutor):
        def __init__(self, config: ExecutorConfig | None = None) -> None:
            super().__init__(config)
            built.append(self)

    yield Tracked
    for executor in built:
        executor.close()


def cache_files(root: Path) -> list[Path]:
    return sorted(root.glob("wasmtime-*/*.cwasm"))


def cache_name(guest: str) -> str:
    return (hashlib.sha256(guest_wasm(guest)).hexdigest()
            + f"-g{CURRENT_GAS_SCHEDULE}-f{INSTRUMENTATION_FORMAT}.cwasm")


def test_plugin_registers_an_available_executor() -> None:
    entry = PluginManager(entrypoints=False).executors()["wasmtime"]
    assert entry.available
    assert entry.description


def test_disk_cache_serves_a_second_executor_without_compiling(
    make_executor: type[WasmtimeExecutor], tmp_path: Path
) -> None:
    first = make_executor(ExecutorConfig(cache_dir=tmp_path))
    assert first.call(counter_request(1)) == counter_output(2)
    assert (first.stats.compiled, first.stats.disk_writes) == (1, 1)
    (cached,) = cache_files(tmp_path)
    assert cached.name == cache_name("counter")

    second = make_executor(ExecutorConfig(cache_dir=tmp_path))
    assert second.call(counter_request(5)) == counter_output(6)
    assert (second.stats.compiled, second.stats.disk_hits) == (0, 1)


def test_modules_checked_at_deploy_reach_the_disk_cache(
    make_executor: type[WasmtimeExecutor], tmp_path: Path
) -> None:
    first = make_executor(ExecutorConfig(cache_dir=tmp_path))
    first.check_artifact(guest_wasm("counter"))
    assert (first.stats.compiled, first.stats.disk_writes) == (1, 1)
    assert first.call(counter_request(1)) == counter_output(2)
    assert first.stats.compiled == 1  # the deploy-time compile serves the calls

    second = make_executor(ExecutorConfig(cache_dir=tmp_path))
    assert "reduce" in second.check_artifact(guest_wasm("counter"))
    assert (second.stats.compiled, second.stats.disk_hits) == (0, 1)


def _corrupt(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 0xFF
    path.write_bytes(bytes(blob))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _foreign(path: Path) -> None:
    # A valid cache file, but for another module: its header names another hash.
    other = path.parent / cache_name("observer")
    path.write_bytes(other.read_bytes())


def _junk(path: Path) -> None:
    path.write_bytes(b"not a cache file")


@pytest.mark.parametrize("damage", [_corrupt, _truncate, _foreign, _junk])
def test_damaged_cache_file_is_discarded_and_recompiled(
    make_executor: type[WasmtimeExecutor], tmp_path: Path, damage: object
) -> None:
    writer = make_executor(ExecutorConfig(cache_dir=tmp_path))
    writer.call(counter_request(1))
    writer.call(guest_request("observer"))
    (counter_file,) = [path for path in cache_files(tmp_path) if path.name == cache_name("counter")]
    assert callable(damage)
    damage(counter_file)

    reader = make_executor(ExecutorConfig(cache_dir=tmp_path))
    assert reader.call(counter_request(1)) == counter_output(2)
    assert (reader.stats.disk_discarded, reader.stats.compiled, reader.stats.disk_writes) == (
        1,
        1,
        1,
    )
    # The rewritten file is good again.
    again = make_executor(ExecutorConfig(cache_dir=tmp_path))
    assert again.call(counter_request(1)) == counter_output(2)
    assert (again.stats.disk_hits, again.stats.compiled) == (1, 0)


def test_cache_directory_is_keyed_by_engine_settings(
    make_executor: type[WasmtimeExecutor], tmp_path: Path
) -> None:
    make_executor(ExecutorConfig(cache_dir=tmp_path)).call(counter_request(1))
    other = make_executor(ExecutorConfig(cache_dir=tmp_path, options={"allocator": "on-demand"}))
    other.call(counter_request(1))
    assert other.stats.compiled == 1
    assert len({path.parent for path in cache_files(tmp_path)}) == 2


def test_memory_cache_is_lru(make_executor: type[WasmtimeExecutor]) -> None:
    executor = make_executor(ExecutorConfig(memory_cache_size=2))
    executor.call(counter_request(1))
    executor.call(guest_request("observer"))
    executor.call(counter_request(1))  # counter is now the most recently used
    executor.call(guest_request("effector"))  # evicts observer
    assert (executor.stats.compiled, executor.stats.evictions) == (3, 1)
    executor.call(counter_request(1))
    assert executor.stats.compiled == 3
    executor.call(guest_request("observer"))
    assert (executor.stats.compiled, executor.stats.evictions) == (4, 2)


def test_cached_module_never_loads_its_bytes_again(make_executor: type[WasmtimeExecutor]) -> None:
    executor = make_executor()
    executor.check_artifact(guest_wasm("counter"))
    loads: list[int] = []

    def loader() -> bytes:
        loads.append(1)
        return guest_wasm("counter")

    template = counter_request(3)
    request = CallRequest(
        module_id=template.module_id,
        instance_id=template.instance_id,
        wasm_hash=template.wasm_hash,
        wasm=loader,
        entrypoint=template.entrypoint,
        input=template.input,
        kind=template.kind,
    )
    assert executor.call(request) == counter_output(4)
    assert loads == []
    assert executor.stats.compiled == 1


def test_missing_or_mismatched_artifact(make_executor: type[WasmtimeExecutor]) -> None:
    executor = make_executor()
    template = guest_request("observer")

    def missing() -> bytes:
        raise StoreError("no blob")

    for wasm in (missing, guest_wasm("counter")):
        request = CallRequest(
            module_id="m",
            instance_id="m#1",
            wasm_hash=template.wasm_hash,
            wasm=wasm,
            entrypoint="call",
            input=template.input,
        )
        with pytest.raises(ModuleCallError) as failure:
            executor.call(request)
        assert failure.value.code == "artifact_missing"


def test_initial_memory_above_the_call_limit(make_executor: type[WasmtimeExecutor]) -> None:
    executor = make_executor()
    with pytest.raises(ModuleCallError) as failure:
        executor.call(guest_request("observer", max_mem_bytes=32 * 1024))
    assert failure.value.code == "memory_limit"


def test_memory_bomb_detail_names_the_limit(make_executor: type[WasmtimeExecutor]) -> None:
    executor = make_executor()
    with pytest.raises(ModuleCallError) as failure:
        executor.call(guest_request("membomb", max_mem_bytes=1024 * 1024))
    assert failure.value.code == "memory_limit"
    assert "1048576" in failure.value.detail


def test_plain_trap_near_no_limit_stays_a_trap(make_executor: type[WasmtimeExecutor]) -> None:
    executor = make_executor()
    with pytest.raises(ModuleCallError) as failure:
        executor.call(guest_request("unreachable"))
    assert failure.value.code == "trap"
    assert "unreachable" in failure.value.detail
    assert "\n" not in failure.value.detail  # the engine's message, without the backtrace


def test_watchdog_thread_stops_on_close() -> None:
    executor = WasmtimeExecutor()
    assert executor.watchdog.is_alive() and executor.watchdog.daemon
    executor.close()
    assert not executor.watchdog.is_alive()
    with pytest.raises(ModuleCallError) as failure:
        executor.call(counter_request(1))
    assert failure.value.code == "engine_unavailable"


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ValueError, match="bogus"):
        WasmtimeExecutor(ExecutorConfig(options={"bogus": 1}))


# -- the warm-instance path (benchmarks and diagnostics) and fresh-instance isolation -----------

# Counts its calls in a global and returns the count: a fresh instance always says 1.
CALL_COUNTER_WAT = """
(module
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 0) (global.get $calls))
    (i32.const 0) (i32.const 1)))
"""


def _call_counter_request() -> CallRequest:
    wasm = bytes(wasmtime.wat2wasm(CALL_COUNTER_WAT))
    return CallRequest(
        module_id="m.calls",
        instance_id="m.calls#1",
        wasm_hash=hashlib.sha256(wasm).hexdigest(),
        wasm=wasm,
        entrypoint="call",
        input=b"",
        kind="pure",
    )


def test_warm_instance_returns_what_invoke_returns(make_executor: type[WasmtimeExecutor]) -> None:
    executor = make_executor()
    payload = bytes(range(256))
    echo = guest_request("echo", input=payload)
    with executor.warm_instance(echo) as warm:
        assert warm.invoke(payload) == executor.invoke(echo) == payload
        # Past the first page: the bump allocator grows memory, output checks follow it.
        for index in range(1_000):
            data = index.to_bytes(4, "little") * 64
            assert warm.invoke(data) == data
    assert warm.closed


@pytest.mark.parametrize("entrypoint", ["reduce", "reduce_packed", "reduce_retarea"])
def test_warm_instance_handles_every_entrypoint_shape(
    make_executor: type[WasmtimeExecutor], entrypoint: str
) -> None:
    executor = make_executor()
    request = counter_request(7, entrypoint=entrypoint)
    with executor.warm_instance(request) as warm:
        for _ in range(3):
            assert warm.invoke(request.input) == executor.invoke(request)


def test_warm_instance_trap_is_classified_like_a_fresh_call(
    make_executor: type[WasmtimeExecutor],
) -> None:
    executor = make_executor()
    for request in (
        guest_request("unreachable"),
        guest_request("divzero"),
        guest_request("loop"),
        guest_request("huge"),
        guest_request("badptr"),
        guest_request("membomb", max_mem_bytes=1024 * 1024),
    ):
        with pytest.raises(ModuleCallError) as fresh:
            executor.invoke(request)
        with executor.warm_instance(request) as warm:
            for _ in range(2):  # a failed call leaves the instance usable, and classified alike
                with pytest.raises(ModuleCallError) as reused:
                    warm.invoke(request.input)
                assert (reused.value.code, reused.value.detail) == (
                    fresh.value.code,
                    fresh.value.detail,
                ), request.module_id


def test_warm_instance_refuels_and_rearms_the_deadline_per_call(
    make_executor: type[WasmtimeExecutor],
) -> None:
    executor = make_executor()
    # Instantiation (data segments are copied, metered) plus one echo call fit in 500 units of
    # fuel; 50 calls of a few dozen units each only fit if every call is refuelled.
    echo = guest_request("echo", input=b"x" * 256, max_gas=500, max_call_ms=10)
    with executor.warm_instance(echo) as warm:
        for _ in range(50):
            assert warm.invoke(echo.input) == echo.input
        time.sleep(0.1)  # far past the first call's deadline (10 ms, 5 ms ticks)
        assert warm.invoke(echo.input) == echo.input


def test_closed_warm_instance_refuses_calls(make_executor: type[WasmtimeExecutor]) -> None:
    executor = make_executor()
    echo = guest_request("echo", input=b"abc")
    warm = executor.warm_instance(echo)
    executor.close()  # closes the warm instances still open
    assert warm.closed
    with pytest.raises(ModuleCallError) as failure:
        warm.invoke(b"abc")
    assert failure.value.code == "engine_unavailable"
    warm.close()  # idempotent


def test_warm_instance_keeps_guest_memory_but_invoke_never_does(
    make_executor: type[WasmtimeExecutor],
) -> None:
    executor = make_executor()
    request = _call_counter_request()
    assert [executor.invoke(request) for _ in range(3)] == [b"\x01"] * 3
    with executor.warm_instance(request) as warm:
        assert [warm.invoke(b"") for _ in range(3)] == [b"\x01", b"\x02", b"\x03"]
    assert executor.invoke(request) == b"\x01"
    # The counter reducer, called twice with the same input, answers the same.
    assert executor.call(counter_request(5)) == executor.call(counter_request(5))
    assert executor.call(counter_request(5)) == counter_output(6)


# -- the compile cache is authenticated ---------------------------------------------------------


def test_a_forged_cache_entry_is_not_loaded(
    make_executor: type[WasmtimeExecutor], tmp_path: Path
) -> None:
    """Someone who can write the cache directory but lacks its key puts other code (the
    observer's) under the counter's names, with MACs made with a key of their own."""
    cache, elsewhere = tmp_path / "cache", tmp_path / "theirs"
    ours = make_executor(ExecutorConfig(cache_dir=cache, cache_key_file=tmp_path / "ours.key"))
    ours.call(counter_request(1))
    make_executor(ExecutorConfig(cache_dir=elsewhere, cache_key_file=tmp_path / "theirs.key")
                  ).call(guest_request("observer"))
    their_key = (tmp_path / "theirs.key").read_bytes()
    counter_hash = hashlib.sha256(guest_wasm("counter")).hexdigest()
    header = len(b"agentworld-cache\x03") + 32
    for kind, suffix in (("compiled", ".cwasm"), ("instrumented", ".wasm")):
        (source,) = elsewhere.glob(f"*/*{suffix}")
        (target,) = cache.glob(f"*/{counter_hash}*{suffix}")
        context = cache_context(kind, ours.backend.fingerprint, counter_hash, 1)
        forger = DiskCache(target.parent, their_key)
        assert forger.write(target.name, context, source.read_bytes()[header:])

    reader = make_executor(ExecutorConfig(cache_dir=cache, cache_key_file=tmp_path / "ours.key"))
    assert reader.call(counter_request(1)) == counter_output(2)
    assert (reader.stats.disk_discarded, reader.stats.compiled) == (2, 1)


def test_the_cache_key_is_created_private_and_outside_the_cache(
    make_executor: type[WasmtimeExecutor], tmp_path: Path
) -> None:
    key_file = tmp_path / "config" / "agentworld" / "compile-cache.key"
    make_executor(ExecutorConfig(cache_dir=tmp_path / "cache", cache_key_file=key_file))
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(key_file.read_bytes()) == 32
    with pytest.raises(ExecutorConfigError, match="inside the cache directory"):
        make_executor(ExecutorConfig(cache_dir=tmp_path / "cache",
                                     cache_key_file=tmp_path / "cache" / "k"))


def test_the_default_key_file_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "k"))
    assert default_key_file() == tmp_path / "k"
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert default_key_file() == tmp_path / "xdg" / "agentworld" / "compile-cache.key"


def test_a_cache_dir_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    regular = tmp_path / "cache"
    regular.write_text("not a directory")
    with pytest.raises(ExecutorConfigError, match="not a directory"):
        WasmtimeExecutor(ExecutorConfig(cache_dir=regular))


def test_memory_cache_size_zero_keeps_no_module(make_executor: type[WasmtimeExecutor]) -> None:
    executor = make_executor(ExecutorConfig(memory_cache_size=0))
    for count in (1, 2, 3):
        assert executor.call(counter_request(count)) == counter_output(count + 1)
    assert executor.stats.compiled == 3


# -- batches, threads -------------------------------------------------------------------------


def test_a_batch_reaches_the_backend_in_one_go(make_executor: type[WasmtimeExecutor]) -> None:
    executor = make_executor()
    batches: list[int] = []
    run_batch = executor.backend.run_batch

    def counting(jobs: Any) -> Any:
        batches.append(len(jobs))
        return run_batch(jobs)

    executor.backend.run_batch = counting  # type: ignore[method-assign]
    results = executor.call_batch([counter_request(1), guest_request("noalloc"),
                                   guest_request("divzero"), counter_request(5)])
    assert batches == [3]  # noalloc fails in planning; the other three run in one batch
    assert [getattr(result, "code", None) for result in results] == [None, "trap", "trap", None]



def test_a_batch_prepares_each_call_as_a_lone_call_would(
    make_executor: type[WasmtimeExecutor],
) -> None:
    # Runs of one module are prepared once, but a call with other limits in the middle of a
    # run is judged by its own limits, and a module cache that keeps nothing loads every call.
    executor = make_executor(ExecutorConfig(memory_cache_size=0))
    tight = evolve(counter_request(2), limits=CallLimits(max_mem_bytes=1024))
    batch = [counter_request(1), tight, counter_request(3), counter_request(4)]
    results = executor.call_batch(batch)
    assert results[0] == counter_output(2) and results[2:] == [counter_output(4),
                                                                 counter_output(5)]
    assert isinstance(results[1], ModuleCallError) and results[1].code == "memory_limit"
    assert executor.stats.compiled == 4
    cached = make_executor()
    again = cached.call_batch(batch)
    assert [r for i, r in enumerate(again) if i != 1] == [r for i, r in enumerate(results)
                                                           if i != 1]
    assert isinstance(again[1], ModuleCallError) and again[1].detail == results[1].detail
    assert cached.stats.compiled == 1

SMALL_STACK_SCRIPT = """
import sys, threading
from agentworld.executor import ExecutorConfig, ModuleCallError
from agentworld.manager import PluginManager
from agentworld.testing.conformance import counter_request, guest_request

executor = PluginManager(entrypoints=False).create_executor("wasmtime", ExecutorConfig())
seen = []

def drive():
    for _ in range(2):
        try:
            executor.call(guest_request("recursion"))
            seen.append("returned")
        except ModuleCallError as failure:
            seen.append(f"{failure.code}: {failure.detail}")
    seen.append(str(executor.call(counter_request(1)).gas_used > 0))

threading.stack_size(512 * 1024)
thread = threading.Thread(target=drive)
thread.start()
thread.join()
print("|".join(seen))
"""


@pytest.mark.slow
def test_deep_recursion_from_a_thread_with_a_small_stack_traps(tmp_path: Path) -> None:
    completed = subprocess.run([sys.executable, "-c", SMALL_STACK_SCRIPT], capture_output=True,
                               text=True, timeout=120, cwd=tmp_path)
    assert completed.returncode == 0, (completed.returncode, completed.stderr[-2000:])
    assert completed.stdout.strip() == (
        "trap: trap: call stack exhausted|trap: trap: call stack exhausted|True")


def _leaky() -> CallRequest:
    return guest_request("leaky", entrypoint="reduce", kind="reducer")


def test_a_batch_reuses_a_reset_instance_that_is_as_fresh_as_a_new_one(
    make_executor: type[WasmtimeExecutor],
) -> None:
    """The leaky guest changes globals, memory, tables and passive segments at every call and
    reports what it started from: every call of a batch sees a fresh instance, though all but
    the first ran in the first one's instance, reset."""
    executor = make_executor()
    fresh = executor.call(_leaky())
    before = executor.wasmtime.reused_calls
    assert executor.call_batch([_leaky()] * 5) == [fresh] * 5
    assert executor.wasmtime.reused_calls - before == 4
    # A trap in the middle: the call after it gets a new instance, as fresh.
    batch = [_leaky(), guest_request("unreachable"), _leaky(), _leaky()]
    results = executor.call_batch(batch)
    assert results[0] == results[2] == results[3] == fresh
    assert isinstance(results[1], ModuleCallError) and results[1].code == "trap"


def test_instances_are_reused_only_for_the_same_module_plan_and_limits(
    make_executor: type[WasmtimeExecutor],
) -> None:
    executor = make_executor()
    reused = executor.wasmtime
    alternating = [counter_request(1), _leaky(), counter_request(2), _leaky()]
    expected = [executor.call(request) for request in alternating]
    before = reused.reused_calls
    assert executor.call_batch(alternating) == expected
    other_limits = [_leaky(), evolve(_leaky(), limits=CallLimits(max_gas=123_456_789))]
    assert executor.call_batch(other_limits) == [executor.call(r) for r in other_limits]
    assert reused.reused_calls == before


@pytest.mark.parametrize("options", [{"reuse_instances": False}, {"reuse_max_bytes": 0}])
def test_reuse_can_be_turned_off_and_changes_no_result(
    make_executor: type[WasmtimeExecutor], options: dict[str, Any]
) -> None:
    reusing, fresh_only = make_executor(), make_executor(ExecutorConfig(options=options))
    batch = [_leaky(), _leaky(), counter_request(1), counter_request(1), _leaky()]
    assert fresh_only.call_batch(batch) == reusing.call_batch(batch)
    assert fresh_only.wasmtime.reused_calls == 0 and reusing.wasmtime.reused_calls == 2
