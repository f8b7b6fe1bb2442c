"""`agentworld guest run|inspect`: the development loop, on the WAT guests and the SDK modules."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sdkkit import sdk_paths

from agentworld.cli import cli
from agentworld.config import WorldConfig, config_hash
from agentworld.executor import InvalidArtifactError
from agentworld.manifest import intrinsic_problems, parse_manifest
from agentworld.testing.conformance import guest_request
from agentworld.testing.guests import guest_wasm
from agentworld.wasm_info import abi_problems, manifest_skeleton, read_interface

CTX_KEYS = {"v", "module_id", "instance_id", "module_version", "trace_id", "stage", "time",
            "origin", "install_target", "manifest_hash", "world_config_hash"}


@pytest.fixture(scope="module")
def wat(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The WAT guests as .wasm files."""
    folder = tmp_path_factory.mktemp("wat")
    paths = {}
    for name in ("counter", "rule", "observer", "loop", "garbage", "unreachable", "noalloc",
                 "noentry", "imports", "effector", "sleeper"):
        paths[name] = folder / f"{name}.wasm"
        paths[name].write_bytes(guest_wasm(name))
    return paths


def run(*args: str | Path, code: int = 0) -> dict[str, Any]:
    """`agentworld guest ...` with --json: its exit status checked, its document returned."""
    result = CliRunner().invoke(cli, ["guest", *map(str, args), "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def text(*args: str | Path, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["guest", *map(str, args)])
    assert result.exit_code == code, result.output
    return result.stdout


def error_line(*args: str | Path) -> str:
    """Run in a subprocess; the error must be one line on stderr and exit status 2."""
    result = subprocess.run([sys.executable, "-m", "agentworld", "guest", *map(str, args)],
                            capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


# -- guest run -------------------------------------------------------------------------------


def test_run_fills_in_a_complete_context(wat: dict[str, Path]) -> None:
    report = run("run", wat["counter"])
    assert report["ok"] and report["failure"] is None
    assert report["output"] == {"new_state": "0100000000000000", "new_state_size": 8,
                                "emits": [{"kind": "counter.ticked", "payload": {"count": 1}}],
                                "effects": [], "tick_lifecycle": None}
    ctx = report["ctx"]
    assert set(ctx) == CTX_KEYS
    assert ctx["v"] == "wasm-1" and ctx["stage"] == "tick" and ctx["module_id"] == "counter"
    assert ctx["trace_id"] == "tick-1-counter#1" and ctx["origin"] == {"kind": "tick", "id": 1}
    assert ctx["world_config_hash"] == config_hash(WorldConfig())
    assert len(ctx["manifest_hash"]) == 64
    assert report["entrypoint"] == "reduce" and report["kind"] == "reducer"
    assert report["wasm_hash"] == hashlib.sha256(guest_wasm("counter")).hexdigest()


def test_run_with_state_and_context(wat: dict[str, Path], tmp_path: Path) -> None:
    assert run("run", wat["counter"], "--state", "2900000000000000")["output"]["emits"] == [
        {"kind": "counter.ticked", "payload": {"count": 42}}]
    state = tmp_path / "state.bin"
    state.write_bytes((6).to_bytes(8, "little"))
    for _ in range(2):  # a state file fed back: the loop a developer runs by hand
        report = run("run", wat["counter"], "--state-file", state, "--state-out", state)
    assert report["output"]["emits"][0]["payload"] == {"count": 8}
    assert state.read_bytes() == (8).to_bytes(8, "little")
    ctx = run("run", wat["counter"], "--ctx", '{"time": 9, "module_version": "3.1.0"}')["ctx"]
    assert (ctx["time"], ctx["trace_id"], ctx["module_version"]) == (9, "tick-9-counter#1",
                                                                     "3.1.0")


@pytest.mark.parametrize(("to", "verdict"), [([13, 13], "deny"), ([7, 7], "modify"),
                                             ([1, 2], "allow")])
def test_run_a_rule_at_pre_action(wat: dict[str, Path], to: list[int], verdict: str) -> None:
    action = json.dumps({"action_id": 5, "data": {"agent_id": "a", "to": to}})
    report = run("run", wat["rule"], "--stage", "pre_action", "--action", action)
    (emit,) = report["output"]["emits"]
    assert emit["kind"] == "rule.decision"
    assert emit["payload"]["verdict"] == verdict and emit["payload"]["action_id"] == 5
    assert report["ctx"]["trace_id"] == "action-5-rule#1"
    assert report["ctx"]["origin"] == {"kind": "action", "id": 5}


def test_run_routes_events_and_actions_like_the_world(wat: dict[str, Path],
                                                      tmp_path: Path) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps({"id": 12, "kind": "domain.resource_transferred",
                                      "data": {"amount": 3}}))
    report = run("run", wat["observer"], "--stage", "post_event", "--event", f"@{event_file}")
    payload = report["output"]["emits"][0]["payload"]
    assert payload["event"] == {"id": 12, "time": 1, "caused_by": {"action": 1},
                                "kind": "domain.resource_transferred", "data": {"amount": 3}}
    assert payload["action"] is None and payload["trace_id"] == "event-12-observer#1"
    payload = run("run", wat["observer"], "--stage", "post_action")["output"]["emits"][0][
        "payload"]
    assert payload["action"]["type"] == "move_agent"
    assert payload["event"]["kind"] == "domain.agent_moved"
    assert payload["origin"] == {"kind": "action", "id": 1}


@pytest.mark.parametrize(("guest", "args", "code"), [
    ("loop", ["--gas", "1000"], "out_of_fuel"),
    ("garbage", [], "invalid_output"),
    ("unreachable", [], "trap"),
    ("noentry", [], "trap"),
])
def test_run_reports_the_failure_code(wat: dict[str, Path], guest: str, args: list[str],
                                      code: str) -> None:
    report = run("run", wat[guest], *args, code=1)
    assert not report["ok"] and report["output"] is None
    assert report["failure"]["code"] == code and report["failure"]["detail"]
    assert f"failed: {code}: " in text("run", wat[guest], *args, code=1)


def test_run_prints_the_output_readably(wat: dict[str, Path]) -> None:
    out = text("run", wat["effector"])
    assert "call (pure) at tick, trace tick-1-effector#1" in out
    assert 'effect: {"cap_slot": "pay", "kind": "bank.pay", "params": {"amount": 1}}' in out
    out = text("run", wat["sleeper"])
    assert 'tick_lifecycle: {"mode": "wake_after_ticks", "ticks": 3}' in out
    assert "new_state: 0100000000000000" in out


@pytest.mark.parametrize("language", ["c", "rust"])
def test_run_migrate_builds_the_migration_input(tmp_path_factory: pytest.TempPathFactory,
                                                language: str) -> None:
    paths = sdk_paths(tmp_path_factory)
    report = run("run", paths[f"{language}/counter_v2"], "--stage", "migrate",
                 "--state", "03000000")
    assert report["entrypoint"] == "migrate"
    assert report["output"]["new_state"] == (3).to_bytes(8, "little").hex() + "00" * 8
    report = run("run", paths[f"{language}/probe"], "--stage", "migrate", "--state", "07",
                 "--from-version", "1.2.0", "--to-version", "1.3.0")
    emits = {emit["kind"]: emit["payload"] for emit in report["output"]["emits"]}
    assert emits["probe.migrate"] == {"from_version": "1.2.0", "to_version": "1.3.0"}
    assert emits["probe.ctx"]["stage"] == "migrate"
    assert emits["probe.ctx"]["module_version"] == "1.3.0"
    assert emits["probe.ctx"]["trace_id"] == f"migrate-1-{language}-probe#1"
    assert emits["probe.event"] is None and emits["probe.action"] is None
    assert report["output"]["new_state"] == "07"


def test_run_refuses_unusable_input_in_one_line(wat: dict[str, Path], tmp_path: Path) -> None:
    not_wasm = tmp_path / "x.wasm"
    not_wasm.write_text("hello")
    assert "not a WebAssembly module" in error_line("run", not_wasm)
    assert "cannot read" in error_line("run", tmp_path / "missing.wasm")
    assert "hexadecimal" in error_line("run", wat["counter"], "--state", "zz")
    assert "not both" in error_line("run", wat["counter"], "--state", "00",
                                    "--state-file", not_wasm)
    assert "JSON object" in error_line("run", wat["observer"], "--event", "[1]")
    assert "not usable JSON" in error_line("run", wat["observer"], "--ctx", "{")
    assert "no state" in error_line("run", wat["observer"], "--state", "00")


# -- guest inspect ---------------------------------------------------------------------------


def test_inspect_reports_hash_exports_and_shapes(wat: dict[str, Path]) -> None:
    report = run("inspect", wat["counter"])
    wasm = guest_wasm("counter")
    assert report["wasm_hash"] == hashlib.sha256(wasm).hexdigest()
    assert report["size"] == len(wasm) and report["kind"] == "reducer"
    assert [e["name"] for e in report["exports"]] == [
        "memory", "alloc", "reduce", "reduce_packed", "reduce_retarea"]
    assert report["entrypoints"] == {"reduce": "multi-value"}
    assert report["problems"] == [] and report["imports"] == []
    assert run("inspect", wat["rule"])["entrypoints"] == {"call": "ret_area"}
    assert run("inspect", wat["observer"])["entrypoints"] == {"call": "packed i64"}
    out = text("inspect", wat["counter"])
    assert "export reduce: func (i32,i32)->(i32,i32)  [entrypoint, multi-value]" in out
    assert "wasm-1: ok" in out


@pytest.mark.parametrize(("guest", "problem"), [
    ("noalloc", "does not export 'alloc'"),
    ("noentry", "exports neither 'reduce'"),
    ("imports", "imports env.host_log"),
])
def test_inspect_names_what_the_executor_refuses(wat: dict[str, Path], guest: str,
                                                 problem: str) -> None:
    report = run("inspect", wat[guest], code=1)
    assert any(problem in line for line in report["problems"]), report["problems"]
    # The executor refuses the same module for the same reason.
    from agentworld.executor import ModuleCallError
    from agentworld.manager import PluginManager

    executor = PluginManager(entrypoints=False).create_executor("wasmtime")
    try:
        with pytest.raises(ModuleCallError) as refused:
            executor.call(guest_request(guest))
    finally:
        executor.close()
    assert refused.value.code == "trap"


def test_inspect_manifest_skeleton_is_a_valid_manifest(wat: dict[str, Path]) -> None:
    for guest, kind in (("counter", "reducer"), ("observer", "pure")):
        result = CliRunner().invoke(cli, ["guest", "inspect", str(wat[guest]), "--manifest",
                                          "--module-id", f"my.{guest}"])
        assert result.exit_code == 0, result.output
        skeleton = json.loads(result.stdout)
        manifest = parse_manifest(skeleton)
        assert intrinsic_problems(manifest) == []
        assert (manifest.module_id, manifest.kind) == (f"my.{guest}", kind)
        assert manifest.wasm_hash == hashlib.sha256(guest_wasm(guest)).hexdigest()


def test_inspect_refuses_a_file_that_is_not_a_module(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\0asm\x01\0\0\0\x01\x05\x01\x60")  # a truncated type section
    assert "truncated" in error_line("inspect", junk)
    # A function with no body: the sections we read parse, the engine refuses the module.
    junk.write_bytes(b"\0asm\x01\0\0\0\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00")
    assert "junk.wasm" in error_line("inspect", junk)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_reading_a_damaged_artifact_only_ever_refuses_it(data: st.DataObject) -> None:
    wasm = bytearray(guest_wasm(data.draw(st.sampled_from(["counter", "imports", "rule"]))))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(wasm) - 1))
        wasm[position] = data.draw(st.integers(0, 255))
    try:
        interface = read_interface(bytes(wasm))
    except InvalidArtifactError:
        return
    abi_problems(interface)
    manifest_skeleton(interface, "0" * 64, "m")
