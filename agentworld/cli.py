"""The `agentworld` command line.

Errors are one line on stderr and a non-zero exit (with `--json`, one JSON object on stdout
instead). Output cut short by a closed pipe (`agentworld world events W | head`) ends quietly
with status 141, as a process killed by SIGPIPE would.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from agentworld.cli_demo import demo
from agentworld.cli_guest import guest
from agentworld.cli_input import BadInput, read_json_input, read_text_input
from agentworld.cli_live import live
from agentworld.convert import structure
from agentworld.errors import AgentWorldError, InvalidInputError
from agentworld.filters import kind_matches, kind_pattern_problem
from agentworld.manager import PluginManager, default_manager
from agentworld.manifest import Manifest, read_manifest
from agentworld.model import Event
from agentworld.persistence import (
    POINTER,
    NotAWorldError,
    SavedWorld,
    read_pointer,
    read_saved,
    verify_dir,
)
from agentworld.policy import policy_summary
from agentworld.release import __version__
from agentworld.upgrade_check import check_upgrade as judge_upgrade
from agentworld.world import World, WorldConfig, event_to_json, load_world_detached

F = TypeVar("F", bound=Callable[..., Any])

# The exit status of a process killed by SIGPIPE (128 + 13), which shells and scripts expect.
EXIT_BROKEN_PIPE = 141
_JSON_ERRORS = "agentworld.json_errors"


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so flushing what is left cannot fail again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


class _Group(click.Group):
    """The top-level group: uncaught errors become one line on stderr (or one JSON object on
    stdout after `--json`), never a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Only the top-level group sees every argument, so only it can tell, even when parsing
        # the subcommand fails, whether the caller asked for JSON.
        ctx.meta[_JSON_ERRORS] = "--json" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_stdout()
            raise click.exceptions.Exit(EXIT_BROKEN_PIPE) from None
        except (click.exceptions.Exit, click.Abort):
            raise
        except click.ClickException as exc:
            error = exc
        except AgentWorldError as exc:
            error = click.ClickException(str(exc))
        except Exception as exc:  # never a traceback: name the error in one line
            error = click.ClickException(f"{type(exc).__name__}: {exc}")
        if ctx.meta.get(_JSON_ERRORS):
            _emit_json({"error": {"message": error.format_message(),
                                  "exit_code": error.exit_code}})
            raise click.exceptions.Exit(error.exit_code)
        raise error from None


def _emit_json(value: Any) -> None:
    click.echo(json.dumps(value, sort_keys=True))


def changes_world(command: F) -> F:
    """The options every command that changes a saved world takes."""
    return click.option(
        "--dry-run", is_flag=True,
        help="Run in memory and print the events; save nothing (the directory is untouched).",
    )(command)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="agentworld")
def cli() -> None:
    """agentworld: a deterministic agent world that runs sandboxed WebAssembly modules."""


def plugins_report(manager: PluginManager) -> dict[str, Any]:
    """The data `agentworld plugins --json` prints."""
    return {
        "plugins": [
            {"name": info.name, "version": info.version, "hooks": list(info.hooks),
             "builtin": info.builtin, "distribution": info.distribution,
             "entry_point": info.entry_point, "description": info.description,
             "status": "failed" if info.failed else "ok", "reason": info.failure}
            for info in manager.plugins()
        ],
        "executors": [
            {"name": entry.name, "available": entry.available, "reason": entry.unavailable_reason,
             "plugin": entry.plugin, "description": entry.description}
            for entry in manager.executors().values()
        ],
        "stores": [{"scheme": entry.scheme, "plugin": entry.plugin,
                    "description": entry.description} for entry in manager.stores().values()],
        "compat_rules": [
            {"name": rule.name, "severity": rule.severity, "description": rule.description,
             "plugin": manager.compat_rule_plugin(rule.name)}
            for rule in manager.compat_rules()
        ],
    }


