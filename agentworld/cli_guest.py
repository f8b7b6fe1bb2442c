"""`agentworld guest run|inspect`: the guest development loop, without a world.

`run` makes one call on the default engine with the input the world would send (a complete
context, the routed event or action, the state) and prints the decoded output or the failure
code. `inspect` reads an artifact's interface: hash, size, exports, entrypoint shapes, what the
ABI would refuse, and a manifest skeleton to start from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import cbor2
import click

from agentworld.abi import ABI_VERSION, encode_input
from agentworld.canonical import sha256_hex
from agentworld.cli_input import BadInput, read_json_input
from agentworld.config import WorldConfig, config_hash
from agentworld.executor import CallLimits, CallRequest, ModuleCallError, ModuleOutput
from agentworld.manifest import parse_manifest
from agentworld.wasm_info import (
    WasmInterface,
    abi_problems,
    default_module_id,
    manifest_skeleton,
    module_kind,
    read_interface,
)

STAGES = ("tick", "post_event", "post_action", "pre_action", "migrate")


def _read_artifact(path: str) -> tuple[bytes, WasmInterface]:
    try:
        wasm = Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return wasm, read_interface(wasm)
    except Exception as exc:  # InvalidArtifactError, or anything a hostile binary provokes
        raise BadInput(f"{path}: {exc}") from None


def _json_object(option: str, text: str | None) -> dict[str, Any]:
    """A JSON object from an option's text or `@FILE`; `{}` when the option is not given."""
    if text is None:
        return {}
    if text.startswith("@"):
        value = read_json_input(text[1:])
    else:
        value = read_json_input(option, text=text)
    if not isinstance(value, dict):
        raise BadInput(f"{option}: must be a JSON object")
    return value


def guest_input(
    stage: str,
    *,
    module_id: str,
    module_version: str,
    manifest_hash: str,
    kind: str,
    ctx: dict[str, Any] | None = None,
    event: dict[str, Any] | None = None,
    action: dict[str, Any] | None = None,
    state: bytes = b"",
    from_version: str = "1.0.0",
    to_version: str = "2.0.0",
) -> tuple[dict[str, Any], bytes]:
    """The context and encoded input of one call at `stage`, as the world would build them.

    The context is complete (`ctx` entries override any of its keys); the routed event and
    action default to an agent's move, and given ones are completed with ids and time. A
    `migrate` call gets `{ctx, state, from_version, to_version}`.
    """
    overrides = dict(ctx or {})
    time = overrides.get("time", 1)
    instance_id = overrides.get("instance_id", f"{module_id}#1")
    routed_action = {"action_id": 1, "type": "move_agent",
                     "data": {"agent_id": "ada", "to": [1, 0]}, **(action or {})}
    routed_event = {"id": 1, "time": time, "caused_by": {"action": routed_action["action_id"]},
                    "kind": "domain.agent_moved",
                    "data": {"agent_id": "ada", "from": [0, 0], "to": [1, 0]}, **(event or {})}
    origins = {
        "tick": ("tick", time, "tick"),
        "post_event": ("event", routed_event["id"], "event"),
        "post_action": ("action", routed_action["action_id"], "action"),
        "pre_action": ("action", routed_action["action_id"], "action"),
        "migrate": ("action", routed_action["action_id"], "migrate"),
    }
    origin_kind, origin_id, trace_prefix = origins[stage]
    context = {
        "v": ABI_VERSION,
        "module_id": module_id,
        "instance_id": instance_id,
        "module_version": to_version if stage == "migrate" else module_version,
        "trace_id": f"{trace_prefix}-{origin_id}-{instance_id}",
        "stage": stage,
        "time": time,
        "origin": {"kind": origin_kind, "id": origin_id},
        "install_target": {"type": "self_agent"},
        "manifest_hash": manifest_hash,
        "world_config_hash": _world_config_hash(),
        **overrides,
    }
    if stage == "migrate":
        message = {"ctx": context, "state": state, "from_version": from_version,
                   "to_version": to_version}
        return context, cbor2.dumps(message, canonical=True)
    return context, encode_input(
        context,
        event=routed_event if stage in {"post_event", "post_action"} else None,
        action=routed_action if stage in {"pre_action", "post_action"} else None,
        state=state if kind == "reducer" else None,
    )


def _world_config_hash() -> str:
    return config_hash(WorldConfig())


