"""The subscription index and the tick schedule: who is called for a label, who ticks when.

Routing must cost nothing for instances that do not subscribe to what is routed, and installing
N instances must cost O(N). So subscriptions are indexed by stage and kind pattern: exact kinds
in a map, `prefix.*` patterns in a map keyed by their prefix (a label is looked up under each of
its dotted prefixes) and `*` in a list per stage. Each bucket keeps its entries in install order,
and an instance enters or leaves the buckets of its own subscriptions only, when it is
installed, activated, deactivated, upgraded or rolled back.

Ticks are kept in a schedule keyed by the time they are next due, so a step finds its due
instances without looking at the others.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from agentworld.manifest import CompiledSubscription

STAR = "*"


class Entry:
    """One subscription of one routed instance, in a bucket of the index."""

    __slots__ = ("number", "order", "route", "sub")

    def __init__(self, number: int, index: int, route: Any, sub: CompiledSubscription) -> None:
        self.number = number
        # Install order first, then the manifest's subscription order.
        self.order = (number, index)
        self.route = route
        self.sub = sub


def _order(entry: Entry) -> tuple[int, int]:
    return entry.order


def label_prefixes(label: str) -> Iterator[str]:
    """Every `p.` such that a pattern `p.*` matches `label`."""
    dot = label.find(".")
    while dot != -1:
        yield label[: dot + 1]
        dot = label.find(".", dot + 1)


class SubscriptionIndex:
    """Active instances' subscriptions, by stage and kind pattern, in install order."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str, str], list[Entry]] = {}
        # instance id -> where its entries are
        self._keys: dict[str, list[tuple[tuple[str, str, str], Entry]]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, instance_id: str, number: int, route: Any,
            subscriptions: Iterable[CompiledSubscription]) -> None:
        """Enter the non-tick subscriptions of an (active) instance."""
        keys = []
        for index, sub in enumerate(subscriptions):
            if sub.stage == "tick":
                continue
            entry = Entry(number, index, route, sub)
            for pattern in dict.fromkeys(sub.kinds):  # a pattern listed twice counts once
                if pattern == STAR:
                    key = (sub.stage, STAR, "")
                elif pattern.endswith(".*"):
                    key = (sub.stage, "prefix", pattern[:-1])
                else:
                    key = (sub.stage, "exact", pattern)
                bucket = self._buckets.setdefault(key, [])
                bisect.insort(bucket, entry, key=_order)
                keys.append((key, entry))
        self._keys[instance_id] = keys

    def remove(self, instance_id: str) -> None:
        """Take an instance's subscriptions out of the index (no-op when absent)."""
        for key, entry in self._keys.pop(instance_id, ()):
            bucket = self._buckets[key]
            position = bisect.bisect_left(bucket, entry.order, key=_order)
            while bucket[position] is not entry:
                position += 1
            del bucket[position]
            if not bucket:
                del self._buckets[key]

    def matching(self, stage: str, label: str) -> list[Entry]:
        """Entries whose kind pattern matches `label` at `stage`, in install order."""
        buckets = self._buckets
        found = []
        bucket = buckets.get((stage, "exact", label))
        if bucket:
            found.append(bucket)
        bucket = buckets.get((stage, STAR, ""))
        if bucket:
            found.append(bucket)
        for prefix in label_prefixes(label):
            bucket = buckets.get((stage, "prefix", prefix))
            if bucket:
                found.append(bucket)
        if not found:
            return []
        if len(found) == 1:
            return found[0]
        return list(heapq.merge(*found, key=_order))


def next_due(anchor: int | None, every: int | None, start: int) -> int | None:
    """The first time at or after `start` of the series anchor, anchor + every, ..."""
    if anchor is None or every is None:
        return None
    if start <= anchor:
        return anchor
    return anchor + -(-(start - anchor) // every) * every


class TickSchedule:
    """When each ticking instance is next due; finding a step's due instances is O(due)."""

    def __init__(self) -> None:
        self._at: dict[str, int] = {}  # instance id -> the time it is next due
        self._due: dict[int, dict[str, int]] = {}  # time -> {instance id: install number}
        self._times: list[int] = []  # a heap of the keys of _due

    def set(self, instance_id: str, number: int, at: int | None) -> None:
        """Schedule `instance_id` at time `at` (None: not at all), replacing its old time."""
        old = self._at.pop(instance_id, None)
        if old is not None:
            bucket = self._due.get(old)
            if bucket is not None:
                bucket.pop(instance_id, None)
        if at is None:
            return
        self._at[instance_id] = at
        bucket = self._due.get(at)
        if bucket is None:
            bucket = self._due[at] = {}
            heapq.heappush(self._times, at)
        bucket[instance_id] = number

    def due(self, time: int, reschedule: Callable[[str, int], int | None]) -> list[str]:
        """Instances due at `time`, in install order.

        Entries for earlier times (steps that routed no ticks) are moved on: `reschedule(id,
        time)` gives the instance's first due time at or after `time`.
        """
        due: list[tuple[int, str]] = []
        while self._times and self._times[0] <= time:
            at = heapq.heappop(self._times)
            bucket = self._due.pop(at, {})
            for instance_id, number in bucket.items():
                del self._at[instance_id]
                when = at if at == time else reschedule(instance_id, time)
                if when == time:
                    due.append((number, instance_id))
                elif when is not None:
                    self.set(instance_id, number, when)
        due.sort()
        return [instance_id for _, instance_id in due]