def _plugin_lines(row: dict[str, Any]) -> list[str]:
    origin = "built-in" if row["builtin"] else ", ".join(
        part for part in (row["distribution"] and f"distribution {row['distribution']}",
                          row["entry_point"] and f"entry point {row['entry_point']}") if part
    ) or "registered in-process"
    hooks = ", ".join(hook.removeprefix("agentworld_register_") for hook in row["hooks"])
    head = f"  {row['name']} {row['version'] or '-'} ({origin})"
    if row["status"] == "failed":
        return [f"{head} FAILED", f"    {row['reason']}"]
    return [f"{head} hooks: {hooks or 'none'}"] + (
        [f"    {row['description']}"] if row["description"] else [])


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def plugins(as_json: bool) -> None:
    """List plugins (failed ones with the reason), executors, store schemes and rules."""
    report = plugins_report(default_manager())
    if as_json:
        _emit_json(report)
        return
    lines = ["plugins:"]
    for row in report["plugins"]:
        lines += _plugin_lines(row)
    lines.append("executors:")
    lines += [f"  {row['name']} (plugin {row['plugin']}): "
              + ("available" if row["available"] else f"unavailable: {row['reason']}")
              + (f"; {row['description']}" if row["description"] else "")
              for row in report["executors"]]
    lines.append("module stores:")
    lines += [f"  {row['scheme']} (plugin {row['plugin']})"
              + (f": {row['description']}" if row["description"] else "")
              for row in report["stores"]]
    lines.append("compatibility rules:")
    lines += [f"  [{row['severity']}] {row['name']} (plugin {row['plugin']}): "
              f"{row['description']}" for row in report["compat_rules"]]
    for line in lines:
        click.echo(line)


@cli.group()
def module() -> None:
    """Work with module manifests and instances."""


def _read_manifest(path: str) -> Manifest:
    """Load and check a manifest file, or exit 2 with one line listing every problem."""
    manifest, problems = read_manifest(read_json_input(path))
    if manifest is None or problems:
        raise BadInput(f"{path}: invalid manifest: " + "; ".join(problems))
    return manifest


@module.command("check-upgrade")
@click.argument("manifests", nargs=-1, type=click.Path(dir_okay=False),
                metavar="[CURRENT.json] CANDIDATE.json")
@click.option("--rollback", is_flag=True,
              help="Judge CANDIDATE as a rollback target (its version must be lower).")
@click.option("--world", "world_dir", default=None, type=click.Path(file_okay=False),
              metavar="DIR", help="Rehearse the upgrade on a copy of this saved world.")
@click.option("--instance", "instance_id", default=None, help="With --world: the instance.")
@click.option("--wasm", "wasm_file", default=None, type=click.Path(dir_okay=False),
              help="With --world: deploy this artifact first (the candidate's code).")
