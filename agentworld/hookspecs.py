"""The hook specifications: agentworld's three extension points.

Every hook is registry-style: agentworld calls it with a `register` callback and the plugin
calls `register(...)` once per thing it provides. Implement them with `agentworld.hookimpl`.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT_NAME = "agentworld"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def agentworld_register_executors(register: Callable[..., None]) -> None:
    """Register WASM executors.

    Called once whenever agentworld builds its executor table. Call
    `register(name, factory, *, unavailable_reason=None, description="")` for each executor:
    `factory(config: ExecutorConfig) -> Executor` builds an executor (built once, reused for every
    call). An executor whose engine cannot run here still registers, passing
    `unavailable_reason` to say why; it is then listed but never built. Return nothing.
    """


@hookspec
def agentworld_register_module_stores(register: Callable[..., None]) -> None:
    """Register module-store backends by URI scheme.

    Called once whenever agentworld builds its store table. Call
    `register(scheme, factory, *, description="")` for each scheme: `factory(uri: str) ->
    ModuleStore` opens the store a URI names (`file:///path`, `s3://bucket/prefix`, `memory://`).
    A bare filesystem path is opened by the `file` scheme. Return nothing.
    """


@hookspec
def agentworld_register_compat_rules(register: Callable[..., None]) -> None:
    """Register upgrade compatibility rules.

    Called once whenever agentworld builds its rule list. Call `register(rule)` for each rule: an
    object with a stable `name`, a one-line `description`, a `severity` (`error` blocks an
    upgrade, `warning` only reports) and `check(current, candidate, context)` returning a list of
    `Violation` objects or plain message strings (empty when compatible). Return nothing.
    """


HOOK_NAMES: tuple[str, ...] = (
    "agentworld_register_executors",
    "agentworld_register_module_stores",
    "agentworld_register_compat_rules",
)

