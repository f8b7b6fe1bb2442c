"""The module-store contract: artifact bytes by SHA-256, manifests, the registry."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from agentworld.canonical import sha256_hex
from agentworld.errors import StoreError

# No store reads or writes a blob larger than this: a size is checked before any byte is read,
# so a blob file swapped for a huge (or sparse) one is refused, never loaded into memory.
MAX_BLOB_BYTES = 128 * 1024 * 1024

_HEX64 = re.compile(r"[0-9a-f]{64}")
# One path segment: it starts with an alphanumeric, so "", ".", "..", ".hidden" and temp-file
# names never qualify, and it has no separator, so it cannot escape a store's root. `+` is allowed
# because versions carry semver build metadata ("1.0.0+build.5").
_KEY_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def check_hash(wasm_hash: str) -> str:
    """Return `wasm_hash` if it is a lowercase SHA-256 hex digest, else raise `StoreError`."""
    if not isinstance(wasm_hash, str) or not _HEX64.fullmatch(wasm_hash):
        raise StoreError(f"not a sha256 hex digest: {wasm_hash!r}")
    return wasm_hash


def check_key_part(part: str) -> str:
    """Return `part` if it is safe as one path segment (no traversal, no separators)."""
    if not isinstance(part, str) or not _KEY_PART.fullmatch(part) or part in {".", ".."}:
        raise StoreError(f"unsafe store key segment: {part!r}")
    return part


def is_hash(name: str) -> bool:
    """True when `name` is a lowercase SHA-256 hex digest (used to filter blob listings)."""
    return _HEX64.fullmatch(name) is not None


def is_key_part(name: str) -> bool:
    """True when `name` passes `check_key_part` (used to filter listings, which never raise)."""
    return _KEY_PART.fullmatch(name) is not None


def check_blob_size(size: int, wasm_hash: str, where: str = "") -> None:
    """Raise `StoreError` when a blob of `size` bytes is larger than any store keeps."""
    if size > MAX_BLOB_BYTES:
        at = f" at {where}" if where else ""
        raise StoreError(f"blob {wasm_hash}{at} is {size} bytes, more than a store keeps "
                         f"({MAX_BLOB_BYTES})")


def verify_blob(data: bytes, wasm_hash: str, where: str = "") -> bytes:
    """Return `data` if its SHA-256 is `wasm_hash`, else raise `StoreError` (naming `where`)."""
    actual = sha256_hex(data)
    if actual != wasm_hash:
        at = f" at {where}" if where else ""
        raise StoreError(f"blob {wasm_hash}{at} fails verification: its bytes hash to {actual}")
    return data


@runtime_checkable
class ModuleStore(Protocol):
    """Where artifact bytes, manifests and the registry document live."""

    uri: str

    def put_blob(self, wasm_hash: str, data: bytes) -> None:
        """Store `data` under its SHA-256 (verified); storing existing bytes again is harmless."""
        ...

    def get_blob(self, wasm_hash: str) -> bytes:
        """Return the verified bytes for `wasm_hash`; raise `StoreError` if absent or corrupt."""
        ...

    def has_blob(self, wasm_hash: str) -> bool:
        """True when bytes for `wasm_hash` are stored."""
        ...

    def list_blobs(self) -> list[str]:
        """The hash of every stored blob, sorted."""
        ...

    def put_manifest(self, module_id: str, version: str, manifest_json: bytes) -> None:
        """Store the canonical JSON of manifest `module_id@version`."""
        ...

    def get_manifest(self, module_id: str, version: str) -> bytes:
        """Return the stored manifest JSON; raise `StoreError` if absent."""
        ...

    def list_manifests(self) -> list[tuple[str, str]]:
        """Every stored `(module_id, version)`, sorted."""
        ...

    def read_registry(self) -> bytes | None:
        """The registry document, or None if never written."""
        ...

    def write_registry(self, document: bytes) -> None:
        """Replace the registry document atomically."""
        ...


StoreFactory = Callable[[str], ModuleStore]


def copy_store(source: ModuleStore, target: ModuleStore) -> None:
    """Copy every blob, manifest and the registry document from `source` into `target`."""
    # Blobs, then manifests, then the registry: a reader of `target` that trusts the registry
    # never meets a manifest or artifact that is not there yet, even if the copy is interrupted.
    # Every blob is read and put again (not skipped by `has_blob`) so `get_blob` verifies the
    # source bytes and `put_blob` verifies, or repairs, the target's copy.
    for wasm_hash in source.list_blobs():
        target.put_blob(wasm_hash, source.get_blob(wasm_hash))
    for module_id, version in source.list_manifests():
        target.put_manifest(module_id, version, source.get_manifest(module_id, version))
    document = source.read_registry()
    if document is not None:
        target.write_registry(document)


class OverlayStore:
    """A store that reads through to `base` and keeps every write in memory.

    A rehearsal (a command's `--dry-run`) runs a saved world against its real store without
    changing it: artifacts deployed during the rehearsal live only in this overlay.
    """

    def __init__(self, base: ModuleStore) -> None:
        self.base = base
        self.uri = base.uri
        self._blobs: dict[str, bytes] = {}
        self._manifests: dict[tuple[str, str], bytes] = {}
        self._registry: bytes | None = None

    def put_blob(self, wasm_hash: str, data: bytes) -> None:
        """Keep `data` (verified against `wasm_hash`) in memory."""
        self._blobs[check_hash(wasm_hash)] = verify_blob(bytes(data), wasm_hash)

    def get_blob(self, wasm_hash: str) -> bytes:
        """The overlay's bytes for `wasm_hash`, else the base store's."""
        if check_hash(wasm_hash) in self._blobs:
            return self._blobs[wasm_hash]
        return self.base.get_blob(wasm_hash)

    def has_blob(self, wasm_hash: str) -> bool:
        """True when the overlay or the base store holds `wasm_hash`."""
        return check_hash(wasm_hash) in self._blobs or self.base.has_blob(wasm_hash)

    def list_blobs(self) -> list[str]:
        """Every hash in the overlay or the base store, sorted."""
        return sorted(set(self._blobs) | set(self.base.list_blobs()))

    def put_manifest(self, module_id: str, version: str, manifest_json: bytes) -> None:
        """Keep manifest `module_id@version` in memory."""
        self._manifests[(check_key_part(module_id), check_key_part(version))] = bytes(
            manifest_json)

    def get_manifest(self, module_id: str, version: str) -> bytes:
        """The overlay's manifest `module_id@version`, else the base store's."""
        key = (check_key_part(module_id), check_key_part(version))
        if key in self._manifests:
            return self._manifests[key]
        return self.base.get_manifest(module_id, version)

    def list_manifests(self) -> list[tuple[str, str]]:
        """Every `(module_id, version)` in the overlay or the base store, sorted."""
        return sorted(set(self._manifests) | set(self.base.list_manifests()))

    def read_registry(self) -> bytes | None:
        """The registry written to the overlay, else the base store's."""
        return self._registry if self._registry is not None else self.base.read_registry()

    def write_registry(self, document: bytes) -> None:
        """Keep the registry document in memory."""
        self._registry = bytes(document)
