"""The plugin manager: in-process and entry-point plugins, blocking, loading, validation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentworld import hookimpl
from agentworld.compat import Violation
from agentworld.errors import ExecutorUnavailableError, PluginError, StoreError
from agentworld.executor import ExecutorConfig
from agentworld.manager import BUILTIN_PLUGINS, PluginLoadWarning, PluginManager
from worldkit import write_distribution


class NeverCompatible:
    name = "never-compatible"
    description = "refuses every upgrade"
    severity = "error"

    def check(self, current: Any, candidate: Any, context: Any) -> list[Violation]:
        return [Violation(self.name, "no upgrades today")]


class InProcessPlugin:
    __version__ = "9.9"

    @hookimpl
    def agentworld_register_executors(self, register: Callable[..., None]) -> None:
        register("ghost-engine", lambda config: None, unavailable_reason="ghosts are not real")

    @hookimpl
    def agentworld_register_module_stores(self, register: Callable[..., None]) -> None:
        register("ghost", lambda uri: ("opened", uri))

    @hookimpl
    def agentworld_register_compat_rules(self, register: Callable[..., None]) -> None:
        register(NeverCompatible())


def test_builtins_register_through_the_plugin_path(plugin_manager: PluginManager) -> None:
    names = [info.name for info in plugin_manager.plugins()]
    assert names == [name for name, _ in BUILTIN_PLUGINS]
    assert "wasmtime" in plugin_manager.executors()
    assert "memory" in plugin_manager.stores()
    assert all(info.builtin for info in plugin_manager.plugins())


def test_in_process_plugin_appears_in_every_table(plugin_manager: PluginManager) -> None:
    plugin_manager.register(InProcessPlugin(), name="ghosts")
    info = {i.name: i for i in plugin_manager.plugins()}["ghosts"]
    assert info.version == "9.9" and not info.builtin
    assert info.hooks == ("agentworld_register_compat_rules", "agentworld_register_executors",
                          "agentworld_register_module_stores")
    entry = plugin_manager.executors()["ghost-engine"]
    assert not entry.available and entry.unavailable_reason == "ghosts are not real"
    with pytest.raises(ExecutorUnavailableError, match="ghosts are not real"):
        plugin_manager.create_executor("ghost-engine", ExecutorConfig())
    assert plugin_manager.open_store("ghost://x") == ("opened", "ghost://x")
    assert "never-compatible" in [rule.name for rule in plugin_manager.compat_rules()]
    plugin_manager.unregister("ghosts")
    assert "ghost-engine" not in plugin_manager.executors()
    assert "ghost" not in plugin_manager.stores()


def test_blocking_removes_a_builtin_and_keeps_it_out(plugin_manager: PluginManager) -> None:
    plugin_manager.block("memory-store")
    assert "memory" not in plugin_manager.stores()
    with pytest.raises(StoreError, match="no module store for scheme 'memory'"):
        plugin_manager.open_store("memory://")
    import agentworld.plugins.memory_store as memory_store

    assert plugin_manager.register(memory_store, name="memory-store") is None
    assert plugin_manager.is_blocked("memory-store")


def test_disable_env_blocks_builtins() -> None:
    manager = PluginManager(entrypoints=False,
                            environ={"AGENTWORLD_DISABLE_PLUGINS": "memory-store, nothing"})
    assert "memory-store" not in [info.name for info in manager.plugins()]
    assert "memory" not in manager.stores()


def test_unknown_hook_name_is_a_clear_error(plugin_manager: PluginManager) -> None:
    class Typo:
        @hookimpl
        def agentworld_register_executor(self, register: Callable[..., None]) -> None:
            """Misspelt: the hook is agentworld_register_executors."""

    with pytest.raises(PluginError, match="agentworld_register_executor"):
        plugin_manager.register(Typo(), name="typo")
    assert "typo" not in [info.name for info in plugin_manager.plugins()]


def test_hookimpl_with_unknown_argument_is_a_clear_error(plugin_manager: PluginManager) -> None:
    class BadArgs:
        @hookimpl
        def agentworld_register_executors(self, register: Any, extra: Any) -> None:
            """Asks for an argument the hook does not pass."""

    with pytest.raises(PluginError, match="extra"):
        plugin_manager.register(BadArgs(), name="bad-args")


def test_a_plugin_taking_a_registered_name_is_skipped_not_the_first(
    plugin_manager: PluginManager,
) -> None:
    class Twice:
        """Claims the built-in executor's name, and adds a store."""

        @hookimpl
        def agentworld_register_executors(self, register: Callable[..., None]) -> None:
            register("wasmtime", lambda config: None)

        @hookimpl
        def agentworld_register_module_stores(self, register: Callable[..., None]) -> None:
            register("twice", lambda uri: None)

    plugin_manager.register(Twice(), name="twice")
    with pytest.warns(PluginLoadWarning, match="plugin 'twice'.*'wasmtime' is already registered "
                      "by plugin 'wasmtime'"):
        executors = plugin_manager.executors()
    assert executors["wasmtime"].plugin == "wasmtime"
    assert "twice" not in plugin_manager.stores()  # a failed plugin contributes nothing
    (failed,) = plugin_manager.failed_plugins()
    assert failed.name == "twice"
    assert failed.description == "Claims the built-in executor's name, and adds a store."
    assert "'wasmtime' is already registered" in (failed.failure or "")


