"""The module-store contract kit: one set of cases every module store must pass.

Use it from a test module by subclassing `StoreContract` and overriding the `new_store`
fixture, which returns a function that opens a fresh, empty store each time it is called::

    import pytest
    from agentworld.testing.store_contract import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def new_store(self, tmp_path):
            paths = iter(range(1000))
            return lambda: MyStore(f"mine://{tmp_path}/{next(paths)}")

Three optional fixtures switch on more cases (each case is skipped while its fixture is None):

- `reopen(store)`: open the same store again from `store.uri`; what one handle wrote, a new
  handle reads (for stores that outlive their handle).
- `corrupt_blob(store, wasm_hash, data)`: overwrite a stored blob's bytes behind the store's
  back; the store must refuse to return them, and putting the genuine bytes again repairs it.
- `open_broken_store()`: open a store whose backend is unusable (a missing directory, a
  server that is not there); every method must fail with `StoreError`, never another exception.

Run it with pytest like any test module (`pytest tests/test_my_store.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from agentworld.errors import StoreError
from agentworld.manager import PluginManager
from agentworld.store import ModuleStore, copy_store

NewStore = Callable[[], ModuleStore]
Reopen = Callable[[ModuleStore], ModuleStore]
CorruptBlob = Callable[[ModuleStore, str, bytes], None]
OpenBrokenStore = Callable[[], ModuleStore]

BLOBS = (b"\x00asm one", b"\x00asm two", b"", b"x" * 300_000)
"""Blob contents the cases store: small, empty and larger than a typical buffer."""

UNSAFE_KEYS = ("../x", "/abs", "a/b", "..", ".", "", "a\\b", ".hidden", "x\x00y", "a" * 200)
"""Module ids and versions a store must refuse before any I/O."""

UNSAFE_HASHES = ("../x", "/abs", "", "..", "AB" * 32, "a" * 63, "g" * 64)
"""Blob names a store must refuse: not 64 lowercase hex digits."""


def sha(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def fill(store: ModuleStore) -> None:
    """Put two blobs, two manifests and a registry document into `store`."""
    for data in BLOBS[:2]:
        store.put_blob(sha(data), data)
    store.put_manifest("alpha", "1.0.0", b'{"a":1}')
    store.put_manifest("beta", "2.0.0+b", b'{"b":2}')
    store.write_registry(b'{"registry":true}')


def contents(store: ModuleStore) -> tuple[Any, ...]:
    """Everything a store holds (blobs, manifests, registry), for comparing stores."""
    blobs = {h: store.get_blob(h) for h in store.list_blobs()}
    manifests = {key: store.get_manifest(*key) for key in store.list_manifests()}
    return blobs, manifests, store.read_registry()


def _calls(store: ModuleStore) -> list[tuple[str, Callable[[], object]]]:
    """Every contract method with valid arguments, writes first."""
    data = BLOBS[0]
    return [
        ("put_blob", lambda: store.put_blob(sha(data), data)),
        ("put_manifest", lambda: store.put_manifest("alpha", "1.0.0", b"{}")),
        ("write_registry", lambda: store.write_registry(b"{}")),
        ("get_blob", lambda: store.get_blob(sha(data))),
        ("has_blob", lambda: store.has_blob(sha(data))),
        ("list_blobs", store.list_blobs),
        ("get_manifest", lambda: store.get_manifest("alpha", "1.0.0")),
        ("list_manifests", store.list_manifests),
        ("read_registry", store.read_registry),
    ]


class StoreContract:
    """The contract cases; subclass and override `new_store` (and the optional fixtures)."""

    @pytest.fixture
    def new_store(self) -> NewStore:
        """Override: a function opening a fresh, empty store of the kind under test."""
        raise NotImplementedError("override the new_store fixture in your StoreContract subclass")

    @pytest.fixture
    def reopen(self) -> Reopen | None:
        """Override to open `store.uri` again (None: the store does not outlive its handle)."""
        return None

    @pytest.fixture
    def corrupt_blob(self) -> CorruptBlob | None:
        """Override to overwrite a stored blob behind the store's back (None: skip)."""
        return None

    @pytest.fixture
    def open_broken_store(self) -> OpenBrokenStore | None:
        """Override to open a store whose backend is unusable (None: skip)."""
        return None

    @pytest.fixture
    def store(self, new_store: NewStore) -> ModuleStore:
        """A fresh, empty store."""
        return new_store()

    # -- the protocol ---------------------------------------------------------------------------

    def test_satisfies_the_protocol(self, store: ModuleStore) -> None:
        """Every method of `ModuleStore` is there, and `uri` is text."""
        assert isinstance(store, ModuleStore)
        assert isinstance(store.uri, str) and store.uri

    def test_a_fresh_store_is_empty(self, store: ModuleStore) -> None:
        """Nothing is listed and the registry was never written."""
        assert (store.list_blobs(), store.list_manifests(), store.read_registry()) == ([], [],
                                                                                       None)

    # -- blobs ----------------------------------------------------------------------------------

    def test_blob_round_trip(self, store: ModuleStore) -> None:
        """Stored bytes come back exactly; hashes are listed sorted; absent ones are errors."""
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

    def test_put_blob_under_the_wrong_hash_is_refused(self, store: ModuleStore) -> None:
        """Bytes that do not hash to their name are never stored."""
        with pytest.raises(StoreError):
            store.put_blob(sha(b"other bytes"), b"these bytes")
        assert not store.has_blob(sha(b"other bytes"))
        assert store.list_blobs() == []

    def test_put_blob_again_is_idempotent(self, store: ModuleStore) -> None:
        """Storing the same bytes again changes nothing."""
        data = b"\x00asm same"
        for _ in range(3):
            store.put_blob(sha(data), data)
        assert store.list_blobs() == [sha(data)]
        assert store.get_blob(sha(data)) == data

    @pytest.mark.parametrize("bad", UNSAFE_HASHES)
    def test_unsafe_blob_hashes_are_refused(self, store: ModuleStore, bad: str) -> None:
        """A name that is not 64 lowercase hex digits is refused by every blob method."""
        with pytest.raises(StoreError):
            store.put_blob(bad, b"x")
        with pytest.raises(StoreError):
            store.get_blob(bad)
        with pytest.raises(StoreError):
            store.has_blob(bad)
        assert store.list_blobs() == []

    def test_a_corrupted_blob_is_refused_and_repaired_by_a_put(
        self, store: ModuleStore, corrupt_blob: CorruptBlob | None
    ) -> None:
        """Bytes changed behind the store's back are never returned; the genuine bytes, put
        again, replace them."""
        if corrupt_blob is None:
            pytest.skip("no corrupt_blob fixture for this store")
        data = BLOBS[0]
        store.put_blob(sha(data), data)
        corrupt_blob(store, sha(data), b"tampered")
        with pytest.raises(StoreError, match=sha(data)):
            store.get_blob(sha(data))
        store.put_blob(sha(data), data)
        assert store.get_blob(sha(data)) == data

    # -- manifests and the registry -------------------------------------------------------------

    def test_manifest_round_trip_and_sorted_listing(self, store: ModuleStore) -> None:
        """Manifests come back exactly, listed sorted; an absent one names its key."""
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

    @pytest.mark.parametrize("bad", UNSAFE_KEYS)
    def test_unsafe_manifest_keys_are_refused(self, store: ModuleStore, bad: str) -> None:
        """A module id or version that could leave the store's root is refused."""
        for call in (lambda: store.put_manifest(bad, "1.0.0", b"{}"),
                     lambda: store.put_manifest("module", bad, b"{}"),
                     lambda: store.get_manifest(bad, "1.0.0"),
                     lambda: store.get_manifest("module", bad)):
            with pytest.raises(StoreError, match="unsafe store key"):
                call()
        assert store.list_manifests() == []

    def test_registry_round_trip(self, store: ModuleStore) -> None:
        """The registry document is None until written, then the last document written."""
        assert store.read_registry() is None
        store.write_registry(b'{"modules":{}}')
        assert store.read_registry() == b'{"modules":{}}'
        store.write_registry(b'{"modules":{"a":["1.0.0"]}}')
        assert store.read_registry() == b'{"modules":{"a":["1.0.0"]}}'

    # -- whole stores ---------------------------------------------------------------------------

    def test_copy_store_to_and_from_another_store(
        self, store: ModuleStore, new_store: NewStore
    ) -> None:
        """`copy_store` carries everything to a fresh store of this kind and to and from a
        memory store, and copying again changes nothing."""
        fill(store)
        memory = PluginManager(entrypoints=False, environ={}).open_store("memory://")
        for source, target in ((store, new_store()), (store, memory),
                               (memory, new_store())):
            copy_store(source, target)
            assert contents(target) == contents(store)
            copy_store(source, target)
            assert contents(target) == contents(store)

    def test_a_reopened_store_sees_what_was_written(
        self, store: ModuleStore, reopen: Reopen | None
    ) -> None:
        """Another handle on the same URI reads the same blobs, manifests and registry."""
        if reopen is None:
            pytest.skip("no reopen fixture for this store")
        fill(store)
        assert contents(reopen(store)) == contents(store)

    def test_an_unusable_backend_fails_with_store_errors_only(
        self, open_broken_store: OpenBrokenStore | None
    ) -> None:
        """Opening may refuse with `StoreError`; otherwise every write fails with
        `StoreError`, and every read either answers or fails with `StoreError`."""
        if open_broken_store is None:
            pytest.skip("no open_broken_store fixture for this store")
        try:
            broken = open_broken_store()
        except StoreError:
            return
        for name, call in _calls(broken):
            try:
                call()
            except StoreError:
                continue
            except Exception as exc:
                pytest.fail(f"{name} raised {type(exc).__name__}, not StoreError: {exc}")
            assert not name.startswith(("put_", "write_")), f"{name} succeeded on a broken store"
