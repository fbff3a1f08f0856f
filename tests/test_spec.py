"""Spec schema: both YAML forms, normalization, round trips and located errors."""

from __future__ import annotations

import pytest

from coatnet_nas.errors import SpecError
from coatnet_nas.spec import ModelSpec, load_spec, parse_layout, spec_from_dict
from tests.conftest import SPECS, write


def test_compact_and_explicit_forms_normalize_to_the_same_spec(tiny_compact):
    compact = spec_from_dict(tiny_compact)
    explicit = spec_from_dict(
        {
            "name": "tiny",
            "image_size": [64, 64],
            "num_classes": 10,
            "stem": {"depth": 1, "width": 16},
            "stages": [
                {"type": "C", "depth": 1, "width": 16},
                {"type": "C", "depth": 2, "width": 32},
                {"type": "T", "depth": 2, "width": 64, "head_dim": 16},
                {"type": "t", "depth": 1, "width": 64, "head_dim": 16},
            ],
        }
    )
    assert compact == explicit
    assert compact.layout == "C-C-T-T"
    assert compact.depths == (1, 1, 2, 2, 1)
    assert compact.widths == (16, 16, 32, 64, 64)
    assert compact.stages[2].options.head_dim == 16
    assert compact.stages[0].options.expand_ratio == 4.0


def test_per_stage_overrides_beat_block_defaults():
    spec = spec_from_dict(
        {
            "image_size": 32,
            "mbconv": {"expand_ratio": 6},
            "stem": {"depth": 2, "width": 16},
            "stages": [
                {"type": "C", "depth": 1, "width": 16},
                {"type": "C", "depth": 1, "width": 24, "expand_ratio": 3, "kernel_size": 5},
            ],
        }
    )
    assert spec.stages[0].options.expand_ratio == 6
    assert spec.stages[1].options.expand_ratio == 3
    assert spec.stages[1].options.kernel_size == 5


@pytest.mark.parametrize("layout", ["C", "T", "CCTT", "C-T-C-T-T", "T-T-T-T-T-T"])
def test_layouts_of_any_length(layout):
    n = len(parse_layout(layout))
    spec = spec_from_dict(
        {
            "layout": layout,
            "depths": [1] * (n + 1),
            "widths": [32] * (n + 1),
            "image_size": 2 ** (n + 1) * 2,
        }
    )
    assert len(spec.stages) == n
    assert spec.total_stride == 2 ** (n + 1)


def test_round_trip_through_yaml(tmp_path):
    for path in sorted(SPECS.rglob("*.yaml")):
        if "search" in path.parts:
            continue
        spec = load_spec(path)
        again = load_spec(write(tmp_path, spec.to_yaml()))
        assert again == spec, path
        assert again.to_yaml() == spec.to_yaml()


def test_rectangular_image_size_round_trips(tmp_path, tiny_compact):
    spec = spec_from_dict({**tiny_compact, "image_size": [64, 96]})
    assert spec.image_size == (64, 96)
    assert load_spec(write(tmp_path, spec.to_yaml())).image_size == (64, 96)


def test_evolve_revalidates(tiny_compact):
    spec = spec_from_dict(tiny_compact)
    assert spec.evolve(num_classes=3).num_classes == 3
    with pytest.raises(ValueError):
        spec.evolve(image_size=50)


def test_programmatic_construction_with_dict_options():
    spec = ModelSpec(
        image_size=(32, 32),
        stages=[{"type": "T", "depth": 1, "width": 64, "options": {"head_dim": 16}}],
    )
    assert spec.stages[0].options.head_dim == 16


def _error(tmp_path, text: str) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text, "bad.yaml"))
    message = str(info.value)
    assert "bad.yaml" in message
    return message


BASE = "layout: C-C-T-T\nimage_size: 64\n"


def test_error_missing_file(tmp_path):
    with pytest.raises(SpecError, match=r"missing\.yaml: no such spec file"):
        load_spec(tmp_path / "missing.yaml")


def test_error_yaml_syntax_has_line(tmp_path):
    message = _error(tmp_path, "layout: C-C-T-T\ndepths: [1, 2\nwidths: [1]\n")
    assert "YAML syntax error" in message
    assert ":3:" in message or ":2:" in message


def test_error_unknown_key_suggests(tmp_path):
    message = _error(tmp_path, BASE + "dephts: [1,1,1,1,1]\nwidths: [32,32,32,64,64]\n")
    assert "unknown key 'dephts'" in message
    assert "did you mean 'depths'" in message


def test_error_unknown_nested_key_suggests(tmp_path):
    message = _error(
        tmp_path,
        BASE + "depths: [1,1,1,1,1]\nwidths: [32,32,32,64,64]\nmbconv: {expand_ration: 4}\n",
    )
    assert "mbconv.expand_ration" in message
    assert "did you mean 'expand_ratio'" in message


def test_error_wrong_type(tmp_path):
    message = _error(tmp_path, BASE + "depths: [1,1,two,1,1]\nwidths: [32,32,32,64,64]\n")
    assert "depths[2]" in message
    assert "integer" in message


@pytest.mark.parametrize("depth", [0, -1])
def test_error_non_positive_depth(tmp_path, depth):
    message = _error(tmp_path, BASE + f"depths: [1,1,{depth},1,1]\nwidths: [32,32,32,64,64]\n")
    assert "depths[2]" in message
    assert "greater than or equal to 1" in message


def test_error_layout_length_mismatch(tmp_path):
    message = _error(tmp_path, BASE + "depths: [1,1,1,1]\nwidths: [32,32,32,64,64]\n")
    assert "field 'depths'" in message
    assert "needs 5 entries" in message


def test_error_width_not_divisible_by_head_dim(tmp_path):
    message = _error(tmp_path, BASE + "depths: [1,1,1,1,1]\nwidths: [32,32,32,100,64]\n")
    assert "widths[3]" in message
    assert "not divisible by head_dim 32" in message


def test_error_explicit_form_names_stage_field(tmp_path):
    message = _error(
        tmp_path,
        "image_size: 32\nstem: {depth: 1, width: 8}\nstages:\n"
        "  - {type: T, depth: 1, width: 48, head_dim: 32}\n",
    )
    assert "stages[0].width" in message


def test_error_image_size_not_divisible(tmp_path):
    message = _error(
        tmp_path, BASE.replace("64", "100") + "depths: [1,1,1,1,1]\nwidths: [32,32,32,64,64]\n"
    )
    assert "image_size" in message
    assert "multiples of 32" in message


def test_error_unknown_layout_letter(tmp_path):
    message = _error(tmp_path, "layout: C-X-T\ndepths: [1,1,1,1]\nwidths: [8,8,8,32]\n")
    assert "unknown stage type 'X'" in message
    assert "C (" in message and "T (" in message


def test_error_python_object_tag(tmp_path):
    message = _error(tmp_path, "layout: !!python/object/apply:os.system ['echo pwned']\n")
    assert "construct Python objects are not allowed" in message


def test_error_mixed_forms(tmp_path):
    message = _error(tmp_path, BASE + "depths: [1,1,1,1,1]\nwidths: [8,8,8,32,32]\nstages: []\n")
    assert "not both" in message


def test_error_not_a_mapping(tmp_path):
    assert "must be a YAML mapping" in _error(tmp_path, "- 1\n- 2\n")
    assert "empty document" in _error(tmp_path, "")


def test_several_problems_are_all_reported(tmp_path):
    message = _error(tmp_path, BASE + "depths: [1,0,1,1,1]\nwidths: [32,32,x,64,64]\nfoo: 1\n")
    assert "3 problems" in message
