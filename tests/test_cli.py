"""The `agentworld` command: version, plugin listing, demo, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from agentworld import __version__


def agentworld(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentworld", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )


def test_version() -> None:
    result = agentworld("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_plugins_json_lists_every_table() -> None:
    result = agentworld("plugins", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"plugins", "executors", "stores", "compat_rules"}
    plugins = {p["name"]: p for p in report["plugins"]}
    assert plugins["wasmtime"]["hooks"] == ["agentworld_register_executors"]
    assert plugins["wasmtime"]["version"] == __version__
    executors = {e["name"]: e for e in report["executors"]}
    assert executors["wasmtime"] == {"name": "wasmtime", "available": True, "reason": None}
    assert {"scheme": "memory"} in report["stores"]
    for rule in report["compat_rules"]:
        assert set(rule) == {"name", "severity", "description"}


def test_plugins_table_is_human_readable() -> None:
    result = agentworld("plugins")
    assert result.returncode == 0, result.stderr
    assert "wasmtime" in result.stdout and "Executors" in result.stdout


def test_errors_are_one_line_without_traceback() -> None:
    result = agentworld("plugins", AGENTWORLD_LOAD_PLUGINS="no_such_plugin")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "no_such_plugin" in lines[0] and "Traceback" not in result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = agentworld("frobnicate")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_demo_prints_a_state_root() -> None:
    result = agentworld("demo", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert len(summary["state_root"]) == 64
    again = json.loads(agentworld("demo", "--json").stdout)
    assert again == summary
