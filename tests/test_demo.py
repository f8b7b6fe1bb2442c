"""`agentworld demo`: the whole product on one world, driven live, checked by itself.

The command runs in a subprocess as a newcomer runs it; the checks read what it wrote (the
commit log, the live directory, the saved world) with the ordinary commands and APIs.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from attrs import evolve
from livekit import run_on_a_terminal
from test_wasmer_executor import PYTHON as WASMER_PYTHON
from test_wasmer_executor import needs_host

from agentworld import World, hookimpl
from agentworld.commits import parse_commit
from agentworld.demo import SilentListener, run_demo
from agentworld.demo_scenario import (
    DEFAULT_HEIGHTS,
    SCRIPTED_HEIGHTS,
    demo_commits,
    demo_heights,
    read_commit_log,
)
from agentworld.executor import (
    CallRequest,
    Executor,
    ExecutorConfig,
    ModuleCallError,
    ModuleOutput,
)
from agentworld.live import submit_committed
from agentworld.manager import PluginManager
from agentworld.persistence import read_saved

AGENTWORLD = str(Path(sys.executable).with_name("agentworld"))
RESULT_KEYS = {"state_root", "journal_len", "heights", "instances", "upgrades", "rejections",
               "verified", "replayed", "engine", "dir"}


def demo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`agentworld demo ARGS` in a subprocess, as the README runs it (no external plugins)."""
    return subprocess.run([AGENTWORLD, "demo", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "AGENTWORLD_LOAD_PLUGINS": "", **env})


def last_json_line(output: str) -> dict[str, Any]:
    lines = output.strip().splitlines()
    assert len(lines) == 1, "--json prints one line and nothing else on stdout"
    value: dict[str, Any] = json.loads(lines[0])
    return value


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One demo run on wasmtime with --json, as the README's first command ends."""
    directory = tmp_path_factory.mktemp("demo") / "run"
    result = demo("--dir", str(directory), "--json")
    assert result.returncode == 0, result.stderr
    return last_json_line(result.stdout)


def journal(result: dict[str, Any]) -> list[Any]:
    return list(World.load_from_dir(Path(result["dir"]) / "world").journal)


def test_the_demo_checks_itself_and_prints_its_result_as_one_json_line(
    first_run: dict[str, Any]
) -> None:
    assert set(first_run) == RESULT_KEYS
    assert first_run["verified"] is True and first_run["replayed"] is True
    assert first_run["engine"] == "wasmtime"
    assert first_run["heights"] == DEFAULT_HEIGHTS >= 20
    assert len(first_run["state_root"]) == 64
    assert first_run["journal_len"] == len(journal(first_run))


