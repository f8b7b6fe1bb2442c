"""Crash recovery: the driver process is killed with SIGKILL at random moments and restarted;
every height it reports, and the final block hash and state root, equal an uninterrupted run's."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from livekit import WORLD_ID, scenario, write_log

from agentworld.commits import CommitResult, make_commit
from agentworld.live import ExecutionDriver, live_status, replay

HEIGHTS = 300
KILLS = 12
CHECKPOINT_EVERY = 16


def _pump(stream: object, lines: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        if line.endswith("\n"):  # a line cut by the kill was never completely printed
            lines.put(line[:-1])
    lines.put(None)


def _check(line: str, expected: dict[int, CommitResult]) -> int:
    """The height a `--json` line reports, after checking it against the uninterrupted run."""
    value = json.loads(line)
    result = expected[value["height"]]
    assert value == {"height": result.height, "block_hash": result.block_hash,
                     "state_root": result.state_root, "events": result.events}
    return result.height


@pytest.mark.slow
def test_sigkill_at_random_moments_then_restart_reaches_the_same_hashes(tmp_path: Path) -> None:
    commits = scenario(HEIGHTS)
    log = write_log(tmp_path / "commits.jsonl", commits)
    with ExecutionDriver(tmp_path / "reference", world_id=WORLD_ID,
                         checkpoint_every=CHECKPOINT_EVERY) as reference:
        expected = {
            c["height"]: reference.on_commit(make_commit(
                WORLD_ID, c["height"], c["actions"], c["committed_at_ms"]))
            for c in commits
        }

    rng = random.Random(20240611)
    root = tmp_path / "live"
    command = [sys.executable, "-m", "agentworld", "live", "run", "--world", str(root),
               "--commits", str(log), "--json", "--checkpoint-every", str(CHECKPOINT_EVERY)]
    kills, reported, last = 0, 0, 0
    while kills < KILLS:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(child.stdout, lines), daemon=True).start()
        # Every third child dies early: after a random delay, while it starts or restores, or
        # right after its first height if it gets that far. The others die after a random number
        # of heights plus a random fraction of the next one.
        early = kills % 3 == 0
        wanted = 1 if early else rng.randint(1, 25)
        wait = rng.uniform(0.1, 1.0) if early else 60.0
        deadline = time.monotonic() + wait
        seen = 0
        while seen < wanted:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                assert early, "no height reported within a minute"
                break
            if line is None:
                break
            height = _check(line, expected)
            assert height == last + 1, f"height {height} reported after {last}"
            last, seen, reported = height, seen + 1, reported + 1
        if child.poll() is not None:
            assert child.returncode == 0, child.stderr.read() if child.stderr else ""
            break
        if not early:
            time.sleep(rng.uniform(0, 0.004))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        kills += 1
        while (line := lines.get(timeout=30)) is not None:
            _check(line, expected)
        # Heights applied but not reported before the kill are the next run's starting point.
        last = live_status(root).height if (root / "live.json").exists() else 0

    assert kills >= 10, f"the run finished after {kills} kills"
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout.splitlines()[-1])
    assert final["height"] == HEIGHTS
    assert (final["block_hash"], final["state_root"]) == (
        expected[HEIGHTS].block_hash, expected[HEIGHTS].state_root)
    status = live_status(root)
    assert (status.height, status.block_hash, status.state_root) == (
        HEIGHTS, expected[HEIGHTS].block_hash, expected[HEIGHTS].state_root)
    assert replay(root).ok
    assert reported > 0
