"""Builder: every shipped spec builds and runs at two image sizes; stage outputs are exposed."""

from __future__ import annotations

import pytest
import torch

from coatnet_nas.builder import build_model
from coatnet_nas.spec import load_spec, spec_from_dict
from tests.conftest import SPECS

MODEL_SPECS = sorted(p for p in SPECS.rglob("*.yaml") if "search" not in p.parts)


@pytest.mark.parametrize("path", MODEL_SPECS, ids=lambda p: str(p.relative_to(SPECS)))
@pytest.mark.parametrize("size", [32, 64])
def test_every_spec_builds_and_runs(path, size):
    # Shipped specs are full-size; a 1/8-width, depth-1 copy keeps the test fast while exercising
    # the same layout, options and resolution bookkeeping at two image sizes.
    spec = load_spec(path)
    small = spec.evolve(
        image_size=size,
        num_classes=7,
        stem={"depth": spec.stem.depth, "width": 16},
        stages=[
            {"type": s.type, "depth": min(s.depth, 2), "width": 32 * (i + 1), "options": s.options}
            for i, s in enumerate(spec.stages)
        ],
    )
    model = build_model(small).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert model(x).shape == (2, 7)
        feats = model.forward_features(x)
    assert len(feats) == len(spec.stages) + 1
    for feat, (h, w), width in zip(feats, small.resolutions(), small.widths, strict=True):
        assert feat.shape == (2, width, h, w)


def test_full_coatnet0_forward_shape_at_two_sizes():
    for size in (224, 160):
        model = build_model(SPECS / "coatnet0.yaml", image_size=size).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, size, size)).shape == (1, 1000)


def test_stochastic_depth_schedule_is_linear(tiny_compact):
    spec = spec_from_dict({**tiny_compact, "drop_path_rate": 0.3})
    model = build_model(spec)
    rates = [m.p for m in model.modules() if type(m).__name__ == "DropPath"]
    assert rates[0] == 0.0
    assert rates[-1] == pytest.approx(0.3)
    assert rates == sorted(rates)


def test_train_step_changes_every_parameter(tiny_compact):
    model = build_model(spec_from_dict(tiny_compact))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 64, 64)), torch.arange(4))
    loss.backward()
    opt.step()
    unchanged = [
        p.shape for p, b in zip(model.parameters(), before, strict=True) if torch.equal(p, b)
    ]
    assert not unchanged


def test_in_chans_and_rectangular_input(tiny_compact):
    spec = spec_from_dict({**tiny_compact, "in_chans": 1, "image_size": [32, 64]})
    model = build_model(spec).eval()
    assert model(torch.randn(1, 1, 32, 64)).shape == (1, 10)


def test_patch_stem_vit_rel_baseline(tmp_path):
    from coatnet_nas.cost import estimate_cost
    from coatnet_nas.profile import profile_model

    spec = spec_from_dict(
        {
            "image_size": 64,
            "num_classes": 5,
            "stem": {"kind": "patch", "patch_size": 8, "depth": 1, "width": 64},
            "stages": [{"type": "T", "depth": 3, "width": 64, "head_dim": 16}],
        }
    )
    assert spec.total_stride == 16 and spec.resolutions() == [(8, 8), (4, 4)]
    model = build_model(spec).eval()
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    assert spec_from_dict(spec.to_dict()) == spec
    prof, cost = profile_model(model), estimate_cost(spec)
    assert (prof.params, prof.flops) == (cost.params, cost.flops)


def test_patch_stem_must_be_one_layer():
    with pytest.raises(Exception, match="single layer"):
        spec_from_dict(
            {
                "image_size": 32,
                "stem": {"kind": "patch", "depth": 2, "width": 8},
                "stages": [{"type": "C", "depth": 1, "width": 8}],
            }
        )