def output_report(output: ModuleOutput) -> dict[str, Any]:
    """A successful call's output as `guest run` prints it (new_state in hex)."""
    state = output.new_state
    return {
        "new_state": None if state is None else state.hex(),
        "new_state_size": None if state is None else len(state),
        "emits": list(output.emits),
        "effects": list(output.effects),
        "tick_lifecycle": output.tick_lifecycle,
    }


@click.group()
def guest() -> None:
    """Develop guest modules: call one with a chosen input, inspect an artifact."""


@guest.command("run")
@click.argument("wasm_file", type=click.Path(dir_okay=False))
@click.option("--stage", type=click.Choice(STAGES), default="tick", show_default=True,
              help="The stage to call at (migrate calls the `migrate` export).")
@click.option("--state", "state_hex", default=None, metavar="HEX", help="The state, in hex.")
@click.option("--state-file", default=None, type=click.Path(dir_okay=False),
              help="Read the state's bytes from this file.")
@click.option("--state-out", default=None, type=click.Path(dir_okay=False),
              help="Write the returned new_state's bytes to this file.")
@click.option("--event", default=None, metavar="JSON|@FILE",
              help="The routed event (post_event, post_action); missing fields are filled in.")
@click.option("--action", default=None, metavar="JSON|@FILE",
              help="The routed action (pre_action, post_action); missing fields are filled in.")
@click.option("--ctx", "ctx_json", default=None, metavar="JSON|@FILE",
              help="Context entries that replace the defaults (e.g. {\"time\": 9}).")
@click.option("--gas", type=click.IntRange(min=1), default=None, help="The call's gas limit.")
@click.option("--kind", type=click.Choice(["reducer", "pure"]), default=None,
              help="Default: reducer if the module exports `reduce`, else pure.")
@click.option("--entrypoint", default=None, help="Default: reduce, call or migrate.")
@click.option("--module-id", default=None, help="Default: from the file name.")
@click.option("--module-version", default="1.0.0", show_default=True,
              help="ctx.module_version (a migrate call runs as --to-version).")
@click.option("--from-version", default="1.0.0", show_default=True, help="migrate only.")
@click.option("--to-version", default="2.0.0", show_default=True, help="migrate only.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def guest_run(wasm_file: str, stage: str, state_hex: str | None, state_file: str | None,
              state_out: str | None, event: str | None, action: str | None,
              ctx_json: str | None, gas: int | None, kind: str | None, entrypoint: str | None,
              module_id: str | None, module_version: str, from_version: str, to_version: str,
              as_json: bool) -> None:
    """Call WASM_FILE once, as the world would at --stage, and print its decoded output.

    Exit 0 when the call succeeds, 1 when it fails (its failure code is printed), 2 on
    unusable input.
    """
    wasm, interface = _read_artifact(wasm_file)
    state = _read_state(state_hex, state_file)
    if stage == "migrate":
        kind = "reducer"
    kind = kind or module_kind(interface) or "reducer"
    if kind == "pure" and state:
        raise BadInput("a pure module has no state: drop --state / --state-file")
    entrypoint = entrypoint or ("migrate" if stage == "migrate"
                                else "reduce" if kind == "reducer" else "call")
    module_id = module_id or default_module_id(wasm_file)
    wasm_hash = sha256_hex(wasm)
    skeleton = manifest_skeleton(interface, wasm_hash, module_id)
    skeleton.update(version=module_version, kind=kind)
    context, payload = guest_input(
        stage, module_id=module_id, module_version=module_version, kind=kind,
        manifest_hash=parse_manifest(skeleton).manifest_hash(),
        ctx=_json_object("--ctx", ctx_json), event=_json_object("--event", event),
        action=_json_object("--action", action), state=state,
        from_version=from_version, to_version=to_version)
    limits = CallLimits() if gas is None else CallLimits(max_gas=gas)
    request = CallRequest(module_id=module_id, instance_id=context["instance_id"],
                          wasm_hash=wasm_hash, wasm=wasm, entrypoint=entrypoint,
                          input=payload, limits=limits, kind=kind)
    from agentworld.manager import default_manager

    report: dict[str, Any] = {"wasm_hash": wasm_hash, "entrypoint": entrypoint, "kind": kind,
                              "stage": stage, "input_size": len(payload), "ctx": context}
    try:
        output = default_manager().shared_executor("wasmtime").call(request)
    except ModuleCallError as failure:
        report.update(ok=False, output=None,
                      failure={"code": failure.code, "detail": failure.detail})
    else:
        report.update(ok=True, output=output_report(output), failure=None)
        if state_out is not None and output.new_state is not None:
            Path(state_out).write_bytes(output.new_state)
    _print_run(report, as_json)
    sys.exit(0 if report["ok"] else 1)


