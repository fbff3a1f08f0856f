"""``coatnet compare`` without training: layout words, iso-FLOPs fitting, rankings, the store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coatnet_nas.cli import command
from coatnet_nas.cli.errors import user_message as _user_message
from coatnet_nas.compare import (
    DEFAULT_TRAIN,
    PAPER_RANKINGS,
    CompareConfig,
    CompareRecipe,
    Holdout,
    Ranking,
    Recipe,
    Regime,
    RunStore,
    Stat,
    Vary,
    compare_with_paper,
    fit_layouts,
    instantiate,
    natural_image_size,
    parse_layouts,
    parse_regimes,
    vit_stride,
)
from coatnet_nas.compare import job as job_module
from coatnet_nas.compare.analysis import paper_relation, relation
from coatnet_nas.compare.config import canonical_fingerprint
from coatnet_nas.cost import estimate_cost
from coatnet_nas.errors import CoatnetError
from coatnet_nas.scaling import scale_spec
from coatnet_nas.spec import load_spec, spec_from_dict
from coatnet_nas.train import TrainRecipe
from tests.conftest import SPECS


def user_message(exc: CoatnetError) -> str:
    """The message as ``coatnet compare`` prints it."""
    return _user_message(exc, command("compare"))


ALL = "C-C-C-C,C-C-C-T,C-C-T-T,C-T-T-T,ViT"
TINY = {
    "name": "tiny",
    "layout": "C-C-T-T",
    "depths": [1, 1, 1, 2, 1],
    "widths": [16, 16, 32, 64, 128],
    "image_size": 32,
    "num_classes": 10,
    "transformer": {"head_dim": 16, "mlp_ratio": 3},
}


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


# --- the recipe, the enums and the default image size -------------------------------------------
OLD_RECIPE = {  # how results folders written before TrainRecipe stored the compare recipe
    "epochs": 3,
    "steps": None,
    "batch_size": 128,
    "lr": 0.002,
    "weight_decay": 0.05,
    "warmup": 0.05,
    "label_smoothing": 0.1,
    "drop_path_rate": 0.0,
    "augment": True,
    "train_eval_images": 2000,
}


def test_default_recipe_keeps_the_old_effective_training_settings() -> None:
    recipe = CompareRecipe()
    assert recipe.to_dict() == {**recipe.to_dict(), **OLD_RECIPE}
    # Settings the old recipe never passed took the trainer's defaults, which stay in force.
    train = recipe.train
    assert (train.precise_bn, train.grad_clip, train.final_lr_scale, train.seconds) == (
        8,
        1.0,
        0.01,
        None,
    )
    with pytest.warns(DeprecationWarning):
        old = Recipe(epochs=None, steps=2, batch_size=32, train_eval_images=64)
    assert old == CompareRecipe(
        TrainRecipe(epochs=None, steps=2, batch_size=32, drop_path_rate=0.0), 64
    )
    with pytest.raises(CoatnetError, match="epochs and/or steps") as info:
        CompareRecipe(TrainRecipe(epochs=None, seconds=60))
    assert info.value.param == "epochs"
    with pytest.raises(CoatnetError) as info:
        CompareRecipe(train_eval_images=0)
    assert "--train-eval-images must be >= 1" in user_message(info.value)


def test_an_old_stored_recipe_with_equal_values_resumes(tiny, tmp_path: Path) -> None:
    config = CompareConfig(base=tiny, layouts=("C-C-T-T",), seeds=(0,))
    old = {**config.fingerprint(), "recipe": OLD_RECIPE}
    store = RunStore(tmp_path / "out")
    store.open(old)
    store.append({"key": "a", "value": 1})
    assert store.open(config.fingerprint(), canonical=canonical_fingerprint) == {
        "a": {"key": "a", "value": 1}
    }
    changed = CompareConfig(
        base=tiny, recipe=CompareRecipe(DEFAULT_TRAIN.evolve(lr=0.01)), seeds=(0,)
    )
    with pytest.raises(CoatnetError, match=r"other settings \(recipe\)") as info:
        store.open(changed.fingerprint(), canonical=canonical_fingerprint)
    assert "start over (--fresh)" in user_message(info.value)
    assert "--" not in str(info.value)


def test_vary_and_holdout_are_enums_validated_once(tiny) -> None:
    config = CompareConfig(base=tiny, vary="depths", holdout="test")
    assert config.vary is Vary.DEPTHS and config.holdout is Holdout.TEST
    assert config.fingerprint()["vary"] == "depths" and config.fingerprint()["holdout"] == "test"
    for field, value in (("vary", "sideways"), ("holdout", "train")):
        with pytest.raises(CoatnetError) as info:
            CompareConfig(base=tiny, **{field: value})
        assert info.value.param == field
        assert user_message(info.value).startswith(f"--{field} must be one of")


def test_natural_image_size_rounds_the_native_size_up_to_the_total_stride(
    tiny, monkeypatch
) -> None:
    choice = natural_image_size(tiny, "synthetic:100")
    assert choice.size == (32, 32) and choice.native == (32, 32) and choice.stride == 32

    class Raw:  # Fashion-MNIST's shape, without needing its files
        train_images = np.zeros((4, 1, 28, 28), dtype=np.uint8)

    monkeypatch.setattr(job_module, "load_raw", lambda name, data_dir=None: Raw())
    choice = natural_image_size(tiny, "fashion-mnist")
    assert choice.size == (32, 32) and choice.native == (28, 28)
    folder = natural_image_size(tiny.with_image_size((64, 64)), "folder:/nowhere")
    assert folder.size == (64, 64) and folder.native is None


def test_the_paper_check_reads_in_plain_words() -> None:
    losses = {"C-C-T-T": 0.3, "C-T-T-T": 0.5}
    check = compare_with_paper(_ranking("capacity", losses, 0.001, False))
    assert check.sentence() == (
        "capacity: the paper's ordering holds for 0 of 1 pair; for 1 pair the paper reports no "
        "difference but this run found one."
    )
    assert Stat(0.5, 0.0, 1).fmt(3) == "0.500" and Stat(0.5, 0.1, 2).fmt(1, 100) == "50.0 ± 10.0"
