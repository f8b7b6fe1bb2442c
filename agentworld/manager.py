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
from attrs import evolve, frozen

from agentworld import hookspecs
from agentworld.compat import SEVERITIES, CompatRule
from agentworld.errors import ExecutorUnavailableError, PluginError, StoreError
from agentworld.executor import Executor, ExecutorConfig, ExecutorFactory
from agentworld.release import __version__
from agentworld.store import ModuleStore, StoreFactory

ENTRY_POINT_GROUP = "agentworld"

# (plugin name, module): the built-in plugins, registered in this order.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("wasmtime", "agentworld.backends.wasmtime_executor"),
    ("wasmer", "agentworld.backends.wasmer_executor"),
    ("memory-store", "agentworld.plugins.memory_store"),
    ("file-store", "agentworld.plugins.file_store"),
    ("s3-store", "agentworld.plugins.s3_store"),
    ("default-rules", "agentworld.plugins.default_rules"),
)
BUILTIN_DESCRIPTIONS = {
    "wasmtime": "the wasmtime executor",
    "memory-store": "the memory:// module store",
    "file-store": "the file:// module store (and bare paths)",
    "s3-store": "the s3:// module store",
    "default-rules": "the default upgrade compatibility rules",
}


@frozen
class PluginInfo:
    """A plugin: name, version, hooks, where it comes from, and why it was skipped if it was.

    `failure` is None for a working plugin. A failed plugin contributes nothing to any table:
    it could not be imported, did not validate, or raised (or misused `register`) in a hook.
    """

    name: str
    version: str | None
    hooks: tuple[str, ...]
    builtin: bool
    distribution: str | None = None
    entry_point: str | None = None
    description: str = ""
    failure: str | None = None

    @property
    def failed(self) -> bool:
        """True when the plugin was skipped."""
        return self.failure is not None

    def origin(self) -> str:
        """Where the plugin comes from, for messages: built-in, distribution, entry point."""
        if self.builtin:
            return "built-in"
        parts = []
        if self.distribution is not None:
            parts.append(f"distribution {self.distribution} {self.version or '?'}")
        if self.entry_point is not None:
            parts.append(f"entry point {self.entry_point}")
        return ", ".join(parts) or "registered in-process"


@frozen
class ExecutorEntry:
    """A registered executor and whether it can run here."""

    name: str
    factory: ExecutorFactory
    unavailable_reason: str | None = None
    description: str = ""
    plugin: str | None = None

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
    plugin: str | None = None


@frozen
class _Tables:
    """What every working plugin registered, and which plugins failed while registering."""

    executors: dict[str, ExecutorEntry]
    stores: dict[str, StoreEntry]
    rules: tuple[CompatRule, ...]
    rule_plugins: dict[str, str]
    failures: dict[str, str]


@frozen
class _Origin:
    """Where an entry-point plugin came from."""

    distribution: str
    version: str
    entry_point: str
    summary: str


class _Contribution:
    """What one plugin registers across the three hooks, checked before it is accepted."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.executors: dict[str, ExecutorEntry] = {}
        self.stores: dict[str, StoreEntry] = {}
        self.rules: dict[str, CompatRule] = {}

    def register_executor(
        self,
        name: str,
        factory: ExecutorFactory,
        *,
        unavailable_reason: str | None = None,
        description: str = "",
    ) -> None:
        """The `register` callback of `agentworld_register_executors`."""
        if not isinstance(name, str) or not name:
            raise PluginError(f"executor name must be a non-empty string, got {name!r}")
        if name in self.executors:
            raise PluginError(f"executor {name!r} is registered twice")
        if not callable(factory):
            raise PluginError(f"executor {name!r}: factory is not callable")
        self.executors[name] = ExecutorEntry(name, factory, unavailable_reason, description,
                                             self.plugin)

    def register_store(self, scheme: str, factory: StoreFactory, *, description: str = "") -> None:
        """The `register` callback of `agentworld_register_module_stores`."""
        if not isinstance(scheme, str) or not scheme.isidentifier():
            raise PluginError(f"store scheme must be an identifier, got {scheme!r}")
        if scheme in self.stores:
            raise PluginError(f"store scheme {scheme!r} is registered twice")
        if not callable(factory):
            raise PluginError(f"store scheme {scheme!r}: factory is not callable")
        self.stores[scheme] = StoreEntry(scheme, factory, description, self.plugin)

    def register_rule(self, rule: CompatRule) -> None:
        """The `register` callback of `agentworld_register_compat_rules`."""
        name = getattr(rule, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"compat rule {rule!r} has no name")
        if name in self.rules:
            raise PluginError(f"compat rule {name!r} is registered twice")
        if getattr(rule, "severity", None) not in SEVERITIES:
            raise PluginError(f"compat rule {name!r}: severity must be one of {SEVERITIES}")
        if not callable(getattr(rule, "check", None)):
            raise PluginError(f"compat rule {name!r} has no check()")
        self.rules[name] = rule

    def conflicts(self, tables: _Tables) -> list[str]:
        """Names this plugin registers that an accepted plugin registered first."""
        return (
            [f"executor {name!r} is already registered by plugin "
             f"{tables.executors[name].plugin!r}" for name in self.executors
             if name in tables.executors]
            + [f"store scheme {scheme!r} is already registered by plugin "
               f"{tables.stores[scheme].plugin!r}" for scheme in self.stores
               if scheme in tables.stores]
            + [f"compat rule {name!r} is already registered by plugin "
               f"{tables.rule_plugins[name]!r}" for name in self.rules
               if name in tables.rule_plugins]
        )


def _names(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _one_line(exc: BaseException) -> str:
    """`Type: message` on one line, so a failure is always one warning line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


