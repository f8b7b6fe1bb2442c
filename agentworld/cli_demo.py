"""`agentworld demo`: run the demo world and tell its story (or print one JSON line).

Exit status 0 when the demo checked itself (reloaded and verified, replayed without a
divergence), 1 when a check failed or the engine cannot run, 2 for unusable options.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table
from rich.text import Text

from agentworld.demo import DEFAULT_HEIGHTS, SCRIPTED_HEIGHTS, HeightSummary, run_demo
from agentworld.errors import InvalidInputError


class _BadDemoInput(click.ClickException):
    """Unusable demo options: one line on stderr, exit status 2."""

    exit_code = 2


class _PipeConsole(Console):
    """A console whose closed pipe ends the command like any other output does (exit 141);
    rich alone would exit with status 1."""

    def on_broken_pipe(self) -> None:
        """Let the command line's handler end the command quietly."""
        raise BrokenPipeError


class _ConsoleListener:
    """Tells the demo on a console: each height with what happened, then every check."""

    def __init__(self, console: Console | None, progress: Progress | None) -> None:
        self._console = console
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}
        self._stepped = False

    def _say(self, text: Text | str) -> None:
        if self._console is not None:
            self._console.print(text, highlight=False, markup=False, soft_wrap=True)

    def begin(self, directory: Path, engine: str, heights: int, actions: int) -> None:
        """Name the folder, the engine and the commit log."""
        title = Text("agentworld demo", style="bold")
        title.append(f"  world 'demo' on {engine}, in {directory}", style="default")
        self._say(title)
        self._say(f"commit log: {directory / 'commits.jsonl'} ({heights} heights, {actions} "
                  "actions, each with its submitter; none means the host)")
        self._say(f"live directory: {directory / 'live'}")

    def height(self, summary: HeightSummary) -> None:
        """One height: its story, what happened, its hashes."""
        head = Text(f"\nheight {summary.height:>2}  ", style="bold cyan")
        head.append(summary.story, style="bold")
        self._say(head)
        for line in summary.lines:
            style = ("yellow" if line.startswith(("refused", "contained")) else "default")
            self._say(Text(f"  {line}", style=style))
        self._say(Text(f"  block {summary.block_hash[:16]}  state root "
                       f"{summary.state_root[:16]}  +{summary.events} events", style="dim"))

    def step(self, text: str, ok: bool | None = None) -> None:
        """One check or save, with its verdict."""
        if not self._stepped:
            self._stepped = True
            self._say("")
        mark = {True: ("ok  ", "green"), False: ("FAIL", "bold red"), None: ("    ", "default")}
        label, style = mark[ok]
        line = Text(label, style=style)
        line.append(f" {text}", style="default")
        self._say(line)

    def progress(self, what: str, done: int, total: int) -> None:
        """Advance the progress bar of `what` (on a terminal only)."""
        if self._progress is None:
            return
        task = self._tasks.get(what)
        if task is None:
            task = self._tasks[what] = self._progress.add_task(what, total=total)
        self._progress.update(task, completed=done)


def _summary(console: Console, result: dict[str, Any]) -> None:
    """The instances, every upgrade and rollback with its verdict, every refused action."""
    def say(text: str, style: str = "default") -> None:
        console.print(Text(text, style=style), highlight=False, markup=False, soft_wrap=True)

    instances = Table(title="instances", title_justify="left", title_style="bold")
    for column in ("instance", "module", "version", "owner", "target", "active"):
        instances.add_column(column)
    for row in result["instances"]:
        instances.add_row(row["instance_id"], row["module_id"], row["version"], row["owner"],
                          row["target"], "yes" if row["active"] else "no")
    console.print()
    console.print(instances, markup=False, highlight=False)
    say("upgrades and rollbacks", "bold")
    for row in result["upgrades"]:
        verdict = "accepted" if row["accepted"] else f"refused: {row['code']}"
        say(f"  height {row['height']:>2}  {row['submitter'] or 'host'}: {row['operation']} "
            f"{row['instance_id']} {row['from_version']} -> {row['to_version']}: {verdict}",
            "default" if row["accepted"] else "yellow")
        for violation in row["violations"]:
            say(f"             [{violation['severity']}] {violation['rule']}: "
                f"{violation['message']}", "yellow")
    say("refused actions", "bold")
    for row in result["rejections"]:
        say(f"  height {row['height']:>2}  {row['action_id']} ({row['type']}, submitted by "
            f"{row['submitter'] or 'the host'}): {row['code']}", "yellow")


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write the commit log, the live directory and the saved world "
                   "(absent or empty; default: a new folder, named in the output).")
@click.option("--engine", default="wasmtime", show_default=True,
              help="The executor the live driver runs on.")
@click.option("--store", "store", metavar="URI",
              help="The module store of the saved world (default: a file store in its "
                   "folder), e.g. s3://bucket/prefix?endpoint_url=...")
@click.option("--heights", type=click.IntRange(min=SCRIPTED_HEIGHTS), default=DEFAULT_HEIGHTS,
              show_default=True, help="How many heights to commit.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON line with the result (and nothing else on stdout).")
def demo(directory: Path | None, engine: str, store: str | None, heights: int,
         as_json: bool) -> None:
    """Run the demo world through the live driver, then check it: save, reload, verify, replay.

    Exit 0 when every check passed, 1 when one failed.
    """
    console = None if as_json else _PipeConsole()
    # The bar goes where a person watches: with the story when stdout is a terminal (rich keeps
    # it below the lines printed), else on a terminal stderr, leaving redirected stdout alone.
    bar_console: Console
    if console is not None and console.is_terminal:
        bar_console = console
    else:
        bar_console = Console(stderr=True)
    shown = bar_console.is_terminal
    with Progress(console=bar_console, transient=True, disable=not shown,
                  redirect_stdout=False, redirect_stderr=False) as progress:
        listener = _ConsoleListener(console, progress if shown else None)
        try:
            result = run_demo(directory, engine=engine, store=store, heights=heights,
                              listener=listener)
        except InvalidInputError as exc:
            raise _BadDemoInput("; ".join(exc.problems) or str(exc)) from None
    ok = result["verified"] and result["replayed"]
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        assert console is not None
        _summary(console, result)
        verdict = Text("\nverified and replayed" if ok else "\nA CHECK FAILED",
                       style="bold green" if ok else "bold red")
        verdict.append(f": {result['heights']} heights, {result['journal_len']} events",
                       style="default")
        console.print(verdict, highlight=False, markup=False)
        console.print(f"state root {result['state_root']}", highlight=False, markup=False)
    if not ok:
        sys.exit(1)
