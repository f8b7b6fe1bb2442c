"""The plugin manager: a small typed facade over pluggy, so the core never calls `pm.hook`.

Built-in plugins are registered from `BUILTIN_PLUGINS` through the same path as external ones;
external plugins come from the `agentworld` entry-point group. Operators steer loading with
`AGENTWORLD_LOAD_PLUGINS` (only these external plugins; empty = none),
`AGENTWORLD_DISABLE_PLUGINS` (block by name, built-ins included) and `AGENTWORLD_TRACE_PLUGINS=1`
(log every hook call to stderr).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import pluggy
from attrs import frozen

from agentworld import __version__, hookspecs
from agentworld.compat import SEVERITIES, CompatRule
from agentworld.errors import ExecutorUnavailableError, PluginError, StoreError
from agentworld.executor import Executor, ExecutorConfig, ExecutorFactory
from agentworld.store import ModuleStore, StoreFactory

ENTRY_POINT_GROUP = "agentworld"

# (plugin name, module): the built-in plugins, registered in this order.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("wasmtime", "agentworld.backends.wasmtime_executor"),
    ("memory-store", "agentworld.plugins.memory_store"),
    ("file-store", "agentworld.plugins.file_store"),
    ("s3-store", "agentworld.plugins.s3_store"),
    ("default-rules", "agentworld.plugins.default_rules"),
)


@frozen
class PluginInfo:
    """A registered plugin: its name, version and the hooks it implements."""

    name: str
    version: str | None
    hooks: tuple[str, ...]
    builtin: bool


@frozen
class ExecutorEntry:
    """A registered executor and whether it can run here."""

    name: str
    factory: ExecutorFactory
    unavailable_reason: str | None = None
    description: str = ""

    @property
    def available(self) -> bool:
        """True when the executor's engine can run on this machine."""
        return self.unavailable_reason is None


@frozen
class StoreEntry:
    """A registered module-store scheme."""

    scheme: str
    factory: StoreFactory
    description: str = ""


