"""The executor conformance kit: one set of cases every executor must pass.

Use it from a test module by subclassing and overriding the `executor` fixture::

    import pytest
    from agentworld.testing.conformance import ExecutorConformance

    class TestMyExecutor(ExecutorConformance):
        @pytest.fixture
        def executor(self):
            executor = MyExecutor(ExecutorConfig())
            yield executor
            executor.close()

Every case asserts an exact output or failure code (and exact gas where the guest's gas is
counted by hand in its source), and after every hostile call the same executor must still
serve a good call correctly.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from agentworld.abi import encode_input
from agentworld.executor import (
    CallLimits,
    CallRequest,
    Executor,
    InvalidArtifactError,
    ModuleCallError,
    ModuleOutput,
)
from agentworld.testing.guests import guest_wasm

COUNTER_GAS = 3086
"""The gas one call of the counter reducer (state 41) uses under schedule 1."""

TIMEOUT_MARGIN_MS = 250
"""How late past `max_call_ms` a runaway call may return (the watchdog, plus a busy CI box)."""


def sample_context(stage: str = "tick", module_id: str = "m.counter") -> dict[str, Any]:
    """A realistic call context, shaped like the world's."""
    return {
        "v": "wasm-1",
        "module_id": module_id,
        "instance_id": f"{module_id}#1",
        "module_version": "1.0.0",
        "trace_id": f"tick-7-{module_id}#1",
        "stage": stage,
        "time": 7,
        "origin": {"kind": "tick", "id": "7"},
        "install_target": {"type": "self_agent"},
        "manifest_hash": "ab" * 32,
        "world_config_hash": "cd" * 32,
    }


def counter_state(count: int) -> bytes:
    """The counter guest's state bytes for `count` (8 bytes, little-endian)."""
    return struct.pack("<Q", count)


def guest_request(
    name: str,
    *,
    entrypoint: str = "call",
    kind: str = "pure",
    input: bytes | None = None,
    limits: CallLimits | None = None,
    **limit_overrides: int,
) -> CallRequest:
    """A `CallRequest` for example guest `name` (tick context and empty state by default)."""
    wasm = guest_wasm(name)
    if input is None:
        state = b"" if kind == "reducer" else None
        input = encode_input(sample_context(), state=state)
    if limits is None:
        limits = CallLimits(**limit_overrides)
    return CallRequest(
        module_id=f"m.{name}",
        instance_id=f"m.{name}#1",
        wasm_hash=hashlib.sha256(wasm).hexdigest(),
        wasm=wasm,
        entrypoint=entrypoint,
        input=input,
        limits=limits,
        kind=kind,
    )


def counter_request(count: int, entrypoint: str = "reduce") -> CallRequest:
    """A call of the counter reducer whose current state is `count`."""
    state = counter_state(count) if count else b""
    return guest_request(
        "counter",
        entrypoint=entrypoint,
        kind="reducer",
        input=encode_input(sample_context(), state=state),
    )


def counter_output(count: int) -> ModuleOutput:
    """What the counter guest returns when its new count is `count`."""
    return ModuleOutput(
        new_state=counter_state(count),
        emits=({"kind": "counter.ticked", "payload": {"count": count}},),
    )


def move_action(to: list[int], action_id: int = 41) -> dict[str, Any]:
    """A `move_agent` action envelope as the world routes it."""
    return {"action_id": action_id, "type": "move_agent", "data": {"agent_id": "a", "to": to}}


def _rule_payload(output: ModuleOutput) -> Mapping[str, Any]:
    (emit,) = output.emits
    assert emit["kind"] == "rule.decision"
    payload: Mapping[str, Any] = emit["payload"]
    return payload


# (hostile guest, the failure code it must produce under the default limits)
HOSTILE_CASES: list[tuple[str, str]] = [
    ("loop", "out_of_fuel"),
    ("membomb", "memory_limit"),
    ("tablebomb", "memory_limit"),
    ("bigmem", "memory_limit"),
    ("huge", "output_too_large"),
    ("garbage", "invalid_output"),
    ("badptr", "invalid_output"),
    ("unreachable", "trap"),
    ("divzero", "trap"),
    ("recursion", "trap"),
    ("noalloc", "trap"),
    ("noentry", "trap"),
    ("imports", "trap"),
]


