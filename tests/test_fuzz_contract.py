"""Fuzzing the error contract: hostile specs, spaces, budgets, options and corrupted files.

The contract (issue 14): every input either succeeds or exits 2 with one bounded ``error:``
paragraph on stderr, never a traceback, and no file appears or changes outside the intended
outputs. Seeds are fixed (``derandomize``) and examples bounded so the suite stays ~30 s.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from coatnet_nas.cli import run
from coatnet_nas.errors import CoatnetError, SpecError
from coatnet_nas.search.pattern import LayoutLanguage, PatternError
from coatnet_nas.search.space import space_from_dict
from coatnet_nas.spec import COMMON_KEYS, COMPACT_KEYS, EXPLICIT_KEYS, parse_yaml
from coatnet_nas.units import parse_flops, parse_params
from tests.conftest import ROOT, tiny_space

FUZZ = settings(
    derandomize=True,
    deadline=None,
    max_examples=120,
    phases=[Phase.explicit, Phase.generate],  # no shrinking blow-ups; failures print as found
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HOSTILE_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1, 3, 7, 8, 9, 32, 256, 257, 16385, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["C-C-T-T", "CCTT", "C-X", "", "4GFLOPs", "é", "\u202e", "1e999", "T" * 9]),
)
HOSTILE = st.recursive(
    HOSTILE_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
SPEC_KEYS = st.sampled_from(
    [*COMMON_KEYS, *COMPACT_KEYS, *EXPLICIT_KEYS, "mbconv", "transformer", "layot", "widht"]
)


def listing(root: Path) -> dict[str, float]:
    """Every path under ``root`` with its modification time (a changed file changes mtime)."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def check_contract(capsys, args: list[str], root: Path, allowed: set[str] = frozenset()) -> int:
    before, cwd_before = listing(root), set(os.listdir("."))
    code = run(args)
    out, err = capsys.readouterr()
    assert code in (0, 2), (args, code, err[-500:])
    assert "Traceback" not in err and "Traceback" not in out
    if code == 2:
        assert err.startswith("error: "), err[:300]
        body = err.removeprefix("error: ").rstrip("\n")
        body = re.sub(r" \(see '[^']*--help'\)$", "", body)
        assert len(body) <= 1_500, len(body)
        assert "\n\n" not in body
    after = listing(root)
    changed = {k for k in after.keys() | before.keys() if before.get(k) != after.get(k)}
    assert changed <= set(allowed), changed
    assert set(os.listdir(".")) == cwd_before  # nothing lands in the working directory either
    return code


@FUZZ
@given(st.dictionaries(st.one_of(SPEC_KEYS, st.text(max_size=8)), HOSTILE, max_size=7))
def test_hostile_specs_validate_or_fail_cleanly(tmp_path_factory, capsys, data):
    root = tmp_path_factory.mktemp("spec")
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    check_contract(capsys, ["validate", str(path)], root)
    check_contract(capsys, ["build", str(path), "--estimate", "--json"], root)


@FUZZ
@given(
    st.sampled_from(
        [
            *("layouts", "depths", "widths", "stem_depth", "mbconv", "transformer", "target"),
            *("budget", "proxy", "options", "name", "bogus"),
        ]
    ),
    HOSTILE,
)
def test_hostile_spaces_load_or_raise_a_bounded_spec_error(key, value):
    try:
        space_from_dict(tiny_space() | {key: value}, "space.yaml")
    except SpecError as exc:
        message = str(exc)
        assert len(message) <= 1_500 and "field 'spec'" not in message
        assert "synthetic:400" not in message  # never the whole input


@FUZZ
@given(st.one_of(st.text(max_size=40), HOSTILE_SCALARS))
def test_budget_strings_parse_or_raise_a_bounded_budget_error(text):
    for parse in (parse_flops, parse_params):
        try:
            assert parse(text) > 0
        except CoatnetError as exc:
            assert len(str(exc)) <= 400


OPTION_VALUES = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["224", "256x192", "0", "-32", "1e9", "999999999", "4GFLOPs", "1K", "both"]),
)


