"""A new block type, defined entirely in this file, works end to end: spec -> build -> cost ->
profile -> CLI -> search space. This is the recipe the README's "add a block type" points to."""

from __future__ import annotations

import json
from collections.abc import Sequence

import optuna
import pytest
import torch
from pydantic import Field
from torch import nn

from coatnet_nas.blocks import cost as C
from coatnet_nas.blocks.base import StageLike
from coatnet_nas.blocks.layers import DropPath
from coatnet_nas.builder import build_model
from coatnet_nas.cli import run
from coatnet_nas.cost import estimate_cost
from coatnet_nas.errors import SpecError
from coatnet_nas.profile import profile_model
from coatnet_nas.registry import (
    BlockOptions,
    BlockType,
    block_types,
    register_block_type,
    unregister_block_type,
)
from coatnet_nas.search.space import load_space
from coatnet_nas.spec import StageSpec, spec_from_dict
from tests.conftest import write


# --- the new block type: a plain grouped-conv stage ----------------------------------------
class PlainConvOptions(BlockOptions):
    """Options of the test's plain conv stage; widths must divide into the conv groups."""

    kernel_size: int = Field(3, ge=1, le=7)
    groups: int = Field(1, ge=1, le=64)

    def width_multiple(self) -> int:
        return self.groups