RULE_PLUGIN = '''
    from agentworld import hookimpl

    class Strict:
        name = "strict-upgrades"
        description = "refuses everything"
        severity = "error"

        def check(self, current, candidate, context):
            return ["strict mode"]

    @hookimpl
    def agentworld_register_compat_rules(register):
        register(Strict())
'''


def test_entry_point_plugin_from_an_installed_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_distribution(tmp_path, "aw_strict", "1.2.3", "aw_strict_plugin", RULE_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = PluginManager(environ={})
    info = {i.name: i for i in manager.plugins()}["aw_strict"]
    assert info.version == "1.2.3" and info.hooks == ("agentworld_register_compat_rules",)
    assert "strict-upgrades" in [rule.name for rule in manager.compat_rules()]

    assert "aw_strict" not in [i.name for i in PluginManager(
        environ={"AGENTWORLD_DISABLE_PLUGINS": "aw_strict"}).plugins()]
    assert "aw_strict" not in [i.name for i in PluginManager(
        environ={"AGENTWORLD_LOAD_PLUGINS": ""}).plugins()]
    assert "aw_strict" in [i.name for i in PluginManager(
        environ={"AGENTWORLD_LOAD_PLUGINS": "aw_strict"}).plugins()]
    with pytest.warns(PluginLoadWarning, match="plugin 'not_installed' .* skipped: not "
                      "installed: .* no installed distribution"):
        manager = PluginManager(environ={"AGENTWORLD_LOAD_PLUGINS": "aw_strict,not_installed"})
    assert [info.name for info in manager.failed_plugins()] == ["not_installed"]
    assert "strict-upgrades" in [rule.name for rule in manager.compat_rules()]


def test_trace_env_logs_hook_calls(capsys: pytest.CaptureFixture[str]) -> None:
    manager = PluginManager(entrypoints=False, environ={"AGENTWORLD_TRACE_PLUGINS": "1"})
    manager.stores()
    assert "agentworld_register_module_stores" in capsys.readouterr().err


class Raises:
    @hookimpl
    def agentworld_register_module_stores(self, register: Callable[..., None]) -> None:
        raise RuntimeError("kaboom")


class MisusesRegister:
    @hookimpl
    def agentworld_register_executors(self, register: Callable[..., None]) -> None:
        register("oops")


@pytest.mark.parametrize(("plugin", "table", "fragment"), [
    (Raises(), "stores", "failed in agentworld_register_module_stores: RuntimeError: kaboom"),
    (MisusesRegister(), "executors", "failed in agentworld_register_executors: TypeError"),
])
def test_a_failing_plugin_is_named_skipped_and_the_others_keep_working(
    plugin_manager: PluginManager, plugin: object, table: str, fragment: str
) -> None:
    plugin_manager.register(plugin, name="troublemaker")
    plugin_manager.register(InProcessPlugin(), name="ghosts")
    with pytest.warns(PluginLoadWarning) as caught:
        getattr(plugin_manager, table)()
        plugin_manager.executors(), plugin_manager.stores(), plugin_manager.compat_rules()
    (warning,) = caught  # one warning, however many tables are built
    assert "plugin 'troublemaker' (registered in-process) skipped: " in str(warning.message)
    assert fragment in str(warning.message)
    assert "memory" in plugin_manager.stores() and "ghost" in plugin_manager.stores()
    assert {"wasmtime", "ghost-engine"} <= set(plugin_manager.executors())
    info = {i.name: i for i in plugin_manager.plugins()}
    assert info["troublemaker"].failed and fragment in (info["troublemaker"].failure or "")
    assert not info["ghosts"].failed
    plugin_manager.unregister("troublemaker")
    assert plugin_manager.failed_plugins() == []


def test_disabling_an_unknown_plugin_warns() -> None:
    with pytest.warns(UserWarning, match="'default-rule'"):
        manager = PluginManager(environ={"AGENTWORLD_DISABLE_PLUGINS": "default-rule",
                                         "AGENTWORLD_LOAD_PLUGINS": ""})
    assert "default-rules" in [info.name for info in manager.plugins()]