@FUZZ
@given(
    st.sampled_from(["--image-size", "--budget", "--max-params", "--vary", "--write"]),
    OPTION_VALUES,
)
def test_build_validate_scale_options(tmp_path_factory, capsys, flag, value):
    root = tmp_path_factory.mktemp("opts")
    out = root / "out.yaml"
    if flag == "--write":  # any name, but always inside root (never the working directory)
        value = str(root / ("w_" + value.replace("/", "_")))
    wrote = {Path(value).name} if flag == "--write" else set()
    if flag in ("--image-size", "--write"):
        args = ["build", "coatnet0", "--estimate", flag, value]
        check_contract(capsys, args, root, allowed=wrote)
    args = ["scale", "coatnet0", "--budget", "1G", "--write", str(out), "--json"]
    if flag == "--budget":
        args[3] = value
    elif flag != "--write":
        args += [flag, value]
    check_contract(capsys, args, root, allowed={"out.yaml"})


SEED_SPECS = [
    *sorted((ROOT / "specs").glob("*.yaml")),
    ROOT / "coatnet_nas" / "specs" / "search" / "default.yaml",
]


@FUZZ
@given(
    st.sampled_from(SEED_SPECS),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), max_size=4),
    st.integers(0, 10**6),
)
def test_corrupted_files(tmp_path_factory, capsys, seed, flips, cut):
    """Truncated and bit-flipped copies of real specs and spaces: clean errors or success."""
    raw = bytearray(seed.read_bytes())
    for pos, bit in flips:
        raw[pos % len(raw)] ^= 1 << bit
    raw = raw[: cut % (len(raw) + 1)]
    root = tmp_path_factory.mktemp("corrupt")
    path = root / "file.yaml"
    path.write_bytes(bytes(raw))
    check_contract(capsys, ["validate", str(path)], root)
    try:
        data = parse_yaml(bytes(raw).decode("utf-8", "replace"), "file.yaml")
        if isinstance(data, dict):
            space_from_dict(data, "file.yaml")
    except SpecError as exc:
        assert len(str(exc)) <= 1_500


# --- the layout automaton against Python's re, on small lengths ---------------------------------

ATOMS = st.sampled_from(["C", "T", ".", "[CT]", "[^C]", "c", "(C|T)", "(?:CT)", "(TC|C)"])
QUANTS = st.sampled_from(["", "", "*", "+", "?", "{2}", "{1,3}", "{,2}", "{2,}", "*?"])


@st.composite
def patterns(draw) -> str:
    parts = [draw(ATOMS) + draw(QUANTS) for _ in range(draw(st.integers(1, 4)))]
    text = "".join(parts)
    if draw(st.booleans()):
        text = f"({text})" + draw(QUANTS)
    if draw(st.booleans()):
        text = text + "|" + draw(ATOMS) + draw(QUANTS)
    return text


@settings(derandomize=True, deadline=None, max_examples=150, phases=[Phase.generate])
@given(patterns(), st.lists(st.integers(1, 6), min_size=1, max_size=2))
def test_pattern_language_matches_re_enumeration(pattern, lengths):
    letters = ["C", "T"]
    regex = re.compile(pattern.upper())
    rank = {x: i for i, x in enumerate(letters)}
    expected = [
        c
        for n in sorted(set(lengths))
        for c in itertools.product(sorted(letters), repeat=n)
        if regex.fullmatch("".join(c))
    ]
    expected.sort(key=lambda c: (len(c), sum(rank[x] for x in c), c))
    lang = LayoutLanguage(pattern, lengths, letters)
    assert lang.count == len(expected)
    assert lang.layouts() == ["-".join(c) for c in expected]


@FUZZ
@given(st.text(alphabet="CTX.*+?{}[]()|^$,-0123456789\\:=!", max_size=25))
def test_any_pattern_text_parses_or_raises_pattern_error(text):
    try:
        lang = LayoutLanguage(text, [4], ["C", "T"])
    except PatternError as exc:
        assert len(str(exc)) <= 300
    else:
        assert 0 <= lang.count <= 16


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
