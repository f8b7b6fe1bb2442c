"""Regular expressions that match in linear time, for subscription filters.

Python's `re` backtracks, so a hostile pattern can stall a world for minutes. Filters therefore
run patterns through this small Thompson-NFA matcher instead: the standard library's own parser
reads the pattern (so the syntax is Python's), the pattern becomes an automaton of at most
`MAX_STATES` nodes, and `search` walks the text once. The answer is the same as
`re.search(pattern, text) is not None` for every pattern this module accepts.

The work per character is bounded whatever the pattern holds: the automaton's state set is a
bit mask, every character class is compiled into one table of code-point intervals (plus the
three Unicode categories `\\d \\w \\s`), so which nodes accept a character is one binary
search and three string tests, and the next state set is at most eight table lookups. No
class is ever tested character by character, so neither long classes nor many of them slow a
search down.

Accepted: literals, `.`, classes (`[a-z]`, `[^...]`, `\\d \\w \\s` and their negations),
groups, alternation, every quantifier (greedy or lazy), `^ $ \\A \\Z`. Refused (with a reason):
inline flags, backreferences, lookarounds, word boundaries, atomic groups and possessive
quantifiers, and patterns whose automaton would exceed `MAX_STATES`.
"""

from __future__ import annotations

import bisect
import importlib
from typing import Any

from attrs import frozen

# The standard library's regex parser (Python >= 3.11); typeshed does not describe it.
_parser: Any = importlib.import_module("re._parser")

MAX_STATES = 64
# Accept masks are remembered per character; past this many distinct characters they are
# forgotten, bounding memory (recomputing one costs a binary search and three string tests).
_CACHE_CHARS = 4096
_DEFAULT_FLAGS = 32  # re.UNICODE, implied for str patterns

# Automaton node kinds.
_CHAR, _SPLIT, _JUMP, _BEGIN, _END, _END_STRING, _MATCH = range(7)

# The Unicode categories a class may name, as flags of a character: decimal digit, word, space
# (exactly what `re` tests for str patterns).
_DIGIT, _WORD, _SPACE = 1, 2, 4
_CATEGORIES: dict[str, tuple[int, bool]] = {
    "CATEGORY_DIGIT": (_DIGIT, False),
    "CATEGORY_NOT_DIGIT": (_DIGIT, True),
    "CATEGORY_WORD": (_WORD, False),
    "CATEGORY_NOT_WORD": (_WORD, True),
    "CATEGORY_SPACE": (_SPACE, False),
    "CATEGORY_NOT_SPACE": (_SPACE, True),
}


class UnsupportedPattern(ValueError):
    """The pattern uses something the linear-time matcher cannot do."""


@frozen
class CharClass:
    """The characters one automaton node accepts: code-point ranges and categories, or all
    characters but those when `negate`."""

    ranges: tuple[tuple[int, int], ...]
    # (category flag, negated) pairs: digits are (_DIGIT, False), non-digits (_DIGIT, True).
    categories: tuple[tuple[int, bool], ...] = ()
    negate: bool = False

    def holds_in(self, flags: int) -> bool:
        """True when one of the categories holds for a character with category `flags`."""
        return any(bool(flags & flag) != negated for flag, negated in self.categories)


def _char_class(items: list[Any]) -> CharClass:
    negate = False
    ranges: list[tuple[int, int]] = []
    categories: list[tuple[int, bool]] = []
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            ranges.append((arg, arg))
        elif name == "RANGE":
            ranges.append((arg[0], arg[1]))
        elif name == "CATEGORY" and str(arg) in _CATEGORIES:
            categories.append(_CATEGORIES[str(arg)])
        else:
            raise UnsupportedPattern(f"character class item {name} is not supported")
    return CharClass(tuple(ranges), tuple(categories), negate)


def _flags(char: str) -> int:
    return ((_DIGIT if char.isdecimal() else 0) | (_WORD if char.isalnum() or char == "_" else 0)
            | (_SPACE if char.isspace() else 0))


