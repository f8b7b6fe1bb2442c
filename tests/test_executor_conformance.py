"""The executor conformance kit, run against the wasmtime executor from the plugin manager."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentworld.executor import Executor, ExecutorConfig
from agentworld.manager import PluginManager
from agentworld.testing.conformance import ExecutorConformance


def _build(**options: object) -> Executor:
    manager = PluginManager(entrypoints=False)
    return manager.create_executor("wasmtime", ExecutorConfig(options=dict(options)))


@pytest.fixture(scope="module")
def pooled_executor() -> Iterator[Executor]:
    # One executor for every case: hostile calls must not disturb the calls that follow.
    executor = _build()
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def on_demand_executor() -> Iterator[Executor]:
    executor = _build(allocator="on-demand")
    yield executor
    executor.close()


class TestWasmtimeConformance(ExecutorConformance):
    @pytest.fixture
    def executor(self, pooled_executor: Executor) -> Executor:
        return pooled_executor


class TestWasmtimeOnDemandAllocatorConformance(ExecutorConformance):
    @pytest.fixture
    def executor(self, on_demand_executor: Executor) -> Executor:
        return on_demand_executor


@pytest.fixture(scope="module")
def fuel_backstop_executor() -> Iterator[Executor]:
    executor = _build(fuel_backstop=True)
    yield executor
    executor.close()


class TestWasmtimeFuelBackstopConformance(ExecutorConformance):
    """wasmtime's own fuel on, as a backstop: every result and gas figure is the same."""

    @pytest.fixture
    def executor(self, fuel_backstop_executor: Executor) -> Executor:
        return fuel_backstop_executor
