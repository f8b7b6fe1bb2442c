"""End to end: a commit log through `agentworld live run` makes modules run in production.

Heights register agents, deploy the counter and the sleeper, install the counter as a ticking
instance on an agent and at a location, move agents and upgrade the agent's instance to the
sleeper; the journal of the resulting world shows each module event at the height it belongs to.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from livekit import (
    DEPLOY_COUNTER_AT,
    INSTALL_AT_PLAZA_AT,
    INSTALL_ON_AGENT_AT,
    UPGRADE_AT,
    scenario,
    write_log,
)

from agentworld import World
from agentworld.live import live_status

HEIGHTS = 60


def agentworld(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real command line."""
    return subprocess.run([sys.executable, "-m", "agentworld", *args], capture_output=True,
                          text=True, timeout=120)


def test_modules_run_at_the_heights_they_belong_to(tmp_path: Path) -> None:
    log = write_log(tmp_path / "commits.jsonl", scenario(HEIGHTS))
    root = tmp_path / "live"
    done = agentworld("live", "run", "--world", str(root), "--commits", str(log), "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["height"] for line in lines] == list(range(1, HEIGHTS + 1))
    assert set(lines[-1]) == {"height", "block_hash", "state_root", "events"}

    # A stopped live directory's newest checkpoint is the current world, a saved world.
    status = live_status(root)
    assert (status.height, status.block_hash) == (HEIGHTS, lines[-1]["block_hash"])
    world = World.load_from_dir(root / "checkpoints" / f"{HEIGHTS:012d}" / "world")
    assert world.state_root() == lines[-1]["state_root"] and world.time == HEIGHTS

    at: dict[tuple[str, str], list[int]] = defaultdict(list)
    for event in world.journal:
        key = event.data.get("instance_id", "") if event.kind.startswith("module.") else ""
        at[(event.kind, key)].append(event.time)
    assert at[("domain.module_artifact_deployed", "")] == [DEPLOY_COUNTER_AT, DEPLOY_COUNTER_AT + 1]
    assert at[("domain.module_installed", "")] == [INSTALL_ON_AGENT_AT, INSTALL_AT_PLAZA_AT]
    assert at[("domain.module_upgraded", "")] == [UPGRADE_AT]
    # The counter on ada ticks from the height after its install until the upgrade ...
    assert at[("module.emitted", "m.tick#1")] == list(range(INSTALL_ON_AGENT_AT + 1, UPGRADE_AT))
    # ... then runs the sleeper, which wakes every third height, at the upgrade height first.
    assert at[("module.tick_scheduled", "m.tick#1")] == list(range(UPGRADE_AT, HEIGHTS + 1, 3))
    # The plaza's instance counts every height after its install, empty heights included.
    assert at[("module.emitted", "m.tick#2")] == list(range(INSTALL_AT_PLAZA_AT + 1, HEIGHTS + 1))
    counts = [e.data["payload"]["count"] for e in world.journal
              if e.kind == "module.emitted" and e.data["instance_id"] == "m.tick#2"]
    assert counts == list(range(1, HEIGHTS - INSTALL_AT_PLAZA_AT + 1))
    plaza = world.instances["m.tick#2"]
    assert plaza.install_target == {"type": "location", "location_id": "plaza"}
    assert plaza.owner_agent_id == "bob"
    assert world.instances["m.tick#1"].module_version == "2.0.0"
    moved = [e.time for e in world.journal if e.kind == "domain.agent_moved"]
    assert moved and all(time % 7 for time in moved)

    replayed = agentworld("live", "replay", "--world", str(root), "--json")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert json.loads(replayed.stdout)["ok"] is True
