"""Helpers for tests that put modules into worlds: deploy, manifests, constant guests."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import cbor2
import wasmtime

from agentworld import World
from agentworld.canonical import sha256_hex


def constant_guest(output: dict[str, Any], entrypoint: str = "call") -> bytes:
    """A guest that ignores its input and always returns `output` (CBOR) via the i64 ABI."""
    data = cbor2.dumps(output, canonical=True)
    escaped = "".join(f"\\{byte:02x}" for byte in data)
    packed = (len(data) << 32) | 16
    return wasmtime.wat2wasm(f"""
      (module
        (memory (export "memory") 2)
        (global $bump (mut i32) (i32.const 8192))
        (func (export "alloc") (param $n i32) (result i32) (local $p i32)
          global.get $bump local.set $p
          global.get $bump local.get $n i32.add global.set $bump
          local.get $p)
        (data (i32.const 16) "{escaped}")
        (func (export "{entrypoint}") (param i32 i32) (result i64) i64.const {packed}))
    """)


def deploy(world: World, wasm: bytes, publisher: str = "ada",
           submitter: str | None = None) -> str:
    """Deploy `wasm` (stepping once) and return its hash; the system actor submits it unless
    `submitter` is given."""
    wasm_hash = sha256_hex(wasm)
    world.submit({"type": "module.deploy_artifact", "data": {
        "publisher_agent_id": publisher, "wasm_bytes": wasm, "wasm_hash": wasm_hash}},
        submitter)
    world.step_with_modules()
    assert wasm_hash in world.state.artifacts, events(world, "domain.action_rejected")[-1:]
    return wasm_hash


def manifest(
    module_id: str,
    wasm_hash: str,
    *,
    kind: str = "reducer",
    version: str = "1.0.0",
    subscriptions: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A valid manifest with sensible defaults."""
    entry = "reduce" if kind == "reducer" else "call"
    return {
        "module_id": module_id, "name": module_id, "version": version, "kind": kind,
        "wasm_hash": wasm_hash, "interface_version": "wasm-1",
        "exports": ["memory", "alloc", entry],
        "subscriptions": subscriptions if subscriptions is not None else [{"stage": "tick"}],
        **extra,
    }


def install(
    world: World, agent: str, manifest_json: dict[str, Any],
    target: dict[str, Any] | None = None, activate: bool = True, submitter: str | None = None,
) -> dict[str, Any]:
    """Install (stepping once); return the last event's data (installed or rejected). The
    system actor submits it unless `submitter` is given."""
    data: dict[str, Any] = {"installer_agent_id": agent, "manifest": manifest_json,
                            "activate": activate}
    if target is not None:
        data["install_target"] = target
    world.submit({"type": "module.install", "data": data}, submitter)
    world.step_with_modules()
    installed = [e for e in world.journal if e.kind in {"domain.module_installed",
                                                         "domain.action_rejected"}]
    return {"kind": installed[-1].kind, **installed[-1].data}


def world_with_agents(*agents: str, **kwargs: Any) -> World:
    """A world with the given agents registered (one step)."""
    world = World(**kwargs)
    for index, agent in enumerate(agents):
        world.submit({"type": "register_agent",
                      "data": {"agent_id": agent, "position": [index, 0]}})
    world.step()
    return world


def events(world: World, kind: str) -> list[dict[str, Any]]:
    """Data of every journal event of `kind`."""
    return [e.data for e in world.journal if e.kind == kind]


def counter_value(world: World, instance_id: str) -> int:
    """The counter guest's count (8-byte little-endian state)."""
    return int.from_bytes(world.module_state(instance_id) or b"\0" * 8, "little")


def write_distribution(root: Path, dist: str, version: str, module: str, source: str) -> None:
    """A real installed distribution: dist-info with METADATA and entry point, and its module."""
    info = root / f"{dist}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[agentworld]\n{dist} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))
