"""The C and Rust guest SDKs: every example built from source and run in a real world.

The SDK examples must behave exactly like the hand-written WAT guests (same journal for the
same inputs); the probe modules read every part of the ABI's input through each SDK's reader
and write it back through its writer; malformed input must end in a clean trap.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sdkkit import LANGUAGES, build_module, sdk_modules

from agentworld import World
from agentworld.abi import encode_input
from agentworld.executor import CallLimits, CallRequest, ModuleCallError, ModuleOutput
from agentworld.manager import PluginManager
from agentworld.testing.conformance import counter_state, move_action, sample_context
from agentworld.testing.guests import guest_wasm
from agentworld.wasm_info import abi_problems, read_interface
from worldkit import deploy, install, manifest, world_with_agents

CTX_KEYS = ("v", "module_id", "instance_id", "module_version", "trace_id", "stage", "time",
            "origin", "install_target", "manifest_hash", "world_config_hash")
BIG = CallLimits(max_output_bytes=4 * 1024 * 1024, max_mem_bytes=64 * 1024 * 1024,
                 max_gas=10**9)


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Every SDK module by name (`c/counter`, `rust/probe`, ...), built from source."""
    return sdk_modules(tmp_path_factory)


@pytest.fixture(scope="module")
def executor() -> Any:
    executor = PluginManager(entrypoints=False).create_executor("wasmtime")
    yield executor
    executor.close()


def call(executor: Any, wasm: bytes, payload: bytes, *, entrypoint: str = "reduce",
         kind: str = "reducer", limits: CallLimits = BIG) -> ModuleOutput:
    return executor.call(CallRequest(  # type: ignore[no-any-return]
        module_id="m.sdk", instance_id="m.sdk#1", wasm_hash=hashlib.sha256(wasm).hexdigest(),
        wasm=wasm, entrypoint=entrypoint, input=payload, limits=limits, kind=kind))


def failure(executor: Any, wasm: bytes, payload: bytes, **kwargs: Any) -> ModuleCallError:
    with pytest.raises(ModuleCallError) as caught:
        call(executor, wasm, payload, **kwargs)
    return caught.value


def journal_after_install(
    wasm: bytes, kind: str, subscriptions: list[dict[str, Any]],
    steps: list[list[dict[str, Any]]],
) -> tuple[World, list[tuple[str, Any]]]:
    """Install `wasm` as `m.guest` in a fresh world, run one step per action batch, and return
    the world and every event after the install (kind, data)."""
    world = world_with_agents("ada", "bob")
    installed = install(world, "ada", manifest("m.guest", deploy(world, wasm), kind=kind,
                                               subscriptions=subscriptions))
    assert installed["kind"] == "domain.module_installed", installed
    start = len(world.journal)
    for actions in steps:
        for action in actions:
            world.submit(action)
        world.step_with_modules()
    return world, [(event.kind, event.data) for event in world.journal[start:]]


def move(agent: str, to: list[int]) -> dict[str, Any]:
    return {"type": "move_agent", "data": {"agent_id": agent, "to": to}}


# -- the examples build into wasm-1 modules ----------------------------------------------------


def test_the_build_script_names_the_install_script_when_a_toolchain_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    build = build_module()
    monkeypatch.setenv("AGENTWORLD_RUSTC", "/nonexistent/rustc")
    with pytest.raises(build.ToolchainMissing, match=r"scripts/install-guest-toolchains\.sh"):
        build.check_toolchains()


def test_every_module_builds_with_no_imports_and_the_abi_exports(
    sdk: dict[str, bytes], executor: Any,
) -> None:
    build = build_module()
    assert set(sdk) == set(build.sources())
    for name, wasm in sdk.items():
        interface = read_interface(wasm)
        assert abi_problems(interface) == [], name
        assert not interface.imports, name
        exports = executor.check_artifact(wasm)
        assert {"memory", "alloc"} <= set(exports), name
        assert {"reduce", "call"} & set(exports), name


