"""The outside plugin package in `examples/plugins`, installed for real and used as a user would.

A new virtual environment gets the package with pip (built from its own `pyproject.toml`, no
network: `--no-deps --no-build-isolation`, and agentworld, pytest and setuptools come from the
environment running these tests). From then on everything goes through the public plugin path:
the `agentworld` entry points found by `agentworld plugins`, the `sqlite:` store URI, a world that
pins the package's rule when it is created, an upgrade that rule refuses, and the package's own
tests.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentworld.canonical import sha256_hex
from agentworld.testing.guests import guest_wasm

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "examples" / "plugins"
pytestmark = pytest.mark.slow


class Venv:
    """A virtual environment that sees this environment's packages and has the example."""

    def __init__(self, path: Path, source: Path) -> None:
        self.path = path
        self.source = source
        self.python = str(path / "bin" / "python")

    def run(self, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """`python ARGS` in the venv, with every installed agentworld plugin loaded."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("AGENTWORLD_LOAD", "AGENTWORLD_DISABLE", "PYTHONPATH"))}
        return subprocess.run([self.python, *map(str, args)], capture_output=True, text=True,
                              timeout=300, cwd=cwd, env=env)

    def agentworld(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        """The `agentworld` command in the venv."""
        return self.run("-m", "agentworld", *args)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    scratch = tmp_path_factory.mktemp("example-plugins")
    # A copy, so that building and testing leave nothing behind in the repository.
    source = shutil.copytree(PACKAGE, scratch / "plugins",
                             ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    path = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    env = Venv(path, source)
    purelib = env.run("-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    # This environment's site directories, processed as site directories (their own .pth files
    # included, so an editable agentworld works), after the venv's own.
    lines = [f"import site; site.addsitedir({directory!r})"
             for directory in site.getsitepackages()]
    Path(purelib.stdout.strip(), "parent_environment.pth").write_text("\n".join(lines) + "\n")
    installed = env.run("-m", "pip", "install", "--no-deps", "--no-build-isolation",
                        "--no-index", "--quiet", source)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    yield env


def test_pip_installed_it_into_the_venv_only(venv: Venv) -> None:
    shown = venv.run("-m", "pip", "show", "-f", "agentworld-example-plugins")
    assert shown.returncode == 0, shown.stderr
    assert f"Location: {venv.path}" in shown.stdout
    assert "agentworld_example_plugins/sqlite_store.py" in shown.stdout
    here = subprocess.run([sys.executable, "-m", "pip", "show", "agentworld-example-plugins"],
                          capture_output=True, text=True)
    assert here.returncode != 0  # the environment running the tests does not have it


def test_agentworld_lists_both_plugins_from_their_entry_points(venv: Venv) -> None:
    listed = venv.agentworld("plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    plugins = {row["name"]: row for row in report["plugins"]}
    for name, module in (("example-sqlite-store", "sqlite_store"), ("example-policy", "policy")):
        row = plugins[name]
        assert (row["status"], row["builtin"], row["version"]) == ("ok", False, "0.1.0")
        assert row["distribution"] == "agentworld-example-plugins"
        assert row["entry_point"] == f"{name} = agentworld_example_plugins.{module}"
    assert {"scheme": "sqlite", "plugin": "example-sqlite-store",
            "description": "one SQLite file: sqlite:///abs/path/store.db"} in report["stores"]
    rules = {row["name"]: row["plugin"] for row in report["compat_rules"]}
    assert rules["major-version-kept"] == "example-policy"


def counter_manifest(tmp: Path, version: str) -> Path:
    path = tmp / f"counter-{version}.json"
    path.write_text(json.dumps({
        "module_id": "m.counter", "name": "counter", "version": version, "kind": "reducer",
        "wasm_hash": sha256_hex(guest_wasm("counter")), "interface_version": "wasm-1",
        "exports": ["memory", "alloc", "reduce"], "subscriptions": [{"stage": "tick"}]}))
    return path


def test_a_world_in_a_sqlite_store_pins_the_rule_and_is_refused_by_it(
    venv: Venv, tmp_path: Path
) -> None:
    world, database = tmp_path / "world", tmp_path / "modules.db"
    wasm = tmp_path / "counter.wasm"
    wasm.write_bytes(guest_wasm("counter"))
    steps = [
        ("world", "init", world, "--agent", "ada", "--store", f"sqlite://{database}"),
        ("module", "deploy", world, "--as", "ada", "--wasm", wasm),
        ("module", "install", world, "--as", "ada", "--manifest",
         counter_manifest(tmp_path, "1.0.0")),
        ("module", "upgrade", world, "--as", "ada", "--instance", "m.counter#1",
         "--from-version", "1.0.0", "--manifest", counter_manifest(tmp_path, "1.1.0")),
    ]
    for step in steps:
        done = venv.agentworld(*step)
        assert done.returncode == 0, (step, done.stdout, done.stderr)
    refused = venv.agentworld("module", "upgrade", world, "--as", "ada", "--instance",
                              "m.counter#1", "--from-version", "1.1.0", "--manifest",
                              counter_manifest(tmp_path, "2.0.0"), "--json")
    assert refused.returncode == 1
    (rejection,) = [json.loads(line) for line in refused.stdout.splitlines()
                    if json.loads(line)["kind"] == "domain.action_rejected"]
    assert rejection["data"]["code"] == "incompatible_upgrade"
    assert [v["rule"] for v in rejection["data"]["report"]["violations"]] == [
        "major-version-kept"]

    info = json.loads(venv.agentworld("world", "info", world, "--json").stdout)
    assert info["store"] == f"sqlite://{database}"
    policy = info["compat_policy"]
    assert policy["standard"] is False
    assert {"rule": "major-version-kept", "plugin": "example-policy", "plugin_version": "0.1.0",
            "installed": True} in policy["rules"]
    # The artifact lives in the SQLite file, and the world verifies through the plugin's store.
    assert database.stat().st_size > len(guest_wasm("counter"))
    verify = venv.agentworld("world", "verify", world, "--json")
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"] is True


def test_without_the_plugin_a_world_that_pinned_its_rule_refuses_to_decide(
    venv: Venv, tmp_path: Path
) -> None:
    world, wasm = tmp_path / "world", tmp_path / "counter.wasm"
    wasm.write_bytes(guest_wasm("counter"))
    for step in (("world", "init", world, "--agent", "ada"),
                 ("module", "deploy", world, "--as", "ada", "--wasm", wasm),
                 ("module", "install", world, "--as", "ada", "--manifest",
                  counter_manifest(tmp_path, "1.0.0"))):
        done = venv.agentworld(*step)
        assert done.returncode == 0, (step, done.stdout, done.stderr)
    # The environment running the tests does not have the plugin installed.
    env = {**os.environ, "AGENTWORLD_LOAD_PLUGINS": ""}
    upgrade = subprocess.run(
        [sys.executable, "-m", "agentworld", "module", "upgrade", str(world), "--as", "ada",
         "--instance", "m.counter#1", "--from-version", "1.0.0", "--manifest",
         str(counter_manifest(tmp_path, "1.1.0")), "--json"],
        capture_output=True, text=True, timeout=120, env=env)
    assert upgrade.returncode == 1
    (rejection,) = [json.loads(line) for line in upgrade.stdout.splitlines()
                    if json.loads(line)["kind"] == "domain.action_rejected"]
    assert rejection["data"]["code"] == "compat_rule_missing"
    assert "major-version-kept" in " ".join(rejection["data"]["notes"])


def test_the_packages_own_tests_pass_in_the_venv(venv: Venv) -> None:
    result = venv.run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=venv.source)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary
