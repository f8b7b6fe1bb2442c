"""A module store in one SQLite file (`sqlite:///abs/path/store.db`), from the standard library.

It keeps the store contract: artifact bytes by SHA-256, verified on every put and every get;
manifests by `module_id@version`; the registry document; keys checked before any query; every
database failure (a missing folder, a locked or damaged file) a `StoreError` naming the store.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

from agentworld import hookimpl
from agentworld.errors import StoreError
from agentworld.store import (
    ModuleStore,
    check_blob_size,
    check_hash,
    check_key_part,
    verify_blob,
)

SCHEME = "sqlite"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS blobs (hash TEXT PRIMARY KEY, data BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS manifests"
    " (module_id TEXT, version TEXT, doc BLOB NOT NULL, PRIMARY KEY (module_id, version))",
    "CREATE TABLE IF NOT EXISTS registry (id INTEGER PRIMARY KEY, doc BLOB NOT NULL)",
)


class SQLiteStore:
    """A module store in one SQLite database file."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        parts = urlsplit(uri)
        if parts.scheme != SCHEME or parts.netloc or not parts.path.startswith("/") \
                or parts.query or parts.fragment:
            raise StoreError(f"not a sqlite store URI (sqlite:///abs/path/store.db): {uri!r}")
        self.path = unquote(parts.path)
        # One connection shared by the threads of a world, one statement at a time.
        self._lock = threading.Lock()
        with self._sql("open"):
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            with self._db:
                for statement in _SCHEMA:
                    self._db.execute(statement)

    @contextmanager
    def _sql(self, what: str) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite store {self.uri}: {what}: {exc}") from exc

    def _one(self, what: str, sql: str, *args: object) -> bytes | None:
        with self._sql(what):
            row = self._db.execute(sql, args).fetchone()
        return None if row is None else bytes(row[0])

    def _write(self, what: str, sql: str, *args: object) -> None:
        with self._sql(what), self._db:
            self._db.execute(sql, args)

    def put_blob(self, wasm_hash: str, data: bytes) -> None:
        """Store artifact bytes under their SHA-256 (bytes of another hash are refused)."""
        check_blob_size(len(data), check_hash(wasm_hash), where=self.uri)
        data = verify_blob(bytes(data), wasm_hash)
        # REPLACE, not IGNORE: putting the genuine bytes again repairs a damaged row.
        self._write(f"put blob {wasm_hash}", "INSERT OR REPLACE INTO blobs VALUES (?, ?)",
                    wasm_hash, data)

    def get_blob(self, wasm_hash: str) -> bytes:
        """The bytes stored under `wasm_hash`, verified."""
        with self._sql(f"get blob {wasm_hash}"):
            row = self._db.execute("SELECT length(data) FROM blobs WHERE hash = ?",
                                   (check_hash(wasm_hash),)).fetchone()
        if row is None:
            raise StoreError(f"sqlite store {self.uri}: no blob {wasm_hash}")
        # A damaged file may hold a row of any size: refuse it before reading it into memory.
        check_blob_size(int(row[0]), wasm_hash, where=self.uri)
        data = self._one(f"get blob {wasm_hash}", "SELECT data FROM blobs WHERE hash = ?",
                         wasm_hash)
        if data is None:
            raise StoreError(f"sqlite store {self.uri}: no blob {wasm_hash}")
        return verify_blob(data, wasm_hash, where=self.uri)

    def has_blob(self, wasm_hash: str) -> bool:
        """Whether bytes are stored under `wasm_hash` (`get_blob` verifies them)."""
        return self._one(f"has blob {wasm_hash}", "SELECT 1 FROM blobs WHERE hash = ?",
                         check_hash(wasm_hash)) is not None

    def list_blobs(self) -> list[str]:
        """Every stored hash, sorted."""
        with self._sql("list blobs"):
            rows = self._db.execute("SELECT hash FROM blobs ORDER BY hash").fetchall()
        return [str(row[0]) for row in rows]

    def put_manifest(self, module_id: str, version: str, manifest_json: bytes) -> None:
        """Store the manifest of `module_id@version`."""
        key = (check_key_part(module_id), check_key_part(version))
        self._write(f"put manifest {module_id}@{version}",
                    "INSERT OR REPLACE INTO manifests VALUES (?, ?, ?)", *key, bytes(manifest_json))

    def get_manifest(self, module_id: str, version: str) -> bytes:
        """The manifest of `module_id@version`."""
        key = (check_key_part(module_id), check_key_part(version))
        doc = self._one(f"get manifest {module_id}@{version}",
                        "SELECT doc FROM manifests WHERE module_id = ? AND version = ?", *key)
        if doc is None:
            raise StoreError(f"sqlite store {self.uri}: no manifest {module_id}@{version}")
        return doc

    def list_manifests(self) -> list[tuple[str, str]]:
        """Every stored `(module_id, version)`, sorted."""
        with self._sql("list manifests"):
            rows = self._db.execute("SELECT module_id, version FROM manifests").fetchall()
        return sorted((str(module_id), str(version)) for module_id, version in rows)

    def read_registry(self) -> bytes | None:
        """The registry document (None until first written)."""
        return self._one("read registry", "SELECT doc FROM registry WHERE id = 1")

    def write_registry(self, document: bytes) -> None:
        """Replace the registry document."""
        self._write("write registry", "INSERT OR REPLACE INTO registry VALUES (1, ?)",
                    bytes(document))


def _open(uri: str) -> ModuleStore:
    store: ModuleStore = SQLiteStore(uri)
    return store


@hookimpl
def agentworld_register_module_stores(register: Callable[..., None]) -> None:
    """Provide the `sqlite` scheme."""
    register(SCHEME, _open, description="one SQLite file: sqlite:///abs/path/store.db")