def test_the_tally_guest_is_at_most_40_lines_of_c() -> None:
    source = build_module().sources()["c/tally"][1]
    assert len(source.read_text().splitlines()) <= 40


# -- the examples behave like the WAT guests, in a world ---------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_counter_matches_the_wat_counter(sdk: dict[str, bytes], language: str) -> None:
    subscriptions = [{"stage": "tick"}]
    steps: list[list[dict[str, Any]]] = [[] for _ in range(4)]
    _, expected = journal_after_install(guest_wasm("counter"), "reducer", subscriptions, steps)
    world, got = journal_after_install(sdk[f"{language}/counter"], "reducer", subscriptions,
                                       steps)
    assert got == expected
    assert world.module_state("m.guest#1") == counter_state(4)
    assert [data["payload"] for kind, data in got if kind == "module.emitted"] == [
        {"count": n} for n in (1, 2, 3, 4)]


@pytest.mark.parametrize("language", LANGUAGES)
def test_counter_matches_the_wat_counter_call_by_call(
    sdk: dict[str, bytes], executor: Any, language: str,
) -> None:
    for count in (0, 1, 41, 2**32, 2**64 - 1):
        payload = encode_input(sample_context(), state=counter_state(count) if count else b"")
        assert (call(executor, sdk[f"{language}/counter"], payload)
                == call(executor, guest_wasm("counter"), payload))
    bad = encode_input(sample_context(), state=b"\x01\x02\x03")
    assert failure(executor, sdk[f"{language}/counter"], bad).code == "trap"


@pytest.mark.parametrize("language", LANGUAGES)
def test_rule_matches_the_wat_rule(sdk: dict[str, bytes], language: str) -> None:
    subscriptions = [{"stage": "pre_action", "action_kinds": ["action.move_agent"]}]
    steps = [[move("ada", [13, 13])], [move("ada", [7, 7])], [move("bob", [1, 2])],
             [move("ada", [13, 13]), move("bob", [7, 7]), move("ada", [2, 2])]]
    _, expected = journal_after_install(guest_wasm("rule"), "pure", subscriptions, steps)
    world, got = journal_after_install(sdk[f"{language}/rule"], "pure", subscriptions, steps)
    assert got == expected
    verdicts = [data["verdict"] for kind, data in got if kind == "rule.decision_recorded"]
    assert verdicts == ["deny", "modify", "allow", "deny", "modify", "allow"]
    assert world.state.agents["bob"].position == (8, 8)
    assert world.state.agents["ada"].position == (2, 2)


@pytest.mark.parametrize("language", LANGUAGES)
def test_rule_decides_like_the_wat_rule_on_odd_actions(
    sdk: dict[str, bytes], executor: Any, language: str,
) -> None:
    actions = [move_action([13, 13]), move_action([7, 7]), move_action([1]),
               move_action([7, 7, 7]), {"action_id": 3, "type": "move_agent", "data": {}},
               {"type": "move_agent", "data": {"to": [7, 7]}}, move_action([-7, 7])]
    for action in actions:
        payload = encode_input(sample_context("pre_action"), action=action)
        assert (call(executor, sdk[f"{language}/rule"], payload, entrypoint="call", kind="pure")
                == call(executor, guest_wasm("rule"), payload, entrypoint="call", kind="pure"))


@pytest.mark.parametrize("language", LANGUAGES)
def test_observer_matches_the_wat_observer(sdk: dict[str, bytes], language: str) -> None:
    subscriptions = [{"stage": "post_event", "event_kinds": ["*"]},
                     {"stage": "post_action", "action_kinds": ["*"]}]
    steps = [[move("ada", [3, 4])],
             [{"type": "transfer_resource",
               "data": {"from_agent_id": "ada", "to_agent_id": "bob", "kind": "gold",
                        "amount": 5}}],
             [move("nobody", [1, 1])]]
    _, expected = journal_after_install(guest_wasm("observer"), "pure", subscriptions, steps)
    _, got = journal_after_install(sdk[f"{language}/observer"], "pure", subscriptions, steps)
    assert got == expected
    assert sum(kind == "module.emitted" for kind, _ in got) >= 3


