"""Profiler: SDPA is counted, per-stage rows add up, the paper's numbers are matched."""

from __future__ import annotations

import pytest

from coatnet_nas.builder import build_model
from coatnet_nas.profile import count_flops, profile_model
from coatnet_nas.spec import spec_from_dict
from tests.conftest import SPECS


def test_sdpa_and_explicit_attention_profile_the_same(tiny_compact):
    import torch

    model = build_model(spec_from_dict(tiny_compact)).eval()
    x = torch.randn(1, 3, 64, 64)
    fused = count_flops(model, x)
    model.set_fused_attention(False)
    explicit = count_flops(model, x)
    assert fused == explicit
    # and attention is really in there: the T stages cost more than their linears alone
    assert fused > 0


def test_stage_rows_add_up(tiny_compact):
    prof = profile_model(spec_from_dict(tiny_compact))
    assert [r.name for r in prof.stages] == ["S0", "S1", "S2", "S3", "S4", "head"]
    assert sum(r.params for r in prof.stages) == prof.params
    assert sum(r.flops for r in prof.stages) == prof.flops
    assert prof.stages[3].resolution == (4, 4)
    assert all(
        isinstance(v, int)
        for v in prof.to_dict()["stages"][0].values()
        if not isinstance(v, (str, list))
    )


def test_profiling_a_spec_skips_weight_init_but_counts_the_same(tiny_compact):
    import torch

    spec = spec_from_dict(tiny_compact)
    initialized, raw = build_model(spec), build_model(spec, initialize=False)
    assert [(n, p.shape) for n, p in initialized.named_parameters()] == [
        (n, p.shape) for n, p in raw.named_parameters()
    ]
    # PyTorch's default Linear init is uniform(+-1/sqrt(fan_in)); ours is trunc-normal std 0.02
    assert raw.head.fc.weight.abs().max() > 0.1 > initialized.head.fc.weight.abs().max()
    assert profile_model(raw).to_dict() == profile_model(initialized).to_dict()
    assert profile_model(spec).to_dict() == profile_model(initialized).to_dict()
    assert torch.isfinite(raw(torch.randn(1, 3, 64, 64))).all()


# The paper's table (Dai et al., 2021): params, FLOPs at 224.
PAPER = {"coatnet0": (25e6, 4.2e9), "coatnet1": (42e6, 8.4e9), "coatnet2": (75e6, 15.7e9)}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_params_and_flops_within_5_percent(name):
    prof = profile_model(SPECS / f"{name}.yaml")
    params, flops = PAPER[name]
    assert prof.params == pytest.approx(params, rel=0.05)
    assert prof.flops == pytest.approx(flops, rel=0.05)
