"""Kind patterns and subscription filters."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentworld.filters import (
    compile_ruleset,
    kind_matches,
    kind_pattern_problem,
    pattern_covers,
    resolve_pointer,
)

EVENT = {"id": 4, "kind": "domain.agent_moved",
         "data": {"agent_id": "ada", "to": [3, 4], "a/b": 1, "m~n": 2, "score": 2.5}}


def holds(ruleset: Any, document: Any = EVENT) -> bool:
    problems: list[str] = []
    predicate = compile_ruleset(ruleset, "f", problems)
    assert predicate is not None, problems
    return predicate(document)


@pytest.mark.parametrize(("pattern", "kind", "matches"), [
    ("*", "anything.at.all", True),
    ("domain.*", "domain.agent_moved", True),
    ("domain.*", "domainx.y", False),
    ("domain.agent_moved", "domain.agent_moved", True),
    ("domain.agent_moved", "domain.agent_moved.more", False),
])
def test_kind_patterns(pattern: str, kind: str, matches: bool) -> None:
    assert kind_matches(pattern, kind) is matches


@pytest.mark.parametrize("bad", ["", " ", "dom*", "*.x", "a.*.b", ".*", 5])
def test_bad_kind_patterns(bad: Any) -> None:
    assert kind_pattern_problem(bad) is not None


def test_pattern_coverage() -> None:
    assert pattern_covers("*", "domain.*") and pattern_covers("domain.*", "domain.a")
    assert pattern_covers("domain.*", "domain.a.*")
    assert not pattern_covers("domain.a", "domain.*") and not pattern_covers("domain.*", "*")


@pytest.mark.parametrize(("rule", "expected"), [
    ({"path": "/data/agent_id", "eq": "ada"}, True),
    ({"path": "/data/agent_id", "ne": "ada"}, False),
    ({"path": "/data/to/1", "gt": 3}, True),
    ({"path": "/data/to/1", "gte": 4}, True),
    ({"path": "/data/to/0", "lt": 3}, False),
    ({"path": "/data/to/0", "lte": 3}, True),
    ({"path": "/data/score", "gt": 2}, True),
    ({"path": "/data/agent_id", "re": "^a.a$"}, True),
    ({"path": "/data/to", "eq": [3, 4]}, True),
    ({"path": "/data/a~1b", "eq": 1}, True),
    ({"path": "/data/m~0n", "eq": 2}, True),
    ({"path": "/data/missing", "ne": 1}, False),  # an unresolved path makes any rule false
    ({"path": "/data/to/9", "eq": 3}, False),
    ({"path": "/data/agent_id", "gt": 1}, False),  # strings and numbers never compare
    ({"path": "/data/to/0", "re": "3"}, False),  # re only matches strings
    ({"path": "/id", "eq": True}, False),  # a boolean is not the number 1
])
def test_rules(rule: dict[str, Any], expected: bool) -> None:
    assert holds([rule]) is expected


def test_all_and_any() -> None:
    ada = {"path": "/data/agent_id", "eq": "ada"}
    bob = {"path": "/data/agent_id", "eq": "bob"}
    assert holds({"all": [ada], "any": [bob, ada]})
    assert not holds({"all": [ada], "any": [bob]})
    assert holds({"any": []}) and holds([])


@pytest.mark.parametrize(("ruleset", "fragment"), [
    ("nope", "a RuleSet is"),
    ([{"path": "x", "eq": 1}], "not a JSON pointer"),
    ([{"path": "/a~2", "eq": 1}], "invalid '~' escape"),
    ([{"path": "/a"}], "exactly one of"),
    ([{"path": "/a", "like": 1}], "unknown rule keys"),
    ([{"path": "/a", "re": "("}], "invalid regular expression"),
    ([{"path": "/a", "re": "a" * 300}], "at most 256"),
    ([{"path": "/a", "re": "(a)\\1"}], "groupref is not supported"),
    ([{"path": "/a", "re": "(?=a)"}], "assert is not supported"),
    ([{"path": "/a", "re": "\\bword"}], "word boundary"),
    ([{"path": "/a", "re": "(?i)abc"}], "inline flags"),
    ([{"path": "/a", "re": "(a{1,100}){1,100}"}], "more than 64 states"),
    ([{"path": "/a", "re": "a{4294967295}"}], "too large"),
    ({"all": "x"}, "must be a list"),
])
def test_invalid_rulesets_list_their_problem(ruleset: Any, fragment: str) -> None:
    problems: list[str] = []
    assert compile_ruleset(ruleset, "f", problems) is None
    assert any(fragment in p for p in problems), problems


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=10,
)
rules = st.dictionaries(
    st.sampled_from(["path", "eq", "ne", "gt", "gte", "lt", "lte", "re", "junk"]),
    json_values | st.sampled_from(["/data", "/data/to/0", "", "/x~1y", "(", ".*"]),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(rules, max_size=3) | st.dictionaries(st.sampled_from(["all", "any", "x"]),
                                                     st.lists(rules, max_size=2)), json_values)
def test_any_ruleset_is_refused_or_evaluates_without_raising(ruleset: Any, document: Any) -> None:
    problems: list[str] = []
    predicate = compile_ruleset(ruleset, "f", problems)
    if predicate is None:
        assert problems
    else:
        assert not problems
        assert predicate(document) in (True, False)


@given(json_values, st.text(max_size=8))
def test_pointer_resolution_never_raises(document: Any, path: str) -> None:
    found, _ = resolve_pointer(document, "/" + path)
    assert found in (True, False)


def test_re_only_searches_subjects_up_to_the_limit() -> None:
    rule = [{"path": "/data/name", "re": "^a+$"}]
    assert holds(rule, {"data": {"name": "a" * 2048}})
    assert not holds(rule, {"data": {"name": "a" * 2049}})


@pytest.mark.parametrize("pattern", ["^(a+)+$", ".*.*" + "a" * 50 + "z", "a{0,5}" * 5 + "b",
                                     "(a|aa)*c", "(x+x+)+y"])
def test_patterns_that_make_backtracking_engines_explode_are_fine(pattern: str) -> None:
    # Each of these takes `re` seconds to hours on such subjects; ours walks the text once.
    subject = "a" * 2047 + "!"
    assert not holds([{"path": "/data/name", "re": pattern}], {"data": {"name": subject}})


def test_a_manifest_has_at_most_eight_re_rules() -> None:
    from agentworld.manifest import intrinsic_problems, parse_manifest

    rules = [{"path": "/data/x", "re": f"^{n}$"} for n in range(9)]
    manifest = parse_manifest({
        "module_id": "m.x", "name": "x", "version": "1", "kind": "pure", "wasm_hash": "a" * 64,
        "interface_version": "wasm-1", "exports": ["call"],
        "subscriptions": [{"stage": "post_event", "event_kinds": ["*"],
                           "filters": {"event": {"any": rules}}}]})
    assert "at most 8 're' filter rules per manifest, got 9" in intrinsic_problems(manifest)


@pytest.mark.parametrize("shape", [tuple, list, lambda rules: {"all": tuple(rules)},
                                   lambda rules: {"any": rules[:4], "all": tuple(rules[4:])}])
def test_the_re_rule_cap_holds_for_every_ruleset_shape(shape: Any) -> None:
    from agentworld.manifest import intrinsic_problems, parse_manifest

    rules = [{"path": "/data/x", "re": f"^{n}$"} for n in range(40)]
    manifest = parse_manifest({
        "module_id": "m.x", "name": "x", "version": "1", "kind": "pure", "wasm_hash": "a" * 64,
        "interface_version": "wasm-1", "exports": ["call"],
        "subscriptions": [{"stage": "post_event", "event_kinds": ["*"],
                           "filters": {"event": shape(rules)}}]})
    assert "at most 8 're' filter rules per manifest, got 40" in intrinsic_problems(manifest)


# Long classes, each different: the shape of pattern whose classes the old matcher tested
# character by character (about 0.5 s for one search, 12 s for one step of a world with three
# instances of eight such rules).
HOSTILE_CLASSES = "".join(
    f"[{chr(0x100 + 7 * n)}-{chr(0x104 + 7 * n)}0-9a-f\\d\\s{chr(0x41 + n % 26)}]"
    for n in range(15))


def test_a_search_does_bounded_work_per_character_whatever_its_classes() -> None:
    from agentworld.safe_regex import SafeRegex

    pattern = HOSTILE_CLASSES + "#"
    assert 240 <= len(pattern) <= 256  # as long as a filter rule may be
    assert holds([{"path": "/x", "re": pattern}], {"x": "0" * 15 + "#"})
    regex = SafeRegex(pattern)
    subject = "".join(chr(0x100 + n) for n in range(2040)) + "0123456#"
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(count)
    try:
        found = regex.search(subject)
    finally:
        sys.setprofile(None)
    assert not found
    # A few Python-level calls per distinct character (to classify it once), none per class.
    assert calls <= 3 * len(set(subject)) + 20, calls