class PluginLoadWarning(UserWarning):
    """A plugin was skipped: it failed to import, to validate or to register."""


class PluginManager:
    """Loads plugins and answers the core's questions: executors, stores, compat rules.

    A plugin that fails to import, validate or register is skipped with one
    `PluginLoadWarning` naming it; `plugins()` lists it with the reason, and every other plugin
    keeps working. Registering a malformed plugin in-process with `register()` raises instead.
    """

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
        self._origins: dict[str, _Origin] = {}
        # Plugins that never got registered (import or validation failed), in discovery order.
        self._unloaded: dict[str, PluginInfo] = {}
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.RLock()
        self._tables: _Tables | None = None
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
                    self._load_builtin(name, module_name)
        if entrypoints:
            known = self._load_entrypoints(env.get("AGENTWORLD_LOAD_PLUGINS"))
            for name in _names(env.get("AGENTWORLD_DISABLE_PLUGINS")):
                if name not in known | {builtin for builtin, _ in BUILTIN_PLUGINS}:
                    # A typo here would silently leave, say, the default upgrade policy on.
                    warnings.warn(f"AGENTWORLD_DISABLE_PLUGINS names {name!r}, which is neither "
                                  "a built-in plugin nor an installed one", stacklevel=2)

    def _load_builtin(self, name: str, module_name: str) -> None:
        self._builtin_names.add(name)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # a built-in that cannot load is skipped like any other
            self._skip(PluginInfo(name, __version__, (), True), f"failed to import: "
                       f"{_one_line(exc)}")
            return
        try:
            self.register(module, name=name)
        except PluginError as exc:
            self._skip(PluginInfo(name, __version__, (), True), f"invalid: {exc}")

    def _load_entrypoints(self, only: str | None) -> set[str]:
        """Load the `agentworld` entry points (only those named in `only`, if given); return
        the name of every one installed."""
        wanted = None if only is None else set(_names(only))
        seen: set[str] = set()
        for dist in importlib.metadata.distributions():
            for entry in dist.entry_points:
                if entry.group != ENTRY_POINT_GROUP or entry.name in seen:
                    continue  # the first distribution on the path wins, as for imports
                seen.add(entry.name)
                if (wanted is not None and entry.name not in wanted) or self._pm.is_blocked(
                        entry.name):
                    continue
                self._load_entrypoint(dist, entry)
        for name in sorted((wanted or set()) - seen):
            self._skip(PluginInfo(name, None, (), False, entry_point=name),
                       "not installed: AGENTWORLD_LOAD_PLUGINS "
                       f"names it, but no installed distribution provides an "
                       f"{ENTRY_POINT_GROUP!r} entry point of that name")
        return seen

    def _load_entrypoint(
        self, dist: importlib.metadata.Distribution, entry: importlib.metadata.EntryPoint
    ) -> None:
        origin = _Origin(dist.metadata["Name"] or "?", dist.version,
                         f"{entry.name} = {entry.value}", dist.metadata["Summary"] or "")
        skipped = PluginInfo(entry.name, origin.version, (), False, origin.distribution,
                             origin.entry_point, origin.summary)
        if self._pm.has_plugin(entry.name):
            self._skip(skipped, f"the name {entry.name!r} is taken by another plugin")
            return
        try:
            plugin = entry.load()
        except (Exception, SystemExit) as exc:  # a plugin's import must never stop agentworld
            self._skip(skipped, f"failed to import: {_one_line(exc)}")
            return
        try:
            self.register(plugin, name=entry.name)
        except PluginError as exc:
            self._skip(skipped, f"invalid: {exc}")
            return
        if not self._pm.get_hookcallers(plugin):
            self._pm.unregister(plugin)
            self._skip(skipped, "invalid: implements no agentworld hook")
            return
        self._origins[entry.name] = origin

    def _skip(self, info: PluginInfo, reason: str) -> None:
        """Record a plugin that never got registered, and warn once."""
        self._unloaded[info.name] = evolve(info, failure=" ".join(reason.split()))
        self._warn(self._unloaded[info.name])

    def _warn(self, info: PluginInfo) -> None:
        key = (info.name, info.failure or "")
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(PluginLoadWarning(
                f"plugin {info.name!r} ({info.origin()}) skipped: {info.failure}"), stacklevel=3)

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
            if registered is not None:
                self._unloaded.pop(registered, None)
            self._tables = None
            return registered

    def unregister(self, name: str) -> None:
        """Remove the plugin registered as `name`."""
        with self._lock:
            if self._pm.get_plugin(name) is None:
                raise PluginError(f"no plugin named {name!r} is registered")
            self._pm.unregister(name=name)
            self._builtin_names.discard(name)
            self._origins.pop(name, None)
            self._tables = None

    def block(self, name: str) -> None:
        """Unregister `name` if present and refuse any later registration under that name."""
        with self._lock:
            self._pm.set_blocked(name)
            self._builtin_names.discard(name)
            self._origins.pop(name, None)
            self._unloaded.pop(name, None)
            self._tables = None

    def is_blocked(self, name: str) -> bool:
        """True when `name` is blocked."""
        return self._pm.is_blocked(name)

    # -- introspection ------------------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        """Every plugin, working or failed, with its version, hooks and origin.

        Registered plugins come in registration order, then those that could not be loaded.
        """
        failures = self._build().failures
        infos = []
        for name, plugin in self._pm.list_name_plugin():
            if plugin is None:  # a blocked name
                continue
            builtin = name in self._builtin_names
            origin = self._origins.get(name)
            callers = self._pm.get_hookcallers(plugin) or []
            hooks = tuple(sorted(caller.name for caller in callers))
            if builtin:
                info = PluginInfo(name, __version__, hooks, True,
                                  description=BUILTIN_DESCRIPTIONS.get(name, ""))
            elif origin is not None:
                info = PluginInfo(name, origin.version, hooks, False, origin.distribution,
                                  origin.entry_point,
                                  origin.summary or _first_line(plugin.__doc__))
            else:
                info = PluginInfo(name, getattr(plugin, "__version__", None), hooks, False,
                                  description=_first_line(plugin.__doc__))
            infos.append(evolve(info, failure=failures.get(name)))
        return infos + list(self._unloaded.values())

    def failed_plugins(self) -> list[PluginInfo]:
        """The plugins that were skipped, each with the reason."""
        return [info for info in self.plugins() if info.failed]

    def _call_one(self, hook_name: str, plugin: object, register: Callable[..., None]) -> None:
        """Call one plugin's implementation of a registry hook, if it has one."""
        impls = getattr(self._pm.hook, hook_name).get_hookimpls()
        if not any(impl.plugin is plugin for impl in impls):
            return
        # A subset caller keeps pluggy's tracing (AGENTWORLD_TRACE_PLUGINS) per call.
        others = [impl.plugin for impl in impls if impl.plugin is not plugin]
        self._pm.subset_hook_caller(hook_name, remove_plugins=others)(register=register)

    def _build(self) -> _Tables:
        """Call every plugin's hooks, plugin by plugin in registration order; a plugin that
        raises, misuses `register` or takes a name an earlier plugin has is skipped whole."""
        with self._lock:
            if self._tables is not None:
                return self._tables
            tables = _Tables({}, {}, (), {}, {})
            rules: list[CompatRule] = []
            for name, plugin in self._pm.list_name_plugin():
                if plugin is None:
                    continue
                taken = _Contribution(name)
                failure = None
                for hook_name, register in (
                    ("agentworld_register_executors", taken.register_executor),
                    ("agentworld_register_module_stores", taken.register_store),
                    ("agentworld_register_compat_rules", taken.register_rule),
                ):
                    try:
                        self._call_one(hook_name, plugin, register)
                    except Exception as exc:  # a broken plugin is skipped, never fatal
                        detail = str(exc) if isinstance(exc, PluginError) else _one_line(exc)
                        failure = f"failed in {hook_name}: {detail}"
                        break
                if failure is not None:
                    tables.failures[name] = " ".join(failure.split())
                    continue
                conflicts = taken.conflicts(tables)
                if conflicts:
                    tables.failures[name] = "; ".join(conflicts)
                    continue
                tables.executors.update(taken.executors)
                tables.stores.update(taken.stores)
                rules.extend(taken.rules.values())
                tables.rule_plugins.update(dict.fromkeys(taken.rules, name))
            self._tables = evolve(
                tables,
                executors=dict(sorted(tables.executors.items())),
                stores=dict(sorted(tables.stores.items())),
                rules=tuple(rules),
            )
            for info in self.plugins():
                if info.failed and info.name in tables.failures:
                    self._warn(info)
            return self._tables

    # -- executors ----------------------------------------------------------------------------

    def executors(self) -> dict[str, ExecutorEntry]:
        """Every registered executor by name, available or not."""
        return dict(self._build().executors)

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
        return dict(self._build().stores)

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
        """Every registered compatibility rule, plugin by plugin in registration order."""
        return list(self._build().rules)

    def compat_rule_plugin(self, rule_name: str) -> str | None:
        """The name of the plugin that registered compat rule `rule_name` (None if none did)."""
        return self._build().rule_plugins.get(rule_name)


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
