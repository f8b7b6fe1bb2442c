"""One broken third-party plugin is named, skipped with one warning line, listed as failed, and
every command that does not need it keeps working. Plugins here are real installed
distributions (dist-info with an entry point) on a real import path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentworld.manager import PluginLoadWarning, PluginManager
from worldkit import write_distribution

GOOD_RULE = """
    '''A rule that warns about every change.'''
    from agentworld import hookimpl

    class Loud:
        name, description, severity = "loud", "warns about everything", "warning"

        def check(self, current, candidate, context):
            return ["changed"]

    @hookimpl
    def agentworld_register_compat_rules(register):
        register(Loud())
"""

# Each broken plugin, and the fragment its failure must show.
BROKEN = {
    "aw_missing_dep": ("import aw_not_installed_anywhere\n",
                       "failed to import: ModuleNotFoundError: No module named "
                       "'aw_not_installed_anywhere'"),
    "aw_syntax": ("def broken(:\n", "failed to import: SyntaxError"),
    "aw_exits": ("import sys\nsys.exit(3)\n", "failed to import: SystemExit: 3"),
    "aw_no_hooks": ("VALUE = 1\n", "invalid: implements no agentworld hook"),
    "aw_bad_args": ("""
        from agentworld import hookimpl

        @hookimpl
        def agentworld_register_executors(register, surplus):
            pass
    """, "invalid: invalid plugin 'aw_bad_args'"),
    "aw_unknown_hook": ("""
        from agentworld import hookimpl

        @hookimpl
        def agentworld_register_executor(register):
            pass
    """, "agentworld_register_executor"),
    "aw_raises": ("""
        from agentworld import hookimpl

        @hookimpl
        def agentworld_register_module_stores(register):
            register("half", lambda uri: None)
            raise RuntimeError("store backend misconfigured")
    """, "failed in agentworld_register_module_stores: RuntimeError: store backend "
         "misconfigured"),
}


def install_plugins(root: Path, names: list[str]) -> None:
    """Real distributions under `root`: the good rule plugin and the named broken ones."""
    write_distribution(root, "aw_loud", "2.0", "aw_loud_plugin", GOOD_RULE)
    for name in names:
        write_distribution(root, name, "0.1", f"{name}_plugin", BROKEN[name][0])


def test_each_broken_distribution_is_skipped_with_one_warning_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugins(tmp_path, list(BROKEN))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(PluginLoadWarning) as caught:
        manager = PluginManager(environ={})
        rules = [rule.name for rule in manager.compat_rules()]
        manager.executors(), manager.stores()
    messages = sorted(str(warning.message) for warning in caught)
    assert len(messages) == len(BROKEN)  # one each, however many tables were built
    for name, (_, fragment) in BROKEN.items():
        (message,) = [m for m in messages if m.startswith(f"plugin {name!r} ")]
        assert f"(distribution {name} 0.1, entry point {name} = {name}_plugin)" in message
        assert fragment in message and "\n" not in message
    assert "loud" in rules and "exports-not-reduced" in rules
    assert "half" not in manager.stores()  # what a failing plugin registered is dropped whole
    infos = {info.name: info for info in manager.plugins()}
    assert not infos["aw_loud"].failed and infos["aw_loud"].distribution == "aw_loud"
    assert {info.name for info in manager.failed_plugins()} == set(BROKEN)
    for name, (_, fragment) in BROKEN.items():
        assert infos[name].distribution == name and infos[name].version == "0.1"
        assert fragment in (infos[name].failure or "")


def agentworld(*args: str | Path, root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("AGENTWORLD_LOAD_PLUGINS")  # load every installed plugin, as a user's shell does
    return subprocess.run([sys.executable, "-m", "agentworld", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.slow
def test_commands_keep_working_beside_a_plugin_that_cannot_import(tmp_path: Path) -> None:
    plugins_root = tmp_path / "site"
    install_plugins(plugins_root, ["aw_missing_dep"])
    warning = ("warning: plugin 'aw_missing_dep' (distribution aw_missing_dep 0.1, entry point "
               "aw_missing_dep = aw_missing_dep_plugin) skipped: failed to import: "
               "ModuleNotFoundError: No module named 'aw_not_installed_anywhere'")

    listed = agentworld("plugins", root=plugins_root)
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.splitlines() == [warning]
    assert ("  aw_missing_dep 0.1 (distribution aw_missing_dep, entry point aw_missing_dep = "
            "aw_missing_dep_plugin) FAILED") in listed.stdout.splitlines()
    assert "  wasmtime 0.1.0 (built-in) hooks: executors" in listed.stdout.splitlines()
    report = json.loads(agentworld("plugins", "--json", root=plugins_root).stdout)
    rows = {row["name"]: row for row in report["plugins"]}
    assert rows["aw_missing_dep"]["status"] == "failed"
    assert "No module named 'aw_not_installed_anywhere'" in rows["aw_missing_dep"]["reason"]
    assert rows["aw_loud"]["status"] == "ok" and rows["aw_loud"]["distribution"] == "aw_loud"
    assert rows["default-rules"]["builtin"] is True
    assert {"name": "loud", "severity": "warning", "description": "warns about everything",
            "plugin": "aw_loud"} in report["compat_rules"]

    demo = agentworld("demo", "--json", "--dir", tmp_path / "demo", root=plugins_root)
    assert demo.returncode == 0 and json.loads(demo.stdout)["verified"] is True
    world = tmp_path / "world"
    assert agentworld("world", "init", world, "--agent", "ada", root=plugins_root).returncode == 0
    info = agentworld("world", "info", world, "--json", root=plugins_root)
    assert info.returncode == 0 and json.loads(info.stdout)["agents"][0]["agent_id"] == "ada"
    assert info.stderr.splitlines() == [warning]