# -- the SDK-only examples ---------------------------------------------------------------------


def test_tally_counts_moves_the_same_in_both_languages(sdk: dict[str, bytes]) -> None:
    subscriptions = [{"stage": "post_event", "event_kinds": ["*"]}]
    steps = [[move("ada", [1, 1])], [move("bob", [2, 2]), move("ada", [3, 3])],
             [{"type": "register_agent", "data": {"agent_id": "cy", "position": [0, 0]}}],
             [move("nobody", [1, 1])]]
    journals = {}
    for language in LANGUAGES:
        world, journals[language] = journal_after_install(
            sdk[f"{language}/tally"], "reducer", subscriptions, steps)
        assert world.module_state("m.guest#1") == counter_state(3)
    assert journals["c"] == journals["rust"]
    tallies = [data["payload"] for kind, data in journals["c"] if kind == "module.emitted"]
    assert tallies == [{"moves": 1, "agent_id": "ada"}, {"moves": 2, "agent_id": "bob"},
                       {"moves": 3, "agent_id": "ada"}]


def migrate_input(state: bytes, from_version: str = "1.0.0", to_version: str = "2.0.0") -> bytes:
    """The input the world sends to `migrate` on an upgrade."""
    ctx = {**sample_context("migrate"), "module_version": to_version,
           "trace_id": "migrate-5-m.counter#1", "origin": {"kind": "action", "id": 5}}
    return cbor2.dumps({"ctx": ctx, "state": state, "from_version": from_version,
                        "to_version": to_version}, canonical=True)


@pytest.mark.parametrize("old", LANGUAGES)
@pytest.mark.parametrize("new", LANGUAGES)
def test_counter_v1_state_migrates_to_v2(
    sdk: dict[str, bytes], executor: Any, old: str, new: str,
) -> None:
    subscriptions = [{"stage": "tick"}]
    world, _ = journal_after_install(sdk[f"{old}/counter_v1"], "reducer", subscriptions,
                                     [[], [], []])
    v1_state = world.module_state("m.guest#1")
    assert v1_state == (3).to_bytes(4, "little")
    v2 = sdk[f"{new}/counter_v2"]
    # Unmigrated, the new layout refuses the old state: this is what migrate is for.
    assert failure(executor, v2, encode_input(sample_context(), state=v1_state)).code == "trap"
    migrated = call(executor, v2, migrate_input(v1_state), entrypoint="migrate")
    assert migrated == ModuleOutput(new_state=(3).to_bytes(8, "little") + bytes(8))
    assert migrated.new_state is not None
    ticked = call(executor, v2, encode_input(sample_context(), state=migrated.new_state))
    assert ticked.new_state == (4).to_bytes(8, "little") + (7).to_bytes(8, "little")
    assert ticked.emits == ({"kind": "counter.ticked", "payload": {"count": 4, "last_tick": 7}},)
    # A state already in the new layout is kept; an unknown layout is refused.
    same = call(executor, v2, migrate_input(ticked.new_state), entrypoint="migrate")
    assert same.new_state == ticked.new_state
    assert call(executor, v2, migrate_input(b""), entrypoint="migrate").new_state == bytes(16)
    assert failure(executor, v2, migrate_input(b"\x01" * 5), entrypoint="migrate").code == "trap"


@pytest.mark.parametrize("language", LANGUAGES)
def test_counter_v2_ticks_in_a_world(sdk: dict[str, bytes], language: str) -> None:
    world, events = journal_after_install(sdk[f"{language}/counter_v2"], "reducer",
                                          [{"stage": "tick"}], [[], []])
    state = world.module_state("m.guest#1")
    assert int.from_bytes(state[:8], "little") == 2
    assert int.from_bytes(state[8:], "little") == world.time
    assert [d["payload"] for k, d in events if k == "module.emitted"][-1] == {
        "count": 2, "last_tick": world.time}


