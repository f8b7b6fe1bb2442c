"""Subscription kind patterns and filters, validated once and compiled for routing.

A RuleSet is a list of rules (all must hold) or `{"all": [...], "any": [...]}`; a rule is
`{"path": "/json/pointer", <op>: value}` with exactly one op of `eq ne gt gte lt lte re`. A
path that does not resolve makes the rule false. `eq` and `ne` compare canonical encodings, so
`true` is not `1` and `1.0` is not `1`, at any depth; orderings only hold between numbers or
between strings; `re` searches strings of at most `MAX_RE_SUBJECT` characters in linear time
(`agentworld.safe_regex`: Python's syntax without flags, backreferences, lookarounds or word
boundaries). Invalid filters are refused at validation, never at routing time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agentworld.canonical import canonical_json
from agentworld.errors import CanonicalEncodingError
from agentworld.safe_regex import SafeRegex, UnsupportedPattern

OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "re")
MAX_REGEX_LEN = 256
# `re` rules match in time linear in the subject, with a bounded cost per character whatever
# their classes (agentworld.safe_regex); longer subjects than this never match, and a manifest
# has at most MAX_RE_RULES of them: together these bound what one instance's filters cost per
# routed event (about ten milliseconds at worst, microseconds typically: `benchmarks/run.py
# filters`).
MAX_RE_RULES = 8
MAX_RE_SUBJECT = 2_048
_MISSING = object()

Predicate = Callable[[Any], bool]


def kind_pattern_problem(pattern: Any) -> str | None:
    """Why `pattern` is not a valid kind pattern (`*`, `prefix.*` or exact), or None."""
    if not isinstance(pattern, str) or not pattern.strip():
        return f"kind pattern must be a non-blank string, got {pattern!r}"
    body = pattern[:-2] if pattern.endswith(".*") else pattern
    if pattern != "*" and ("*" in body or not body or body != body.strip()):
        return f"kind pattern {pattern!r} must be '*', 'prefix.*' or an exact kind"
    return None


def kind_matches(pattern: str, kind: str) -> bool:
    """True when `kind` matches `pattern`."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return kind.startswith(pattern[:-1])
    return kind == pattern


def pattern_covers(wide: str, narrow: str) -> bool:
    """True when every kind matched by `narrow` is also matched by `wide`."""
    if wide == "*":
        return True
    if narrow == "*":
        return False
    if wide.endswith(".*"):
        return narrow.startswith(wide[:-1])
    return wide == narrow


def _pointer_tokens(path: str) -> list[str]:
    if path == "":
        return []
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _pointer_problem(path: Any) -> str | None:
    if not isinstance(path, str):
        return f"path must be a string, got {path!r}"
    if path and not path.startswith("/"):
        return f"path {path!r} is not a JSON pointer (it must start with '/')"
    if re.search(r"~(?![01])", path):
        return f"path {path!r} has an invalid '~' escape"
    return None


def resolve_pointer(document: Any, path: str) -> tuple[bool, Any]:
    """`(True, value)` at JSON pointer `path` in `document`, or `(False, None)` when absent."""
    value = document
    for token in _pointer_tokens(path):
        if isinstance(value, Mapping):
            value = value.get(token, _MISSING)
        elif (isinstance(value, list) and token.isascii() and token.isdigit()
              and token == str(int(token))):
            index = int(token)
            value = value[index] if index < len(value) else _MISSING
        else:
            return False, None
        if value is _MISSING:
            return False, None
    return True, value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same_value(actual: Any, expected: Any) -> bool:
    """True when two JSON values have the same canonical encoding (`true` is not `1`)."""
    if type(actual) is not type(expected):
        return False
    if isinstance(actual, str | int | bool) or actual is None:
        return bool(actual == expected)
    try:
        return canonical_json(actual) == canonical_json(expected)
    except CanonicalEncodingError:
        return False


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "eq":
        return same_value(actual, expected)
    if op == "ne":
        return not same_value(actual, expected)
    comparable = (_is_number(actual) and _is_number(expected)) or (
        isinstance(actual, str) and isinstance(expected, str)
    )
    if not comparable:
        return False
    if op == "gt":
        return bool(actual > expected)
    if op == "gte":
        return bool(actual >= expected)
    if op == "lt":
        return bool(actual < expected)
    return bool(actual <= expected)  # lte