def _names(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class PluginManager:
    """Loads plugins and answers the core's questions: executors, stores, compat rules."""

    def __init__(
        self,
        *,
        builtins: bool = True,
        entrypoints: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._builtin_names: set[str] = set()
        self._lock = threading.RLock()
        self._tables: dict[str, Any] = {}
        self._executors: dict[tuple[Any, ...], Executor] = {}
        # Engines must be released while the interpreter is whole: at exit (or when this
        # manager is collected), not during module teardown when wasmtime's bindings are gone.
        weakref.finalize(self, _close_executors, self._executors)
        for name in _names(env.get("AGENTWORLD_DISABLE_PLUGINS")):
            self._pm.set_blocked(name)
        if env.get("AGENTWORLD_TRACE_PLUGINS", "").lower() in {"1", "true", "yes", "on"}:
            self._pm.trace.root.setwriter(lambda text: sys.stderr.write(text))
            self._pm.enable_tracing()
        if builtins:
            for name, module_name in BUILTIN_PLUGINS:
                if not self._pm.is_blocked(name):
                    self.register(importlib.import_module(module_name), name=name)
                    self._builtin_names.add(name)
        if entrypoints:
            self._load_entrypoints(env.get("AGENTWORLD_LOAD_PLUGINS"))
            known = {name for name, _ in BUILTIN_PLUGINS} | {
                entry.name for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
            for name in _names(env.get("AGENTWORLD_DISABLE_PLUGINS")):
                if name not in known:
                    # A typo here would silently leave, say, the default upgrade policy on.
                    warnings.warn(f"AGENTWORLD_DISABLE_PLUGINS names {name!r}, which is neither "
                                  "a built-in plugin nor an installed one", stacklevel=2)

    def _load_entrypoints(self, only: str | None) -> None:
        try:
            if only is None:
                self._pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            else:
                for name in _names(only):
                    if not self._pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name):
                        if not self._pm.is_blocked(name) and self._pm.get_plugin(name) is None:
                            raise PluginError(
                                f"AGENTWORLD_LOAD_PLUGINS names {name!r}, but no installed "
                                f"distribution provides an {ENTRY_POINT_GROUP!r} entry point "
                                "of that name"
                            )
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"invalid plugin {exc.plugin!r}: {exc}") from None
        self._tables.clear()

    # -- registration -------------------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register `plugin` (a module or object with hookimpls); None if its name is blocked."""
        with self._lock:
            try:
                registered = self._pm.register(plugin, name=name)
                self._pm.check_pending()
            except pluggy.PluginValidationError as exc:
                if self._pm.is_registered(plugin):
                    self._pm.unregister(plugin)
                raise PluginError(f"invalid plugin {name or plugin!r}: {exc}") from None
            except ValueError as exc:
                raise PluginError(str(exc)) from None
            self._tables.clear()
            return registered

    def unregister(self, name: str) -> None:
        """Remove the plugin registered as `name`."""
        with self._lock:
            if self._pm.get_plugin(name) is None:
                raise PluginError(f"no plugin named {name!r} is registered")
            self._pm.unregister(name=name)
            self._builtin_names.discard(name)
            self._tables.clear()

    def block(self, name: str) -> None:
        """Unregister `name` if present and refuse any later registration under that name."""
        with self._lock:
            self._pm.set_blocked(name)
            self._builtin_names.discard(name)
            self._tables.clear()

    def is_blocked(self, name: str) -> bool:
        """True when `name` is blocked."""
        return self._pm.is_blocked(name)

    # -- introspection ------------------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        """Every registered plugin with its version and hooks, in registration order."""
        dists = {id(plugin): dist for plugin, dist in self._pm.list_plugin_distinfo()}
        infos = []
        for name, plugin in self._pm.list_name_plugin():
            if plugin is None:  # a blocked name
                continue
            builtin = name in self._builtin_names
            dist = dists.get(id(plugin))
            if builtin:
                version: str | None = __version__
            elif dist is not None:
                version = dist.version
            else:
                version = getattr(plugin, "__version__", None)
            callers = self._pm.get_hookcallers(plugin) or []
            hooks = tuple(sorted(caller.name for caller in callers))
            infos.append(PluginInfo(name, version, hooks, builtin))
        return infos

    def _collect(
        self, hook_name: str, register: Callable[..., None],
        calling: Callable[[str], None] | None = None,
    ) -> None:
        """Call one registry hook plugin by plugin, in registration order, so that a plugin
        that raises or misuses `register` is named in the error; `calling(name)` is told which
        plugin is about to register."""
        impls = getattr(self._pm.hook, hook_name).get_hookimpls()
        plugins = [impl.plugin for impl in impls]
        for impl in impls:
            if calling is not None:
                calling(impl.plugin_name)
            # A subset caller keeps pluggy's tracing (AGENTWORLD_TRACE_PLUGINS) per call.
            others = [plugin for plugin in plugins if plugin is not impl.plugin]
            caller = self._pm.subset_hook_caller(hook_name, remove_plugins=others)
            try:
                caller(register=register)
            except Exception as exc:
                detail = str(exc) if isinstance(exc, PluginError) else (
                    f"{type(exc).__name__}: {exc}")
                raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook_name}: "
                                  f"{detail}") from None

    def _table(self, key: str, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._tables:
                self._tables[key] = build()
            return self._tables[key]

    # -- executors ----------------------------------------------------------------------------

    def executors(self) -> dict[str, ExecutorEntry]:
        """Every registered executor by name, available or not."""
        return dict(self._table("executors", self._build_executors))

    def _build_executors(self) -> dict[str, ExecutorEntry]:
        entries: dict[str, ExecutorEntry] = {}

        def register(
            name: str,
            factory: ExecutorFactory,
            *,
            unavailable_reason: str | None = None,
            description: str = "",
        ) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"executor name must be a non-empty string, got {name!r}")
            if name in entries:
                raise PluginError(f"executor {name!r} is registered twice")
            if not callable(factory):
                raise PluginError(f"executor {name!r}: factory is not callable")
            entries[name] = ExecutorEntry(name, factory, unavailable_reason, description)

        self._collect("agentworld_register_executors", register)
        return dict(sorted(entries.items()))

    def create_executor(self, name: str, config: ExecutorConfig | None = None) -> Executor:
        """Build the executor registered as `name`."""
        entry = self.executors().get(name)
        if entry is None:
            known = ", ".join(self.executors()) or "none"
            raise ExecutorUnavailableError(f"no executor named {name!r} (registered: {known})")
        if entry.unavailable_reason is not None:
            raise ExecutorUnavailableError(
                f"executor {name!r} is unavailable: {entry.unavailable_reason}"
            )
        return entry.factory(config or ExecutorConfig())

    def shared_executor(self, name: str, config: ExecutorConfig | None = None) -> Executor:
        """The executor for `name` and `config`, built once per manager and shared by worlds.

        Executors are thread-safe and reusable, and an engine reserves address space: one per
        world would exhaust the process's memory mappings long before its memory.
        """
        config = config or ExecutorConfig()
        key = (name, str(config.cache_dir), config.memory_cache_size, str(config.cache_key_file),
               json.dumps(config.options, sort_keys=True, default=repr))
        with self._lock:
            executor = self._executors.get(key)
            if executor is None:
                executor = self._executors[key] = self.create_executor(name, config)
            return executor

    def close(self) -> None:
        """Close every shared executor (they are rebuilt on next use)."""
        with self._lock:
            _close_executors(self._executors)

    # -- stores -------------------------------------------------------------------------------

    def stores(self) -> dict[str, StoreEntry]:
        """Every registered module-store scheme."""
        return dict(self._table("stores", self._build_stores))

    def _build_stores(self) -> dict[str, StoreEntry]:
        entries: dict[str, StoreEntry] = {}

        def register(scheme: str, factory: StoreFactory, *, description: str = "") -> None:
            if not isinstance(scheme, str) or not scheme.isidentifier():
                raise PluginError(f"store scheme must be an identifier, got {scheme!r}")
            if scheme in entries:
                raise PluginError(f"store scheme {scheme!r} is registered twice")
            entries[scheme] = StoreEntry(scheme, factory, description)

        self._collect("agentworld_register_module_stores", register)
        return dict(sorted(entries.items()))

    def open_store(self, uri: str) -> ModuleStore:
        """Open the module store a URI names; a bare path is a `file` store."""
        scheme = urlsplit(uri).scheme if "://" in uri else "file"
        entry = self.stores().get(scheme)
        if entry is None:
            known = ", ".join(self.stores()) or "none"
            raise StoreError(f"no module store for scheme {scheme!r} (registered: {known})")
        return entry.factory(uri)

    # -- compatibility rules ------------------------------------------------------------------

    def compat_rules(self) -> list[CompatRule]:
        """Every registered compatibility rule, in hook-call order."""
        rules, _ = self._table("rules", self._build_rules)
        return list(rules)

    def compat_rule_plugin(self, rule_name: str) -> str | None:
        """The name of the plugin that registered compat rule `rule_name` (None if none did)."""
        _, plugins = self._table("rules", self._build_rules)
        found: str | None = plugins.get(rule_name)
        return found

    def _build_rules(self) -> tuple[list[CompatRule], dict[str, str]]:
        rules: list[CompatRule] = []
        seen: dict[str, str] = {}
        plugin = [""]

        def register(rule: CompatRule) -> None:
            name = getattr(rule, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(f"compat rule {rule!r} has no name")
            if name in seen:
                raise PluginError(f"compat rule {name!r} is registered twice")
            if getattr(rule, "severity", None) not in SEVERITIES:
                raise PluginError(f"compat rule {name!r}: severity must be one of {SEVERITIES}")
            if not callable(getattr(rule, "check", None)):
                raise PluginError(f"compat rule {name!r} has no check()")
            seen[name] = plugin[0]
            rules.append(rule)

        def calling(name: str) -> None:
            plugin[0] = name

        self._collect("agentworld_register_compat_rules", register, calling)
        return rules, seen


def _close_executors(executors: dict[tuple[Any, ...], Executor]) -> None:
    built = list(executors.values())
    executors.clear()
    for executor in built:
        executor.close()


_default: PluginManager | None = None
_default_lock = threading.Lock()


def default_manager() -> PluginManager:
    """The process-wide plugin manager (built-ins plus entry points), created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PluginManager()
        return _default