def test_the_demo_is_driven_live_from_a_commit_log_with_submitters(
    first_run: dict[str, Any]
) -> None:
    root = Path(first_run["dir"])
    commits = [parse_commit(raw) for raw in read_commit_log(root / "commits.jsonl")]
    assert [c.height for c in commits] == list(range(1, DEFAULT_HEIGHTS + 1))
    submitters = {action.submitter for commit in commits for action in commit.actions}
    assert submitters == {None, "ada", "bob", "cy", "mal"}
    status = subprocess.run([AGENTWORLD, "live", "status", "--world", str(root / "live"),
                             "--json"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    live = json.loads(status.stdout)
    assert live["height"] == DEFAULT_HEIGHTS and live["state_root"] == first_run["state_root"]
    # Checkpoints are saved worlds, each with its module store.
    assert live["checkpoints"] == [0, 8, 16, 24]
    newest = root / "live" / "checkpoints" / f"{24:012d}" / "world"
    assert World.load_from_dir(newest).state_root() == first_run["state_root"]
    assert len(list((newest / "modules" / "blobs" / "sha256").iterdir())) == 7


def test_the_demo_shows_instances_rules_emits_effects_and_ticks(
    first_run: dict[str, Any]
) -> None:
    owners = {row["instance_id"]: (row["owner"], row["target"])
              for row in first_run["instances"]}
    assert owners == {
        "demo.counter#1": ("ada", "self_agent"), "demo.counter#2": ("bob", "hub"),
        "demo.rule#3": ("ada", "self_agent"), "demo.observer#4": ("cy", "plaza"),
        "demo.payer#5": ("bob", "self_agent"), "mal.spin#6": ("mal", "self_agent"),
        "mal.hog#7": ("mal", "self_agent")}
    events = journal(first_run)
    kinds = {event.kind for event in events}
    assert {"module.emitted", "effect.queued", "effect.receipt_recorded",
            "rule.action_overridden", "domain.module_active_set"} <= kinds
    verdicts = {e.data["verdict"] for e in events if e.kind == "rule.decision_recorded"}
    assert verdicts == {"allow", "deny", "modify"}
    receipts = {e.data["status"] for e in events if e.kind == "effect.receipt_recorded"}
    assert receipts == {"ok", "error"}
    ticks = [e for e in events if e.kind == "module.state_updated"
             and e.data["trace_id"].startswith("tick-")]
    assert {e.data["instance_id"] for e in ticks} == {"demo.counter#1", "demo.counter#2"}


def test_the_hostile_modules_are_stopped_by_gas_and_memory_never_by_the_clock(
    first_run: dict[str, Any]
) -> None:
    failures = [e.data for e in journal(first_run) if e.kind == "module.call_failed"]
    codes = {(f["instance_id"], f["code"]) for f in failures}
    assert codes == {("mal.spin#6", "out_of_fuel"), ("mal.hog#7", "memory_limit")}
    # The world went on: the spinner failed at every tick (heights 4..13) until the host
    # switched it off.
    spins = [f for f in failures if f["instance_id"] == "mal.spin#6"]
    assert len(spins) == 10 and all(f["gas_used"] == 250_000 for f in spins)


def test_upgrades_migrate_refuse_with_every_violation_and_roll_back(
    first_run: dict[str, Any]
) -> None:
    upgrades = {row["action_id"]: row for row in first_run["upgrades"]}
    assert upgrades["h08.1-bob-upgrades-ada"]["code"] == "not_instance_owner"
    assert upgrades["h08.2-ada-upgrades"]["accepted"] is True
    refused = upgrades["h11.1-ada-upgrades-badly"]
    assert refused["code"] == "incompatible_upgrade"
    assert {(v["rule"], v["severity"]) for v in refused["violations"]} == {
        ("subscriptions-covered", "error"), ("version-increases", "error"),
        ("migrate-kept", "warning")}
    rollback = upgrades["h13.1-ada-rolls-back"]
    assert (rollback["operation"], rollback["accepted"], rollback["to_version"]) == (
        "rollback", True, "1.0.0")
    migrated = [len(base64.b64decode(e.data["state"])) for e in journal(first_run)
                if e.kind == "module.state_updated" and e.data["trace_id"].startswith("migrate-")]
    assert migrated == [16, 4]  # v1's 4-byte count widened by v2, narrowed again by v1


def test_every_refusal_is_in_the_result(first_run: dict[str, Any]) -> None:
    codes = {row["action_id"]: (row["submitter"], row["code"])
             for row in first_run["rejections"]}
    assert codes == {
        "h04.2-bob-moves": ("bob", "rule_denied"),
        "h05.1-bob-moves": ("bob", "actor_mismatch"),
        "h05.2-mal-disables-rule": ("mal", "not_instance_owner"),
        "h05.3-mal-grants-role": ("mal", "not_system_actor"),
        "h05.4-bob-overspends": ("bob", "insufficient_resources"),
        "h08.1-bob-upgrades-ada": ("bob", "not_instance_owner"),
        "h11.1-ada-upgrades-badly": ("ada", "incompatible_upgrade"),
    }


def test_the_saved_world_verifies_and_the_live_run_replays_with_the_commands(
    first_run: dict[str, Any]
) -> None:
    root = Path(first_run["dir"])
    assert read_saved(root / "world").metadata.store == "modules"
    verify = subprocess.run([AGENTWORLD, "world", "verify", str(root / "world"), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"] is True
    replayed = subprocess.run([AGENTWORLD, "live", "replay", "--world", str(root / "live"),
                               "--json"], capture_output=True, text=True, timeout=60)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert json.loads(replayed.stdout.splitlines()[-1])["from_height"] == 0


def test_another_run_and_another_store_give_the_same_state_root(
    first_run: dict[str, Any], tmp_path: Path, agentworld_s3_uri: str
) -> None:
    plugins = PluginManager(entrypoints=False, environ={})
    try:
        result = run_demo(tmp_path / "again", store=agentworld_s3_uri, plugins=plugins)
    finally:
        plugins.close()  # the executors it built (a wasmer host, when one is provisioned)
    assert result["verified"] and result["replayed"]
    assert read_saved(tmp_path / "again" / "world").metadata.store == agentworld_s3_uri
    assert {key: result[key] for key in RESULT_KEYS - {"dir"}} == {
        key: first_run[key] for key in RESULT_KEYS - {"dir"}}


@needs_host
@pytest.mark.slow
def test_the_demo_on_wasmer_gives_the_state_root_of_wasmtime(
    first_run: dict[str, Any], tmp_path: Path
) -> None:
    assert WASMER_PYTHON is not None
    result = demo("--dir", str(tmp_path / "w"), "--engine", "wasmer", "--json",
                  AGENTWORLD_WASMER_PYTHON=WASMER_PYTHON)
    assert result.returncode == 0, result.stderr
    summary = last_json_line(result.stdout)
    assert (summary["engine"], summary["verified"], summary["replayed"]) == ("wasmer", True, True)
    assert summary["state_root"] == first_run["state_root"]


@pytest.mark.slow
def test_the_story_is_told_height_by_height_and_ends_verified(tmp_path: Path) -> None:
    env = {"AGENTWORLD_WASMER_PYTHON": WASMER_PYTHON} if WASMER_PYTHON else {}
    result = demo("--dir", str(tmp_path / "story"), "--heights", str(SCRIPTED_HEIGHTS), **env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for height in range(1, SCRIPTED_HEIGHTS + 1):
        assert f"height {height:>2}  " in out
    for phrase in ("rule on h04.3-cy-moves (to [7, 7]): modify",
                   "contained: mal.spin#6 tick: out_of_fuel (the call used up its 250000 gas)",
                   "[warning] migrate-kept: ", "ok   world verify",
                   "ok   live replay on wasmtime", "verified and replayed"):
        assert phrase in out, phrase
    if WASMER_PYTHON:
        assert "ok   live replay on wasmer" in out
    # In a pipe: no progress bar, no colour codes, nothing on stderr.
    assert "\x1b[" not in out and result.stderr == ""


@pytest.mark.slow
def test_a_terminal_on_stderr_gets_the_progress_bar_and_stdout_keeps_the_story(
    tmp_path: Path
) -> None:
    drawn, story, status = run_on_a_terminal(
        [AGENTWORLD, "demo", "--dir", str(tmp_path / "tty")],
        {**os.environ, "AGENTWORLD_LOAD_PLUGINS": ""}, 120)
    assert status == 0
    assert b"heights" in drawn and b"\x1b[" in drawn
    assert "height 24  " in story and "verified and replayed" in story
    assert "\x1b[" not in story


def test_a_closed_pipe_ends_the_demo_quietly(tmp_path: Path) -> None:
    reader = subprocess.Popen([AGENTWORLD, "demo", "--dir", str(tmp_path / "piped")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "AGENTWORLD_LOAD_PLUGINS": ""})
    assert reader.stdout is not None and reader.stderr is not None
    first = reader.stdout.readline()
    reader.stdout.close()  # what `| head -1` does
    assert reader.wait(timeout=120) == 141
    assert reader.stderr.read() == b""
    assert first.startswith(b"agentworld demo  world 'demo' on wasmtime")


def test_unusable_options_fail_with_one_error_line(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("mine")
    for args, status, words in (
        (("--dir", str(busy)), 2, "not an empty folder"),
        (("--heights", "5", "--dir", str(tmp_path / "a")), 2, "--heights"),
        (("--engine", "nope", "--dir", str(tmp_path / "b")), 1, "engine_unavailable"),
        (("--store", "nope://x", "--dir", str(tmp_path / "c")), 1, "nope"),
    ):
        result = demo(*args)
        assert result.returncode == status, (args, result.stderr)
        # Click's usage errors add a usage line; the error itself is always one line.
        line = result.stderr.strip().splitlines()[-1]
        assert words in line and "Traceback" not in result.stderr
    assert (busy / "something").read_text() == "mine"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_commit_log_is_a_pure_function_of_the_height_count() -> None:
    assert demo_commits(30) == demo_commits(30)
    assert demo_commits(30)[:SCRIPTED_HEIGHTS] == demo_commits(SCRIPTED_HEIGHTS)
    with pytest.raises(ValueError, match="at least"):
        demo_heights(SCRIPTED_HEIGHTS - 1)


def test_the_engines_own_fuel_as_a_backstop_changes_nothing() -> None:
    roots = []
    plugins = PluginManager(entrypoints=False, environ={})
    for options in ({}, {"fuel_backstop": True}):
        world = World(executor_config=ExecutorConfig(options=options), plugins=plugins)
        for commit in demo_commits(SCRIPTED_HEIGHTS):
            for action in commit.actions:
                submit_committed(world, action)
            world.step_with_modules()
        roots.append((world.state_root(), len(world.journal)))
    plugins.close()
    assert roots[0] == roots[1]


class OffByOne:
    """A real executor that disagrees with wasmtime in one place: every counter it runs counts
    one more per call. Registered as "wasmer", it is an engine the demo must catch diverging."""

    name = "wasmer"

    def __init__(self, inner: Executor) -> None:
        self.inner = inner

    def _skew(self, request: CallRequest, output: ModuleOutput) -> ModuleOutput:
        if request.module_id != "demo.counter" or not output.new_state:
            return output
        state = bytearray(output.new_state)
        state[0] = (state[0] + 1) % 256
        return evolve(output, new_state=bytes(state))

    def call(self, request: CallRequest) -> ModuleOutput:
        return self._skew(request, self.inner.call(request))

    def call_batch(self, requests: Any) -> list[ModuleOutput | ModuleCallError]:
        return [result if isinstance(result, ModuleCallError) else self._skew(request, result)
                for request, result in zip(requests, self.inner.call_batch(requests),
                                           strict=True)]

    def check_artifact(self, wasm: bytes, gas_schedule: int = 1) -> list[str]:
        return self.inner.check_artifact(wasm, gas_schedule)

    def close(self) -> None:
        self.inner.close()


class OffByOnePlugin:
    def __init__(self, plugins: PluginManager) -> None:
        self.plugins = plugins

    @hookimpl
    def agentworld_register_executors(self, register: Any) -> None:
        register("wasmer", lambda config: OffByOne(
            self.plugins.create_executor("wasmtime", config)), description="skewed")


def test_an_engine_that_disagrees_fails_the_demo_at_its_first_divergent_height(
    tmp_path: Path
) -> None:
    plugins = PluginManager(entrypoints=False, environ={})
    plugins.block("wasmer")
    plugins.register(OffByOnePlugin(plugins), name="off-by-one")
    steps: list[tuple[str, bool | None]] = []

    class Collect(SilentListener):
        def step(self, text: str, ok: bool | None = None) -> None:
            steps.append((text, ok))

    try:
        result = run_demo(tmp_path / "skewed", plugins=plugins, listener=Collect())
    finally:
        plugins.close()
    assert (result["verified"], result["replayed"]) == (True, False)
    (failed,) = [text for text, ok in steps if ok is False]
    # The counters first tick at height 4: that height's hashes differ on the skewed engine.
    assert failed.startswith("live replay on wasmer: diverges at height 4")
    assert any(text.startswith("live replay on wasmtime") and ok for text, ok in steps)
