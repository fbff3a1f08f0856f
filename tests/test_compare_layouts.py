"""``coatnet compare`` without training: layout words, iso-FLOPs fitting, rankings, the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coatnet_nas.compare import (
    PAPER_RANKINGS,
    CompareConfig,
    Ranking,
    Regime,
    RunStore,
    Stat,
    compare_with_paper,
    fit_layouts,
    instantiate,
    parse_layouts,
    parse_regimes,
    vit_stride,
)
from coatnet_nas.cli.errors import user_message
from coatnet_nas.compare.analysis import paper_relation, relation
from coatnet_nas.cost import estimate_cost
from coatnet_nas.errors import CoatnetError
from coatnet_nas.scaling import scale_spec
from coatnet_nas.spec import load_spec, spec_from_dict
from tests.conftest import SPECS

ALL = "C-C-C-C,C-C-C-T,C-C-T-T,C-T-T-T,ViT"
TINY = {
    "name": "tiny", "layout": "C-C-T-T", "depths": [1, 1, 1, 2, 1],
    "widths": [16, 16, 32, 64, 128], "image_size": 32, "num_classes": 10,
    "transformer": {"head_dim": 16, "mlp_ratio": 3},
}  # fmt: skip


@pytest.fixture
def tiny():
    return spec_from_dict(TINY)


# --- layout words ------------------------------------------------------------------------------
def test_layout_words_are_normalized() -> None:
    layouts = parse_layouts("cctt, C-T-T-T ,vit_rel,ViT/8", stages=4)
    assert [layout.name for layout in layouts] == ["C-C-T-T", "C-T-T-T", "ViT", "ViT/8"]
    assert [layout.vit for layout in layouts] == [False, False, True, True]
    assert layouts[3].vit_stride == 8 and layouts[2].vit_stride is None


@pytest.mark.parametrize(
    ("words", "needle"),
    [
        ("C-C-X-T", "unknown stage type 'X'"),
        ("C-C-T", "3 stage(s) given but the base spec has 4"),
        ("ViT/3", "even number >= 4"),
        ("C-C-T-T,cctt", "listed twice"),
        (" , ", "at least one layout"),
    ],
)
def test_bad_layout_words_are_user_errors(words: str, needle: str) -> None:
    with pytest.raises(CoatnetError) as info:
        parse_layouts(words, stages=4)
    assert "--layouts" in user_message(info.value)  # the library names the parameter, not a flag
    assert needle in str(info.value)


def test_instantiate_swaps_types_and_keeps_shape_and_options(tiny) -> None:
    (layout,) = parse_layouts("C-T-T-T", stages=4)
    spec = instantiate(tiny, layout)
    assert spec.layout == "C-T-T-T"
    assert spec.depths == tiny.depths
    assert spec.widths == tiny.widths  # 32 is already a multiple of head_dim 16
    assert spec.stages[1].options == tiny.stages[2].options  # T options come from the base
    assert spec.stages[0].options == tiny.stages[0].options


def test_vit_is_a_patch_stem_and_one_deep_t_stage(tiny) -> None:
    (layout,) = parse_layouts("ViT", stages=4)
    spec = instantiate(tiny, layout)
    assert spec.stem.kind == "patch" and spec.layout == "T"
    assert spec.stages[0].depth == sum(tiny.depths[1:])  # ViT depth = base's total stage depth
    assert spec.stages[0].options.head_dim == 16
    assert spec.resolutions()[-1] == (8, 8)  # at 32 px the grid drops to /4: 8x8 tokens


def test_vit_stride_is_the_papers_16_unless_the_grid_gets_too_small() -> None:
    assert vit_stride((224, 224)) == 16  # 14x14 tokens, as ViT_REL in the paper
    assert vit_stride((64, 64)) == 8
    assert vit_stride((32, 32)) == 4
    assert vit_stride((32, 32), requested=8) == 8
    with pytest.raises(CoatnetError, match="not divisible"):
        vit_stride((36, 36), requested=8)


# --- iso-FLOPs fitting -------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [700_000, 1_000_000, 2_000_000, 3_000_000])
def test_tiny_budgets_are_met_within_5_percent_by_every_layout(tiny, budget: int) -> None:
    entrants = fit_layouts(tiny, parse_layouts(ALL, 4), budget)
    assert [e.name for e in entrants] == ALL.split(",")
    for e in entrants:
        flops = estimate_cost(e.spec).flops
        assert flops == e.flops and e.budget == budget
        assert 0.95 * budget <= flops <= budget, (e.name, flops / budget)
        assert e.params == estimate_cost(e.spec).params
    assert len({e.spec.layout for e in entrants}) == 5


def test_paper_scale_budget_and_default_budget() -> None:
    base = load_spec(SPECS / "coatnet0.yaml")
    entrants = fit_layouts(base, parse_layouts(ALL, 4), 4_200_000_000)
    for e in entrants:
        assert 0.95 <= e.flops_ratio <= 1.0, (e.name, e.flops_ratio)
    vit = entrants[-1].spec
    assert vit.stem.patch_size == 8 and vit.resolutions()[-1] == (14, 14)
    # Without a budget the base's own cost is the budget: C-C-T-T fits to (almost) itself.
    proxy = scale_spec(base.with_image_size(32), 1.0, 0.5)
    (cctt,) = fit_layouts(proxy, parse_layouts("C-C-T-T", 4))
    assert cctt.budget == estimate_cost(proxy).flops and cctt.flops_ratio >= 0.98


def test_budget_below_the_smallest_vit_is_a_user_error(tiny) -> None:
    with pytest.raises(CoatnetError, match="layout ViT"):
        fit_layouts(tiny, parse_layouts("ViT", 4), 50_000)


# --- regimes and config ----------------------------------------------------------------------
def test_regimes_parse_and_reject_bad_input() -> None:
    assert parse_regimes("small=0.1, full=1") == (Regime("small", 0.1), Regime("full", 1.0))
    for bad in ("small=0", "small=1.5", "small", "=0.5", "a=0.1,a=0.2", ""):
        with pytest.raises(CoatnetError) as info:
            parse_regimes(bad)
        assert "--regimes" in user_message(info.value)


def test_fingerprint_leaves_out_the_run_axes(tiny) -> None:
    a = CompareConfig(base=tiny, layouts=("C-C-T-T",), seeds=(0,))
    b = CompareConfig(base=tiny, layouts=("C-C-T-T", "ViT"), seeds=(0, 1, 2))
    assert a.fingerprint() == b.fingerprint()  # adding layouts/seeds reuses finished runs
    c = CompareConfig(base=tiny, flops=10**6)
    assert c.fingerprint() != a.fingerprint()


# --- rankings and the paper --------------------------------------------------------------------
def _ranking(name: str, means: dict[str, float], std: float, higher: bool) -> Ranking:
    order = sorted(means, key=lambda k: -means[k] if higher else means[k])
    stats = [(k, Stat(means[k], std, 2)) for k in order]
    return Ranking(name, "r", "m", higher, stats)


def test_ties_are_differences_within_seed_spread() -> None:
    a, b = Stat(0.80, 0.01, 2), Stat(0.79, 0.01, 2)
    assert relation(a, b, higher_is_better=True) == "≈"  # 0.01 < hypot(0.01, 0.01)
    assert relation(a, Stat(0.70, 0.01, 2), higher_is_better=True) == ">"
    assert relation(Stat(1.0, 0.0, 1), Stat(0.5, 0.0, 1), higher_is_better=False) == "<"
    assert Stat.of([0.5, None, float("nan"), 0.7]).n == 2


def test_paper_relations_are_read_from_its_chains() -> None:
    chain = PAPER_RANKINGS["generalization"]
    assert paper_relation(chain, "C-C-C-C", "C-C-C-T") == "≈"
    assert paper_relation(chain, "C-C-C-T", "C-C-T-T") == "≥"
    assert paper_relation(chain, "C-C-C-C", "ViT") == ">"


def test_measuring_the_papers_order_agrees_and_a_swap_is_reported() -> None:
    means = {"C-C-C-C": 0.90, "C-C-C-T": 0.90, "C-C-T-T": 0.85, "C-T-T-T": 0.80, "ViT/8": 0.5}
    check = compare_with_paper(_ranking("generalization", means, 0.001, True), vit_name="ViT/8")
    assert check.counts() == {"agree": 10, "tie": 0, "ordered": 0, "reversed": 0}
    losses = {"C-C-T-T": 0.3, "C-T-T-T": 0.3, "ViT": 0.4, "C-C-C-T": 0.35, "C-C-C-C": 0.6}
    check = compare_with_paper(_ranking("capacity", losses, 0.001, False), vit_name="ViT")
    assert check.counts()["reversed"] == 1  # C-C-C-T beat ViT on train loss
    assert "C-C-C-T > ViT" in check.sentence()
    assert check.measured.startswith("C-C-T-T ≈ C-T-T-T")


# --- the results file --------------------------------------------------------------------------
def test_store_drops_a_torn_line_and_refuses_other_settings(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "out")
    assert store.open({"budget": 1}) == {}
    store.append({"key": "a", "value": 1})
    store.append({"key": "b", "value": 2})
    with store.runs_path.open("a") as f:
        f.write('{"key": "c", "val')  # killed mid-write
    assert set(store.open({"budget": 1})) == {"a", "b"}
    store.append({"key": "c", "value": 3})  # appends cleanly after the cut
    lines = store.runs_path.read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["a", "b", "c"]
    with pytest.raises(CoatnetError, match=r"other settings \(budget\)"):
        store.open({"budget": 2})
    assert store.open({"budget": 2}, fresh=True) == {}
