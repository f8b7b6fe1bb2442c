"""Regular expressions that match in linear time, for subscription filters.

Python's `re` backtracks, so a hostile pattern can stall a world for minutes. Filters therefore
run patterns through this small Thompson-NFA matcher instead: the standard library's own parser
reads the pattern (so the syntax is Python's), the pattern becomes an automaton, and `search`
walks the text once, caching each set of states it reaches (a lazily built DFA). The answer is
the same as `re.search(pattern, text) is not None` for every pattern this module accepts.

Accepted: literals, `.`, classes (`[a-z]`, `[^...]`, `\\d \\w \\s` and their negations),
groups, alternation, every quantifier (greedy or lazy), `^ $ \\A \\Z`. Refused (with a reason):
inline flags, backreferences, lookarounds, word boundaries, atomic groups and possessive
quantifiers, and patterns whose automaton would exceed `MAX_STATES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# The standard library's regex parser (Python >= 3.11); typeshed does not describe it.
_parser: Any = importlib.import_module("re._parser")

MAX_STATES = 64
# The lazily built DFA keeps at most this many state-set members in its cache, bounding memory.
_CACHE_MEMBERS = 200_000
_DEFAULT_FLAGS = 32  # re.UNICODE, implied for str patterns

CharTest = Callable[[str], bool]

# Automaton node kinds.
_CHAR, _SPLIT, _JUMP, _BEGIN, _END, _END_STRING, _MATCH = range(7)

_CATEGORIES: dict[str, CharTest] = {
    "CATEGORY_DIGIT": str.isdecimal,
    "CATEGORY_NOT_DIGIT": lambda c: not c.isdecimal(),
    "CATEGORY_WORD": lambda c: c.isalnum() or c == "_",
    "CATEGORY_NOT_WORD": lambda c: not (c.isalnum() or c == "_"),
    "CATEGORY_SPACE": str.isspace,
    "CATEGORY_NOT_SPACE": lambda c: not c.isspace(),
}


class UnsupportedPattern(ValueError):
    """The pattern uses something the linear-time matcher cannot do."""


def _class_test(items: list[Any]) -> CharTest:
    negate = False
    chars: set[str] = set()
    ranges: list[tuple[int, int]] = []
    categories: list[CharTest] = []
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            chars.add(chr(arg))
        elif name == "RANGE":
            ranges.append((arg[0], arg[1]))
        elif name == "CATEGORY" and str(arg) in _CATEGORIES:
            categories.append(_CATEGORIES[str(arg)])
        else:
            raise UnsupportedPattern(f"character class item {name} is not supported")

    def in_class(c: str) -> bool:
        code = ord(c)
        found = (c in chars or any(low <= code <= high for low, high in ranges)
                 or any(test(c) for test in categories))
        return found != negate

    return in_class


class _Builder:
    """Builds the automaton: nodes are [kind, char test or None, next, alternative]."""

    def __init__(self) -> None:
        self.nodes: list[list[Any]] = []

    def node(self, kind: int, test: CharTest | None = None) -> int:
        if len(self.nodes) >= MAX_STATES:
            raise UnsupportedPattern(f"the pattern needs more than {MAX_STATES} states")
        self.nodes.append([kind, test, None, None])
        return len(self.nodes) - 1

    def fragment(self, items: Any) -> tuple[int, list[tuple[int, int]]]:
        """(entry node, dangling exits) for a sequence; an exit is (node, slot)."""
        parts = list(items)
        if not parts:
            entry = self.node(_JUMP)
            return entry, [(entry, 2)]
        entry, exits = self.item(str(parts[0][0]), parts[0][1])
        for op, arg in parts[1:]:
            start, ends = self.item(str(op), arg)
            for node, slot in exits:
                self.nodes[node][slot] = start
            exits = ends
        return entry, exits

    def item(self, name: str, arg: Any) -> tuple[int, list[tuple[int, int]]]:
        if name in {"LITERAL", "NOT_LITERAL"}:
            char = chr(arg)
            test: CharTest = ((lambda c: c == char) if name == "LITERAL"
                              else (lambda c: c != char))
            node = self.node(_CHAR, test)
            return node, [(node, 2)]
        if name == "ANY":
            node = self.node(_CHAR, lambda c: c != "\n")
            return node, [(node, 2)]
        if name == "IN":
            node = self.node(_CHAR, _class_test(arg))
            return node, [(node, 2)]
        if name == "AT":
            kinds = {"AT_BEGINNING": _BEGIN, "AT_BEGINNING_STRING": _BEGIN,
                     "AT_END": _END, "AT_END_STRING": _END_STRING}
            if str(arg) not in kinds:
                raise UnsupportedPattern(f"{arg} (a word boundary) is not supported")
            node = self.node(kinds[str(arg)])
            return node, [(node, 2)]
        if name == "SUBPATTERN":
            _group, add_flags, del_flags, body = arg
            if add_flags or del_flags:
                raise UnsupportedPattern("inline flags are not supported")
            return self.fragment(body)
        if name == "BRANCH":
            entry = self.node(_JUMP)
            exits: list[tuple[int, int]] = []
            previous, slot = entry, 2
            for alternative in arg[1]:
                split = self.node(_SPLIT)
                self.nodes[previous][slot] = split
                start, ends = self.fragment(alternative)
                self.nodes[split][2] = start
                exits += ends
                previous, slot = split, 3
            # The last split's alternative stays None: the closure skips it.
            return entry, exits
        if name in {"MAX_REPEAT", "MIN_REPEAT"}:
            return self.repeat(*arg)
        raise UnsupportedPattern(f"{name.lower().replace('_', ' ')} is not supported")

    def repeat(self, low: int, high: int, body: Any) -> tuple[int, list[tuple[int, int]]]:
        entry = self.node(_JUMP)
        exits = [(entry, 2)]

        def attach(start: int) -> None:
            for node, slot in exits:
                self.nodes[node][slot] = start

        for _ in range(low):
            start, ends = self.fragment(body)
            attach(start)
            exits = ends
        if high == _parser.MAXREPEAT:
            split = self.node(_SPLIT)
            attach(split)
            start, ends = self.fragment(body)
            self.nodes[split][2] = start
            for node, slot in ends:
                self.nodes[node][slot] = split
            return entry, [(split, 3)]
        optional_exits: list[tuple[int, int]] = []
        for _ in range(high - low):
            split = self.node(_SPLIT)
            attach(split)
            start, ends = self.fragment(body)
            self.nodes[split][2] = start
            optional_exits.append((split, 3))
            exits = ends
        return entry, exits + optional_exits


class SafeRegex:
    """A compiled linear-time pattern; `search(text)` answers like `re.search` would."""

    def __init__(self, pattern: str) -> None:
        try:
            tree = _parser.parse(pattern)
        except (OverflowError, RecursionError) as exc:  # repeat counts >= 2**32, deep nesting
            raise UnsupportedPattern(f"the pattern is too large ({exc})") from None
        if tree.state.flags != _DEFAULT_FLAGS:
            raise UnsupportedPattern("inline flags are not supported")
        builder = _Builder()
        start, exits = builder.fragment(tree)
        match = builder.node(_MATCH)
        for node, slot in exits:
            builder.nodes[node][slot] = match
        self.pattern = pattern
        self._nodes = builder.nodes
        self._start = start
        self._match_nodes = frozenset(
            index for index, node in enumerate(builder.nodes) if node[0] == _MATCH)
        self._cache: dict[tuple[frozenset[int], str, bool, bool], frozenset[int]] = {}
        self._cached_members = 0
        # Away from the text's ends no anchor holds, so a node's closure is fixed: memoized.
        self._inner: list[frozenset[int] | None] = [None] * len(builder.nodes)

    def _closure(self, seeds: set[int], at_start: bool, at_end: bool, at_last_newline: bool,
                 ) -> frozenset[int]:
        nodes, seen, stack = self._nodes, set(), list(seeds)
        while stack:
            index = stack.pop()
            if index is None or index in seen:
                continue
            seen.add(index)
            kind, _test, nxt, alternative = nodes[index]
            if kind == _JUMP:
                stack.append(nxt)
            elif kind == _SPLIT:
                stack += (nxt, alternative)
            elif kind == _BEGIN:
                if at_start:
                    stack.append(nxt)
            elif kind == _END:
                if at_end or at_last_newline:
                    stack.append(nxt)
            elif kind == _END_STRING:
                if at_end:
                    stack.append(nxt)
        return frozenset(i for i in seen if nodes[i][0] in (_CHAR, _MATCH))

    def _inner_closure(self, index: int) -> frozenset[int]:
        closure = self._inner[index]
        if closure is None:
            closure = self._inner[index] = self._closure({index}, False, False, False)
        return closure

    def search(self, text: str) -> bool:
        """True when the pattern matches somewhere in `text`."""
        nodes, length, matches = self._nodes, len(text), self._match_nodes
        last_newline = length - 1 if text.endswith("\n") else -1
        current = self._closure({self._start}, True, length == 0, last_newline == 0)
        for position, char in enumerate(text):
            if not current.isdisjoint(matches):
                return True
            after = position + 1
            at_end, before_newline = after == length, after == last_newline
            key = (current, char, at_end, before_newline)
            following = self._cache.get(key)
            if following is None:
                seeds = {nodes[i][2] for i in current
                         if nodes[i][0] == _CHAR and nodes[i][1](char)}
                seeds.add(self._start)  # search: a match may begin at any position
                if at_end or before_newline:
                    following = self._closure(seeds, False, at_end, before_newline)
                else:
                    following = frozenset().union(*(self._inner_closure(s) for s in seeds))
                if self._cached_members + len(following) > _CACHE_MEMBERS:
                    self._cache.clear()
                    self._cached_members = 0
                self._cache[key] = following
                self._cached_members += len(following)
            current = following
        return not current.isdisjoint(matches)
