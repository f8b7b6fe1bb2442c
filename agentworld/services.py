"""World services: what the kernel uses of the world's surroundings.

The configuration, the plugin manager, the module store and the executor, and what is known
about artifacts (present in the store, corrupt). Deciders get these services (never the world)
to store and check artifacts and to judge upgrades; routing gets them to run module calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from agentworld.config import WorldConfig, config_hash
from agentworld.errors import ExecutorUnavailableError, StoreError
from agentworld.executor import (
    CallLimits,
    CallRequest,
    Executor,
    ExecutorConfig,
    ModuleCallError,
    ModuleOutput,
)
from agentworld.manager import PluginManager, default_manager
from agentworld.manifest import Manifest
from agentworld.policy import InstalledRule, installed_rules
from agentworld.store import ModuleStore


class WorldServices:
    """One world's configuration, plugins, module store and executor."""

    def __init__(
        self,
        *,
        config: WorldConfig,
        executor: str | Executor,
        store: str | ModuleStore,
        plugins: PluginManager | None,
        executor_config: ExecutorConfig,
    ) -> None:
        self.config = config
        # The hash goes into every call's context: computed once, for a config that never
        # changes (it is frozen, and a world never swaps it).
        self._config_hash = config_hash(config)
        self._plugins = plugins
        self._executor_choice = executor
        self._executor_config = executor_config
        self._executor: Executor | None = None if isinstance(executor, str) else executor
        self._store_choice = store
        self._store: ModuleStore | None = None if isinstance(store, str) else store
        self._available: set[str] = set()  # artifact hashes seen in the store
        self._loaders: dict[str, Callable[[], bytes]] = {}
        # Artifacts whose stored bytes failed verification at load: hash -> why. They count as
        # missing (calls fail with artifact_missing) until their genuine bytes are deployed.
        self.corrupt: dict[str, str] = {}

    # -- plugins, store, executor ---------------------------------------------------------------

    @property
    def plugins(self) -> PluginManager:
        """The plugin manager executors and stores come from (the default one if unset)."""
        if self._plugins is None:
            self._plugins = default_manager()
        return self._plugins

    @property
    def store(self) -> ModuleStore:
        """The module store, opened through the store plugins on first use."""
        if self._store is None:
            assert isinstance(self._store_choice, str)
            self._store = self.plugins.open_store(self._store_choice)
        return self._store

    @property
    def executor(self) -> Executor:
        """The executor: built once through the executor plugins and shared by every world of
        the same plugin manager that asks for the same engine and config."""
        if self._executor is None:
            assert isinstance(self._executor_choice, str)
            self._executor = self.plugins.shared_executor(
                self._executor_choice, self._executor_config
            )
        return self._executor

    @contextmanager
    def executor_override(self, executor: Executor | None) -> Iterator[None]:
        """Use `executor` (when given) instead of the world's own for the block."""
        if executor is None:
            yield
            return
        saved, self._executor = self._executor, executor
        try:
            yield
        finally:
            self._executor = saved

    def executor_for_calls(self) -> Executor:
        """The executor, or a `ModuleCallError("engine_unavailable")` for the calls at hand."""
        try:
            return self.executor
        except ExecutorUnavailableError as exc:
            raise ModuleCallError("engine_unavailable", str(exc)) from None

    # -- what module decisions use (`agentworld.module_actions.ModuleServices`) ----------------

    @property
    def default_limits(self) -> CallLimits:
        """Call limits for manifests that do not set their own."""
        return self.config.default_limits

    @property
    def max_limits(self) -> CallLimits:
        """The largest limits a manifest may ask for."""
        return self.config.max_limits

    @property
    def max_artifact_bytes(self) -> int:
        """The largest artifact a deploy accepts."""
        return self.config.max_artifact_bytes

    def store_blob(self, wasm_hash: str, data: bytes) -> None:
        """Put verified artifact bytes into the module store (repairing a corrupt copy)."""
        self.store.put_blob(wasm_hash, data)
        self.corrupt.pop(wasm_hash, None)

    def has_blob(self, wasm_hash: str) -> bool:
        """True when the module store holds the artifact's bytes."""
        return self.store.has_blob(wasm_hash)

    def check_artifact(self, wasm: bytes) -> list[str]:
        """The module's exports; raises unless `wasm` is a module the executor's ABI accepts
        and the world's gas schedule can meter."""
        return self.executor.check_artifact(wasm, self.config.gas_schedule)

    def config_hash(self) -> str:
        """SHA-256 of the canonical world config (`world_config_hash` in every context)."""
        return self._config_hash

    def installed_rules(self) -> list[InstalledRule]:
        """The compatibility rules installed here; the world's pinned policy picks from them."""
        return installed_rules(self.plugins)

    def call_module(
        self, manifest: Manifest, instance_id: str, entrypoint: str, payload: bytes
    ) -> ModuleOutput:
        """Run `entrypoint` of `manifest`'s artifact once for `instance_id` under the
        manifest's limits, outside routing (a migration); raise `ModuleCallError` on failure."""
        executor = self.executor_for_calls()
        wasm_hash = manifest.wasm_hash
        if not self.artifact_available(wasm_hash):
            raise ModuleCallError("artifact_missing",
                                  f"artifact {wasm_hash} is not in the module store")
        return executor.call(CallRequest(
            module_id=manifest.module_id,
            instance_id=instance_id,
            wasm_hash=wasm_hash,
            wasm=self.loader(wasm_hash),
            entrypoint=entrypoint,
            input=payload,
            limits=manifest.limits.resolve(self.config.default_limits),
            kind=manifest.kind,
            gas_schedule=self.config.gas_schedule,
        ))

    # -- what routing uses ----------------------------------------------------------------------

    def artifact_available(self, wasm_hash: str) -> bool:
        """True when the module store holds the artifact intact (a yes is remembered)."""
        if wasm_hash in self._available:
            return True
        if wasm_hash in self.corrupt:
            return False
        if self.store.has_blob(wasm_hash):
            self._available.add(wasm_hash)
            return True
        return False

    def loader(self, wasm_hash: str) -> Callable[[], bytes]:
        """A loader of the artifact's bytes for a call request (made once per artifact).

        A store failure becomes `artifact_missing` without the store's own words: they name
        paths or endpoints, and the journal must not.
        """
        load = self._loaders.get(wasm_hash)
        if load is None:
            services = self

            def load_artifact() -> bytes:
                try:
                    return services.store.get_blob(wasm_hash)
                except StoreError:
                    raise ModuleCallError(
                        "artifact_missing",
                        f"artifact {wasm_hash} could not be read from the module store",
                    ) from None

            load = self._loaders[wasm_hash] = load_artifact
        return load
