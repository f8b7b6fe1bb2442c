"""Crash safety: a save killed with SIGKILL at any moment leaves a loadable world that
is exactly the previous save or the one being written, never a mixture and never an error."""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from agentworld import World
from agentworld.persistence import NotAWorldError, verify_dir

TESTS = Path(__file__).parent
KILLS = 24

# The child grows a world with a ticking counter instance, saving after every step, and reports
# each save before ("saving") and after ("saved") it: `<word> <journal length> <state root>`.
CHILD = textwrap.dedent("""
    import sys
    from agentworld import World
    from agentworld.persistence import NotAWorldError
    from agentworld.testing.guests import guest_wasm
    from worldkit import deploy, install, manifest, world_with_agents

    root = sys.argv[1]
    try:
        world = World.load_from_dir(root)
        print("loaded", len(world.journal), world.state_root(), flush=True)
    except NotAWorldError:
        world = world_with_agents("ada", "bob")
        install(world, "ada", manifest("m.counter", deploy(world, guest_wasm("counter"))))
    while True:
        n = len(world.journal)
        world.submit({"type": "register_agent",
                      "data": {"agent_id": f"agent-{n}", "position": [n, 0],
                               "resources": {"gold": n}}})
        world.step_with_modules()
        print("saving", len(world.journal), world.state_root(), flush=True)
        world.save_to_dir(root)
        print("saved", len(world.journal), world.state_root(), flush=True)
""")


def _pump(stream: object, lines: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        # A kill can cut the child's last report short: a line without its newline was never
        # completely printed, so its save (which starts only after the print) never began.
        if line.endswith("\n"):
            lines.put(line[:-1])
    lines.put(None)


@pytest.mark.slow
def test_kill_minus_nine_during_saves_never_corrupts_the_world(tmp_path: Path) -> None:
    rng = random.Random(20240611)
    root = tmp_path / "world"
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    # What the directory holds before the current child runs: None until something was saved.
    on_disk: tuple[int, str] | None = None
    kills_mid_save = 0
    for _ in range(KILLS):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(root)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(child.stdout, lines), daemon=True)
        reader.start()
        seen: list[str] = []
        # Let the child complete at least one save, then kill it at a random moment.
        while not seen or not seen[-1].startswith("saved"):
            line = lines.get(timeout=60)
            assert line is not None, child.stderr.read() if child.stderr else ""
            seen.append(line)
        threading.Event().wait(rng.uniform(0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        reader.join(timeout=30)
        while (line := lines.get_nowait()) is not None:
            seen.append(line)
        if child.stderr is not None:
            child.stderr.close()

        reports = [(word, int(length), state_root)
                   for word, length, state_root in (line.split() for line in seen)]
        if reports[0][0] == "loaded":
            assert reports[0][1:] == on_disk, "the child loaded something else than was saved"
        saved = [r[1:] for r in reports if r[0] == "saved"]
        candidates = [saved[-1]]
        if reports[-1][0] == "saving":  # killed mid-save: the new world may have landed
            candidates.append(reports[-1][1:])
            kills_mid_save += 1

        try:
            world = World.load_from_dir(root)
        except NotAWorldError:
            pytest.fail("a killed save left a directory that is not a world")
        loaded = (len(world.journal), world.state_root())
        assert loaded in candidates, (loaded, candidates)
        report = verify_dir(root)
        assert report.ok and report.state_root == loaded[1], report.problems
        on_disk = loaded
    # The kills must really have hit saves in progress, not only the gaps between them.
    assert kills_mid_save >= KILLS // 3, kills_mid_save
