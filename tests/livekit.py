"""Commit logs for live-driver tests: a scripted world history, height by height.

`scenario(n)` gives n commits (JSON data, `action_root` omitted as a commit-log file may) that
register agents, deploy the `counter` and `sleeper` guests, install a ticking counter on an
agent and at a location, move agents, register more, leave some heights empty (ticks only) and
upgrade the agent's instance to the sleeper at `UPGRADE_AT`.
"""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import subprocess
from pathlib import Path
from typing import Any

from agentworld.canonical import sha256_hex
from agentworld.testing.guests import guest_wasm

WORLD_ID = "live-test"
AGENTS = ("ada", "bob", "cid")
DEPLOY_COUNTER_AT = 2
DEPLOY_SLEEPER_AT = 3
INSTALL_ON_AGENT_AT = 4  # instance "m.tick#1", owned by ada, on herself
INSTALL_AT_PLAZA_AT = 5  # instance "m.tick#2", owned by bob, at location "plaza"
UPGRADE_AT = 40  # "m.tick#1" becomes the sleeper (version 2.0.0)


def tick_manifest(wasm_hash: str, version: str = "1.0.0") -> dict[str, Any]:
    """A reducer ticking every step."""
    return {"module_id": "m.tick", "name": "tick", "version": version, "kind": "reducer",
            "wasm_hash": wasm_hash, "interface_version": "wasm-1",
            "exports": ["memory", "alloc", "reduce"], "subscriptions": [{"stage": "tick"}]}


def action(action_id: str, submitter: str | None, kind: str, **data: Any) -> dict[str, Any]:
    """One committed action."""
    return {"action_id": action_id, "submitter": submitter,
            "payload": {"type": kind, "data": data}}


def deploy(action_id: str, publisher: str, guest: str) -> dict[str, Any]:
    """A deploy of a shipped guest, its bytes as base64 text."""
    wasm = guest_wasm(guest)
    return action(action_id, publisher, "module.deploy_artifact", publisher_agent_id=publisher,
                  wasm_bytes=base64.b64encode(wasm).decode("ascii"), wasm_hash=sha256_hex(wasm))


def actions_at(height: int) -> list[dict[str, Any]]:
    """The actions committed at `height` (empty every seventh height: ticks only)."""
    counter, sleeper = sha256_hex(guest_wasm("counter")), sha256_hex(guest_wasm("sleeper"))
    if height == 1:
        return [action(f"reg-{name}", None, "register_agent", agent_id=name,
                       position=[index, 0], resources={"gold": 100})
                for index, name in enumerate(AGENTS)]
    if height == DEPLOY_COUNTER_AT:
        return [deploy("deploy-counter", "ada", "counter")]
    if height == DEPLOY_SLEEPER_AT:
        return [deploy("deploy-sleeper", "ada", "sleeper")]
    if height == INSTALL_ON_AGENT_AT:
        return [action("install-ada", "ada", "module.install", installer_agent_id="ada",
                       manifest=tick_manifest(counter), activate=True)]
    if height == INSTALL_AT_PLAZA_AT:
        return [action("install-plaza", "bob", "module.install", installer_agent_id="bob",
                       manifest=tick_manifest(counter),
                       install_target={"type": "location", "location_id": "plaza"},
                       activate=True)]
    if height == UPGRADE_AT:
        return [action("upgrade-ada", "ada", "module.upgrade", upgrader_agent_id="ada",
                       instance_id="m.tick#1", from_version="1.0.0",
                       manifest=tick_manifest(sleeper, "2.0.0"))]
    if height % 7 == 0:
        return []
    mover = AGENTS[height % len(AGENTS)]
    moves = [action(f"move-{height}", mover, "move_agent", agent_id=mover,
                    to=[height % 11, height % 13])]
    if height % 10 == 0:
        moves.append(action(f"reg-{height}", None, "register_agent", agent_id=f"agent-{height}",
                            position=[height, 1]))
    return moves


def scenario(heights: int, world_id: str = WORLD_ID) -> list[dict[str, Any]]:
    """Commits for heights 1..`heights`, without `action_root`."""
    return [{"world_id": world_id, "height": height, "actions": actions_at(height),
             "committed_at_ms": 1_700_000_000_000 + height * 1000}
            for height in range(1, heights + 1)]


def write_log(path: Path, commits: list[dict[str, Any]]) -> Path:
    """Write commits as a JSONL commit log."""
    path.write_text("".join(json.dumps(commit) + "\n" for commit in commits))
    return path


def run_on_a_terminal(command: list[str], env: dict[str, str], timeout: float
                      ) -> tuple[bytes, str, int]:
    """Run `command` with stderr on a pseudo-terminal and stdout on a pipe: what it drew on the
    terminal, what it printed, and its exit status."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=follower,
                             env={**env, "TERM": "xterm", "COLUMNS": "100"})
    os.close(follower)
    drawn = b""
    while True:
        ready, _, _ = select.select([leader], [], [], timeout)
        try:
            chunk = os.read(leader, 65536) if ready else b""
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            break
        drawn += chunk
    out, _ = child.communicate(timeout=timeout)
    os.close(leader)
    return drawn, out.decode(), child.returncode
