"""Search spaces: YAML validation, pattern layouts, sampling valid specs."""

from __future__ import annotations

import optuna
import pytest

from coatnet_nas import registry
from coatnet_nas.blocks.options import BlockOptions
from coatnet_nas.cost import estimate_cost
from coatnet_nas.errors import CoatnetError, SpecError
from coatnet_nas.registry import BlockType
from coatnet_nas.search.space import load_space, space_from_dict
from tests.conftest import tiny_space, write


def test_default_space_loads_and_expands_pattern():
    space = load_space()
    assert space.layout_choices() == ["C-C-C-C", "C-C-C-T", "C-C-T-T", "C-T-T-T"]
    assert space.budget.flops == 4_000_000_000
    assert space.proxy.dataset == "fashion-mnist"


def test_sampled_specs_are_valid_and_seeded():
    space = load_space()

    def draw(seed):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        specs = []
        for _ in range(20):
            trial = study.ask()
            specs.append(space.sample(trial))
            study.tell(trial, 0.0)
        return specs

    first, again = draw(3), draw(3)
    assert first == again
    layouts = {s.layout for s in first}
    assert len(layouts) >= 3
    for spec in first:
        assert spec.image_size == (224, 224) and spec.num_classes == 1000
        assert estimate_cost(spec).flops > 0
        assert all(s.width % 32 == 0 for s in spec.stages if s.type == "T")


def test_layout_pattern_lengths():
    space = space_from_dict(tiny_space() | {"layouts": {"pattern": "C*T+", "lengths": [2]}})
    assert space.layout_choices() == ["C-T", "T-T"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"widths": [[16], [32], [48]]}, "not divisible by head_dim 32"),
        (
            {"widths": [[16], [32], [48]]},
            "field 'widths[2]': choice 48 does not suit stage 2 as a T stage "
            "(transformer default options)",
        ),
        (
            {"transformer": {"head_dim": [32, 64]}},
            "field 'widths[1]': choice 32 does not suit stage 1 as a T stage "
            "(transformer head_dim=64)",
        ),
        ({"mbconv": {"kernel_size": [3, 4]}}, "C stage (mbconv kernel_size=4): kernel_size must"),
        ({"depths": [[1, 2]]}, "layouts must have 1 stages"),
        ({"depths": [[2, 1], [1, 1]]}, "field 'depths[0]': need 1 <= low <= high"),
        ({"layouts": ["C-X"]}, "unknown stage type 'X'"),
        (
            {"mbconv": {"expand_ration": [4]}},
            "unknown key 'expand_ration' (did you mean 'expand_ratio'?)",
        ),
        ({"budget": {"flops": "4GB"}}, "accepted forms"),
        ({"bogus": 1}, "bogus"),
        ({"target": {"image_size": 68}}, "field 'target.image_size': 68 cannot be divided"),
    ],
)
def test_bad_spaces_name_the_field(tmp_path, change, needle):
    import yaml

    path = write(tmp_path, yaml.safe_dump(tiny_space() | change), "space.yaml")
    with pytest.raises(SpecError) as info:
        load_space(path)
    assert "space.yaml" in str(info.value)
    assert needle in str(info.value)


def test_proxy_overrides_are_validated_and_named():
    space = load_space(None)
    assert space.with_proxy(dataset=None, subset=None) is space  # nothing given, nothing changed
    faster = space.with_proxy(subset=0.1, epochs=2)
    assert (faster.proxy.subset, faster.proxy.epochs) == (0.1, 2)
    assert faster.proxy.batch_size == space.proxy.batch_size and space.proxy.subset == 0.2
    with pytest.raises(
        CoatnetError, match=r"proxy override subset=2: subset: .*less than or equal to 1"
    ):
        space.with_proxy(subset=2)


class _Grouped(BlockOptions):
    """Options of a made-up block type whose widths must be multiples of 24."""

    def width_multiple(self) -> int:
        return 24


def test_width_rules_come_from_each_block_type(monkeypatch):
    # A new stage letter brings its own width rule; the space asks it, nothing is hard-coded.
    grouped = BlockType(
        letter="X",
        key="grouped",
        description="test-only block type",
        options=_Grouped,
        build="coatnet_nas.blocks.mbconv:build_stage",
        cost="coatnet_nas.blocks.mbconv:stage_cost",
    )
    monkeypatch.setitem(registry._BLOCK_TYPES, "X", grouped)
    fits = tiny_space() | {"layouts": ["C-X", "C-C"], "widths": [[16], [32], [48, 96]]}
    assert space_from_dict(fits).layout_choices() == ["C-X", "C-C"]
    with pytest.raises(SpecError) as info:
        space_from_dict(fits | {"widths": [[16], [32], [48, 36]]})
    message = str(info.value)
    assert "field 'widths[2]': choice 36 does not suit stage 2 as a X stage" in message
    assert "not a multiple of 24" in message