def _read_state(state_hex: str | None, state_file: str | None) -> bytes:
    if state_hex is not None and state_file is not None:
        raise BadInput("give --state or --state-file, not both")
    if state_hex is not None:
        try:
            return bytes.fromhex(state_hex)
        except ValueError:
            raise BadInput("--state: not hexadecimal bytes") from None
    if state_file is not None:
        try:
            return Path(state_file).read_bytes()
        except OSError as exc:
            raise BadInput(f"{state_file}: cannot read: {exc.strerror or exc}") from None
    return b""


def _print_run(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
        return
    click.echo(f"{report['entrypoint']} ({report['kind']}) at {report['stage']}, "
               f"trace {report['ctx']['trace_id']}, input {report['input_size']} bytes")
    if not report["ok"]:
        failure = report["failure"]
        click.echo(f"failed: {failure['code']}: {failure['detail']}")
        return
    # Every entry of the output report, lists one item per line: a new field shows up as is.
    for key, value in report["output"].items():
        if isinstance(value, list):
            for item in value:
                click.echo(f"{key[:-1]}: {json.dumps(item, sort_keys=True)}")
        elif value is not None:
            click.echo(f"{key}: {value if isinstance(value, str) else json.dumps(value)}")


@guest.command("inspect")
@click.argument("wasm_file", type=click.Path(dir_okay=False))
@click.option("--manifest", "manifest_only", is_flag=True,
              help="Print only the manifest skeleton (JSON), e.g. to save as manifest.json.")
@click.option("--module-id", default=None, help="The skeleton's module_id (default: file name).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def guest_inspect(wasm_file: str, manifest_only: bool, module_id: str | None,
                  as_json: bool) -> None:
    """Show WASM_FILE's hash, size, exports, entrypoint shapes and ABI problems.

    Exit 0 when the wasm-1 ABI accepts the module, 1 when it has problems (listed), 2 when the
    file is not a WebAssembly module.
    """
    wasm, interface = _read_artifact(wasm_file)
    from agentworld.errors import AgentWorldError
    from agentworld.manager import default_manager

    problems = abi_problems(interface)
    if not interface.imports:  # the engine's own verdict on the code, which we do not parse
        try:
            default_manager().shared_executor("wasmtime").check_artifact(wasm)
        except AgentWorldError as exc:  # the engine's message may span lines: one line here
            reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise BadInput(f"{wasm_file}: {reason}") from None
    skeleton = manifest_skeleton(interface, sha256_hex(wasm),
                                 module_id or default_module_id(wasm_file))
    report = {
        "file": wasm_file,
        "wasm_hash": sha256_hex(wasm),
        "size": len(wasm),
        "kind": module_kind(interface),
        "imports": [{"name": i.name, "type": i.describe()} for i in interface.imports],
        "exports": [{"name": e.name, "type": e.describe()} for e in interface.exports],
        "entrypoints": {e.name: e.signature.entry_shape for e in interface.exports
                        if e.name in ("reduce", "call", "migrate") and e.signature is not None
                        and e.signature.entry_shape is not None},
        "problems": problems,
        "manifest": skeleton,
    }
    if manifest_only:
        click.echo(json.dumps(skeleton, indent=2))
    elif as_json:
        click.echo(json.dumps(report, sort_keys=True))
    else:
        _print_inspect(report)
    sys.exit(1 if problems else 0)


def _print_inspect(report: dict[str, Any]) -> None:
    click.echo(f"{report['file']}: {report['size']} bytes, sha256 {report['wasm_hash']}")
    click.echo(f"kind: {report['kind'] or 'none (no reduce or call export)'}")
    for item in report["imports"]:
        click.echo(f"import {item['name']}: {item['type']}")
    for item in report["exports"]:
        shape = report["entrypoints"].get(item["name"])
        click.echo(f"export {item['name']}: {item['type']}"
                   + (f"  [entrypoint, {shape}]" if shape else ""))
    for problem in report["problems"]:
        click.echo(f"problem: {problem}")
    click.echo("wasm-1: " + ("ok" if not report["problems"] else
                             f"{len(report['problems'])} problem(s)"))
    click.echo("manifest skeleton (agentworld guest inspect --manifest FILE > manifest.json):")
    click.echo(json.dumps(report["manifest"], indent=2))