# -- ABI conformance: every input through both readers, back through both writers --------------


def probe(executor: Any, language: str, sdk: dict[str, bytes], payload: bytes,
          entrypoint: str = "reduce") -> dict[str, Any]:
    """The probe's emits by kind, and its whole output."""
    kind = "pure" if entrypoint == "call" else "reducer"
    output = call(executor, sdk[f"{language}/probe"], payload, entrypoint=entrypoint, kind=kind)
    emitted = {emit["kind"]: emit["payload"] for emit in output.emits}
    return {**emitted, "output": output}


def world_context(stage: str, target: dict[str, Any], origin: dict[str, Any]) -> dict[str, Any]:
    return {**sample_context(stage), "origin": origin, "install_target": target,
            "trace_id": f"{origin['kind']}-{origin['id']}-m.counter#1"}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("stage", "origin"), [
    ("tick", {"kind": "tick", "id": 7}),
    ("pre_action", {"kind": "action", "id": 41}),
    ("post_action", {"kind": "action", "id": 41}),
    ("post_event", {"kind": "event", "id": 3}),
    ("migrate", {"kind": "action", "id": 41}),
])
@pytest.mark.parametrize("target", [{"type": "self_agent"},
                                    {"type": "location", "location_id": "hub-ü"}])
def test_probe_reads_every_context_key(
    sdk: dict[str, bytes], executor: Any, language: str, stage: str, origin: dict[str, Any],
    target: dict[str, Any],
) -> None:
    ctx = world_context(stage, target, origin)
    # A key the SDK does not know, sorted between known ones, is skipped.
    ctx["spare"] = {"nested": [1, {"x": None}], "n": -3}
    event = {"id": 3, "time": 7, "caused_by": {"action": 41}, "kind": "domain.agent_moved",
             "data": {"agent_id": "a", "from": [0, 0], "to": [1, 2]}}
    action = move_action([1, 2])
    entrypoint = "migrate" if stage == "migrate" else "reduce"
    if stage == "migrate":
        payload = cbor2.dumps({"ctx": ctx, "state": b"\x07", "from_version": "1.0.0",
                               "to_version": "2.0.0"}, canonical=True)
    else:
        payload = encode_input(
            ctx, event=event if stage in {"post_event", "post_action"} else None,
            action=action if stage in {"pre_action", "post_action"} else None, state=b"\x07")
    seen = probe(executor, language, sdk, payload, entrypoint)
    assert seen["probe.ctx"] == {**{key: ctx[key] for key in CTX_KEYS}, "entries": len(ctx)}
    assert seen["probe.event"] == (event if stage in {"post_event", "post_action"} else None)
    assert seen["probe.action"] == (action if stage in {"pre_action", "post_action"} else None)
    assert seen["probe.migrate"] == (
        {"from_version": "1.0.0", "to_version": "2.0.0"} if stage == "migrate"
        else {"from_version": None, "to_version": None})
    assert seen["output"].new_state == b"\x07"


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value, level] if level % 2 else {"k": value, "n": -level}
    return value


