"""Pausing Python's cyclic garbage collector while the kernel builds many lasting objects.

Parsing a journal, replaying it and running a step create many objects that outlive the
operation (events, their data, the state's entries) and hold no reference cycles. While such
objects pile up, the generational collector keeps traversing them, and the older generations
are traversed again and again as the heap grows: in a 100 000-event replay that was about half
of the time. These operations pause the collector and restore it afterwards; reference
counting still frees everything as usual, and any cyclic garbage made meanwhile is collected
at the next collection after. The pause is process-wide (the collector has no other mode), so
other threads' collections wait for it too; nothing is lost by that.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause cyclic garbage collection for the block, if it is enabled (nesting is fine)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