@click.option("--steps", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --world: steps to run after the upgrade's own step.")
@click.option("--agent", default=None,
              help="With --world: the upgrading agent (default: the --as agent, else the "
                   "instance's owner).")
@click.option("--as", "submitter", default=None, metavar="AGENT",
              help="With --world: submit as this agent (default: the world's system actor).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_upgrade(manifests: tuple[str, ...], rollback: bool, world_dir: str | None,
                  instance_id: str | None, wasm_file: str | None, steps: int,
                  agent: str | None, submitter: str | None, as_json: bool) -> None:
    """Judge moving from CURRENT to CANDIDATE: preconditions, both manifests' problems and
    every compat rule, all reported together. With --world DIR --instance ID CANDIDATE,
    rehearse the real upgrade instead (the world's pinned rules, its migration, then --steps
    steps) on the saved world's state, saving nothing.

    Exit 0 when the upgrade would be accepted (with --world: was accepted, and the instance did
    not fail afterwards), 1 when it would be refused (every reason listed), 2 on unusable input.
    """
    if world_dir is not None:
        if rollback:
            raise BadInput("--rollback cannot be rehearsed with --world; rehearse an upgrade")
        _rehearse(world_dir, instance_id, manifests, wasm_file, steps, agent, submitter, as_json)
        return
    if instance_id or wasm_file or steps or agent or submitter:
        raise BadInput("--instance, --wasm, --steps, --agent and --as need --world")
    if len(manifests) != 2:
        raise BadInput("give CURRENT.json and CANDIDATE.json, or --world DIR --instance ID "
                       "CANDIDATE.json")
    current, candidate = manifests
    report = judge_upgrade(read_json_input(current), read_json_input(candidate),
                           default_manager().compat_rules(),
                           operation="rollback" if rollback else "upgrade")
    if as_json:
        _emit_json(report.to_json())
    else:
        for line in report.lines():
            click.echo(line)
        click.echo("compatible" if report.compatible else
                   f"incompatible: {len(report.findings)} violation(s)")
    sys.exit(0 if report.compatible else 1)


def _rehearse(world_dir: str, instance_id: str | None, manifests: tuple[str, ...],
              wasm_file: str | None, steps: int, agent: str | None, submitter: str | None,
              as_json: bool) -> None:
    """`check-upgrade --world`: rehearse, print the rehearsal, exit 0 only when it went well."""
    from agentworld.rehearsal import RehearsalError, rehearse_upgrade

    if instance_id is None:
        raise BadInput("--world needs --instance ID")
    if len(manifests) != 1:
        raise BadInput("with --world, give exactly one manifest: CANDIDATE.json")
    if submitter is not None and not submitter.strip():
        raise BadInput("--as: the agent must not be blank")
    candidate = read_json_input(manifests[0])
    wasm = None
    if wasm_file is not None:
        try:
            with open(wasm_file, "rb") as handle:
                wasm = handle.read()
        except OSError as exc:
            raise BadInput(f"{wasm_file}: cannot read: {exc.strerror or exc}") from None
    try:
        rehearsal = rehearse_upgrade(world_dir, instance_id, candidate, wasm=wasm, steps=steps,
                                     agent=agent, submitter=submitter)
    except (NotAWorldError, RehearsalError) as exc:
        raise BadInput(str(exc)) from None
    if as_json:
        _emit_json(rehearsal.to_json())
        sys.exit(0 if rehearsal.ok else 1)
    click.echo(f"rehearsal: upgrade {instance_id} {rehearsal.from_version or '?'} -> "
               f"{rehearsal.to_version or '?'} on a copy of {world_dir} (nothing is saved)")
    if rehearsal.accepted:
        for line in (rehearsal.report or {}).get("violations", []):
            click.echo(f"[{line['severity']}] {line['rule']}: {line['message']}")
        click.echo("verdict: accepted")
    else:
        click.echo(f"verdict: rejected ({rehearsal.code})")
        for note in rehearsal.notes:
            click.echo(f"  {note}")
    for label, digest in (("before", rehearsal.state_before),
                          ("migrated", rehearsal.state_migrated),
                          (f"after {steps} more step(s)", rehearsal.state_after)):
        click.echo(f"state {label}: " + ("none" if digest is None else
                                          f"{digest.size} bytes, sha256 {digest.sha256}"))
    click.echo("events:")
    _print_events(list(rehearsal.events), False)
    failures = rehearsal.failures
    click.echo(f"module failures: {len(failures) or 'none'}")
    for failure in failures:
        click.echo(f"  {failure['instance_id']} at {failure['stage']} ({failure['trace_id']}): "
                   f"{failure['code']}: {failure['detail']}")
    sys.exit(0 if rehearsal.ok else 1)


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
@changes_world
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
def module_deploy(directory: str, agent: str | None, wasm_file: str, submitter: str | None,
                  dry_run: bool, as_json: bool) -> None:
    """Deploy an artifact into the saved world in DIRECTORY (its hash is in the event)."""
    from agentworld.canonical import sha256_hex

    try:
        with open(wasm_file, "rb") as handle:
            wasm = handle.read()
    except OSError as exc:
        raise BadInput(f"{wasm_file}: cannot read: {exc.strerror or exc}") from None
    _run_actions(directory, [{"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": _acting(agent, submitter), "wasm_bytes": wasm,
        "wasm_hash": sha256_hex(wasm)}}], submitter=submitter, as_json=as_json, dry_run=dry_run)


@module.command("install")
@click.argument("directory", type=click.Path())
@click.option("--agent", default=None,
              help="The installing agent, the instance's owner (default: the --as agent).")
