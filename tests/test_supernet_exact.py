"""A sub-network with inherited weights computes what the model built from its spec computes."""

from __future__ import annotations

import random

import pytest
import torch

from coatnet_nas import build_model
from coatnet_nas.errors import CoatnetError
from coatnet_nas.search import space_from_dict
from coatnet_nas.supernet import Supernet, elastic_space, extract, subnet

SPACE = {
    "name": "tiny",
    "layouts": ["C-C-T", "C-T-T", "C-C-C"],
    "stem_depth": [1, 2],
    "depths": [[1, 2], [1, 3], [1, 2]],
    "widths": [[8, 16], [16, 32], [32, 48], [32, 64]],
    "mbconv": {
        "expand_ratio": [2, 4],
        "kernel_size": [3, 5],
        "se_ratio": [0, 0.25],
        "pool": ["avg", "max"],
    },
    "transformer": {"head_dim": [8, 16], "mlp_ratio": [2, 4], "pool": ["avg", "max"]},
    "target": {"image_size": 32, "num_classes": 10},
    "budget": {"flops": "1GFLOPs"},
}


def tiny_space():
    return elastic_space(space_from_dict(SPACE), image_size=(32, 32), num_classes=10, in_chans=3)


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    net = Supernet(tiny_space())
    net.train()
    rng = random.Random(1)
    with torch.no_grad():  # move BatchNorm statistics away from their initial values
        for _ in range(4):
            net(torch.randn(8, 3, 32, 32), net.space.sample(rng))
    return net.eval()


def _specs(space):
    rng = random.Random(0)
    specs = [space.extreme(x, largest=True) for x in space.layouts]
    specs += [space.extreme(x, largest=False) for x in space.layouts]
    specs += [space.sample(rng) for _ in range(10)]
    return specs


def test_both_block_types_share_a_position(supernet):
    assert set(supernet.stages[1]) == {"C", "T"} and set(supernet.stages[2]) == {"C", "T"}
    specs = _specs(supernet.space)
    assert {s.stages[1].type for s in specs} == {"C", "T"}
    kernels = {s.stages[0].options.kernel_size for s in specs}
    assert kernels == {3, 5}, "a centre slice and the full kernel are both exercised"


@pytest.mark.parametrize("training", [False, True])
def test_subnetwork_computes_what_the_built_model_computes(supernet, training):
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    for spec in _specs(supernet.space):
        model = build_model(spec)  # its own random init, then the inherited weights
        model.load_state_dict(extract(supernet, spec), strict=True)
        supernet.train(training)
        model.train(training)
        with torch.no_grad():
            mine, theirs = supernet(x, spec), model(x)
        assert torch.allclose(mine, theirs, atol=1e-5, rtol=1e-5), (spec.layout, spec.to_dict())
    supernet.eval()


def test_extraction_round_trip(supernet):
    spec = supernet.space.sample(random.Random(7))
    model = subnet(supernet, spec)
    again = extract(supernet, spec)
    state = model.state_dict()
    assert state.keys() == again.keys()
    assert all(torch.equal(state[k], again[k]) for k in state)
    # copies: changing the extracted model leaves the supernet alone
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert all(torch.equal(v, extract(supernet, spec)[k]) for k, v in again.items())


def test_gradients_reach_only_the_active_slices():
    torch.manual_seed(0)
    net = Supernet(tiny_space())
    spec = net.space.extreme("C-C-C", largest=False)
    net(torch.randn(2, 3, 32, 32), spec).sum().backward()
    assert all(p.grad is None for p in net.stages[1]["T"].parameters())
    grad = net.stages[0]["C"][0].depthwise.weight.grad  # kernel 3 inside the 5x5
    assert grad[:, :, 1:4, 1:4].abs().sum() > 0 and grad[:, :, 0].abs().sum() == 0


def test_a_candidate_outside_the_supernet_is_refused(supernet):
    spec = supernet.space.extreme("C-C-T", largest=True)
    wider = spec.evolve(
        stages=[
            *(s.model_dump() for s in spec.stages[:2]),
            {**spec.stages[2].model_dump(), "width": 128},
        ]
    )
    with pytest.raises(CoatnetError) as err:
        supernet.weights(wider)
    text = str(err.value)
    assert "S3 width 128 > 64" in text and "\n" not in text
    other = spec.evolve(
        stages=[
            {**spec.stages[0].model_dump(), "type": "T", "options": {}},
            *(s.model_dump() for s in spec.stages[1:]),
        ]
    )
    with pytest.raises(CoatnetError, match="S1 is T"):
        supernet.set_active(other)


def test_every_candidate_of_the_default_space_fits_its_supernet():
    from coatnet_nas.proxies.sample import _RandomTrial
    from coatnet_nas.scaling import scale_spec
    from coatnet_nas.search import load_space
    from coatnet_nas.supernet.fit import fit_problems

    space = load_space()
    elastic = elastic_space(
        space, image_size=(32, 32), num_classes=10, in_chans=3, width_mult=space.proxy.width_mult
    )
    rng = random.Random(0)
    for _ in range(200):
        spec = scale_spec(space.sample(_RandomTrial(rng)), space.proxy.width_mult)
        spec = spec.evolve(image_size=32, num_classes=10, in_chans=3)
        assert fit_problems(elastic, spec) == [], spec.to_dict()
        for stage, pos in zip(spec.stages, elastic.stages, strict=False):
            assert stage.width in pos.widths[stage.type]  # a choice the supernet trains
