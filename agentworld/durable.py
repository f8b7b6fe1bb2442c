"""Durable file writes shared by persistence, the file store and the compile cache, and the
exclusive directory locks of saved worlds and live directories.

A write is durable once its bytes are fsynced and, for a new or renamed entry, its directory is
fsynced too. `replace_atomic` gives readers the old file or the whole new one, never a part.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from contextlib import suppress
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make the entries of `directory` (new files, renames) durable."""
    # Windows cannot open a directory as a file; NTFS journals the rename itself.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes) -> None:
    """Create `path`, which must not exist, holding `data`, fsynced."""
    # 0o666 and O_EXCL rather than mkstemp: the file gets the umask's permissions (mkstemp's
    # 0o600 would hide a shared store from its other readers) and never clobbers another file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def replace_atomic(path: Path, data: bytes) -> None:
    """Replace (or create) `path` with `data` atomically and durably.

    The temporary file sits beside `path` and its name starts with "." so that a leftover from
    a crash is never mistaken for real content. Concurrent writers of identical bytes are
    harmless: each renames a complete file and the last rename wins.
    """
    temp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        write_new(temp, data)
        os.replace(temp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_dir(path.parent)


class LockHeld(Exception):
    """Another open file holds the lock; `holder` is its process id as it wrote it, or ""."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def take_lock(path: Path) -> int:
    """Open `path` (never through a link) and take its exclusive lock at once; return the open
    file, whose closing releases the lock. Raises `LockHeld` while another holds it, and
    `OSError` when the file cannot be opened or the file system has no locks."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        # flock, not fcntl: the lock belongs to this open file, so two holders in one process
        # (threads, two objects) exclude each other too. The kernel drops it when the holder
        # dies, even by SIGKILL, so a crash never leaves it held.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        raise LockHeld(holder if holder.isdigit() else "") from None
    except BaseException:
        os.close(fd)
        raise
    with suppress(OSError):  # the holder's pid only makes a refusal more helpful
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