@click.option("--manifest", "manifest_file", required=True, type=click.Path(dir_okay=False),
              help="The manifest JSON file.")
@click.option("--location", default=None, help="Install at this location, not on the agent.")
@click.option("--inactive", is_flag=True, help="Install without activating the instance.")
@_submitter_option
@changes_world
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
def module_install(directory: str, agent: str | None, manifest_file: str, location: str | None,
                   inactive: bool, submitter: str | None, dry_run: bool, as_json: bool) -> None:
    """Install an instance of a manifest into the saved world in DIRECTORY."""
    data: dict[str, Any] = {"installer_agent_id": _acting(agent, submitter),
                            "manifest": _manifest_json(manifest_file), "activate": not inactive}
    if location is not None:
        data["install_target"] = {"type": "location", "location_id": location}
    _run_actions(directory, [{"type": "module.install", "data": data}], submitter=submitter,
                 as_json=as_json, dry_run=dry_run)


@module.command("upgrade")
@click.argument("directory", type=click.Path())
@click.option("--agent", default=None,
              help="The upgrading agent, who must own the instance (default: the --as agent).")
@click.option("--instance", "instance_id", required=True, help="The instance to upgrade.")
@click.option("--from-version", required=True, help="The instance's current version.")
@click.option("--manifest", "manifest_file", required=True, type=click.Path(dir_okay=False),
              help="The new manifest JSON file.")
@_submitter_option
@changes_world
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
def module_upgrade(directory: str, agent: str | None, instance_id: str, from_version: str,
                   manifest_file: str, submitter: str | None, dry_run: bool,
                   as_json: bool) -> None:
    """Move an instance to a new, compatible manifest in the saved world in DIRECTORY."""
    _run_actions(directory, [{"type": "module.upgrade", "data": {
        "upgrader_agent_id": _acting(agent, submitter), "instance_id": instance_id,
        "from_version": from_version, "manifest": _manifest_json(manifest_file)}}],
        submitter=submitter, as_json=as_json, dry_run=dry_run)


@module.command("rollback")
@click.argument("directory", type=click.Path())
@click.option("--agent", default=None,
              help="The operating agent, who must own the instance (default: the --as agent).")
@click.option("--instance", "instance_id", required=True, help="The instance to roll back.")
@click.option("--to-version", required=True, help="An already registered version.")
@_submitter_option
@changes_world
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
def module_rollback(directory: str, agent: str | None, instance_id: str, to_version: str,
                    submitter: str | None, dry_run: bool, as_json: bool) -> None:
    """Move an instance back to an already registered version in the saved world in DIRECTORY."""
    _run_actions(directory, [{"type": "module.rollback", "data": {
        "operator_agent_id": _acting(agent, submitter), "instance_id": instance_id,
        "target_version": to_version}}], submitter=submitter, as_json=as_json, dry_run=dry_run)