SCALARS = {
    "ints": [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1,
             -1, -24, -25, -256, -257, -(2**32), -(2**63)],
    "floats": [1.5, 0.1, -0.25, 1e300, 65504.0, 5.960464477539063e-08, 3.4028234663852886e38,
               -2.5e-310, 100000.0],
    "text": ["", "héllo ✓ 🚀", "x" * 70_000],
    "bools": [True, False, None],
    "empty": [[], {}, ""],
    "wide": {f"key{i}": i for i in range(1000)},
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_probe_round_trips_every_value_type(
    sdk: dict[str, bytes], executor: Any, language: str,
) -> None:
    action = {"action_id": 9, "type": "x.y", "data": SCALARS}
    seen = probe(executor, language, sdk,
                 encode_input(sample_context("pre_action"), action=action), "call")
    assert seen["probe.action"] == action


@pytest.mark.parametrize("language", LANGUAGES)
def test_deep_payloads_are_read_without_recursion(
    sdk: dict[str, bytes], executor: Any, language: str,
) -> None:
    event = {"id": 1, "time": 1, "kind": "deep", "data": nested(300)}
    seen = probe(executor, language, sdk,
                 encode_input(sample_context("post_event"), event=event, state=b""))
    assert seen["probe.event"] == event
    # Far deeper than any output may be: the counter skips it to find its state.
    deep = b"\xa1\x61k" * 50_000 + b"\x00"
    payload = cbor2.dumps({"ctx": sample_context(), "event": cbor2.CBORTag(24, b""),
                           "state": counter_state(5)}, canonical=True)
    payload = payload.replace(b"\xd8\x18\x40", deep)
    output = call(executor, sdk[f"{language}/counter"], payload)
    assert output.new_state == counter_state(6)


@pytest.mark.parametrize("language", LANGUAGES)
def test_one_mebibyte_state(sdk: dict[str, bytes], executor: Any, language: str) -> None:
    state = random.Random(7).randbytes(1024 * 1024)
    seen = probe(executor, language, sdk, encode_input(sample_context(), state=state))
    expected_hash = 2166136261
    for byte in state:
        expected_hash = ((expected_hash ^ byte) * 16777619) & 0xFFFFFFFF
    assert seen["probe.state"] == {"size": len(state), "fnv1a32": expected_hash}
    assert seen["output"].new_state == state


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("data", "wat_guest", "entrypoint"), [
    ({"effect": "slot"}, "effector", "call"),
    ({"effect": "ref"}, "effector_ref", "call"),
    ({"wake": 3}, "sleeper", "reduce"),
    ({"suspend": True}, "suspender", "reduce"),
])
def test_effects_and_tick_lifecycle_match_the_wat_guests(
    sdk: dict[str, bytes], executor: Any, language: str, data: dict[str, Any], wat_guest: str,
    entrypoint: str,
) -> None:
    kind = "pure" if entrypoint == "call" else "reducer"
    state = b"" if kind == "reducer" else None
    wat = call(executor, guest_wasm(wat_guest), encode_input(sample_context(), state=state),
               entrypoint=entrypoint, kind=kind)
    action = {"action_id": 1, "type": "probe", "data": data}
    ours = call(executor, sdk[f"{language}/probe"],
                encode_input(sample_context(), action=action, state=state),
                entrypoint=entrypoint, kind=kind)
    assert ours.effects == wat.effects
    assert ours.tick_lifecycle == wat.tick_lifecycle


@pytest.mark.parametrize("language", LANGUAGES)
def test_probe_decisions(sdk: dict[str, bytes], executor: Any, language: str) -> None:
    for verdict, extra in [("allow", {}), ("deny", {}), ("modify", {"override_action": {
            "type": "move_agent", "data": {"agent_id": "a", "to": [8, -8]}}})]:
        action = {"action_id": 77, "type": "move_agent",
                  "data": {"agent_id": "a", "to": [1, 1], "decide": verdict}}
        seen = probe(executor, language, sdk,
                     encode_input(sample_context("pre_action"), action=action), "call")
        notes = {"allow": "probe allows", "deny": "probe denies", "modify": "probe modifies"}
        assert seen["rule.decision"] == {"action_id": 77, "verdict": verdict,
                                         "notes": notes[verdict], **extra}


# -- malformed input is a clean trap -----------------------------------------------------------

