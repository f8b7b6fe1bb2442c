"""The `agentworld` command: version, plugin listing, demo, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agentworld import __version__
from worldkit import write_distribution


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
    assert plugins["wasmtime"] == {
        "name": "wasmtime", "version": __version__, "hooks": ["agentworld_register_executors"],
        "builtin": True, "distribution": None, "entry_point": None,
        "description": "the wasmtime executor", "status": "ok", "reason": None}
    executors = {e["name"]: e for e in report["executors"]}
    assert executors["wasmtime"]["available"] is True and executors["wasmtime"]["reason"] is None
    assert executors["wasmtime"]["plugin"] == "wasmtime"
    assert {"scheme": "memory", "plugin": "memory-store",
            "description": "process-local in-memory store"} in report["stores"]
    for rule in report["compat_rules"]:
        assert set(rule) == {"name", "severity", "description", "plugin"}
        assert rule["plugin"] == "default-rules"


def test_plugins_listing_is_human_readable() -> None:
    result = agentworld("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  wasmtime 0.1.0 (built-in) hooks: executors" in lines
    assert "executors:" in lines and "compatibility rules:" in lines
    assert any(line.startswith("  [error] version-increases (plugin default-rules)")
               for line in lines)


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    result = agentworld("world", "info", str(tmp_path / "nowhere"))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "nowhere" in lines[0] and "Traceback" not in result.stderr


def test_a_plugin_named_for_loading_but_not_installed_is_a_warning() -> None:
    result = agentworld("plugins", AGENTWORLD_LOAD_PLUGINS="no_such_plugin")
    assert result.returncode == 0
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("warning: plugin 'no_such_plugin' (entry point no_such_plugin) "
                           "skipped: not installed")


BROKEN_PLUGIN = """
    from agentworld import hookimpl

    @hookimpl
    def agentworld_register_executors(register):
        register("half-registered")
"""

GOOD_PLUGIN = """
    from agentworld import hookimpl

    class Loud:
        name, description, severity = "loud", "warns about everything", "warning"

        def check(self, current, candidate, context):
            return ["changed"]

    @hookimpl
    def agentworld_register_compat_rules(register):
        register(Loud())
"""


def test_third_party_plugins_are_listed_and_a_broken_one_is_one_warning(tmp_path: Path) -> None:
    write_distribution(tmp_path, "aw_loud", "2.0", "aw_loud_plugin", GOOD_PLUGIN)
    env = {"PYTHONPATH": str(tmp_path), "AGENTWORLD_LOAD_PLUGINS": "aw_loud"}
    report = json.loads(agentworld("plugins", "--json", **env).stdout)
    loud = {p["name"]: p for p in report["plugins"]}["aw_loud"]
    assert (loud["version"], loud["distribution"], loud["entry_point"], loud["builtin"]) == (
        "2.0", "aw_loud", "aw_loud = aw_loud_plugin", False)
    assert {"name": "loud", "severity": "warning", "description": "warns about everything",
            "plugin": "aw_loud"} in report["compat_rules"]
    write_distribution(tmp_path, "aw_broken", "0.1", "aw_broken_plugin", BROKEN_PLUGIN)
    result = agentworld("plugins", PYTHONPATH=str(tmp_path),
                        AGENTWORLD_LOAD_PLUGINS="aw_loud,aw_broken")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("warning: plugin 'aw_broken' (distribution aw_broken 0.1, entry point "
                           "aw_broken = aw_broken_plugin) skipped: failed in "
                           "agentworld_register_executors: TypeError")
    assert "aw_broken 0.1 (distribution aw_broken, entry point aw_broken = aw_broken_plugin) " \
        "FAILED" in result.stdout


def test_demo_without_an_engine_fails_in_one_line() -> None:
    result = agentworld("demo", AGENTWORLD_DISABLE_PLUGINS="wasmtime")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "engine_unavailable" in line


def test_unknown_command_is_a_usage_error() -> None:
    result = agentworld("frobnicate")
    assert result.returncode == 2 and "Traceback" not in result.stderr
