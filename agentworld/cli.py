"""The `agentworld` command line. Errors are one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from agentworld import __version__
from agentworld.cli_guest import guest
from agentworld.cli_live import live
from agentworld.compat import CompatContext, check_compatibility
from agentworld.convert import json_problems
from agentworld.errors import AgentWorldError, InvalidInputError
from agentworld.manager import PluginManager, default_manager
from agentworld.manifest import Manifest, intrinsic_problems, parse_manifest
from agentworld.model import Event
from agentworld.persistence import POINTER, NotAWorldError, read_pointer, verify_dir
from agentworld.world import World, event_to_json

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
        except Exception as exc:  # never a traceback: name the error in one line
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


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"duplicate keys {duplicates}")
    return dict(pairs)


def read_json_input(source: str, *, text: str | None = None) -> Any:
    """JSON from file `source` (or the given `text`), strictly: any problem exits 2 in one line.

    Duplicate keys are refused rather than silently resolved to the last one.
    """
    where = "input" if text is not None else source
    try:
        if text is None:
            with open(source, "rb") as handle:
                text = handle.read().decode("utf-8")
        return json.loads(text, object_pairs_hook=_unique_keys)
    except OSError as exc:
        raise BadInput(f"{where}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{where}: not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise BadInput(f"{where}: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, duplicate keys, integers too long to parse
        raise BadInput(f"{where}: not usable JSON: {exc}") from None


def _read_manifest(path: str) -> Manifest:
    """Load and check a manifest file, or exit 2 with one line saying what is wrong."""
    raw = read_json_input(path)
    problems = json_problems(raw)
    if problems:
        raise BadInput(f"{path}: invalid manifest: " + "; ".join(problems))
    try:
        manifest = parse_manifest(raw)
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
    # The upgrade action's own preconditions, named by the codes it is refused with.
    problems = []
    if old.module_id != new.module_id:
        problems.append(f"[error] module_id_mismatch: module_id changes from {old.module_id!r} "
                        f"to {new.module_id!r}")
    if old.version == new.version:
        problems.append(f"[error] same_version: both manifests are version {old.version!r}")
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


def _submitter_option(func: F) -> F:
    """`--as AGENT`: the agent the command submits as (default: the world's system actor)."""
    return click.option(
        "--as", "submitter", default=None, metavar="AGENT",
        help="Submit as this agent (default: the world's system actor, which may act as any "
             "agent). The world trusts it: authenticate callers before passing it.",
    )(func)


def _acting(agent: str | None, submitter: str | None) -> str:
    """The acting agent: `--agent`, else the `--as` agent."""
    acting = agent or submitter
    if acting is None:
        raise BadInput("name the acting agent with --agent or --as")
    return acting


def _manifest_json(path: str) -> dict[str, Any]:
    """A checked manifest file as the JSON an install or upgrade action carries."""
    return _read_manifest(path).to_json()


@module.command("deploy")
@click.argument("directory", type=click.Path())
@click.option("--agent", default=None, help="The publishing agent (default: the --as agent).")
@click.option("--wasm", "wasm_file", required=True, type=click.Path(dir_okay=False),
              help="The WebAssembly module to deploy.")
@_submitter_option
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
def module_deploy(directory: str, agent: str | None, wasm_file: str, submitter: str | None,
                  as_json: bool) -> None:
    """Deploy an artifact into the saved world in DIRECTORY (its hash is in the event)."""
    from agentworld.canonical import sha256_hex

    try:
        with open(wasm_file, "rb") as handle:
            wasm = handle.read()
    except OSError as exc:
        raise BadInput(f"{wasm_file}: cannot read: {exc.strerror or exc}") from None
    _run_action(directory, {"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": _acting(agent, submitter), "wasm_bytes": wasm,
        "wasm_hash": sha256_hex(wasm)}}, as_json, submitter)


@module.command("install")
@click.argument("directory", type=click.Path())
@click.option("--agent", default=None,
              help="The installing agent, the instance's owner (default: the --as agent).")
@click.option("--manifest", "manifest_file", required=True, type=click.Path(dir_okay=False),
              help="The manifest JSON file.")
@click.option("--location", default=None, help="Install at this location, not on the agent.")
@click.option("--inactive", is_flag=True, help="Install without activating the instance.")
@_submitter_option
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
def module_install(directory: str, agent: str | None, manifest_file: str, location: str | None,
                   inactive: bool, submitter: str | None, as_json: bool) -> None:
    """Install an instance of a manifest into the saved world in DIRECTORY."""
    data: dict[str, Any] = {"installer_agent_id": _acting(agent, submitter),
                            "manifest": _manifest_json(manifest_file), "activate": not inactive}
    if location is not None:
        data["install_target"] = {"type": "location", "location_id": location}
    _run_action(directory, {"type": "module.install", "data": data}, as_json, submitter)


@module.command("upgrade")
@click.argument("directory", type=click.Path())
@click.option("--agent", default=None,
              help="The upgrading agent, who must own the instance (default: the --as agent).")
