"""The `file://` module store: blobs, manifests and the registry as files under one directory."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from agentworld.durable import fsync_dir, replace_atomic
from agentworld.errors import StoreError
from agentworld.hookspecs import hookimpl
from agentworld.store import (
    MAX_BLOB_BYTES,
    check_blob_size,
    check_hash,
    check_key_part,
    is_hash,
    is_key_part,
    verify_blob,
)

_MANIFEST_SUFFIX = ".json"


def root_from_uri(uri: str) -> Path:
    """The absolute directory a `file:///abs/path` URI or a bare path names."""
    if "://" not in uri:
        if not uri:
            raise StoreError("file store: empty path")
        return Path(uri).expanduser().absolute()
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise StoreError(f"not a file store URI: {uri!r}")
    if parts.netloc not in {"", "localhost"}:
        raise StoreError(f"file store URI {uri!r}: remote host {parts.netloc!r} is not supported")
    if parts.query or parts.fragment:
        raise StoreError(f"file store URI {uri!r}: takes no query or fragment")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise StoreError(f"file store URI {uri!r}: path must be absolute (file:///abs/path)")
    return Path(path)


def _ensure_dir(directory: Path) -> None:
    missing = []
    probe = directory
    while not probe.is_dir():
        missing.append(probe)
        probe = probe.parent
    for created in reversed(missing):
        # exist_ok: a concurrent writer may create the same directory first.
        created.mkdir(exist_ok=True)
        fsync_dir(created.parent)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the whole new one, never a part."""
    _ensure_dir(path.parent)
    # The temp name starts with "." and so can never pass `check_key_part`/`is_hash`: a temp file
    # left behind by a crash is never listed or read as a blob, manifest or registry.
    replace_atomic(path, data)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


class FileStore:
    """A directory of `blobs/sha256/<hex>`, `manifests/<id>/<version>.json`, `registry.json`."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.root = root_from_uri(uri)

    @contextmanager
    def _io(self, path: Path) -> Iterator[None]:
        # OSError text alone ("Permission denied") does not say which store or file failed.
        try:
            yield
        except OSError as exc:
            raise StoreError(f"file store {self.root}: {path}: {exc.strerror or exc}") from exc

    def blob_path(self, wasm_hash: str) -> Path:
        """Where the bytes of `wasm_hash` live."""
        return self.root / "blobs" / "sha256" / check_hash(wasm_hash)

    def manifest_path(self, module_id: str, version: str) -> Path:
        """Where manifest `module_id@version` lives."""
        return (
            self.root
            / "manifests"
            / check_key_part(module_id)
            / (check_key_part(version) + _MANIFEST_SUFFIX)
        )

    @property
    def registry_path(self) -> Path:
        """Where the registry document lives."""
        return self.root / "registry.json"

    def _check_inside(self, wasm_hash: str, path: Path) -> None:
        """Raise unless the directory holding `path` is inside the store (no linked-in dirs)."""
        real_root = os.path.realpath(self.root)
        if os.path.commonpath([real_root, os.path.realpath(path.parent)]) != real_root:
            raise StoreError(f"file store {self.root}: blob {wasm_hash} at {path} leads outside "
                             f"the store")

    def _read_blob(self, wasm_hash: str, path: Path) -> bytes | None:
        """A blob file's bytes (None if absent), refusing what is not the store's own file.

        A blob must be a regular file inside the store, read without following a link, and no
        larger than `MAX_BLOB_BYTES`, checked before any byte is read: a blob replaced by a link
        to a device or a huge file is an error naming the hash, never a hang or `MemoryError`.
        """
        self._check_inside(wasm_hash, path)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(f"file store {self.root}: blob {wasm_hash} at {path} is a "
                                 f"symbolic link; blobs must be the store's own files") from None
            raise
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise StoreError(f"file store {self.root}: blob {wasm_hash} at {path} is not a "
                                 f"regular file")
            check_blob_size(info.st_size, wasm_hash, str(path))
            data = handle.read(MAX_BLOB_BYTES + 1)
        check_blob_size(len(data), wasm_hash, str(path))
        return data

    def put_blob(self, wasm_hash: str, data: bytes) -> None:
        """Store `data` under its verified SHA-256; existing verified bytes are left untouched."""
        path = self.blob_path(wasm_hash)
        data = verify_blob(bytes(data), wasm_hash)
        check_blob_size(len(data), wasm_hash)
        with self._io(path):
            self._check_inside(wasm_hash, path)
            try:
                existing = self._read_blob(wasm_hash, path)
            except StoreError:
                existing = None  # a link or an oversized file in its place: replaced below
            if existing is not None and existing == data:
                return
            # Absent, or corrupted behind our back: (re)write the verified bytes. The rename
            # replaces a link itself, never what it points to.
            _atomic_write(path, data)

    def get_blob(self, wasm_hash: str) -> bytes:
        """Return the verified bytes for `wasm_hash`."""
        path = self.blob_path(wasm_hash)
        with self._io(path):
            data = self._read_blob(wasm_hash, path)
        if data is None:
            raise StoreError(f"file store {self.root}: no blob {wasm_hash}")
        return verify_blob(data, wasm_hash, where=str(path))

    def has_blob(self, wasm_hash: str) -> bool:
        """True when an entry for `wasm_hash` exists (`get_blob` says whether it is usable)."""
        path = self.blob_path(wasm_hash)
        with self._io(path):
            try:
                return not stat.S_ISDIR(os.lstat(path).st_mode)
            except FileNotFoundError:
                return False

    def list_blobs(self) -> list[str]:
        """The hash of every stored blob, sorted."""
        directory = self.root / "blobs" / "sha256"
        with self._io(directory):
            if not directory.is_dir():
                return []
            return sorted(entry.name for entry in directory.iterdir() if is_hash(entry.name))

    def put_manifest(self, module_id: str, version: str, manifest_json: bytes) -> None:
        """Store manifest `module_id@version`."""
        path = self.manifest_path(module_id, version)
        with self._io(path):
            _atomic_write(path, bytes(manifest_json))

    def get_manifest(self, module_id: str, version: str) -> bytes:
        """Return manifest `module_id@version`."""
        path = self.manifest_path(module_id, version)
        with self._io(path):
            data = _read(path)
        if data is None:
            raise StoreError(f"file store {self.root}: no manifest {module_id}@{version}")
        return data

    def list_manifests(self) -> list[tuple[str, str]]:
        """Every stored `(module_id, version)`, sorted."""
        directory = self.root / "manifests"
        found: list[tuple[str, str]] = []
        with self._io(directory):
            if not directory.is_dir():
                return []
            for module_dir in directory.iterdir():
                if not (is_key_part(module_dir.name) and module_dir.is_dir()):
                    continue
                for entry in module_dir.iterdir():
                    version = entry.name.removesuffix(_MANIFEST_SUFFIX)
                    if entry.name.endswith(_MANIFEST_SUFFIX) and is_key_part(version):
                        found.append((module_dir.name, version))
        return sorted(found)

    def read_registry(self) -> bytes | None:
        """The registry document, or None if never written."""
        with self._io(self.registry_path):
            return _read(self.registry_path)

    def write_registry(self, document: bytes) -> None:
        """Replace the registry document atomically."""
        with self._io(self.registry_path):
            _atomic_write(self.registry_path, bytes(document))


@hookimpl
def agentworld_register_module_stores(register: Callable[..., None]) -> None:
    """Provide the `file` scheme (also used for bare paths)."""
    register("file", FileStore, description="a directory: file:///abs/path or a bare path")