class ExecutorConformance:
    """The conformance cases; subclass it (as `Test...`) and override `executor`."""

    @pytest.fixture
    def executor(self) -> Iterator[Executor]:
        """The executor under test: override this fixture in your subclass."""
        pytest.fail("override the `executor` fixture to return the executor under test")
        yield  # pragma: no cover

    def assert_serves_good_call(self, executor: Executor) -> None:
        """The executor still runs a well-behaved guest correctly."""
        assert executor.call(counter_request(41)) == counter_output(42)

    # -- the ABI --------------------------------------------------------------------------

    @pytest.mark.parametrize("entrypoint", ["reduce", "reduce_packed", "reduce_retarea"])
    def test_entrypoint_signatures(self, executor: Executor, entrypoint: str) -> None:
        """All three wasm-1 entrypoint shapes give the same output."""
        assert executor.call(counter_request(6, entrypoint)) == counter_output(7)

    def test_reducer_state_round_trip(self, executor: Executor) -> None:
        """State goes in, new_state comes out, and feeds the next call."""
        state = b""
        for expected in (1, 2, 3):
            request = guest_request(
                "counter",
                entrypoint="reduce",
                kind="reducer",
                input=encode_input(sample_context(), state=state),
            )
            output = executor.call(request)
            assert output == counter_output(expected)
            assert output.new_state is not None
            state = output.new_state

    def test_pure_module_returning_state_is_invalid(self, executor: Executor) -> None:
        """A pure module's output may not carry new_state."""
        request = guest_request("counter", entrypoint="reduce", kind="pure")
        with pytest.raises(ModuleCallError) as failure:
            executor.call(request)
        assert failure.value.code == "invalid_output"
        self.assert_serves_good_call(executor)

    def test_calls_are_deterministic_and_isolated(self, executor: Executor) -> None:
        """The same call twice gives the same output: no guest memory survives a call."""
        request = counter_request(9)
        assert executor.call(request) == executor.call(request) == counter_output(10)

    def test_observer_sees_stage_event_and_action(self, executor: Executor) -> None:
        """The input's CBOR maps reach the guest intact and come back verbatim."""
        event = {"id": 3, "time": 2, "caused_by": {"action": 1}, "kind": "x.y", "data": {"n": 1}}
        action = move_action([1, 2])
        context = sample_context("post_action")
        request = guest_request(
            "observer", input=encode_input(context, event=event, action=action)
        )
        payload = {"stage": "post_action", "origin": context["origin"],
                   "trace_id": context["trace_id"], "event": event, "action": action}
        assert executor.call(request) == ModuleOutput(
            emits=({"kind": "observer.saw", "payload": payload},)
        )
        context = sample_context("tick")
        request = guest_request("observer", input=encode_input(context))
        assert executor.call(request).emits[0]["payload"] == {
            "stage": "tick",
            "origin": context["origin"],
            "trace_id": context["trace_id"],
            "event": None,
            "action": None,
        }

    @pytest.mark.parametrize(
        ("to", "expected"),
        [
            ([13, 13], {"verdict": "deny", "notes": "cell 13,13 is forbidden"}),
            (
                [7, 7],
                {
                    "verdict": "modify",
                    "override_action": {
                        "type": "move_agent",
                        "data": {"agent_id": "a", "to": [8, 8]},
                    },
                    "notes": "7,7 is redirected to 8,8",
                },
            ),
            ([1, 2], {"verdict": "allow", "notes": ""}),
        ],
    )
    def test_rule_decisions(
        self, executor: Executor, to: list[int], expected: dict[str, Any]
    ) -> None:
        """The rule guest reads the routed action and decides on it."""
        context = sample_context("pre_action", "m.rule")
        request = guest_request("rule", input=encode_input(context, action=move_action(to)))
        assert _rule_payload(executor.call(request)) == {"action_id": 41, **expected}

    @pytest.mark.parametrize(
        ("guest", "binding"),
        [("effector", {"cap_slot": "pay"}), ("effector_ref", {"cap_ref": "cap.bank"})],
    )
    def test_effects(self, executor: Executor, guest: str, binding: dict[str, str]) -> None:
        """Effects come back with their capability binding."""
        effect = {"kind": "bank.pay", "params": {"amount": 1}, **binding}
        assert executor.call(guest_request(guest)) == ModuleOutput(effects=(effect,))

    @pytest.mark.parametrize(
        ("guest", "lifecycle"),
        [
            ("sleeper", {"mode": "wake_after_ticks", "ticks": 3}),
            ("suspender", {"mode": "suspend"}),
        ],
    )
    def test_tick_lifecycle(
        self, executor: Executor, guest: str, lifecycle: dict[str, Any]
    ) -> None:
        """Reducers can ask to sleep or suspend."""
        output = executor.call(guest_request(guest, entrypoint="reduce", kind="reducer"))
        assert output == ModuleOutput(new_state=counter_state(1), tick_lifecycle=lifecycle)

    # -- limits ---------------------------------------------------------------------------

    def test_emit_limit(self, executor: Executor) -> None:
        """More emits than max_emits fail the call."""
        request = guest_request("counter", entrypoint="reduce", kind="reducer", max_emits=0)
        with pytest.raises(ModuleCallError) as failure:
            executor.call(request)
        assert failure.value.code == "emit_limit_exceeded"
        self.assert_serves_good_call(executor)

    def test_effect_limit(self, executor: Executor) -> None:
        """More effects than max_effects fail the call."""
        with pytest.raises(ModuleCallError) as failure:
            executor.call(guest_request("effector", max_effects=0))
        assert failure.value.code == "effect_limit_exceeded"
        self.assert_serves_good_call(executor)

    def test_output_limit(self, executor: Executor) -> None:
        """An output longer than max_output_bytes fails the call."""
        request = guest_request("counter", entrypoint="reduce", kind="reducer", max_output_bytes=8)
        with pytest.raises(ModuleCallError) as failure:
            executor.call(request)
        assert failure.value.code == "output_too_large"
        self.assert_serves_good_call(executor)

    # -- hostile guests -------------------------------------------------------------------

    @pytest.mark.parametrize(("guest", "code"), HOSTILE_CASES)
    def test_hostile_guest(self, executor: Executor, guest: str, code: str) -> None:
        """Each hostile guest fails with its exact code, and the executor carries on."""
        with pytest.raises(ModuleCallError) as failure:
            executor.call(guest_request(guest))
        assert failure.value.code == code, failure.value.detail
        assert failure.value.detail
        if guest == "recursion":
            assert failure.value.detail == "trap: call stack exhausted"
        self.assert_serves_good_call(executor)

    def test_runaway_guest_times_out(self, executor: Executor) -> None:
        """With fuel to spare, the wall-clock limit stops an infinite loop on time."""
        request = guest_request("loop", max_gas=10**15, max_call_ms=100)
        started = time.monotonic()
        with pytest.raises(ModuleCallError) as failure:
            executor.call(request)
        elapsed_ms = (time.monotonic() - started) * 1000
        assert failure.value.code == "timeout"
        assert elapsed_ms < 100 + TIMEOUT_MARGIN_MS
        self.assert_serves_good_call(executor)

    def test_imports_are_refused_with_a_clear_error(self, executor: Executor) -> None:
        """A module that imports anything is not a wasm-1 artifact; the error names it."""
        with pytest.raises(InvalidArtifactError, match=r"env\.host_log"):
            executor.check_artifact(guest_wasm("imports"))
        with pytest.raises(ModuleCallError, match=r"env\.host_log") as failure:
            executor.call(guest_request("imports"))
        assert failure.value.code == "trap"
        self.assert_serves_good_call(executor)

    def test_check_artifact(self, executor: Executor) -> None:
        """Any import-free module passes and its exports are listed; non-modules do not pass."""
        assert executor.check_artifact(guest_wasm("counter")) == [
            "memory", "alloc", "reduce", "reduce_packed", "reduce_retarea"]
        assert "call" not in executor.check_artifact(guest_wasm("noentry"))
        for junk in (b"", b"\0asm\x01\0\0\0garbage", b"(module)"):
            with pytest.raises(InvalidArtifactError):
                executor.check_artifact(junk)

    # -- gas (schedule 1; each guest's source shows the count) ---------------------------

    @pytest.mark.parametrize(
        ("guest", "input", "gas"),
        [
            ("gas_straight", b"", 7),
            ("gas_loop", b"", 55),
            ("gas_branch", b"x" * 200, 11),
            ("gas_branch", b"x" * 5, 9),
            ("gas_call", b"", 17),
            ("gas_grow", b"", 3182),
        ],
    )
    def test_exact_gas(self, executor: Executor, guest: str, input: bytes, gas: int) -> None:
        """Hand-counted guests use exactly the gas the schedule says."""
        output = executor.call(guest_request(guest, input=input))
        assert output == ModuleOutput()
        assert output.gas_used == gas

    def test_gas_runs_out_at_the_exact_limit(self, executor: Executor) -> None:
        """The loop guest needs 55 gas: 55 is enough, 54 is `out_of_fuel` using all 54."""
        assert executor.call(guest_request("gas_loop", max_gas=55)).gas_used == 55
        with pytest.raises(ModuleCallError) as failure:
            executor.call(guest_request("gas_loop", max_gas=54))
        assert failure.value.code == "out_of_fuel"
        assert failure.value.gas_used == 54
        self.assert_serves_good_call(executor)

    def test_stack_limit_is_exact(self, executor: Executor) -> None:
        """Schedule 2's stack limit: the deepest recursion that fits, one frame more, and the
        gas boundary between running out of gas and running out of stack."""
        deepest = executor.call(guest_request("stack_depth", input=b"x" * 5553))
        assert deepest == ModuleOutput() and deepest.gas_used == 38_879
        with pytest.raises(ModuleCallError) as failure:
            executor.call(guest_request("stack_depth", input=b"x" * 5554))
        assert (failure.value.code, failure.value.detail) == ("trap",
                                                              "trap: call stack exhausted")
        with pytest.raises(ModuleCallError) as failure:
            executor.call(guest_request("stack_depth", input=b"x" * 5554, max_gas=38_883))
        assert (failure.value.code, failure.value.gas_used) == ("out_of_fuel", 38_883)
        with pytest.raises(ModuleCallError) as failure:
            executor.call(guest_request("stack_depth", input=b"x" * 5554, max_gas=38_884))
        assert failure.value.detail == "trap: call stack exhausted"
        self.assert_serves_good_call(executor)

    def test_gas_of_a_real_guest_is_reproducible(self, executor: Executor) -> None:
        """The counter reducer's gas is the same on every call and every executor."""
        first = executor.call(counter_request(41))
        assert first.gas_used == COUNTER_GAS
        assert executor.call(counter_request(41)).gas_used == COUNTER_GAS

    # -- determinism ----------------------------------------------------------------------

    def test_nans_are_canonical(self, executor: Executor) -> None:
        """Every NaN a float operation produces is the canonical NaN, scalar and SIMD."""
        output = executor.call(guest_request("nan", entrypoint="reduce", kind="reducer"))
        canonical32, canonical64 = b"\x00\x00\xc0\x7f", b"\x00" * 6 + b"\xf8\x7f"
        assert output.new_state == canonical32 + canonical64 + canonical32 * 4 + canonical32

    @pytest.mark.parametrize(
        ("guest", "reason"),
        [("relaxed", "relaxed SIMD"), ("atomics", "shared memory")],
    )
    def test_nondeterministic_features_are_refused(
        self, executor: Executor, guest: str, reason: str
    ) -> None:
        """Relaxed SIMD, threads and shared memory are refused at deploy, and calls trap."""
        with pytest.raises(InvalidArtifactError, match=reason):
            executor.check_artifact(guest_wasm(guest))
        with pytest.raises(ModuleCallError, match=reason) as failure:
            executor.call(guest_request(guest))
        assert failure.value.code == "trap"
        self.assert_serves_good_call(executor)

    def test_no_state_survives_a_call_even_in_a_batch(self, executor: Executor) -> None:
        """Calls in one batch (and one after it) each start in a fresh instance's state:
        globals, memory, tables and the start function's effect."""
        fresh = struct.pack("<16i", 0, 1, 7, 5, 1, 2, 0, 0, 1, 0x030201, 0, 0, 1, 4, 0, 0x600D)
        request = guest_request("leaky", entrypoint="reduce", kind="reducer")
        outputs = executor.call_batch([request] * 5)
        assert outputs == [ModuleOutput(new_state=fresh)] * 5
        assert executor.call(request) == ModuleOutput(new_state=fresh)

    def test_call_batch_returns_failures_in_place(self, executor: Executor) -> None:
        """A batch runs in order; a failing call does not disturb its neighbours."""
        results = executor.call_batch(
            [counter_request(1), guest_request("unreachable"), counter_request(2)]
        )
        assert results[0] == counter_output(2)
        assert isinstance(results[1], ModuleCallError) and results[1].code == "trap"
        assert results[2] == counter_output(3)
        assert isinstance(results[0], ModuleOutput) and isinstance(results[2], ModuleOutput)
        assert results[0].gas_used == executor.call(counter_request(1)).gas_used > 0
        assert results[2].gas_used == executor.call(counter_request(2)).gas_used > 0
