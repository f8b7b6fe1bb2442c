"""The pytest plugin agentworld installs (`pytest11` entry point), used as a plugin author uses
it: a separate project's tests, run by pytest in a subprocess, with no conftest of ours."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from worldkit import write_distribution

AUTHOR_TESTS = '''
    import pytest

    from agentworld import World, hookimpl
    from agentworld.canonical import sha256_hex
    from agentworld.manager import BUILTIN_PLUGINS

    COUNTER = """
    (module
      (memory (export "memory") 1)
      (func (export "alloc") (param i32) (result i32) i32.const 1024)
      (func (export "call") (param i32 i32) (result i64)
        ;; an empty CBOR map at 16: no state, no emits, no effects
        (i32.store8 (i32.const 16) (i32.const 0xa0))
        i64.const 0x0000000100000010))
    """


    class Mine:
        @hookimpl
        def agentworld_register_compat_rules(self, register):
            pass


    def test_plugins_are_the_builtins_and_what_the_test_registers(agentworld_plugins):
        names = [info.name for info in agentworld_plugins.plugins()]
        assert names == [name for name, _ in BUILTIN_PLUGINS]  # no installed entry point
        agentworld_plugins.register(Mine(), name="mine")
        assert "mine" in [info.name for info in agentworld_plugins.plugins()]
        assert "strict" not in [rule.name for rule in agentworld_plugins.compat_rules()]


    def test_a_wat_guest_runs_in_a_fresh_world(agentworld_world, agentworld_wat):
        assert len(agentworld_world.journal) == 0 and agentworld_world.time == 0
        wasm = agentworld_wat(COUNTER)
        world = agentworld_world
        world.submit({"type": "register_agent", "data": {"agent_id": "ada", "position": [0, 0]}})
        world.submit({"type": "module.deploy_artifact", "data": {
            "publisher_agent_id": "ada", "wasm_bytes": wasm, "wasm_hash": sha256_hex(wasm)}})
        world.submit({"type": "module.install", "data": {"installer_agent_id": "ada", "manifest": {
            "module_id": "m.mine", "name": "mine", "version": "1.0.0", "kind": "pure",
            "wasm_hash": sha256_hex(wasm), "interface_version": "wasm-1",
            "exports": ["memory", "alloc", "call"], "subscriptions": [{"stage": "tick"}]}}})
        world.step_with_modules()
        world.step_with_modules()
        assert [e.kind for e in world.journal if e.kind.startswith("module.call")] == []
        assert "m.mine#1" in world.instances


    def test_bad_wat_fails_with_the_compiler_message(agentworld_wat):
        with pytest.raises(pytest.fail.Exception, match="does not compile"):
            agentworld_wat("(module (func")


    def test_an_s3_store_round_trip(agentworld_s3_uri, tmp_path):
        world = World(store=agentworld_s3_uri)
        world.submit({"type": "register_agent", "data": {"agent_id": "ada", "position": [0, 0]}})
        world.step()
        world.save_to_dir(tmp_path / "w")
        assert World.load_from_dir(tmp_path / "w").state_root() == world.state_root()
        assert agentworld_s3_uri.startswith("s3://") and "endpoint_url=http://127.0.0.1:" in (
            agentworld_s3_uri)
'''

STRICT = """
    from agentworld import hookimpl

    class Strict:
        name, description, severity = "strict", "refuses everything", "error"

        def check(self, current, candidate, context):
            return ["no"]

    @hookimpl
    def agentworld_register_compat_rules(register):
        register(Strict())
"""


def run_author_tests(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("AGENTWORLD_LOAD_PLUGINS")  # a user's shell: every installed plugin may load
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rs", str(project)], capture_output=True, text=True, timeout=300,
                          cwd=project, env=env)


@pytest.mark.slow
def test_the_fixtures_work_in_another_project_without_its_entry_points(tmp_path: Path) -> None:
    site, project = tmp_path / "site", tmp_path / "project"
    project.mkdir()
    # An installed rule plugin that would refuse every upgrade if it were loaded.
    write_distribution(site, "strict", "1.0", "strict_plugin", STRICT)
    (project / "test_author.py").write_text(textwrap.dedent(AUTHOR_TESTS))
    result = run_author_tests(project, site)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


@pytest.mark.slow
def test_the_s3_fixture_is_skipped_without_moto(tmp_path: Path) -> None:
    site, project = tmp_path / "site", tmp_path / "project"
    (site / "moto").mkdir(parents=True)
    # What Python says when moto is not installed, whatever the test environment has.
    (site / "moto" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'moto'\", name='moto')\n")
    project.mkdir()
    (project / "test_author.py").write_text(textwrap.dedent(AUTHOR_TESTS))
    result = run_author_tests(project, site)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed, 1 skipped" in result.stdout
    assert "agentworld_s3_uri needs moto[server]" in result.stdout
