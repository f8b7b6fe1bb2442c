"""`agentworld live run|replay|status`: drive a live directory from a commit log, check it, show it.

Errors are one line and a non-zero exit: 2 for an unusable commit-log line or option, 1 for a
commit the driver refuses (gap, conflict, other world) or a damaged directory.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from types import FrameType
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress

from agentworld.cli_input import BadInput, read_json_input
from agentworld.commits import GENESIS, Commit, CommitResult, parse_commit
from agentworld.errors import AgentWorldError, HeightPrunedError, InvalidCommitError
from agentworld.live import (
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_KEEP_CHECKPOINTS,
    ExecutionDriver,
    live_status,
    replay,
)
from agentworld.live_dir import CHECKPOINT_WORLD, LiveDirectory
from agentworld.world import World

# How long `--follow` waits before looking at the commit log again.
FOLLOW_POLL_S = 0.1
# The longest commit-log line read: room for a height deploying several large artifacts (as
# base64), while a file without newlines cannot make the reader hold all of it.
MAX_LINE_BYTES = 64 * 1024 * 1024


def _commit_of(raw: bytes, where: str) -> Commit:
    """The commit on one log line (its `action_root` may be absent: it is then computed)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{where}: not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    value = read_json_input(where, text=text)
    try:
        return parse_commit(value, root_optional=True)
    except InvalidCommitError as exc:
        raise BadInput(f"{where}: {exc}") from None
    except AgentWorldError as exc:
        raise click.ClickException(f"{where}: {exc}") from None


def _log_lines(
    path: str, follow: bool, stopping: Callable[[], bool]
) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a commit log; with `follow`, wait for more until `stopping()`.

    A last line without its newline is taken as it is at the end of a finished file, but
    waited for while following: its writer may not be done with it.
    """
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        number, pending = 0, b""
        while not stopping():
            chunk = handle.readline(MAX_LINE_BYTES + 1 - len(pending))
            if len(pending) + len(chunk) > MAX_LINE_BYTES:
                raise BadInput(f"{path}:{number + 1}: the line is longer than "
                                   f"{MAX_LINE_BYTES} bytes")
            if chunk.endswith(b"\n"):
                number += 1
                yield number, pending + chunk
                pending = b""
                continue
            pending += chunk
            if not follow:
                if pending.strip():
                    yield number + 1, pending
                return
            time.sleep(FOLLOW_POLL_S)


class _StopRequest:
    """SIGINT/SIGTERM handler: ask the loop to stop at the next height boundary.

    A second signal falls back to the default handling, so a stuck run can still be broken.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.requested = True
        signal.signal(signum, self._previous[signum])


def _line(result: CommitResult) -> str:
    return json.dumps({"height": result.height, "block_hash": result.block_hash,
                       "state_root": result.state_root, "events": result.events},
                      sort_keys=True)


def _current(driver: ExecutionDriver) -> CommitResult:
    """The result of the driver's current height (height 0: the genesis world)."""
    if driver.height == 0:
        world = driver.world
        return CommitResult(height=0, block_hash=GENESIS, prev_block_hash=GENESIS,
                            state_root=world.state_root(), journal_len=len(world.journal),
                            events=0)
    return driver.recorded(driver.height)


@click.group()
def live() -> None:
    """Run a world from committed heights (a commit log), replay it, show where it stands."""


@live.command("run")
@click.option("--world", "world_dir", required=True, type=click.Path(file_okay=False),
              help="The live directory (created on first use).")
@click.option("--commits", "commits_file", required=True, type=click.Path(dir_okay=False),
              help="The commit log: one JSON commit per line.")
@click.option("--follow", is_flag=True,
              help="Keep reading the log as it grows, until interrupted.")
@click.option("--engine", default="wasmtime", show_default=True, help="The executor to run on.")
@click.option("--checkpoint-every", type=click.IntRange(min=1),
              default=DEFAULT_CHECKPOINT_EVERY, show_default=True,
              help="Save the whole world every N heights.")
@click.option("--keep-checkpoints", type=click.IntRange(min=1),
              default=DEFAULT_KEEP_CHECKPOINTS, show_default=True,
              help="How many checkpoints to keep (records before the oldest are pruned).")
@click.option("--archive", is_flag=True,
              help="Keep every record and the genesis checkpoint (replay from genesis).")
@click.option("--genesis", "genesis_dir", type=click.Path(file_okay=False), default=None,
              help="A saved world to start a new live directory from (default: an empty world "
                   "named by the first commit).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON line per applied height.")