@click.option("--instance", "instance_id", required=True, help="The instance to upgrade.")
@click.option("--from-version", required=True, help="The instance's current version.")
@click.option("--manifest", "manifest_file", required=True, type=click.Path(dir_okay=False),
              help="The new manifest JSON file.")
@_submitter_option
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
def module_upgrade(directory: str, agent: str | None, instance_id: str, from_version: str,
                   manifest_file: str, submitter: str | None, as_json: bool) -> None:
    """Move an instance to a new, compatible manifest in the saved world in DIRECTORY."""
    _run_action(directory, {"type": "module.upgrade", "data": {
        "upgrader_agent_id": _acting(agent, submitter), "instance_id": instance_id,
        "from_version": from_version, "manifest": _manifest_json(manifest_file)}},
        as_json, submitter)


@module.command("rollback")
@click.argument("directory", type=click.Path())
@click.option("--agent", default=None,
              help="The operating agent, who must own the instance (default: the --as agent).")
@click.option("--instance", "instance_id", required=True, help="The instance to roll back.")
@click.option("--to-version", required=True, help="An already registered version.")
@_submitter_option
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
def module_rollback(directory: str, agent: str | None, instance_id: str, to_version: str,
                    submitter: str | None, as_json: bool) -> None:
    """Move an instance back to an already registered version in the saved world in DIRECTORY."""
    _run_action(directory, {"type": "module.rollback", "data": {
        "operator_agent_id": _acting(agent, submitter), "instance_id": instance_id,
        "target_version": to_version}}, as_json, submitter)


# -- saved worlds (SPEC §10, §12) ---------------------------------------------------------------


def _load_world(directory: str) -> World:
    """Load the world saved in `directory`; a path that is not a world is bad input (exit 2)."""
    try:
        return World.load_from_dir(directory)
    except NotAWorldError as exc:
        raise BadInput(str(exc)) from None


def _print_events(events: list[Event], as_json: bool) -> None:
    """One JSON line per event with `--json`, one readable line otherwise."""
    for event in events:
        if as_json:
            click.echo(event_to_json(event).decode("utf-8"))
        else:
            data = json.dumps(json.loads(event_to_json(event))["data"], sort_keys=True)
            click.echo(f"#{event.id} t={event.time} {event.kind} {data}")


def _run_action(
    directory: str, action: dict[str, Any], as_json: bool, submitter: str | None
) -> None:
    """Load, submit `action` as `submitter`, step with modules, save, print the step's events.

    Exit 1 when the action was rejected (the rejection is still saved in the journal).
    """
    if submitter is not None and not submitter.strip():
        raise BadInput("--as: the agent must not be blank")
    world = _load_world(directory)
    action_id = world.submit(action, submitter)
    events = world.step_with_modules()
    world.save_to_dir(directory)
    _print_events(events, as_json)
    refused = [e for e in events
               if e.kind == "domain.action_rejected" and e.data.get("action_id") == action_id]
    if refused:
        if not as_json:
            click.echo(f"rejected: {refused[0].data['code']}", err=True)
        sys.exit(1)


@cli.group()
def world() -> None:
    """Create, inspect, verify and drive saved world directories."""


@world.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--agent", "agents", multiple=True, metavar="NAME",
              help="Register an agent (repeatable; agent i stands at [i, 0]).")
@click.option("--store", "store", default=None, metavar="URI",
              help="Use this module store (e.g. s3://bucket/prefix?endpoint_url=...) "
                   "instead of DIRECTORY/modules.")
