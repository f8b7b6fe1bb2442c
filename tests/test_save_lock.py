"""One writer at a time: saves lock the world directory, refuse to replace a world they do not
continue, and fail cleanly (a `PersistenceError` naming the path, nothing left behind)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentworld import World
from agentworld.persistence import (
    GENERATIONS,
    LOCK,
    DifferentWorldError,
    SaveError,
    WorldLockedError,
    read_pointer,
    verify_dir,
)
from agentworld.world import event_to_json
from worldkit import world_with_agents

TESTS = Path(__file__).parent
ROUNDS = 40


def child_env() -> dict[str, str]:
    return {**os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


def run_python(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args],
                          capture_output=True, text=True, timeout=120, env=child_env())


# A writer: wait for the start signal, then load, add an agent, step and save, ROUNDS times.
# Each save reports `saved <journal length> <sha256 of the journal lines>` or the refusal's class;
# any other exception ends the process with a traceback (and fails the test).
WRITER = textwrap.dedent("""
    import hashlib, os, sys, time
    from agentworld import World
    from agentworld.persistence import PersistenceError
    from agentworld.world import event_to_json

    root, name, rounds, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    while not os.path.exists(go):
        time.sleep(0.001)
    for n in range(rounds):
        world = World.load_from_dir(root)
        world.submit({"type": "register_agent",
                      "data": {"agent_id": f"{name}-{n}", "position": [n, 0]}})
        world.step()
        try:
            world.save_to_dir(root)
        except PersistenceError as exc:
            assert "\\n" not in str(exc) and root in str(exc), exc
            print("refused", type(exc).__name__, flush=True)
            continue
        digest = hashlib.sha256(b"".join(event_to_json(e) + b"\\n" for e in world.journal))
        print("saved", len(world.journal), digest.hexdigest(), flush=True)
""")


@pytest.mark.slow
def test_two_writer_processes_on_one_directory_never_lose_a_save(tmp_path: Path) -> None:
    root = tmp_path / "world"
    world_with_agents("ada").save_to_dir(root)
    go = tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), name, str(ROUNDS),
                                 str(go)], env=child_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for name in ("w1", "w2")]
    go.touch()
    reports: list[list[str]] = []
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        reports += [line.split() for line in out.splitlines()]

    world = World.load_from_dir(root)
    assert verify_dir(root).ok
    saved = [(int(report[1]), report[2]) for report in reports if report[0] == "saved"]
    refused = [report[1] for report in reports if report[0] == "refused"]
    assert len(saved) + len(refused) == 2 * ROUNDS
    assert set(refused) <= {"WorldLockedError", "DifferentWorldError"}
    # Every save that succeeded is part of the final world: none was overwritten by the other.
    encoded = [event_to_json(event) + b"\n" for event in world.journal]
    for length, digest in saved:
        assert hashlib.sha256(b"".join(encoded[:length])).hexdigest() == digest
    assert max(length for length, _ in saved) == len(world.journal)
    # The writers really raced: some saves were refused.
    assert refused, "the two writers never overlapped"


def test_a_second_writer_gets_a_one_line_error_naming_the_directory(tmp_path: Path) -> None:
    root = tmp_path / "world"
    world = world_with_agents("ada")
    world.save_to_dir(root)
    # Another process holds the directory's lock, as a writer in the middle of a save does.
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import fcntl, os, sys
        fd = os.open(sys.argv[1], os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{os.getpid()}\\n".encode())
        print("held", flush=True)
        sys.stdin.read()
    """), str(root / LOCK)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        world.step()
        with pytest.raises(WorldLockedError) as locked:
            world.save_to_dir(root)
        message = str(locked.value)
        assert str(root) in message and f"process {holder.pid}" in message
        assert "\n" not in message
        step = subprocess.run([sys.executable, "-m", "agentworld", "world", "step", str(root)],
                              capture_output=True, text=True, timeout=120, env=child_env())
        assert step.returncode == 1 and "Traceback" not in step.stderr
        assert len(step.stderr.strip().splitlines()) == 1 and str(root) in step.stderr
        assert read_pointer(root) == 1  # nothing was written while the lock was held
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # A killed holder leaves no lock behind: the kernel released it.
    world.save_to_dir(root)
    assert World.load_from_dir(root).state_root() == world.state_root()


def test_saving_over_a_world_it_does_not_continue_is_refused_unless_overwrite(
    tmp_path: Path,
) -> None:
    root = tmp_path / "world"
    first = world_with_agents("ada", "bob")
    first.save_to_dir(root)
    other = world_with_agents("cy")
    with pytest.raises(DifferentWorldError, match="overwrite=True") as refused:
        other.save_to_dir(root)
    assert str(root) in str(refused.value)
    assert World.load_from_dir(root).state_root() == first.state_root()

    # Two copies of one saved world: the first to save wins, the stale one is refused.
    one, two = World.load_from_dir(root), World.load_from_dir(root)
    for copy, agent in ((one, "dan"), (two, "eve")):
        copy.submit({"type": "register_agent", "data": {"agent_id": agent, "position": [0, 0]}})
        copy.step()
    one.save_to_dir(root)
    with pytest.raises(DifferentWorldError, match="another writer"):
        two.save_to_dir(root)
    assert "dan" in World.load_from_dir(root).state.agents
    one.step()
    one.save_to_dir(root)  # the winner keeps saving

    other.save_to_dir(root, overwrite=True)
    assert World.load_from_dir(root).state_root() == other.state_root()
    assert len(list((root / GENERATIONS).iterdir())) == 1


DISK_FULL = textwrap.dedent("""
    import os, resource, sys
    from agentworld import World
    from agentworld.persistence import SaveError

    root = sys.argv[1]
    world = World.load_from_dir(root)
    for n in range(400):
        world.submit({"type": "register_agent",
                      "data": {"agent_id": f"agent-{n:04d}-" + "x" * 100, "position": [n, 0]}})
    world.step()
    # Files may not grow past 16 KiB from now on: every write beyond fails as on a full disk.
    resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
    for attempt in range(3):
        try:
            world.save_to_dir(root)
        except SaveError as exc:
            print(exc, flush=True)
        else:
            print("saved", flush=True)
""")


def test_a_save_that_runs_out_of_space_names_the_path_and_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "world"
    world = world_with_agents("ada")
    world.save_to_dir(root)
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    result = run_python(DISK_FULL, str(root))
    assert result.returncode == 0, result.stderr
    failures = result.stdout.splitlines()
    assert len(failures) == 3
    for failure in failures:
        assert failure.startswith(f"{root}: cannot save the world: ")
        assert "File too large" in failure
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before
    assert World.load_from_dir(root).state_root() == world.state_root()
    with pytest.raises(SaveError, match="cannot create the world directory"):
        world.save_to_dir(root / LOCK / "inside")
