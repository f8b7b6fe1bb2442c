"""`agentworld live run|replay|status` as a user runs them: real processes, files and signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from livekit import WORLD_ID, action, run_on_a_terminal, scenario, write_log
from test_live import _rewrite_record

from agentworld import World, cli_live
from agentworld.cli import cli
from agentworld.commits import make_commit
from agentworld.live import ExecutionDriver, live_status

COMMAND = [sys.executable, "-m", "agentworld"]


def in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line in this process (no interpreter start-up), like `agentworld`."""
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def live_run(root: Path, log: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`agentworld live run --world ROOT --commits LOG ...`, in this process."""
    return in_process("live", "run", "--world", str(root), "--commits", str(log), *extra)


def heights(output: str) -> list[int]:
    """The heights of `--json` lines."""
    return [json.loads(line)["height"] for line in output.splitlines()]


def one_line_error(done: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    """The command failed with `code` and one stderr line containing `text`, no traceback."""
    assert done.returncode == code, (done.stdout, done.stderr)
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert text in done.stderr and "Traceback" not in done.stderr


def test_json_lines_end_with_the_final_height_and_runs_resume(tmp_path: Path) -> None:
    commits = scenario(30)
    root = tmp_path / "live"
    first = live_run(root, write_log(tmp_path / "first.jsonl", commits[:12]), "--json")
    assert first.returncode == 0, first.stderr
    assert heights(first.stdout) == list(range(1, 13))
    log = write_log(tmp_path / "all.jsonl", commits)
    piped = subprocess.run(
        f"{' '.join(COMMAND)} live run --world {root} --commits {log} --json | tail -n 1",
        shell=True, capture_output=True, text=True, timeout=120)
    last = json.loads(piped.stdout)
    status = live_status(root)
    assert (last["height"], last["block_hash"], last["state_root"]) == (
        30, status.block_hash, status.state_root)
    # Nothing left to apply: the one line is still the final height.
    again = live_run(root, log, "--json")
    assert again.stdout.splitlines() == piped.stdout.splitlines()
    text = live_run(root, log)
    assert text.stdout.strip() == (f"height 30: block_hash {status.block_hash}, state_root "
                                   f"{status.state_root} (0 height(s) applied)")


def test_status_and_replay(tmp_path: Path) -> None:
    root = tmp_path / "live"
    assert live_run(root, write_log(tmp_path / "log.jsonl", scenario(40)),
                    "--checkpoint-every", "8").returncode == 0
    status = json.loads(in_process("live", "status", "--world", str(root), "--json").stdout)
    assert status["height"] == 40 and status["world_id"] == WORLD_ID
    assert status["checkpoints"] == [24, 32, 40] and status["newest_checkpoint"] == 40
    assert (status["records_from"], status["records"]) == (24, 17)
    text = in_process("live", "status", "--world", str(root)).stdout
    assert f"height 40, block_hash {status['block_hash']}" in text
    assert "records: 17 kept, heights 24..40" in text
    replayed = in_process("live", "replay", "--world", str(root))
    assert replayed.returncode == 0
    assert replayed.stdout.startswith("ok: heights 25..40 re-executed from checkpoint 24")
    _rewrite_record(root / "records" / "000000000033.json",
                    lambda doc: doc["result"].update(state_root="ef" * 32))
    diverged = in_process("live", "replay", "--world", str(root))
    assert diverged.returncode == 1
    assert diverged.stdout.startswith("divergence at height 33 (")
    assert f"recorded block_hash {status['block_hash']}" not in diverged.stdout
    report = json.loads(in_process("live", "replay", "--world", str(root), "--json").stdout)
    assert report["ok"] is False and report["divergence"]["height"] == 33


def test_bad_input_and_refused_commits_are_one_line_errors(tmp_path: Path) -> None:
    commits = scenario(6)
    root = tmp_path / "live"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(commits[0]) + "\n" + json.dumps(commits[1]) + "\n{oops\n")
    done = live_run(root, bad, "--json")
    # With --json the error is the last line of the output: one JSON object.
    *applied, error = done.stdout.splitlines()
    assert done.returncode == 2 and heights("\n".join(applied)) == [1, 2]
    assert json.loads(error)["error"]["message"].startswith(f"{bad}:3: not usable JSON")
    one_line_error(live_run(root, bad), 2, f"{bad}:3: not usable JSON")
    invalid = write_log(tmp_path / "invalid.jsonl", [{**commits[2], "height": "3"}])
    one_line_error(live_run(root, invalid), 2, f"{invalid}:1: invalid commit: $.height")
    gap = write_log(tmp_path / "gap.jsonl", [commits[5]])
    one_line_error(live_run(root, gap), 1, f"{gap}:1: commit for height 6 arrived, but heights "
                                           "3..5 are missing")
    other = {**commits[1], "actions": [action("x", None, "register_agent", agent_id="zed",
                                               position=[0, 0])]}
    conflict = write_log(tmp_path / "conflict.jsonl", [other])
    one_line_error(live_run(root, conflict), 1, "height 2 was applied with action_root")
    wrong = write_log(tmp_path / "wrong.jsonl", [{**commits[2], "action_root": "0" * 64}])
    one_line_error(live_run(root, wrong), 1, "does not match its actions")
    one_line_error(in_process("live", "status", "--world", str(tmp_path)), 1,
                   "not a live directory")
    assert live_status(root).height == 2
    with ExecutionDriver(root):
        one_line_error(live_run(root, gap), 1,
                       f"another live driver (pid {os.getpid()}) is running on this directory")


def test_an_endless_line_is_refused_not_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_live, "MAX_LINE_BYTES", 4096)
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps(scenario(1)[0]) + "\n" + "x" * 10_000)
    done = live_run(tmp_path / "live", log, "--json")
    assert heights(done.stdout.splitlines()[0]) == [1]
    assert "log.jsonl:2: the line is longer than 4096 bytes" in done.stdout


def test_a_saved_world_is_the_genesis(tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    assert in_process("world", "init", str(saved), "--agent", "ada").returncode == 0
    log = write_log(tmp_path / "log.jsonl", [make_commit("world", 1, [action(
        "m", "ada", "move_agent", agent_id="ada", to=[3, 4])]).to_json()])
    done = live_run(tmp_path / "live", log, "--genesis", str(saved), "--json")
    assert heights(done.stdout) == [1], done.stderr
    world = World.load_from_dir(tmp_path / "live" / "checkpoints" / f"{1:012d}" / "world")
    assert world.state.agents["ada"].position == (3, 4)
    again = live_run(tmp_path / "live", log, "--genesis", str(saved))
    one_line_error(again, 2, "is already a live directory")
    # Without a genesis the world starts empty: the move is refused (as data, not an error).
    assert heights(live_run(tmp_path / "empty", log, "--json").stdout) == [1]
    world = World.load_from_dir(tmp_path / "empty" / "checkpoints" / f"{1:012d}" / "world")
    assert [e.data["code"] for e in world.journal] == ["agent_not_found"]


def _wait_for_lines(child: subprocess.Popen[str], count: int) -> list[dict[str, Any]]:
    assert child.stdout is not None
    lines = []
    while len(lines) < count:
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else ""
        lines.append(json.loads(line))
    return lines


def test_follow_reads_a_growing_log_until_ctrl_c(tmp_path: Path) -> None:
    commits = scenario(16)
    log = write_log(tmp_path / "log.jsonl", commits[:10])
    root = tmp_path / "live"
    child = subprocess.Popen([*COMMAND, "live", "run", "--world", str(root), "--commits",
                              str(log), "--follow", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert [line["height"] for line in _wait_for_lines(child, 10)] == list(range(1, 11))
    with log.open("a") as handle:
        line = json.dumps(commits[10]) + "\n"
        handle.write(line[:25])  # a writer caught mid-line: the driver waits for the rest
        handle.flush()
        time.sleep(0.3)
        handle.write(line[25:] + "".join(json.dumps(c) + "\n" for c in commits[11:]))
    assert [line["height"] for line in _wait_for_lines(child, 6)] == list(range(11, 17))
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert err.strip() == "interrupted: stopped cleanly at height 16"
    assert live_status(root).height == 16


@pytest.mark.slow
def test_ctrl_c_stops_at_a_height_boundary(tmp_path: Path) -> None:
    root = tmp_path / "live"
    log = write_log(tmp_path / "log.jsonl", scenario(300))
    child = subprocess.Popen([*COMMAND, "live", "run", "--world", str(root), "--commits",
                              str(log), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_lines(child, 5)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    stopped = int(err.strip().rsplit(" ", 1)[1])
    assert stopped < 300 and "Traceback" not in err
    # Every applied height was reported and recorded whole; a restart goes on from there.
    assert live_status(root).height == stopped == 5 + len(out.splitlines())
    rest = live_run(root, log, "--json")
    assert heights(rest.stdout) == list(range(stopped + 1, 301))


def test_a_terminal_gets_a_progress_bar(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.jsonl", scenario(40))
    drawn, out, status = run_on_a_terminal(
        [*COMMAND, "live", "run", "--world", str(tmp_path / "live"), "--commits", str(log)],
        dict(os.environ), 60)
    assert status == 0
    assert b"height" in drawn and b"\x1b[" in drawn
    assert out.startswith("height 40: block_hash ")
