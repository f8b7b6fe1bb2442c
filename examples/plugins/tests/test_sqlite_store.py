"""The SQLite store passes agentworld's store contract kit, every optional case included."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from agentworld.errors import StoreError
from agentworld.manager import PluginManager
from agentworld.testing.store_contract import StoreContract

from agentworld_example_plugins import sqlite_store
from agentworld_example_plugins.sqlite_store import SQLiteStore


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def new_store(self, tmp_path: Path) -> Callable[[], SQLiteStore]:
        numbers = itertools.count()
        return lambda: SQLiteStore(f"sqlite://{tmp_path}/store-{next(numbers)}.db")

    @pytest.fixture
    def reopen(self) -> Callable[[SQLiteStore], SQLiteStore]:
        return lambda store: SQLiteStore(store.uri)

    @pytest.fixture
    def corrupt_blob(self) -> Callable[[SQLiteStore, str, bytes], None]:
        def corrupt(store: SQLiteStore, wasm_hash: str, data: bytes) -> None:
            # Behind the store's back, as a damaged file would be.
            with store._db:
                store._db.execute("UPDATE blobs SET data = ? WHERE hash = ?", (data, wasm_hash))
        return corrupt

    @pytest.fixture
    def open_broken_store(self, tmp_path: Path) -> Callable[[], SQLiteStore]:
        return lambda: SQLiteStore(f"sqlite://{tmp_path}/no/such/folder/store.db")


@pytest.mark.parametrize("uri", ["sqlite://host/store.db", "sqlite:relative.db",
                                 "file:///tmp/store.db", "sqlite:///tmp/store.db?mode=ro"])
def test_a_uri_it_cannot_open_is_refused(uri: str) -> None:
    with pytest.raises(StoreError, match="not a sqlite store URI"):
        SQLiteStore(uri)


def test_the_scheme_is_registered_for_the_plugin_manager(
    agentworld_plugins: PluginManager, tmp_path: Path
) -> None:
    agentworld_plugins.register(sqlite_store, name="example-sqlite-store")
    store = agentworld_plugins.open_store(f"sqlite://{tmp_path}/s.db")
    assert isinstance(store, SQLiteStore)
    assert agentworld_plugins.stores()["sqlite"].plugin == "example-sqlite-store"
