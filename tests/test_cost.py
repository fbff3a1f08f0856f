"""Closed-form cost model vs the built model and fvcore; budget parsing and fitting."""

from __future__ import annotations

import random

import pytest

from coatnet_nas.builder import build_model
from coatnet_nas.cost import estimate_cost
from coatnet_nas.errors import BudgetError
from coatnet_nas.profile import profile_model
from coatnet_nas.sampling import random_spec
from coatnet_nas.scaling import fit_to_budget, scale_spec
from coatnet_nas.spec import load_spec
from coatnet_nas.units import human, parse_flops, parse_params
from tests.conftest import SPECS

# Tracing cost grows with tokens^2 in attention; resample the heaviest draws to keep CI fast.
# benchmarks/bench_cost.py runs the unrestricted range.
MAX_TRACE_FLOPS = 600e6


def _sampled_specs(n: int, seed: int = 0):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        spec = random_spec(rng)
        if estimate_cost(spec).flops <= MAX_TRACE_FLOPS:
            out.append(spec)
    return out


def test_closed_form_matches_built_model_and_fvcore_on_200_random_specs():
    specs = _sampled_specs(200)
    layouts = {s.layout for s in specs}
    assert len(layouts) > 20 and any("T" in x for x in layouts) and any("C" in x for x in layouts)
    worst = 0.0
    for spec in specs:
        cost = estimate_cost(spec)
        prof = profile_model(build_model(spec))
        assert cost.params == prof.params, spec.to_yaml()
        worst = max(worst, abs(cost.flops - prof.flops) / prof.flops)
        for est, row in zip(cost.stages, prof.stages, strict=True):
            assert (est.name, est.params) == (row.name, row.params)
    assert worst <= 0.005


def test_estimate_at_other_image_size():
    spec = load_spec(SPECS / "coatnet0.yaml")
    assert estimate_cost(spec, 256).flops > estimate_cost(spec).flops
    assert estimate_cost(spec, 256).params > estimate_cost(spec).params  # bias tables grow


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4GFLOPs", 4_000_000_000),
        ("4.2G", 4_200_000_000),
        ("500MFLOPs", 500_000_000),
        ("4e9", 4_000_000_000),
        ("800M", 800_000_000),
        ("1.5 gflops", 1_500_000_000),
        (3e9, 3_000_000_000),
    ],
)
def test_parse_flops(text, value):
    assert parse_flops(text) == value


def test_parse_params():
    assert parse_params("25M") == 25_000_000
    assert parse_params("30Mparams") == 30_000_000
    assert parse_params("500K") == 500_000


@pytest.mark.parametrize("bad", ["4GB", "-1", "abc", "0", "", "nan", "4GFLOPs params"])
def test_bad_budgets_show_accepted_forms(bad):
    with pytest.raises(BudgetError, match="accepted forms: '4GFLOPs'"):
        parse_flops(bad)


def test_human():
    assert human(4_168_216_576) == "4.17G"
    assert human(24_403_252) == "24.40M"
    assert human(999) == "999"


def test_scale_spec_keeps_widths_valid():
    spec = scale_spec(load_spec(SPECS / "coatnet0.yaml"), width_mult=0.25)
    assert spec.widths == (16, 24, 48, 96, 192)
    odd = scale_spec(load_spec(SPECS / "coatnet0.yaml"), width_mult=0.3, depth_mult=0.5)
    assert all(s.width % 32 == 0 for s in odd.stages if s.type == "T")
    assert all(w % 8 == 0 for w in odd.widths)
    assert min(odd.depths) >= 1


@pytest.mark.parametrize("vary", ["widths", "depths", "both"])
def test_fit_to_budget_lands_close_under(vary):
    spec = load_spec(SPECS / "coatnet1.yaml")
    fitted = fit_to_budget(spec, flops=4_000_000_000, vary=vary)
    flops = estimate_cost(fitted).flops
    assert 3.8e9 <= flops <= 4e9
    assert fitted == fit_to_budget(spec, flops=4_000_000_000, vary=vary)  # deterministic


def test_fit_to_budget_honours_params_and_grows_small_specs():
    spec = load_spec(SPECS / "coatnet0.yaml")
    fitted = fit_to_budget(spec, flops=8e9, params=30e6)
    cost = estimate_cost(fitted)
    assert cost.params <= 30e6 and cost.flops <= 8e9
    assert cost.params > 27e6 or cost.flops > 7.6e9  # one of the two budgets binds


def test_fit_to_budget_impossible():
    with pytest.raises(BudgetError, match="cannot be met"):
        fit_to_budget(load_spec(SPECS / "coatnet0.yaml"), flops=1000)


def test_binding_limit_names_the_budget_that_stopped_the_fit() -> None:
    from coatnet_nas.scaling import binding_limit

    base = load_spec("specs/coatnet0.yaml")
    capped = fit_to_budget(base, flops=8_000_000_000, params=30_000_000, vary="both")
    assert binding_limit(capped, 8_000_000_000, 30_000_000) == "params"
    assert estimate_cost(capped).flops < 0.9 * 8_000_000_000
    free = fit_to_budget(base, flops=2_000_000_000, params=300_000_000)
    assert binding_limit(free, 2_000_000_000, 300_000_000) == "flops"
    assert binding_limit(free, 2_000_000_000, None) == "flops"