@click.option("--json", "as_json", is_flag=True, help="Print the new world's summary as JSON.")
def world_init(directory: str, agents: tuple[str, ...], store: str | None, as_json: bool) -> None:
    """Create a saved world in DIRECTORY (new or empty), optionally with agents."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise BadInput(f"{directory}: not a directory")
    if (path / POINTER).exists():
        raise BadInput(f"{directory}: already holds a world")
    if path.is_dir() and any(path.iterdir()):
        raise BadInput(f"{directory}: not empty and not a world; refusing to initialise it")
    if len(set(agents)) != len(agents):
        raise BadInput("--agent: each agent may be named once")
    new = World(store=store)
    for index, agent in enumerate(agents):
        new.submit({"type": "register_agent", "data": {"agent_id": agent, "position": [index, 0]}})
    events = new.step() if agents else []
    refused = [e for e in events if e.kind == "domain.action_rejected"]
    if refused:
        raise BadInput("--agent: " + "; ".join("; ".join(e.data["notes"]) for e in refused))
    new.save_to_dir(directory)
    summary = {"world_dir": str(path.absolute()), "time": new.time,
               "journal_length": len(new.journal), "state_root": new.state_root(),
               "agents": list(new.state.agents)}
    if as_json:
        _emit_json(summary)
    else:
        click.echo(f"initialised {summary['world_dir']}: {len(agents)} agent(s), "
                   f"state root {summary['state_root']}")


def world_summary(loaded: World, directory: str) -> dict[str, Any]:
    """The data `agentworld world info --json` prints."""
    state = loaded.state
    return {
        "world_dir": str(Path(directory).absolute()),
        "world_id": loaded.config.world_id,
        "generation": read_pointer(Path(directory).absolute()),
        "time": loaded.time,
        "journal_length": len(loaded.journal),
        "state_root": loaded.state_root(),
        "agents": [
            {"agent_id": a.agent_id, "position": list(a.position), "resources": a.resources}
            for a in state.agents.values()
        ],
        "instances": [
            {"instance_id": i.instance_id, "module_id": i.module_id,
             "module_version": i.module_version, "owner_agent_id": i.owner_agent_id,
             "install_target": i.install_target, "active": i.active, "wasm_hash": i.wasm_hash}
            for i in state.instances.values()
        ],
        "modules": sorted(state.manifests),
        "module_owners": {module_id: namespace.owner_agent_id
                          for module_id, namespace in sorted(state.modules.items())},
        "roles": dict(sorted(state.roles.items())),
        "artifacts": sorted(state.artifacts),
        "missing_artifacts": loaded.missing_artifacts(),
        "pending_actions": loaded.pending_action_ids,
        "store": loaded.store.uri,
    }


@world.command("info")
@click.argument("directory", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def world_info(directory: str, as_json: bool) -> None:
    """Show a saved world: time, journal, state root, agents, instances, artifacts, store."""
    loaded = _load_world(directory)
    summary = world_summary(loaded, directory)
    if as_json:
        _emit_json(summary)
        return
    click.echo(f"world {summary['world_id']} at {summary['world_dir']} "
               f"(generation {summary['generation']})")
    click.echo(f"time {summary['time']}, {summary['journal_length']} events, "
               f"state root {summary['state_root']}")
    click.echo(f"store {summary['store']}")
    click.echo("agents: " + (", ".join(a["agent_id"] for a in summary["agents"]) or "none"))
    if summary["instances"]:
        table = Table(title="Instances")
        for column in ("instance", "module", "version", "owner", "active"):
            table.add_column(column)
        for row in summary["instances"]:
            table.add_row(row["instance_id"], row["module_id"], row["module_version"],
                          row["owner_agent_id"], "yes" if row["active"] else "no")
        Console().print(table)
    else:
        click.echo("instances: none")
    click.echo(f"artifacts: {len(summary['artifacts'])}, missing: "
               + (", ".join(summary["missing_artifacts"]) or "none"))


@world.command("verify")
@click.argument("directory", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def world_verify(directory: str, as_json: bool) -> None:
    """Replay the journal from genesis and check the state root and every artifact.

    Exit 0 when everything matches, 1 on any mismatch (each one listed).
    """
    manager = default_manager()
    try:
        if sys.stderr.isatty() and not as_json:
            with Progress(console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task("replaying", total=None)
                report = verify_dir(
                    directory,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                    open_store=manager.open_store,
                )
        else:
            report = verify_dir(directory, open_store=manager.open_store)
    except NotAWorldError as exc:
        raise BadInput(str(exc)) from None
    except AgentWorldError as exc:  # too damaged to replay at all: still a verdict, not a crash
        if not as_json:
            raise
        _emit_json({"ok": False, "state_root": None, "problems": [str(exc)]})
        sys.exit(1)
    if as_json:
        _emit_json(report.to_json())
    else:
        for problem in report.problems:
            click.echo(f"problem: {problem}")
        if report.missing_artifacts:
            click.echo("missing artifacts: " + ", ".join(report.missing_artifacts))
        if report.ok:
            click.echo(f"ok: {report.journal_length} events replay to state root "
                       f"{report.state_root}")
        else:
            click.echo(f"verification failed: {len(report.problems)} problem(s)")
    sys.exit(0 if report.ok else 1)


@world.command("submit")
@click.argument("directory", type=click.Path())
@click.argument("action")
@_submitter_option
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
def world_submit(directory: str, action: str, submitter: str | None, as_json: bool) -> None:
    """Submit ACTION (JSON text, or @FILE) to the world, step once with modules, and save.

    Exit 1 when the action is rejected (the rejection is saved too), 2 on unusable input.
    """
    if action.startswith("@"):
        envelope = read_json_input(action[1:])
    else:
        envelope = read_json_input("action", text=action)
    if not isinstance(envelope, dict):
        raise BadInput('action must be a JSON object: {"type": ..., "data": {...}}')
    _run_action(directory, envelope, as_json, submitter)


@world.command("step")
@click.argument("directory", type=click.Path())
@click.option("--steps", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many steps to run.")
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
def world_step(directory: str, steps: int, as_json: bool) -> None:
    """Advance the world by STEPS steps with modules (ticks run), then save."""
    loaded = _load_world(directory)
    events: list[Event] = []
    if sys.stderr.isatty() and steps > 1:
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("stepping", total=steps)
            for _ in range(steps):
                events += loaded.step_with_modules()
                bar.advance(task)
    else:
        for _ in range(steps):
            events += loaded.step_with_modules()
    loaded.save_to_dir(directory)
    _print_events(events, as_json)


cli.add_command(live)
cli.add_command(guest)


def main() -> None:
    """Entry point of the `agentworld` script."""
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        click.echo("interrupted", err=True)
        sys.exit(130)
