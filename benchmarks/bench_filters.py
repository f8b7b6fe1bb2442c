"""Cost of `re` filter rules (agentworld.safe_regex): typical and adversarial, per evaluation.

Every figure is one `search` by a freshly compiled pattern (nothing learned from earlier
subjects) on the longest subject a rule searches unless the case says otherwise:

- `typical_us`: an anchored id pattern on a short subject.
- `prefix_scan_us`: a literal found only at the end of the longest subject.
- `adversarial_us`: a pattern whose state set changes at every character at the largest
  automaton a rule may have; it stalls Python's backtracking `re` for seconds.
- `hostile_classes_us`: a 250-character pattern repeating a long class of ranges and
  categories, on a subject that keeps its state set changing: the shape that costs a matcher
  which tests classes character by character the most (half a second before this matcher).
- `manifest_worst_ms`: eight such rules (the most a manifest may hold) on one subject: the most
  the `re` rules of one instance can cost a routed event.
"""

from __future__ import annotations

import random
import time
from typing import Any

from agentworld.filters import MAX_RE_RULES, MAX_RE_SUBJECT
from agentworld.safe_regex import SafeRegex


def hostile_pattern(shift: int) -> str:
    """A long class of ranges and categories, repeated: about 250 characters, 60 states."""
    ranges = "".join(f"\\u{0x100 + 16 * n + shift:04x}-\\u{0x107 + 16 * n + shift:04x}"
                     for n in range(7))
    return f"[{ranges}0-9a-f\\d\\s](?:[{ranges}0-9a-f\\d\\s]|[G-Zg-z_.:~]){{55}}#"


def _subject(rng: random.Random) -> str:
    """Characters in and out of the classes above, so the state set changes all the time."""
    pool = [chr(0x100 + 16 * n + k) for n in range(7) for k in range(10)] + list("0a9fGz_.:!")
    return "".join(rng.choice(pool) for _ in range(MAX_RE_SUBJECT))


def _best_seconds(patterns: list[str], subject: str, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        compiled = [SafeRegex(pattern) for pattern in patterns]  # fresh: nothing cached
        started = time.perf_counter()
        for regex in compiled:
            regex.search(subject)
        best = min(best, time.perf_counter() - started)
    return best


def measure(quick: bool = False) -> dict[str, Any]:
    """Best-of-rounds cost of each case: microseconds per search, milliseconds per manifest."""
    rng = random.Random(7)
    noise = "".join(rng.choice("ab") for _ in range(MAX_RE_SUBJECT))
    hostile_subject = _subject(rng)
    rounds = 2 if quick else 5
    cases = {
        "typical_us": ([r"^agent-[0-9]+$"], "agent-" + "7" * 20),
        "prefix_scan_us": (["gold"], "x" * (MAX_RE_SUBJECT - 4) + "gold"),
        "adversarial_us": (["[ab]*a[ab]{56}c"], noise),
        "hostile_classes_us": ([hostile_pattern(0)], hostile_subject),
    }
    results: dict[str, Any] = {"max_subject_chars": MAX_RE_SUBJECT}
    for name, (patterns, subject) in cases.items():
        results[name] = round(_best_seconds(patterns, subject, rounds) * 1e6, 1)
    worst = [hostile_pattern(shift) for shift in range(MAX_RE_RULES)]
    results["manifest_worst_ms"] = round(_best_seconds(worst, hostile_subject, rounds) * 1e3, 2)
    return results
