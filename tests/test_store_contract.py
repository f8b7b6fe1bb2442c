"""The module-store contract kit (`agentworld.testing.store_contract`), run against every
built-in store: memory, file, and s3 on a real moto server. Plus copies across kinds."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentworld import World
from agentworld.manager import PluginManager
from agentworld.plugins import file_store, memory_store, s3_store
from agentworld.store import ModuleStore, copy_store
from agentworld.testing import store_contract
from agentworld.testing.guests import guest_wasm
from agentworld.testing.store_contract import (
    CorruptBlob,
    NewStore,
    OpenBrokenStore,
    Reopen,
    StoreContract,
    contents,
    fill,
)
from docsamples import ROOT, samples
from s3_server import free_port, new_bucket, s3_client, start_s3_server, use_test_credentials
from worldkit import counter_value, deploy, install, manifest, world_with_agents


def store_manager() -> PluginManager:
    """A plugin manager holding exactly the three built-in store plugins."""
    manager = PluginManager(builtins=False, entrypoints=False)
    manager.register(memory_store, name="memory-store")
    manager.register(file_store, name="file-store")
    manager.register(s3_store, name="s3-store")
    return manager


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server, endpoint = start_s3_server()
    yield endpoint
    server.stop()


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def new_store(self) -> NewStore:
        return lambda: store_manager().open_store("memory://")

    @pytest.fixture
    def corrupt_blob(self) -> CorruptBlob:
        def corrupt(store: ModuleStore, wasm_hash: str, data: bytes) -> None:
            assert isinstance(store, memory_store.MemoryStore)
            store._blobs[wasm_hash] = data

        return corrupt


class TestFileStore(StoreContract):
    @pytest.fixture
    def new_store(self, tmp_path: Path) -> NewStore:
        counter = itertools.count()
        return lambda: store_manager().open_store(str(tmp_path / f"store-{next(counter)}"))

    @pytest.fixture
    def reopen(self) -> Reopen:
        return lambda store: store_manager().open_store(store.uri)

    @pytest.fixture
    def corrupt_blob(self) -> CorruptBlob:
        def corrupt(store: ModuleStore, wasm_hash: str, data: bytes) -> None:
            assert isinstance(store, file_store.FileStore)
            store.blob_path(wasm_hash).write_bytes(data)

        return corrupt

    @pytest.fixture
    def open_broken_store(self, tmp_path: Path) -> OpenBrokenStore:
        # The store's root is a regular file: nothing can be created under it.
        (tmp_path / "occupied").write_bytes(b"not a directory")
        return lambda: store_manager().open_store((tmp_path / "occupied").as_uri())


class TestS3Store(StoreContract):
    @pytest.fixture
    def new_store(self, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> NewStore:
        use_test_credentials(monkeypatch)
        bucket = new_bucket(s3_endpoint)
        counter = itertools.count()
        return lambda: store_manager().open_store(
            f"s3://{bucket}/worlds/w{next(counter)}?endpoint_url={s3_endpoint}")

    @pytest.fixture
    def reopen(self) -> Reopen:
        return lambda store: store_manager().open_store(store.uri)

    @pytest.fixture
    def corrupt_blob(self, s3_endpoint: str) -> CorruptBlob:
        def corrupt(store: ModuleStore, wasm_hash: str, data: bytes) -> None:
            assert isinstance(store, s3_store.S3Store)
            s3_client(s3_endpoint).put_object(Bucket=store.options.bucket,
                                              Key=store.blob_key(wasm_hash), Body=data)

        return corrupt

    @pytest.fixture
    def open_broken_store(self, monkeypatch: pytest.MonkeyPatch) -> OpenBrokenStore:
        use_test_credentials(monkeypatch)
        # Nothing listens there: every request is refused at once, one attempt each.
        endpoint = f"http://127.0.0.1:{free_port()}"
        return lambda: store_manager().open_store(
            f"s3://bucket-gone/w?endpoint_url={endpoint}&max_attempts=1&connect_timeout=1")


KINDS = ["memory", "file", "s3"]


def open_store(kind: str, request: pytest.FixtureRequest, directory: Path) -> ModuleStore:
    """Open a fresh, empty store of `kind` through the plugin manager."""
    if kind == "memory":
        uri = "memory://"
    elif kind == "file":
        uri = str(directory)
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        use_test_credentials(request.getfixturevalue("monkeypatch"))
        uri = f"s3://{new_bucket(endpoint)}/worlds/w1?endpoint_url={endpoint}"
    return store_manager().open_store(uri)


@pytest.mark.parametrize(("source_kind", "target_kind"), list(itertools.product(KINDS, KINDS)))
def test_copy_store_across_kinds(
    source_kind: str, target_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = open_store(source_kind, request, tmp_path / "source")
    fill(source)
    target = open_store(target_kind, request, tmp_path / "target")
    copy_store(source, target)
    assert contents(target) == contents(source)


def test_the_kit_has_a_case_for_every_store_method() -> None:
    """Guard: a method added to the protocol must get a contract case."""
    text = inspect.getsource(store_contract)
    for name in dir(ModuleStore):
        if not name.startswith("_") and callable(getattr(ModuleStore, name)):
            assert f".{name}(" in text, name


def test_a_third_party_store_from_an_installed_distribution_serves_a_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SQLite store of docs/stores.md (whose kit tests tests/test_docs.py runs), installed
    as a separate distribution, is found through its entry point and holds a world's modules."""
    (sample,) = [s for s in samples(ROOT / "docs" / "stores.md")
                 if s.file == "my_package/sqlite_store.py"]
    site = tmp_path / "site"
    (site / "my_package").mkdir(parents=True)
    (site / "my_package" / "sqlite_store.py").write_text(sample.code)
    info = site / "my_sqlite_store-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-sqlite-store\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[agentworld]\nsqlite-store = my_package.sqlite_store\n")
    monkeypatch.syspath_prepend(str(site))
    manager = PluginManager(environ={"AGENTWORLD_LOAD_PLUGINS": "sqlite-store"})
    assert manager.stores()["sqlite"].plugin == "sqlite-store"
    world = world_with_agents("ada", plugins=manager, store=f"sqlite://{tmp_path}/modules.db")
    install(world, "ada", manifest("m.counter", deploy(world, guest_wasm("counter"))))
    world.step_with_modules()
    world.save_to_dir(tmp_path / "world")
    loaded = World.load_from_dir(tmp_path / "world", plugins=manager)
    assert loaded.state_root() == world.state_root() and loaded.missing_artifacts() == []
    loaded.step_with_modules()
    assert counter_value(loaded, "m.counter#1") == counter_value(world, "m.counter#1") + 1