def _compile_rule(rule: Any, where: str, problems: list[str]) -> Predicate | None:
    if not isinstance(rule, Mapping):
        problems.append(f"{where}: a rule must be an object, got {rule!r}")
        return None
    unknown = sorted(set(rule) - {"path", *OPS})
    if unknown:
        problems.append(f"{where}: unknown rule keys {unknown}")
    path_problem = _pointer_problem(rule.get("path"))
    if path_problem:
        problems.append(f"{where}: {path_problem}")
    ops = [op for op in OPS if op in rule]
    if len(ops) != 1:
        problems.append(f"{where}: a rule needs exactly one of {', '.join(OPS)}, got {ops}")
    if unknown or path_problem or len(ops) != 1:
        return None
    path, op, expected = rule["path"], ops[0], rule[ops[0]]
    if op == "re":
        if not isinstance(expected, str) or len(expected) > MAX_REGEX_LEN:
            problems.append(f"{where}: 're' needs a string of at most {MAX_REGEX_LEN} chars")
            return None
        try:
            regex = SafeRegex(expected)
        except re.error as exc:
            problems.append(f"{where}: invalid regular expression {expected!r}: {exc}")
            return None
        except UnsupportedPattern as exc:
            problems.append(f"{where}: regular expression {expected!r}: {exc}")
            return None

        def matches_regex(document: Any) -> bool:
            found, value = resolve_pointer(document, path)
            return (found and isinstance(value, str) and len(value) <= MAX_RE_SUBJECT
                    and regex.search(value))

        return matches_regex
    if op in {"gt", "gte", "lt", "lte"} and not (
        _is_number(expected) or isinstance(expected, str)
    ):
        problems.append(f"{where}: {op!r} compares numbers or strings, got {expected!r}")
        return None

    def holds(document: Any) -> bool:
        found, value = resolve_pointer(document, path)
        return found and _compare(op, value, expected)

    return holds


def _rule_groups(
    ruleset: Any, where: str, problems: list[str]
) -> tuple[list[Any], list[Any]] | None:
    """A RuleSet's `all` and `any` rules, whatever sequence or mapping type holds them."""
    if isinstance(ruleset, Sequence) and not isinstance(ruleset, str | bytes):
        return list(ruleset), []
    if isinstance(ruleset, Mapping):
        unknown = sorted(set(ruleset) - {"all", "any"})
        if unknown:
            problems.append(f"{where}: unknown RuleSet keys {unknown}")
        groups = []
        for key in ("all", "any"):
            value = ruleset.get(key, [])
            if not isinstance(value, Sequence) or isinstance(value, str | bytes):
                problems.append(f"{where}.{key}: must be a list of rules")
                return None
            groups.append(list(value))
        return groups[0], groups[1]
    problems.append(f"{where}: a RuleSet is a list of rules or {{'all': [...], 'any': [...]}}")
    return None


def count_regex_rules(ruleset: Any) -> int:
    """How many `re` rules a RuleSet holds, counted on the very rules `compile_ruleset` reads."""
    groups = _rule_groups(ruleset, "", [])
    if groups is None:
        return 0
    return sum(1 for group in groups for rule in group
               if isinstance(rule, Mapping) and "re" in rule)


def compile_ruleset(ruleset: Any, where: str, problems: list[str]) -> Predicate | None:
    """Compile a RuleSet into a predicate, appending every problem found to `problems`."""
    before = len(problems)
    groups = _rule_groups(ruleset, where, problems)
    if groups is None:
        return None
    all_rules, any_rules = groups
    all_preds = [_compile_rule(r, f"{where}.all[{i}]", problems) for i, r in enumerate(all_rules)]
    any_preds = [_compile_rule(r, f"{where}.any[{i}]", problems) for i, r in enumerate(any_rules)]
    if len(problems) != before:
        return None
    musts = [p for p in all_preds if p is not None]
    options = [p for p in any_preds if p is not None]

    def ruleset_holds(document: Any) -> bool:
        if not all(p(document) for p in musts):
            return False
        return not options or any(p(document) for p in options)

    return ruleset_holds
