"""The `agentworld` command line. Errors are one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from agentworld import __version__
from agentworld.compat import CompatContext, check_compatibility
from agentworld.errors import AgentWorldError, InvalidInputError
from agentworld.manager import PluginManager, default_manager
from agentworld.manifest import Manifest, intrinsic_problems, parse_manifest

F = TypeVar("F", bound=Callable[..., Any])


class BadInput(click.ClickException):
    """Unusable input: one line on stderr, exit status 2."""

    exit_code = 2


class _Group(click.Group):
    """A click group whose uncaught errors become one line on stderr, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except AgentWorldError as exc:
            raise click.ClickException(str(exc)) from None
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


def _emit_json(value: Any) -> None:
    click.echo(json.dumps(value, sort_keys=True))


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="agentworld")
def cli() -> None:
    """agentworld: a deterministic agent world that runs sandboxed WebAssembly modules."""


def plugins_report(manager: PluginManager) -> dict[str, Any]:
    """The data `agentworld plugins --json` prints."""
    return {
        "plugins": [
            {"name": info.name, "version": info.version, "hooks": list(info.hooks)}
            for info in manager.plugins()
        ],
        "executors": [
            {"name": entry.name, "available": entry.available, "reason": entry.unavailable_reason}
            for entry in manager.executors().values()
        ],
        "stores": [{"scheme": entry.scheme} for entry in manager.stores().values()],
        "compat_rules": [
            {"name": rule.name, "severity": rule.severity, "description": rule.description}
            for rule in manager.compat_rules()
        ],
    }


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def plugins(as_json: bool) -> None:
    """List plugins, executors, store schemes and compatibility rules."""
    report = plugins_report(default_manager())
    if as_json:
        _emit_json(report)
        return
    console = Console()
    table = Table(title="Plugins")
    for column in ("name", "version", "hooks"):
        table.add_column(column)
    for row in report["plugins"]:
        table.add_row(row["name"], row["version"] or "-", "\n".join(row["hooks"]))
    console.print(table)
    table = Table(title="Executors")
    for column in ("name", "available", "reason"):
        table.add_column(column)
    for row in report["executors"]:
        table.add_row(row["name"], "yes" if row["available"] else "no", row["reason"] or "")
    console.print(table)
    console.print("Store schemes: " + (", ".join(r["scheme"] for r in report["stores"]) or "none"))
    table = Table(title="Compatibility rules")
    for column in ("name", "severity", "description"):
        table.add_column(column)
    for row in report["compat_rules"]:
        table.add_row(row["name"], row["severity"], row["description"])
    console.print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def demo(as_json: bool) -> None:
    """Run a small world scenario and print its state root."""
    from agentworld.demo import run_demo

    result = run_demo(echo=None if as_json else click.echo)
    if as_json:
        _emit_json(result)


@cli.group()
def module() -> None:
    """Work with module manifests and instances."""


def _read_manifest(path: str) -> Manifest:
    """Load and check a manifest file, or exit 2 with one line saying what is wrong."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
        manifest = parse_manifest(raw)
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not JSON: {exc}") from None
    except InvalidInputError as exc:
        raise BadInput(f"{path}: {exc}") from None
    problems = intrinsic_problems(manifest)
    if problems:
        raise BadInput(f"{path}: invalid manifest: " + "; ".join(problems))
    return manifest


@module.command("check-upgrade")
@click.argument("current", type=click.Path(dir_okay=False))
@click.argument("candidate", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_upgrade(current: str, candidate: str, as_json: bool) -> None:
    """Judge CANDIDATE against CURRENT with every compat rule.

    Exit 0 when compatible, 1 when not (every violation listed), 2 on unusable input.
    """
    old, new = _read_manifest(current), _read_manifest(candidate)
    problems = []
    if old.module_id != new.module_id:
        problems.append(f"module_id changes from {old.module_id!r} to {new.module_id!r}")
    report = check_compatibility(old, new, default_manager().compat_rules(),
                                 CompatContext(operation="check-upgrade"))
    verdict = report.compatible and not problems
    if as_json:
        _emit_json({**report.to_json(), "compatible": verdict, "problems": problems})
    else:
        for line in [*problems, *report.lines()]:
            click.echo(line)
        click.echo("compatible" if verdict else
                   f"incompatible: {len(report.violations) + len(problems)} violation(s)")
    sys.exit(0 if verdict else 1)


def main() -> None:
    """Entry point of the `agentworld` script."""
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        click.echo("interrupted", err=True)
        sys.exit(130)