@module.command("list")
@click.argument("directory", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def module_list(directory: str, as_json: bool) -> None:
    """List the registered modules and the instances of the saved world in DIRECTORY."""
    loaded = _load_world(directory)
    state = loaded.state
    missing = set(loaded.missing_artifacts())
    report = {
        "modules": [
            {"module_id": m.module_id, "version": m.version, "kind": m.kind, "role": m.role,
             "wasm_hash": m.wasm_hash, "artifact_missing": m.wasm_hash in missing,
             "instances": [i.instance_id for i in state.instances.values()
                           if (i.module_id, i.module_version) == (m.module_id, m.version)]}
            for m in sorted(state.manifests.values(), key=lambda m: (m.module_id, m.version))
        ],
        "instances": [_instance_json(loaded, instance_id) for instance_id in state.instances],
    }
    if as_json:
        _emit_json(report)
        return
    click.echo("modules:" if report["modules"] else "modules: none")
    for row in report["modules"]:
        artifact = row["wasm_hash"][:12] + (" (missing)" if row["artifact_missing"] else "")
        click.echo(f"  {row['module_id']} {row['version']} ({row['kind']}) artifact {artifact} "
                   f"instances: {', '.join(row['instances']) or 'none'}")
    click.echo("instances:" if report["instances"] else "instances: none")
    for row in report["instances"]:
        click.echo(f"  {row['instance_id']} {row['module_id']} {row['module_version']} owner "
                   f"{row['owner_agent_id']} on {_describe_target(row['install_target'])}, "
                   f"{'active' if row['active'] else 'inactive'}, state {row['state_size']} B")


def _instance_json(loaded: World, instance_id: str) -> dict[str, Any]:
    instance = loaded.state.instances[instance_id]
    return {"instance_id": instance.instance_id, "module_id": instance.module_id,
            "module_version": instance.module_version, "owner_agent_id": instance.owner_agent_id,
            "install_target": instance.install_target, "active": instance.active,
            "wasm_hash": instance.wasm_hash, "state_size": len(loaded.module_state(instance_id))}


def _describe_target(target: dict[str, Any]) -> str:
    if target.get("type") == "location":
        return f"location {target.get('location_id')}"
    return "its owner"


@module.command("state")
@click.argument("directory", type=click.Path())
@click.argument("instance_id", metavar="INSTANCE")
@click.option("--raw", is_flag=True, help="Write the state bytes as they are (for a decoder).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document (the state in base64).")
def module_state(directory: str, instance_id: str, raw: bool, as_json: bool) -> None:
    """Show the state bytes of INSTANCE in the saved world in DIRECTORY (hex by default)."""
    import base64

    loaded = _load_world(directory)
    if instance_id not in loaded.state.instances:
        known = ", ".join(loaded.state.instances) or "none"
        raise BadInput(f"no instance {instance_id!r} in {directory} (instances: {known})")
    data = loaded.module_state(instance_id)
    if raw:
        sys.stdout.buffer.write(data)
    elif as_json:
        _emit_json({**_instance_json(loaded, instance_id),
                    "state_base64": base64.b64encode(data).decode("ascii")})
    else:
        instance = loaded.state.instances[instance_id]
        click.echo(f"{instance_id} ({instance.module_id} {instance.module_version}, owner "
                   f"{instance.owner_agent_id}): {len(data)} bytes")
        if data:
            click.echo(data.hex())


# -- saved worlds --------------------------------------------------------------------------------


def _read_saved(directory: str) -> SavedWorld:
    """The saved world's files, checked but not applied; not a world is bad input (exit 2)."""
    try:
        return read_saved(directory)
    except NotAWorldError as exc:
        raise BadInput(str(exc)) from None


def _load_world(directory: str, *, dry_run: bool = False) -> World:
    """Load the world saved in `directory`; a path that is not a world is bad input (exit 2).

    For a dry run the world's module store is wrapped so that nothing is written to it.
    """
    try:
        if not dry_run:
            return World.load_from_dir(directory)
        return load_world_detached(directory)
    except NotAWorldError as exc:
        raise BadInput(str(exc)) from None


def _save(loaded: World, directory: str, *, dry_run: bool, as_json: bool) -> None:
    """Save the world back, unless this is a dry run."""
    if not dry_run:
        loaded.save_to_dir(directory)
    elif not as_json:
        click.echo("dry run: nothing was saved", err=True)


def _print_events(events: list[Event], as_json: bool) -> None:
    """One JSON line per event with `--json`, one readable line otherwise."""
    for event in events:
        if as_json:
            click.echo(event_to_json(event).decode("utf-8"))
        else:
            data = json.dumps(json.loads(event_to_json(event))["data"], sort_keys=True)
            click.echo(f"#{event.id} t={event.time} {event.kind} {data}")


def _run_actions(directory: str, actions: list[dict[str, Any]], *, submitter: str | None,
                 as_json: bool, dry_run: bool) -> None:
    """Load, submit `actions` as `submitter`, step once with modules, save, print the step's
    events.

    Exit 1 when an action was rejected (the rejection is still saved in the journal).
    """
    if submitter is not None and not submitter.strip():
        raise BadInput("--as: the agent must not be blank")
    loaded = _load_world(directory, dry_run=dry_run)
    action_ids = {loaded.submit(action, submitter) for action in actions}
    events = loaded.step_with_modules()
    _save(loaded, directory, dry_run=dry_run, as_json=as_json)
    _print_events(events, as_json)
    refused = [e for e in events
               if e.kind == "domain.action_rejected" and e.data.get("action_id") in action_ids]
    if refused:
        if not as_json:
            for event in refused:
                click.echo(f"rejected: action {event.data['action_id']}: {event.data['code']}",
                           err=True)
        sys.exit(1)


@cli.group()
def world() -> None:
    """Create, inspect, verify and drive saved world directories."""


@world.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--agent", "agents", multiple=True, metavar="NAME",
              help="Register an agent (repeatable; agent i stands at [i, 0]).")
