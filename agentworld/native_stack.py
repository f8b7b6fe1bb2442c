"""Running engine calls on a thread with enough native stack, whatever thread asks.

An in-process engine lets wasm use up to its configured stack limit on the calling thread's
native stack. A thread created with a small stack (say 512 KiB) would overflow its guard page
before the engine's own limit trips, and the process would die. `StackGuard.run` calls directly
when the calling thread's stack is large enough, and otherwise hands the call to a worker thread
created with a stack that is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

HEADROOM = 1024 * 1024
"""Stack kept for the interpreter and the engine's own frames beside the wasm stack limit."""


def _load_libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is not None and hasattr(libc, "pthread_self"):
        # pthread_t is an unsigned long (Linux) or a pointer (macOS), never a C int.
        libc.pthread_self.restype = ctypes.c_void_p
    return libc


_LIBC = _load_libc()


def current_stack_bytes() -> int | None:
    """The calling thread's native stack size, or None when the platform does not say."""
    libc = _LIBC
    if libc is None:
        return None
    try:
        if sys.platform.startswith("linux"):
            attr = ctypes.create_string_buffer(256)  # larger than any pthread_attr_t
            self_id = ctypes.c_void_p(libc.pthread_self())
            if libc.pthread_getattr_np(self_id, attr) != 0:
                return None
            try:
                address, size = ctypes.c_void_p(), ctypes.c_size_t()
                if libc.pthread_attr_getstack(attr, ctypes.byref(address),
                                              ctypes.byref(size)) != 0:
                    return None
                return int(size.value)
            finally:
                libc.pthread_attr_destroy(attr)
        if sys.platform == "darwin":
            libc.pthread_get_stacksize_np.restype = ctypes.c_size_t
            return int(libc.pthread_get_stacksize_np(ctypes.c_void_p(libc.pthread_self())))
    except AttributeError:
        return None
    return None


class StackGuard:
    """Runs functions on a thread with at least `needed` bytes of stack plus `HEADROOM`."""

    def __init__(self, needed: int) -> None:
        self.required = needed + HEADROOM
        self._worker: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], queue.SimpleQueue[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        # Per-thread verdicts: thread-local data dies with its thread, so a new thread that
        # reuses an old one's id is measured afresh.
        self._verdicts = threading.local()

    def enough_here(self) -> bool:
        """True when the calling thread's stack is large enough (remembered per thread)."""
        verdict: bool | None = getattr(self._verdicts, "enough", None)
        if verdict is None:
            measured = current_stack_bytes()
            # Unknown platform: trust the thread (its default stack is the OS's usual size).
            verdict = self._verdicts.enough = measured is None or measured >= self.required
        return verdict

    def run(self, function: Callable[[], T]) -> T:
        """`function()` on this thread if its stack suffices, else on the worker; raises what
        `function` raises."""
        if self.enough_here():
            return function()
        reply: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._jobs.put((function, reply))
        self._ensure_worker()
        ok, value = reply.get()
        if ok:
            result: T = value
            return result
        raise value

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                return
            previous = threading.stack_size()
            # Thread stack sizes are process-wide settings: set one for this thread only.
            threading.stack_size(max(self.required * 2, 4 * 1024 * 1024))
            try:
                worker = threading.Thread(target=self._serve, name="agentworld-engine-stack",
                                          daemon=True)
                worker.start()
            finally:
                threading.stack_size(previous)
            self._worker = worker

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            function, reply = job
            try:
                reply.put((True, function()))
            except BaseException as exc:  # handed back to the caller, which raises it
                reply.put((False, exc))

    def close(self) -> None:
        """Stop the worker thread (if one was started)."""
        with self._lock:
            if self._worker is not None:
                self._jobs.put(None)
                if self._worker is not threading.current_thread():
                    self._worker.join()
                self._worker = None