GOOD = encode_input(sample_context(), action=move_action([1, 2]), state=b"")
MALFORMED = [
    b"",
    b"\xa1",
    b"\xa1\x63ctx",
    b"\xbf\x63ctx\xa0\xff",  # indefinite length
    b"\xa1\x63ctx\xbc",  # reserved additional information
    b"\xa1\x7b" + b"\xff" * 8,  # a key longer than memory
    b"\xa1\x63ctx\x9b" + b"\xff" * 8,  # an array of 2**64 - 1 items
    b"\xa1\x63ctx\xba\x7f\xff\xff\xff",  # a map of 2**31 - 1 entries
    b"\xa1\x63ctx\x5a\x00\x01\x00\x00",  # a byte string past the end
    b"\x81" * 100_000 + b"\x00",  # deep, and not a map
    GOOD + b"\x00",  # bytes after the map
    GOOD[:-1],  # truncated
    cbor2.dumps({"ctx": sample_context(), "state": "text"}),  # state that is not bytes
    cbor2.dumps({"state": b""}),  # no ctx
    cbor2.dumps({"ctx": [1, 2], "state": b""}),  # ctx not a map
    cbor2.dumps([1, 2, 3]),
]


def assert_clean(error: ModuleCallError, copies_input: bool) -> None:
    """A trap by the SDK's own checks (`unreachable`), never a stray memory access."""
    assert "out of bounds" not in error.detail, error.detail
    if error.code == "trap":
        assert "unreachable" in error.detail, error.detail
    else:  # a guest that copies its input may copy something the host refuses to journal
        assert copies_input and error.code == "invalid_output", error


def test_malformed_input_traps_cleanly_in_every_module(
    sdk: dict[str, bytes], executor: Any,
) -> None:
    for name, wasm in sdk.items():
        entrypoint = "call" if any(n in name for n in ("rule", "observer")) else "reduce"
        for raw in MALFORMED:
            error = failure(executor, wasm, raw, entrypoint=entrypoint)
            assert error.code == "trap" and "unreachable" in error.detail, (name, raw[:20])


MUTATED = ["counter", "observer", "tally", "probe"]


@pytest.mark.parametrize("language", LANGUAGES)
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, len(GOOD)), st.integers(0, 255),
                                st.sampled_from(["set", "insert", "delete", "cut"])),
                      min_size=1, max_size=4))
def test_mutated_input_never_reaches_memory_it_does_not_own(
    sdk: dict[str, bytes], executor: Any, language: str,
    edits: list[tuple[int, int, str]],
) -> None:
    raw = bytearray(GOOD)
    for position, value, how in edits:
        position = min(position, len(raw))
        if how == "set" and position < len(raw):
            raw[position] = value
        elif how == "insert":
            raw.insert(position, value)
        elif how == "delete" and position < len(raw):
            del raw[position]
        elif how == "cut":
            del raw[position:]
    for name in MUTATED:
        entrypoint = "call" if name == "observer" else "reduce"
        try:
            call(executor, sdk[f"{language}/{name}"], bytes(raw), entrypoint=entrypoint,
                 kind="pure" if name == "observer" else "reducer")
        except ModuleCallError as error:
            assert_clean(error, copies_input=name in {"observer", "probe", "tally"})


@pytest.mark.parametrize("language", LANGUAGES)
def test_allocator_resets_between_calls_on_a_warm_instance(
    sdk: dict[str, bytes], executor: Any, language: str,
) -> None:
    wasm = sdk[f"{language}/probe"]
    payload = encode_input(sample_context(), state=bytes(256 * 1024))
    request = CallRequest(module_id="m.sdk", instance_id="m.sdk#1",
                          wasm_hash=hashlib.sha256(wasm).hexdigest(), wasm=wasm,
                          entrypoint="reduce", input=b"",
                          limits=CallLimits(max_mem_bytes=4 * 1024 * 1024,
                                            max_output_bytes=1024 * 1024))
    outputs = set()
    with executor.warm_instance(request) as warm:
        # Each call needs about 0.8 MiB (input, state copy, output): without the reset, the
        # fifth would pass the 4 MiB limit. A trapped call leaves nothing behind either.
        for index in range(40):
            outputs.add(warm.invoke(payload))
            if index % 10 == 0:
                with pytest.raises(ModuleCallError):
                    warm.invoke(payload[:-1])
    assert len(outputs) == 1