@click.option("--world-id", default=None, metavar="ID",
              help="The world's id (default: world), recorded in its config.")
@click.option("--store", "store", default=None, metavar="URI",
              help="Use this module store (e.g. s3://bucket/prefix?endpoint_url=...) "
                   "instead of DIRECTORY/modules.")
@changes_world
@click.option("--json", "as_json", is_flag=True, help="Print the new world's summary as JSON.")
def world_init(directory: str, agents: tuple[str, ...], world_id: str | None, store: str | None,
               dry_run: bool, as_json: bool) -> None:
    """Create a saved world in DIRECTORY (new or empty), optionally with agents.

    With --dry-run, print the events the new world would start with and create nothing.
    """
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise BadInput(f"{directory}: not a directory")
    if (path / POINTER).exists():
        raise BadInput(f"{directory}: already holds a world")
    if path.is_dir() and any(path.iterdir()):
        raise BadInput(f"{directory}: not empty and not a world; refusing to initialise it")
    if len(set(agents)) != len(agents):
        raise BadInput("--agent: each agent may be named once")
    config = WorldConfig()
    if world_id is not None:
        try:
            config = structure({"world_id": world_id}, WorldConfig, "world config")
        except InvalidInputError as exc:
            raise BadInput(f"--world-id: {exc}") from None
        if not world_id.strip() or not world_id.isprintable():
            raise BadInput(f"--world-id: {world_id!r} must be printable and not blank")
    new = World(store=store, config=config)
    for index, agent in enumerate(agents):
        new.submit({"type": "register_agent", "data": {"agent_id": agent, "position": [index, 0]}})
    events = new.step() if agents else []
    refused = [e for e in events if e.kind == "domain.action_rejected"]
    if refused:
        raise BadInput("--agent: " + "; ".join("; ".join(e.data["notes"]) for e in refused))
    if dry_run:
        _print_events(events, as_json)
        _save(new, directory, dry_run=True, as_json=as_json)
        return
    new.save_to_dir(directory)
    summary = {"world_dir": str(path.absolute()), "world_id": new.config.world_id,
               "time": new.time, "journal_length": len(new.journal),
               "state_root": new.state_root(), "agents": list(new.state.agents)}
    if as_json:
        _emit_json(summary)
    else:
        click.echo(f"initialised world {summary['world_id']} in {summary['world_dir']}: "
                   f"{len(agents)} agent(s), state root {summary['state_root']}")


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
        "corrupt_artifacts": loaded.corrupt_artifacts(),
        "pending_actions": loaded.pending_action_ids,
        "store": loaded.store.uri,
        "compat_policy": policy_summary(state, loaded.installed_rules()),
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
        _echo_table(table)
    else:
        click.echo("instances: none")
    click.echo(f"artifacts: {len(summary['artifacts'])}, missing: "
               + (", ".join(summary["missing_artifacts"]) or "none"))
    for reason in summary["corrupt_artifacts"].values():
        click.echo(f"corrupt: {reason} (deploy its genuine bytes to repair it)")
    policy = summary["compat_policy"]
    table = Table(title="Compatibility policy (" + (
        "standard: the built-in rules" if policy["standard"] else "pinned") + ")")
    for column in ("rule", "plugin", "version", "installed here"):
        table.add_column(column)
    for row in policy["rules"]:
        table.add_row(row["rule"], row["plugin"], row["plugin_version"] or "-",
                      "yes" if row["installed"] else "NO: upgrades are refused")
    _echo_table(table)


