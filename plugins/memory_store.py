"""The `memory://` module store: process-local, the default for a world without a directory."""

from __future__ import annotations

import threading
from collections.abc import Callable

from agentworld.errors import StoreError
from agentworld.hookspecs import hookimpl
from agentworld.store import check_blob_size, check_hash, check_key_part, verify_blob


class MemoryStore:
    """Keeps blobs, manifests and the registry in dicts; verifies hashes like every store."""

    def __init__(self, uri: str = "memory://") -> None:
        self.uri = uri
        self._blobs: dict[str, bytes] = {}
        self._manifests: dict[tuple[str, str], bytes] = {}
        self._registry: bytes | None = None
        self._lock = threading.Lock()

    def put_blob(self, wasm_hash: str, data: bytes) -> None:
        """Store `data` under its verified SHA-256 (replacing bytes that no longer verify)."""
        data = verify_blob(bytes(data), check_hash(wasm_hash))
        check_blob_size(len(data), wasm_hash)
        with self._lock:
            self._blobs[wasm_hash] = data

    def get_blob(self, wasm_hash: str) -> bytes:
        """Return the verified bytes for `wasm_hash`."""
        with self._lock:
            data = self._blobs.get(check_hash(wasm_hash))
        if data is None:
            raise StoreError(f"{self.uri}: no blob {wasm_hash}")
        return verify_blob(data, wasm_hash)

    def has_blob(self, wasm_hash: str) -> bool:
        """True when bytes for `wasm_hash` are stored."""
        with self._lock:
            return check_hash(wasm_hash) in self._blobs

    def list_blobs(self) -> list[str]:
        """The hash of every stored blob, sorted."""
        with self._lock:
            return sorted(self._blobs)

    def put_manifest(self, module_id: str, version: str, manifest_json: bytes) -> None:
        """Store manifest `module_id@version`."""
        key = (check_key_part(module_id), check_key_part(version))
        with self._lock:
            self._manifests[key] = bytes(manifest_json)

    def get_manifest(self, module_id: str, version: str) -> bytes:
        """Return manifest `module_id@version`."""
        with self._lock:
            data = self._manifests.get((check_key_part(module_id), check_key_part(version)))
        if data is None:
            raise StoreError(f"{self.uri}: no manifest {module_id}@{version}")
        return data

    def list_manifests(self) -> list[tuple[str, str]]:
        """Every stored `(module_id, version)`, sorted."""
        with self._lock:
            return sorted(self._manifests)

    def read_registry(self) -> bytes | None:
        """The registry document, or None."""
        with self._lock:
            return self._registry

    def write_registry(self, document: bytes) -> None:
        """Replace the registry document."""
        with self._lock:
            self._registry = bytes(document)


@hookimpl
def agentworld_register_module_stores(register: Callable[..., None]) -> None:
    """Provide the `memory` scheme."""
    register("memory", MemoryStore, description="process-local in-memory store")
