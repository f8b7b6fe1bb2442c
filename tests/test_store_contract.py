"""The module-store contract (SPEC §8), run against every built-in store: memory, file and s3."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentworld.errors import StoreError
from agentworld.manager import PluginManager
from agentworld.plugins import file_store, memory_store, s3_store
from agentworld.store import ModuleStore, copy_store
from s3_server import new_bucket, start_s3_server, use_test_credentials


def sha(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


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


KINDS = ["memory", "file", "s3"]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ModuleStore:
    return open_store(request.param, request, tmp_path / "store")


BLOBS = [b"\x00asm one", b"\x00asm two", b"", b"x" * 300_000]


def test_store_satisfies_the_protocol(store: ModuleStore) -> None:
    assert isinstance(store, ModuleStore)


def test_blob_round_trip(store: ModuleStore) -> None:
    assert store.list_blobs() == []
    for data in BLOBS:
        store.put_blob(sha(data), data)
    for data in BLOBS:
        assert store.has_blob(sha(data))
        assert store.get_blob(sha(data)) == data
    assert store.list_blobs() == sorted(sha(data) for data in BLOBS)
    absent = sha(b"never stored")
    assert not store.has_blob(absent)
    with pytest.raises(StoreError, match=absent):
        store.get_blob(absent)


def test_put_blob_under_the_wrong_hash_is_refused(store: ModuleStore) -> None:
    with pytest.raises(StoreError, match="fails verification"):
        store.put_blob(sha(b"other bytes"), b"these bytes")
    assert not store.has_blob(sha(b"other bytes"))
    assert store.list_blobs() == []


def test_put_blob_again_is_idempotent(store: ModuleStore) -> None:
    data = b"\x00asm same"
    for _ in range(3):
        store.put_blob(sha(data), data)
    assert store.list_blobs() == [sha(data)]
    assert store.get_blob(sha(data)) == data


def test_manifest_round_trip_and_sorted_listing(store: ModuleStore) -> None:
    entries = {
        ("zeta", "1.0.0"): b'{"module_id":"zeta"}',
        ("alpha", "2.0.0"): b'{"module_id":"alpha","v":2}',
        ("alpha", "1.0.0+build.7"): b'{"module_id":"alpha","v":1}',
        ("m.x_y-z", "0.1.0-rc.1"): b"{}",
    }
    for (module_id, version), document in entries.items():
        store.put_manifest(module_id, version, document)
    for (module_id, version), document in entries.items():
        assert store.get_manifest(module_id, version) == document
    assert store.list_manifests() == sorted(entries)
    with pytest.raises(StoreError, match=r"alpha@9\.9\.9"):
        store.get_manifest("alpha", "9.9.9")


def test_registry_round_trip(store: ModuleStore) -> None:
    assert store.read_registry() is None
    store.write_registry(b'{"modules":{}}')
    assert store.read_registry() == b'{"modules":{}}'
    store.write_registry(b'{"modules":{"a":["1.0.0"]}}')
    assert store.read_registry() == b'{"modules":{"a":["1.0.0"]}}'


BAD_KEYS = ["../x", "/abs", "a/b", "..", ".", "", "a\\b", ".hidden", "x\x00y", "a" * 200]


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_unsafe_manifest_keys_are_refused(store: ModuleStore, bad: str) -> None:
    with pytest.raises(StoreError, match="unsafe store key"):
        store.put_manifest(bad, "1.0.0", b"{}")
    with pytest.raises(StoreError, match="unsafe store key"):
        store.put_manifest("module", bad, b"{}")
    with pytest.raises(StoreError, match="unsafe store key"):
        store.get_manifest(bad, "1.0.0")
    with pytest.raises(StoreError, match="unsafe store key"):
        store.get_manifest("module", bad)
    assert store.list_manifests() == []


@pytest.mark.parametrize("bad", ["../x", "/abs", "", "..", sha(b"x").upper(), sha(b"x")[:-1]])
def test_unsafe_blob_hashes_are_refused(store: ModuleStore, bad: str) -> None:
    with pytest.raises(StoreError, match="not a sha256"):
        store.put_blob(bad, b"x")
    with pytest.raises(StoreError, match="not a sha256"):
        store.get_blob(bad)
    with pytest.raises(StoreError, match="not a sha256"):
        store.has_blob(bad)
    assert store.list_blobs() == []


def fill(store: ModuleStore) -> None:
    """Put two blobs, two manifests and a registry into `store`."""
    for data in BLOBS[:2]:
        store.put_blob(sha(data), data)
    store.put_manifest("alpha", "1.0.0", b'{"a":1}')
    store.put_manifest("beta", "2.0.0+b", b'{"b":2}')
    store.write_registry(b'{"registry":true}')


def contents(store: ModuleStore) -> tuple[object, ...]:
    """Everything a store holds, for comparing two stores."""
    blobs = {h: store.get_blob(h) for h in store.list_blobs()}
    manifests = {key: store.get_manifest(*key) for key in store.list_manifests()}
    return blobs, manifests, store.read_registry()


@pytest.mark.parametrize("target_kind", KINDS)
def test_copy_store_copies_blobs_manifests_and_registry(
    store: ModuleStore, target_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fill(store)
    target = open_store(target_kind, request, tmp_path / "target")
    copy_store(store, target)
    assert contents(target) == contents(store)
    copy_store(store, target)
    assert contents(target) == contents(store)