def live_run(world_dir: str, commits_file: str, follow: bool, engine: str,
             checkpoint_every: int, keep_checkpoints: int, archive: bool,
             genesis_dir: str | None, as_json: bool) -> None:
    """Apply the commit log's heights to the live directory, resuming where it stands.

    Heights already applied are checked against their records (and skipped when their records
    were pruned). Ctrl-C (or SIGTERM) stops cleanly at a height boundary: exit 0 when
    following, 130 otherwise.
    """
    exists = LiveDirectory(world_dir).exists()
    if genesis_dir is not None and exists:
        raise BadInput(f"--genesis: {world_dir} is already a live directory (its genesis is "
                           "its oldest history); leave --genesis out to resume it")
    genesis = World.load_from_dir(genesis_dir) if genesis_dir is not None else None
    options: dict[str, Any] = {"engine": engine, "checkpoint_every": checkpoint_every,
                               "keep_checkpoints": keep_checkpoints, "archive": archive,
                               "genesis": genesis}
    driver = (ExecutionDriver(world_dir, **options)
              if genesis is not None or exists else None)
    applied = 0
    try:
        with ExitStack() as stack:
            stop = stack.enter_context(_StopRequest())
            advance: Callable[[int], None] = lambda height: None  # noqa: E731
            if sys.stderr.isatty() and not as_json:
                bar = stack.enter_context(Progress(console=Console(stderr=True), transient=True))
                task = bar.add_task("applying heights", total=None)
                advance = lambda height: bar.update(task, description=f"height {height}")  # noqa: E731
            for number, raw in _log_lines(commits_file, follow, lambda: stop.requested):
                if not raw.strip():
                    continue
                where = f"{commits_file}:{number}"
                commit = _commit_of(raw, where)
                if driver is None:
                    driver = ExecutionDriver(world_dir, world_id=commit.world_id, **options)
                before = driver.height
                try:
                    result = driver.on_commit(commit)
                except HeightPrunedError:
                    continue  # applied long ago: its record is gone, there is nothing to check
                except AgentWorldError as exc:
                    raise click.ClickException(f"{where}: {exc}") from None
                if result.height > before:
                    applied += 1
                    if as_json:
                        click.echo(_line(result))
                advance(driver.height)
                if stop.requested:
                    break
            interrupted = stop.requested
        if driver is None:
            click.echo(f"{commits_file}: no commits; nothing to do", err=True)
            return
        # A stopped directory's newest checkpoint is its current world (and restarts at once).
        driver.checkpoint()
        current = _current(driver)
    finally:
        if driver is not None:
            driver.close()
    if as_json and applied == 0:
        click.echo(_line(current))
    elif not as_json:
        click.echo(f"height {current.height}: block_hash {current.block_hash}, state_root "
                   f"{current.state_root} ({applied} height(s) applied)")
    if interrupted:
        click.echo(f"interrupted: stopped cleanly at height {current.height}", err=True)
        if not follow:
            sys.exit(130)


@live.command("replay")
@click.option("--world", "world_dir", required=True, type=click.Path(file_okay=False),
              help="The live directory.")
@click.option("--engine", default="wasmtime", show_default=True,
              help="The executor to re-execute on.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def live_replay(world_dir: str, engine: str, as_json: bool) -> None:
    """Re-execute the recorded heights in a scratch world and compare every height's hashes.

    Exit 0 when every height matches, 1 at the first divergence (which is printed).
    """
    if sys.stderr.isatty() and not as_json:
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("replaying", total=None)
            report = replay(world_dir, engine=engine, progress=lambda done, total: bar.update(
                task, completed=done, total=total))
    else:
        report = replay(world_dir, engine=engine)
    start = "genesis" if report.from_height == 0 else f"checkpoint {report.from_height}"
    if as_json:
        click.echo(json.dumps(report.to_json(), sort_keys=True))
    elif report.divergence is None:
        click.echo(f"ok: heights {report.from_height + 1}..{report.to_height} re-executed from "
                   f"{start} on {engine}; every block_hash and state_root matches")
    else:
        found = report.divergence
        replayed = (f"error {found.error}" if found.error is not None else
                    f"block_hash {found.replayed_block_hash}, state_root "
                    f"{found.replayed_state_root}")
        click.echo(f"divergence at height {found.height} ({found.record}): recorded block_hash "
                   f"{found.recorded_block_hash}, state_root {found.recorded_state_root}; "
                   f"replayed {replayed}")
    sys.exit(0 if report.ok else 1)


@live.command("status")
@click.option("--world", "world_dir", required=True, type=click.Path(file_okay=False),
              help="The live directory.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def live_status_command(world_dir: str, as_json: bool) -> None:
    """Show a live directory: height, block hash, state root, checkpoints and records kept."""
    status = live_status(world_dir)
    if as_json:
        click.echo(json.dumps(status.to_json(), sort_keys=True))
        return
    click.echo(f"live directory {status.path}: world {status.world_id}")
    click.echo(f"height {status.height}, block_hash {status.block_hash}")
    click.echo(f"state_root {status.state_root}")
    newest = LiveDirectory(status.path).checkpoint_path(status.checkpoints[-1]) / CHECKPOINT_WORLD
    click.echo("checkpoints: " + ", ".join(map(str, status.checkpoints))
               + f" (the newest holds the saved world {newest})")
    if status.records:
        click.echo(f"records: {status.records} kept, heights {status.records_from}.."
                   f"{status.height}")
    else:
        click.echo("records: none")