def _echo_table(table: Table) -> None:
    """Print a rich table through click, so a closed pipe ends the command like any other
    output does (rich would turn it into exit status 1)."""
    console = Console()
    with console.capture() as captured:
        console.print(table)
    click.echo(captured.get(), nl=False)


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


def read_actions(source: str) -> list[dict[str, Any]]:
    """The actions `world submit` was given: JSON text or `@FILE` holding one action object,
    a JSON array of them, or JSON Lines (one action per line). Anything else exits 2."""
    where = source[1:] if source.startswith("@") else "action"
    text = read_text_input(source[1:]) if source.startswith("@") else source
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        value = read_json_input(where, text=text)
    except BadInput:
        if len(lines) < 2:
            raise
        # Not one JSON document: JSON Lines, each line one action.
        value = [read_json_input(f"{where}: line {number}", text=line)
                 for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    actions = value if isinstance(value, list) else [value]
    if not actions:
        raise BadInput(f"{where}: no actions")
    for index, action in enumerate(actions):
        if not isinstance(action, dict):
            at = f" (item {index})" if isinstance(value, list) else ""
            raise BadInput(f'{where}{at}: an action must be a JSON object: '
                           '{"type": ..., "data": {...}}')
    return actions


@world.command("submit")
@click.argument("directory", type=click.Path())
@click.argument("action")
@_submitter_option
@changes_world
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
def world_submit(directory: str, action: str, submitter: str | None, dry_run: bool,
                 as_json: bool) -> None:
    """Submit ACTION to the world, step once with modules, and save.

    ACTION is JSON text or @FILE: one action object, a JSON array of actions, or JSON Lines
    (one action per line). All of them are queued for the same step. Exit 1 when an action is
    rejected (the rejection is saved too), 2 on unusable input.
    """
    _run_actions(directory, read_actions(action), submitter=submitter, as_json=as_json,
                 dry_run=dry_run)


@world.command("step")
@click.argument("directory", type=click.Path())
@click.option("--steps", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many steps to run.")
@changes_world
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
def world_step(directory: str, steps: int, dry_run: bool, as_json: bool) -> None:
    """Advance the world by STEPS steps with modules (ticks run), then save."""
    loaded = _load_world(directory, dry_run=dry_run)
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
    _save(loaded, directory, dry_run=dry_run, as_json=as_json)
    _print_events(events, as_json)


@world.command("events")
@click.argument("directory", type=click.Path())
@click.option("--kind", "kinds", multiple=True, metavar="PATTERN",
              help="Only events whose kind matches (e.g. domain.agent_moved, module.*, *); "
                   "repeatable.")
@click.option("--since", type=click.IntRange(min=0), default=0, metavar="ID",
              help="Only events after event ID.")
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
def world_events(directory: str, kinds: tuple[str, ...], since: int, as_json: bool) -> None:
    """Print the journal of the saved world in DIRECTORY, oldest first."""
    for pattern in kinds:
        problem = kind_pattern_problem(pattern)
        if problem:
            raise BadInput(f"--kind: {problem}")
    # Event ids run 1..N, so the events after `since` start at index `since`.
    events = read_saved_events(directory)[since:]
    _print_events([e for e in events if not kinds or any(kind_matches(p, e.kind) for p in kinds)],
                  as_json)


def read_saved_events(directory: str) -> list[Event]:
    """The journal of a saved world, its files checked (no state is rebuilt)."""
    events = _read_saved(directory).events
    assert events is not None  # the loading reader raises rather than leave a part unread
    return list(events)


cli.add_command(demo)
cli.add_command(guest)
cli.add_command(live)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """Warnings (a skipped plugin, say) as one line on stderr."""
    click.echo(f"warning: {message}", err=True)


def main() -> None:
    """Entry point of the `agentworld` script."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        status: Any = 0
        try:
            cli(standalone_mode=True)
        except SystemExit as exc:
            status = exc.code
        except KeyboardInterrupt:  # pragma: no cover - interactive only
            click.echo("interrupted", err=True)
            status = 130
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # output still buffered when the reader went away
        _quiet_stdout()
        status = EXIT_BROKEN_PIPE
    sys.exit(status)
