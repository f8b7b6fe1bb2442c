"""The linear-time matcher answers exactly like `re.search` on every pattern it accepts."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from agentworld.safe_regex import SafeRegex, UnsupportedPattern

atoms = st.sampled_from(["a", "b", ".", "[ab]", "[^a]", "[a-c]", r"\d", r"\D", r"\w", r"\W",
                         r"\s", "(a|b)", "(ab|a|)", "(?:ba)", "x", r"\n", "é", "[^\\s\\d]",
                         r"[\d\-x-z]", r"[^\W_]", "[é-ÿ]", r"[^\n]", r"[\S]", "[0-9a-fA-F]",
                         "[\u0100-\u017f]", "Ā", "[^é]"])
quantifiers = st.sampled_from(["", "", "*", "+", "?", "{2}", "{1,3}", "*?", "+?", "{0,2}",
                               "{2,}"])
pieces = st.lists(st.tuples(atoms, quantifiers).map("".join), min_size=1, max_size=5)
patterns = st.builds(lambda start, body, end: start + "".join(body) + end,
                     st.sampled_from(["", "^", r"\A"]), pieces,
                     st.sampled_from(["", "$", r"\Z"]))
texts = st.text(alphabet="ab1 x\néĀ_-ÿ9F\u0663\t", max_size=12)


@settings(max_examples=600, deadline=None)
@given(patterns, st.lists(texts, min_size=1, max_size=6))
def test_same_answers_as_re(pattern: str, subjects: list[str]) -> None:
    try:
        compiled = SafeRegex(pattern)
    except UnsupportedPattern:
        return
    for subject in subjects:
        assert compiled.search(subject) == (re.search(pattern, subject) is not None), (
            pattern, subject)
