"""Layout patterns counted and sampled without listing them: a small regex grammar -> automaton.

(A little over ~300 lines: the parser, the automaton and counting/unranking are one algorithm.)

``layouts: {pattern: "[CT]*", lengths: [8]}`` describes 256 layouts; with more registered letters
or longer patterns the number grows as letters^length, so listing every string (what
``itertools.product`` + ``re.fullmatch`` did) is not an option. A pattern is parsed here in a small,
documented grammar, compiled to an NFA (Thompson construction), determinized lazily (subset
construction), and layouts are *counted* by dynamic programming over (automaton state, letters
left, rank sum). The same counts unrank an index into the layout at that position, so a sampler can
draw an integer in ``[0, count)`` and get a uniformly chosen layout.

Grammar (``-`` and spaces are ignored, letters are case-insensitive, the whole layout must match):
stage letters, ``.`` (any letter), ``[CT]`` / ``[^C]`` classes, groups ``(...)`` / ``(?:...)``,
alternation ``|``, and the quantifiers ``*``, ``+``, ``?``, ``{m}``, ``{m,}``, ``{,n}``,
``{m,n}`` (a lazy ``?`` after a quantifier is accepted; it matches the same layouts). ``^`` and
``$`` at the ends are accepted and mean nothing (the match is always whole).

The order is the one stored studies rely on: shorter first, then conv-heavy first (sum of the
letters' registration ranks), then alphabetical.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

MAX_PATTERN_CHARS = 200
MAX_NFA_STATES = 20_000
GRAMMAR = "letters, '.', [..] classes, (..) groups, '|', and the quantifiers * + ? {m,n}"


class PatternError(ValueError):
    """A pattern outside the grammar or too large; the message is user-facing."""


# --- parsing: pattern text -> a tiny AST ------------------------------------------------------
# ("set", frozenset) | ("cat", [nodes]) | ("alt", [nodes]) | ("rep", node, lo, hi|None)


class _Parser:
    def __init__(self, text: str, letters: Sequence[str]):
        self.text, self.i, self.letters = text, 0, tuple(letters)

    def fail(self, why: str) -> PatternError:
        return PatternError(f"{why} at position {self.i + 1}; patterns use {GRAMMAR}")

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def parse(self) -> tuple:
        node = self.alt()
        if self.i < len(self.text):
            raise self.fail(f"unexpected {self.peek()!r}")
        return node

    def alt(self) -> tuple:
        branches = [self.cat()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.cat())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def cat(self) -> tuple:
        parts = []
        while self.peek() not in ("", "|", ")"):
            parts.append(self.repeat())
        return ("cat", parts)

    def repeat(self) -> tuple:
        node = self.atom()
        ch = self.peek()
        if ch in ("*", "+", "?", "{"):
            lo, hi = self.quantifier()
            node = ("rep", node, lo, hi)
            if self.peek() == "?":  # lazy: same language
                self.i += 1
            if self.peek() in ("*", "+", "?", "{"):
                raise self.fail("a quantifier cannot follow another quantifier")
        return node

    def quantifier(self) -> tuple[int, int | None]:
        ch = self.text[self.i]
        self.i += 1
        if ch != "{":
            return {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
        end = self.text.find("}", self.i)
        body = self.text[self.i : end] if end >= 0 else ""
        match = re.fullmatch(r"(\d{1,6})|(\d{0,6}),(\d{0,6})", body)
        if end < 0 or match is None or body == ",":
            raise self.fail("expected {m}, {m,}, {,n} or {m,n} (counts up to 6 digits)")
        self.i = end + 1
        if match.group(1) is not None:
            lo = hi = int(match.group(1))
        else:
            lo = int(match.group(2) or 0)
            hi = int(match.group(3)) if match.group(3) else None
        if hi is not None and hi < lo:
            raise self.fail(f"repeat {{{body}}}: the maximum is below the minimum")
        return lo, hi

    def atom(self) -> tuple:
        ch = self.peek()
        if ch == "(":
            self.i += 1
            if self.text.startswith("?:", self.i):
                self.i += 2
            elif self.peek() == "?":
                raise self.fail("only plain (..) and (?:..) groups are supported")
            node = self.alt()
            if self.peek() != ")":
                raise self.fail("missing ')'")
            self.i += 1
            return node
        if ch == "[":
            return self.char_class()
        if ch == ".":
            self.i += 1
            return ("set", frozenset(self.letters))
        if ch in ("*", "+", "?", "{"):
            raise self.fail(f"nothing to repeat before {ch!r}")
        return ("set", frozenset({self.letter()}))

    def char_class(self) -> tuple:
        self.i += 1
        negate = self.peek() == "^"
        self.i += negate
        chosen: set[str] = set()
        while self.peek() not in ("]", ""):
            chosen.add(self.letter())
        if self.peek() != "]":
            raise self.fail("missing ']'")
        self.i += 1
        return ("set", frozenset(set(self.letters) - chosen if negate else chosen))

    def letter(self) -> str:
        ch = self.peek()
        if ch.upper() in self.letters:
            self.i += 1
            return ch.upper()
        if ch.isalpha():
            raise self.fail(
                f"{ch!r} is not a registered stage letter (registered: {', '.join(self.letters)})"
            )
        raise self.fail(f"unsupported {ch!r}")


# --- compiling: AST -> NFA (epsilon moves + letter-set moves) --------------------------------


class _NFA:
    def __init__(self, max_len: int):
        self.eps: list[list[int]] = []
        self.moves: list[list[tuple[frozenset[str], int]]] = []
        self.max_len = max_len

    def state(self) -> int:
        if len(self.eps) >= MAX_NFA_STATES:
            raise PatternError(f"pattern too complex (more than {MAX_NFA_STATES:,} states)")
        self.eps.append([])
        self.moves.append([])
        return len(self.eps) - 1

    def build(self, node: tuple) -> tuple[int, int]:
        """A fragment (start, accept) for ``node``."""
        kind = node[0]
        start, end = self.state(), self.state()
        if kind == "set":
            self.moves[start].append((node[1], end))
        elif kind == "cat":
            cur = start
            for part in node[1]:
                s, e = self.build(part)
                self.eps[cur].append(s)
                cur = e
            self.eps[cur].append(end)
        elif kind == "alt":
            for part in node[1]:
                s, e = self.build(part)
                self.eps[start].append(s)
                self.eps[e].append(end)
        else:
            self._repeat(node[1], node[2], node[3], start, end)
        return start, end

    def _repeat(self, child: tuple, lo: int, hi: int | None, start: int, end: int) -> None:
        # Only layouts up to max_len letters are ever asked for, so counts are clamped there: a
        # child that can match nothing needs no forced copies; one that cannot needs <= max_len.
        if _nullable(child):
            lo = 0
        if lo > self.max_len:
            return  # no layout this short can hold that many copies: matches nothing
        if hi is not None:
            hi = min(hi, self.max_len)
        cur = start
        for _ in range(lo):
            s, e = self.build(child)
            self.eps[cur].append(s)
            cur = e
        if hi is None:
            s, e = self.build(child)
            self.eps[cur].append(s)
            self.eps[e].append(s)
            self.eps[e].append(end)
        else:
            for _ in range(hi - lo):
                s, e = self.build(child)
                self.eps[cur].append(s)
                self.eps[cur].append(end)
                cur = e
        self.eps[cur].append(end)


def _nullable(node: tuple) -> bool:
    kind = node[0]
    if kind == "set":
        return False
    if kind == "cat":
        return all(_nullable(p) for p in node[1])
    if kind == "alt":
        return any(_nullable(p) for p in node[1])
    return node[2] == 0 or _nullable(node[1])


# --- the language: counting, unranking, per-position letters ----------------------------------


class LayoutLanguage:
    """The layouts of the given lengths that a pattern matches, counted without listing them.

    ``letters`` are the registered stage letters in registration order (their rank there is the
    conv-heavy-first tie-break).
    """

    def __init__(self, pattern: str, lengths: Iterable[int], letters: Sequence[str]):
        text = "".join(pattern.replace("-", "").split())
        if len(text) > MAX_PATTERN_CHARS:
            raise PatternError(f"pattern longer than {MAX_PATTERN_CHARS} characters")
        text = text.removeprefix("^")
        text = text.removesuffix("$")
        self.lengths = sorted(set(lengths))
        self.letters = sorted(letters)  # alphabetical: the final tie-break
        self.rank = {letter: i for i, letter in enumerate(letters)}
        self._max_rank = max(self.rank.values(), default=0)
        nfa = _NFA(max(self.lengths, default=0))
        start, self._accept = nfa.build(_Parser(text, letters).parse())
        self._nfa = nfa
        self._start = self._closure({start})
        self._steps: dict[tuple[frozenset[int], str], frozenset[int]] = {}
        self._counts: dict[tuple[frozenset[int], int, int], int] = {}
        self.by_length = {
            n: sum(self._count(self._start, n, w) for w in self._ws(n)) for n in self.lengths
        }
        self.count = sum(self.by_length.values())

    def _ws(self, n: int) -> range:
        return range(n * self._max_rank + 1)

    def _closure(self, states: Iterable[int]) -> frozenset[int]:
        seen, todo = set(states), list(states)
        while todo:
            for t in self._nfa.eps[todo.pop()]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return frozenset(seen)

    def _step(self, dstate: frozenset[int], letter: str) -> frozenset[int]:
        key = (dstate, letter)
        if key not in self._steps:
            targets = {t for s in dstate for chars, t in self._nfa.moves[s] if letter in chars}
            self._steps[key] = self._closure(targets)
        return self._steps[key]

    def _count(self, dstate: frozenset[int], left: int, weight: int) -> int:
        """Strings of ``left`` letters from ``dstate`` to acceptance whose ranks sum to weight."""
        if weight < 0 or not dstate:
            return 0
        if left == 0:
            return int(weight == 0 and self._accept in dstate)
        key = (dstate, left, weight)
        if key not in self._counts:
            self._counts[key] = sum(
                self._count(self._step(dstate, a), left - 1, weight - self.rank[a])
                for a in self.letters
            )
        return self._counts[key]

    def unrank(self, index: int) -> str:
        """The layout at ``index`` (0-based) in the stored-study order, as ``C-C-T-T``."""
        if not 0 <= index < self.count:
            raise IndexError(f"layout index {index} outside [0, {self.count})")
        for n in self.lengths:
            for w in self._ws(n):
                here = self._count(self._start, n, w)
                if index >= here:
                    index -= here
                    continue
                return "-".join(self._walk(n, w, index))
        raise AssertionError("unreachable: index was checked against the count")

    def _walk(self, n: int, weight: int, index: int) -> list[str]:
        out, state = [], self._start
        for left in range(n, 0, -1):
            for a in self.letters:
                nxt = self._step(state, a)
                here = self._count(nxt, left - 1, weight - self.rank[a])
                if index < here:
                    out.append(a)
                    state, weight = nxt, weight - self.rank[a]
                    break
                index -= here
        return out

    def layouts(self) -> list[str]:
        """Every layout, in order; callers check :attr:`count` first."""
        return [self.unrank(i) for i in range(self.count)]

    def letters_at(self, n: int, position: int) -> list[str]:
        """The letters stage ``position`` can be in some matching layout of ``n`` stages."""
        frontier = {self._start}
        for _ in range(position):
            frontier = {self._step(s, a) for s in frontier for a in self.letters}
        left = n - position - 1
        return [
            a
            for a in self.letters
            if any(self._count(self._step(s, a), left, w) for s in frontier for w in self._ws(left))
        ]
