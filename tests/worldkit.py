"""Helpers for tests that put modules into worlds: deploy, manifests, constant guests."""

from __future__ import annotations

import textwrap
from importlib import resources
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


def _wat_bytes(data: bytes) -> str:
    return "".join(f"\\{byte:02x}" for byte in data)


def _slot(text: str) -> bytes:
    """A length-prefixed literal, the shape the CBOR helper library's `$w_str` writes."""
    raw = text.encode("utf-8")
    assert len(raw) < 32
    return bytes([len(raw)]) + raw


def _cbor_guest(body: str, data: dict[int, bytes]) -> bytes:
    """A pure guest with the shipped CBOR helper library, extra data at 2400..4095 and `body`."""
    assert all(2400 <= offset and offset + len(raw) <= 4096 for offset, raw in data.items())
    library = resources.files("agentworld.testing.guests").joinpath("cbor.wat").read_text()
    segments = "\n".join(f'(data (i32.const {offset}) "{_wat_bytes(raw)}")'
                         for offset, raw in data.items())
    return wasmtime.wat2wasm(f"""
      (module
        (memory (export "memory") 1)
        {library}
        {segments}
        {body})
    """)


def migrating_guest(migrate_body: str, *, kind: str = "reducer",
                    data: dict[int, bytes] | None = None) -> bytes:
    """A guest whose entrypoint (`reduce`, or `call` for `pure`) returns an empty output and
    whose `migrate(ptr, len) -> (out_ptr, out_len)` runs `migrate_body` (with the CBOR helper
    library and `data` at 2400..4095)."""
    entry = "reduce" if kind == "reducer" else "call"
    return _cbor_guest(f"""
      (func (export "{entry}") (param $ptr i32) (param $len i32) (result i32 i32)
        (call $w_begin) (call $w_map (i32.const 0))
        (global.get $out_start) (call $out_len))
      (func (export "migrate") (param $ptr i32) (param $len i32) (result i32 i32)
        {migrate_body})
    """, data or {})


def constant_migration(output: dict[str, Any], kind: str = "reducer") -> bytes:
    """A guest whose `migrate` always returns `output` (CBOR)."""
    blob = cbor2.dumps(output, canonical=True)
    return migrating_guest(f"(i32.const 2400) (i32.const {len(blob)})", kind=kind,
                           data={2400: blob})


def rule_guest(verdict: str, override: dict[str, Any] | None = None) -> bytes:
    """A pre_action rule answering every routed action (it reads `action.action_id`) with
    `verdict`, and for `modify` the constant `override` as its `override_action`."""
    blob = cbor2.dumps(override, canonical=True) if override is not None else b""
    entries = 3 if override is not None else 2
    write_override = (f"(call $w_str (global.get $s_override_action))"
                      f"(call $w_copy (i32.const 2560) (i32.const {len(blob)}))"
                      if override is not None else "")
    return _cbor_guest(f"""
      (func (export "call") (param $ptr i32) (param $len i32) (result i64)
        (local $id i64)
        (local.set $id (call $uint_at (call $map_get
          (call $map_get (local.get $ptr) (global.get $s_action)) (global.get $s_action_id))))
        (call $w_begin)
        (call $w_map (i32.const 1))
        (call $w_str (global.get $s_emits))
        (call $w_array (i32.const 1))
        (call $w_map (i32.const 2))
        (call $w_str (global.get $s_kind))
        (call $w_str (global.get $s_rule_decision))
        (call $w_str (global.get $s_payload))
        (call $w_map (i32.const {entries}))
        (call $w_str (global.get $s_action_id))
        (call $w_uint (local.get $id))
        (call $w_str (global.get $s_verdict))
        (call $w_str (global.get $s_{verdict}))
        {write_override}
        (call $out_packed))
    """, {2560: blob})


def policy_echo_guest(ctx_key: str) -> bytes:
    """A policy hook that denies every effect, giving as its reason `ctx[ctx_key]` (copied from
    the context it was called with)."""
    return _cbor_guest("""
      (func (export "call") (param $ptr i32) (param $len i32) (result i64)
        (call $w_begin)
        (call $w_map (i32.const 1))
        (call $w_str (global.get $s_emits))
        (call $w_array (i32.const 1))
        (call $w_map (i32.const 2))
        (call $w_str (global.get $s_kind))
        (call $w_str (i32.const 2400))
        (call $w_str (global.get $s_payload))
        (call $w_map (i32.const 1))
        (call $w_str (i32.const 2432))
        (call $w_item_or_null
          (call $map_get (call $map_get (local.get $ptr) (global.get $s_ctx)) (i32.const 2464)))
        (call $out_packed))
    """, {2400: _slot("policy.deny"), 2432: _slot("reason"), 2464: _slot(ctx_key)})


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


FREEZE_COUNTERS_SOURCE = '''
    from agentworld import hookimpl

    class FreezeCounters:
        name = "freeze-counters"
        description = "counters may not change"
        severity = "error"

        def check(self, current, candidate, context):
            return ["counters are frozen"] if current.module_id == "m.counter" else []

    @hookimpl
    def agentworld_register_compat_rules(register):
        register(FreezeCounters())
'''
"""A plugin module (for `write_distribution`) registering the rule `freeze-counters`: any
upgrade of an `m.counter` instance is an error."""