class PlainConvStage(nn.Module):
    """A stride-2 kxk conv + BN + GELU, then (depth - 1) residual grouped kxk conv + BN."""

    def __init__(self, in_ch: int, stage: StageLike, drop_path_rates: Sequence[float]):
        super().__init__()
        k, g = stage.options.kernel_size, stage.options.groups
        self.down = nn.Sequential(
            nn.Conv2d(in_ch, stage.width, k, stride=2, padding=k // 2, bias=False),
            nn.BatchNorm2d(stage.width),
            nn.GELU(),
        )
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(stage.width, stage.width, k, padding=k // 2, groups=g, bias=False),
                nn.BatchNorm2d(stage.width),
            )
            for _ in range(stage.depth - 1)
        )
        self.drops = nn.ModuleList(DropPath(p) for p in drop_path_rates[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        for block, drop in zip(self.blocks, self.drops, strict=True):
            x = x + drop(block(x))
        return x


def build_plain_conv(
    in_ch: int, stage: StageLike, in_size: tuple[int, int], drop_path_rates: Sequence[float]
) -> nn.Module:
    return PlainConvStage(in_ch, stage, drop_path_rates)


def plain_conv_cost(in_ch: int, stage: StageLike, in_size: tuple[int, int]) -> C.LayerCost:
    k, g = stage.options.kernel_size, stage.options.groups
    pixels = (in_size[0] // 2) * (in_size[1] // 2)
    first = C.conv(in_ch, stage.width, k, pixels) + C.batch_norm(stage.width, pixels)
    rest = C.conv(stage.width, stage.width, k, pixels, groups=g) + C.batch_norm(stage.width, pixels)
    return first + rest * (stage.depth - 1)


PLAIN_CONV = BlockType(
    letter="M",
    key="plainconv",
    description="plain grouped-conv stage (defined in tests/test_extending.py)",
    options=PlainConvOptions,
    build=f"{__name__}:build_plain_conv",
    cost=f"{__name__}:plain_conv_cost",
)

SPEC = {
    "name": "tiny-m",
    "layout": "C-M-M",
    "depths": [1, 1, 2, 3],
    "widths": [16, 24, 32, 48],
    "image_size": 32,
    "num_classes": 10,
    "plainconv": {"groups": 8},
}


@pytest.fixture
def plain_conv():
    """Register ``M`` for one test and leave the registry exactly as it was."""
    before = block_types()
    previous = unregister_block_type("M")
    register_block_type(PLAIN_CONV)
    yield PLAIN_CONV
    unregister_block_type("M")
    if previous is not None:
        register_block_type(previous)
    assert block_types() == before


# --- the tests -----------------------------------------------------------------------------
def test_unregistered_letter_is_unknown():
    assert "M" not in block_types()
    with pytest.raises(SpecError, match="unknown stage type 'M'"):
        spec_from_dict(SPEC)


def test_spec_validates_with_the_new_options(plain_conv):
    spec = spec_from_dict(SPEC, source="tiny-m")
    assert spec.layout == "C-M-M"
    assert isinstance(spec.stages[1].options, PlainConvOptions)
    assert spec.stages[1].options.groups == 8 and spec.stages[1].options.kernel_size == 3
    assert isinstance(spec.stages[1], StageLike)  # the spec's stage is what builders read
    # The explicit form with a per-stage override, and the type's own width rule reported at
    # the field the user wrote.
    explicit = spec_from_dict(
        {
            "image_size": 32,
            "stem": {"depth": 1, "width": 16},
            "stages": [
                {"type": "M", "depth": 1, "width": 32},
                {"type": "m", "depth": 2, "width": 48, "groups": 4, "kernel_size": 5},
            ],
        }
    )
    assert [s.options for s in explicit.stages] == [
        PlainConvOptions(),
        PlainConvOptions(groups=4, kernel_size=5),
    ]
    with pytest.raises(SpecError, match=r"widths\[3\].*not a multiple of 32"):
        spec_from_dict({**SPEC, "plainconv": {"groups": 32}})
    with pytest.raises(SpecError, match="unknown key 'group'"):
        spec_from_dict({**SPEC, "plainconv": {"group": 8}})


def test_build_forward_and_closed_form_cost_agree(plain_conv):
    spec = spec_from_dict({**SPEC, "plainconv": {"groups": 8, "kernel_size": 5}})
    model = build_model(spec)
    assert isinstance(model.stages[1], PlainConvStage)
    assert len(model.stages[2].blocks) == 2  # depth 3: the downsampling conv + 2 residual
    feats = model.forward_features(torch.randn(2, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 16, 16), (24, 8, 8), (32, 4, 4), (48, 2, 2)]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)

    cost = estimate_cost(spec)
    assert cost.params == sum(p.numel() for p in model.parameters())
    assert [s.type for s in cost.stages] == ["stem", "C", "M", "M", "head"]
    profile = profile_model(spec)
    assert (profile.params, profile.flops) == (cost.params, cost.flops)
    by_stage = {s.name: (s.params, s.flops) for s in profile.stages}
    assert by_stage == {s.name: (s.params, s.flops) for s in cost.stages}


def test_cli_builds_the_new_type(plain_conv, tmp_path, capsys):
    path = write(tmp_path, json.dumps(SPEC), "tiny-m.yaml")  # JSON is YAML
    assert run(["validate", str(path)]) == 0
    assert "C-M-M" in capsys.readouterr().out
    assert run(["build", str(path), "--estimate", "--json"]) == 0
    est = json.loads(capsys.readouterr().out)
    assert [s["type"] for s in est["stages"]] == ["stem", "C", "M", "M", "head"]
    assert est["params"] == sum(p.numel() for p in build_model(spec_from_dict(SPEC)).parameters())


SPACE = """name: with-m
layouts: {pattern: "C+M+", lengths: [3]}   # C-C-M and C-M-M
stem_depth: 1
depths: [[1, 2], [1, 2], [1, 3]]
widths: [[16], [16, 32], [32, 64], [64, 96]]
plainconv:
  groups: [8, 16]
  kernel_size: [3, 5]
target: {image_size: 32, num_classes: 10}
proxy: {dataset: "synthetic:64", image_size: 16}
"""


def test_search_space_samples_the_new_type(plain_conv, tmp_path):
    space = load_space(write(tmp_path, SPACE, "space.yaml"))
    assert space.layout_choices() == ["C-C-M", "C-M-M"]
    assert space.options["plainconv"] == {"groups": (8, 16), "kernel_size": (3, 5)}

    fixed = optuna.trial.FixedTrial(
        {
            "layout": "C-M-M",
            "depth_s1": 2,
            "depth_s2": 1,
            "depth_s3": 3,
            "width_s1": 16,
            "width_s2": 32,
            "width_s3": 96,
            "plainconv.groups": 16,
            "plainconv.kernel_size": 5,
        }
    )
    spec = space.sample(fixed)
    assert spec.layout == "C-M-M" and spec.depths == (1, 2, 1, 3)
    assert spec.widths == (16, 16, 32, 96)
    assert spec.stages[2].options == PlainConvOptions(groups=16, kernel_size=5)
    assert estimate_cost(spec).params == sum(p.numel() for p in build_model(spec).parameters())

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    layouts = set()
    for _ in range(12):
        trial = study.ask()
        sampled = space.sample(trial)
        study.tell(trial, 0.0)
        layouts.add(sampled.layout)
        assert all(isinstance(s, StageSpec) for s in sampled.stages)
        assert all(s.width % s.options.groups == 0 for s in sampled.stages if s.type == "M")
    assert layouts == {"C-C-M", "C-M-M"}
