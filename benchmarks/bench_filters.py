"""Cost of `re` filter rules (agentworld.safe_regex): typical and adversarial, per evaluation.

The adversarial pattern keeps its automaton's state set changing at every character (so the
lazily built DFA never hits its cache) at the largest size a manifest may use, on the longest
subject a rule searches. The same pattern and text stall Python's backtracking `re` for
seconds; the figure here is the most one `re` rule can cost a routed event.
"""

from __future__ import annotations

import random
import time
from typing import Any

from agentworld.filters import MAX_RE_SUBJECT
from agentworld.safe_regex import SafeRegex

CASES = {
    "typical_us": (r"^agent-[0-9]+$", "agent-" + "7" * 20),
    "prefix_scan_us": ("gold", "x" * (MAX_RE_SUBJECT - 4) + "gold"),
    "adversarial_us": ("[ab]*a[ab]{56}c", None),
}


def measure(quick: bool = False) -> dict[str, Any]:
    """Best-of-rounds microseconds per `search`, for each case."""
    rng = random.Random(7)
    noise = "".join(rng.choice("ab") for _ in range(MAX_RE_SUBJECT))
    rounds = 2 if quick else 5
    results: dict[str, Any] = {"max_subject_chars": MAX_RE_SUBJECT}
    for name, (pattern, text) in CASES.items():
        subject = noise if text is None else text
        best = float("inf")
        for _ in range(rounds):
            compiled = SafeRegex(pattern)  # a fresh cache each round: the worst case
            started = time.perf_counter()
            compiled.search(subject)
            best = min(best, time.perf_counter() - started)
        results[name] = round(best * 1e6, 1)
    return results
