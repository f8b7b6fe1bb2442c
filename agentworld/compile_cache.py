"""The on-disk compile cache: entries authenticated with HMAC-SHA256 under a key kept elsewhere.

A cache entry holds code an engine will run (an instrumented module, or an engine's native code,
which engines load without checking it). Anyone who can write the cache directory could put
other code under an artifact's name, so every entry carries a MAC over its name and bytes, keyed
by a secret that does not live in the cache directory. An entry whose MAC does not verify, or
that cannot be read as an entry, is deleted and rebuilt, never loaded.

The key is a 32-byte file, created with mode 0600 on first use: `ExecutorConfig.cache_key_file`,
else `$AGENTWORLD_CACHE_KEY_FILE`, else `$XDG_CONFIG_HOME/agentworld/compile-cache.key`
(`~/.config/agentworld/compile-cache.key` without XDG_CONFIG_HOME). It may not lie inside the
cache directory. Machines or users that share a cache directory must share the key file;
deleting the key only costs recompiling.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from agentworld.durable import replace_atomic
from agentworld.errors import ExecutorConfigError

KEY_ENV = "AGENTWORLD_CACHE_KEY_FILE"
KEY_BYTES = 32
MAX_ENTRY_BYTES = 1 << 30
"""Entries are read whole; a file larger than this is discarded unread."""

_MAGIC = b"agentworld-cache\x03"
_HEADER = len(_MAGIC) + 32


def default_key_file() -> Path:
    """Where the cache key lives when neither the config nor the environment says."""
    override = os.environ.get(KEY_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "agentworld" / "compile-cache.key"


def load_key(path: Path, cache_dir: Path) -> bytes:
    """The cache key in `path`, created (0600) if missing; `ExecutorConfigError` if unusable."""
    path = path.expanduser()
    resolved, cache = path.resolve(), cache_dir.resolve()
    if resolved == cache or cache in resolved.parents:
        raise ExecutorConfigError(
            f"the compile-cache key file {path} lies inside the cache directory {cache_dir}; "
            "it must be kept elsewhere"
        )
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)  # another process created it first
    except OSError as exc:
        raise ExecutorConfigError(f"cannot create the compile-cache key file {path}: "
                                  f"{exc.strerror}") from None
    key = secrets.token_bytes(KEY_BYTES)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())
    return key


def _read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ExecutorConfigError(f"cannot read the compile-cache key file {path}: "
                                  f"{exc.strerror}") from None
    if len(key) != KEY_BYTES:
        raise ExecutorConfigError(f"the compile-cache key file {path} must hold exactly "
                                  f"{KEY_BYTES} bytes (delete it to make a new key)")
    return key


class DiskCache:
    """Authenticated entries in one directory; `discarded` counts entries thrown away."""

    def __init__(self, directory: Path, key: bytes) -> None:
        self.directory = directory
        self._key = key
        self.discarded = 0

    def _mac(self, context: bytes, payload: bytes | memoryview) -> bytes:
        mac = hmac.new(self._key, _MAGIC, hashlib.sha256)
        mac.update(len(context).to_bytes(8, "little"))
        mac.update(context)
        mac.update(payload)
        return mac.digest()

    def read(self, name: str, context: bytes) -> bytes | None:
        """The payload stored as `name` for `context`, or None (a bad entry is deleted)."""
        path = self.directory / name
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            if path.is_symlink():
                self._discard(path)
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_ENTRY_BYTES:
                blob = b""
            else:
                with os.fdopen(os.dup(fd), "rb") as handle:
                    blob = handle.read(MAX_ENTRY_BYTES + 1)
        except OSError:
            blob = b""
        finally:
            os.close(fd)
        payload = memoryview(blob)[_HEADER:]
        if (len(blob) >= _HEADER and blob.startswith(_MAGIC)
                and hmac.compare_digest(blob[len(_MAGIC):_HEADER], self._mac(context, payload))):
            return bytes(payload)
        self._discard(path)
        return None

    def _discard(self, path: Path) -> None:
        self.discarded += 1
        try:
            path.unlink()
        except OSError:
            pass  # a later write replaces it

    def write(self, name: str, context: bytes, payload: bytes) -> bool:
        """Store `payload` as `name` for `context`; False if the directory is not writable."""
        path = self.directory / name
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            replace_atomic(path, _MAGIC + self._mac(context, payload) + payload)
        except OSError:
            return False  # the disk cache is an optimisation; an unwritable one costs time
        return True