class _Builder:
    """Builds the automaton: nodes are [kind, char class or None, next, alternative]."""

    def __init__(self) -> None:
        self.nodes: list[list[Any]] = []

    def node(self, kind: int, accepts: CharClass | None = None) -> int:
        if len(self.nodes) >= MAX_STATES:
            raise UnsupportedPattern(f"the pattern needs more than {MAX_STATES} states")
        self.nodes.append([kind, accepts, None, None])
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
            node = self.node(_CHAR, CharClass(((arg, arg),), negate=name == "NOT_LITERAL"))
            return node, [(node, 2)]
        if name == "ANY":
            node = self.node(_CHAR, CharClass(((10, 10),), negate=True))  # all but a newline
            return node, [(node, 2)]
        if name == "IN":
            node = self.node(_CHAR, _char_class(arg))
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
        self._match = sum(1 << i for i, node in enumerate(self._nodes) if node[0] == _MATCH)
        self._compile_classes()
        # Away from the text's ends no anchor holds, so a node's closure is fixed.
        inner = [self._closure(1 << i, False, False, False) for i in range(len(self._nodes))]
        self._start_inner = inner[start]
        # _steps[k][b]: the state set reached through the nodes 8k..8k+7 flagged in byte b.
        successors = [inner[node[2]] if node[0] == _CHAR else 0 for node in self._nodes]
        successors += [0] * (-len(successors) % 8)
        self._steps: list[list[int]] = []
        for base in range(0, len(successors), 8):
            table = [0] * 256
            for byte in range(1, 256):
                low = byte & -byte
                table[byte] = table[byte ^ low] | successors[base + low.bit_length() - 1]
            self._steps.append(table)
        self._accepts: dict[str, int] = {}

    def _compile_classes(self) -> None:
        """One interval table for every node's ranges, one mask per category combination."""
        points = {0}
        for node in self._nodes:
            if node[0] == _CHAR:
                for low, high in node[1].ranges:
                    points.update((low, high + 1))
        self._bounds = sorted(points)
        self._in_ranges = [0] * len(self._bounds)
        self._negated = 0
        self._by_flags = [0] * 8
        for index, node in enumerate(self._nodes):
            if node[0] != _CHAR:
                continue
            accepts: CharClass = node[1]
            bit = 1 << index
            if accepts.negate:
                self._negated |= bit
            for low, high in accepts.ranges:
                first = bisect.bisect_left(self._bounds, low)
                last = bisect.bisect_left(self._bounds, high + 1)
                for interval in range(first, last):
                    self._in_ranges[interval] |= bit
            for flags in range(8):
                if accepts.holds_in(flags):
                    self._by_flags[flags] |= bit

    def _accepting(self, char: str) -> int:
        """The mask of nodes that accept `char`."""
        interval = bisect.bisect_right(self._bounds, ord(char)) - 1
        return (self._in_ranges[interval] | self._by_flags[_flags(char)]) ^ self._negated

    def _closure(self, seeds: int, at_start: bool, at_end: bool, at_last_newline: bool) -> int:
        """The CHAR and MATCH nodes reachable from `seeds` without reading a character."""
        nodes, seen, stack, found = self._nodes, 0, [], 0
        while seeds:
            low = seeds & -seeds
            stack.append(low.bit_length() - 1)
            seeds ^= low
        while stack:
            index = stack.pop()
            if index is None or seen >> index & 1:
                continue
            seen |= 1 << index
            kind, _accepts, nxt, alternative = nodes[index]
            if kind in (_CHAR, _MATCH):
                found |= 1 << index
            elif kind == _JUMP:
                stack.append(nxt)
            elif kind == _SPLIT:
                stack += (nxt, alternative)
            elif kind == _BEGIN:
                if at_start:
                    stack.append(nxt)
            elif kind == _END:
                if at_end or at_last_newline:
                    stack.append(nxt)
            elif kind == _END_STRING and at_end:
                stack.append(nxt)
        return found

    def search(self, text: str) -> bool:
        """True when the pattern matches somewhere in `text`."""
        nodes, length, matches, steps = self._nodes, len(text), self._match, self._steps
        accepts = self._accepts
        last_newline = length - 1 if text.endswith("\n") else -1
        current = self._closure(1 << self._start, True, length == 0, last_newline == 0)
        for position, char in enumerate(text):
            if current & matches:
                return True
            accepting = accepts.get(char)
            if accepting is None:
                if len(accepts) >= _CACHE_CHARS:
                    accepts.clear()
                accepting = accepts[char] = self._accepting(char)
            hits = current & accepting
            after = position + 1
            if after == length or after == last_newline:
                # Near the end `$` and `\\Z` may hold: follow the anchors explicitly.
                seeds = 1 << self._start
                while hits:
                    low = hits & -hits
                    seeds |= 1 << nodes[low.bit_length() - 1][2]
                    hits ^= low
                current = self._closure(seeds, False, after == length, after == last_newline)
                continue
            current = self._start_inner
            chunk = 0
            while hits:
                current |= steps[chunk][hits & 255]
                hits >>= 8
                chunk += 1
        return bool(current & matches)
