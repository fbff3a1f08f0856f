"""New resolutions: a 32 px checkpoint initializes a 64 px model (bias tables resized)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from coatnet_nas.blocks.attention import RelativeAttention
from coatnet_nas.builder import CoAtNet
from coatnet_nas.cli import run
from coatnet_nas.errors import CoatnetError
from coatnet_nas.spec import spec_from_dict
from coatnet_nas.train import load_weights
from coatnet_nas.train.weights import resize_bias_table
from tests.conftest import tiny_train

TINY = {
    "name": "tiny",
    "layout": "C-C-T-T",
    "depths": [1, 1, 1, 1, 1],
    "widths": [8, 8, 16, 16, 32],
    "image_size": 32,
    "num_classes": 10,
    "transformer": {"head_dim": 8},
}


def _model(**changes) -> CoAtNet:
    return CoAtNet(spec_from_dict({**TINY, **changes}))


def test_bias_tables_resize_by_bicubic_interpolation() -> None:
    table = torch.arange(2 * 9, dtype=torch.float32).reshape(2, 9)  # 2 heads, 3x3 = 2x2 grid
    same = resize_bias_table(table, (2, 2))
    assert torch.equal(same, table)
    big = resize_bias_table(table, (4, 4))  # 7x7
    assert big.shape == (2, 49)
    grid = big.reshape(2, 7, 7)
    assert torch.allclose(grid[:, 3, 3], table.reshape(2, 3, 3)[:, 1, 1])  # centre kept
    with pytest.raises(CoatnetError, match="not a square"):
        resize_bias_table(torch.zeros(2, 15), (4, 4), "x.bias_table")


def test_a_32px_model_initializes_a_64px_one() -> None:
    small, big = _model(), _model(image_size=64)
    resized = load_weights(big, small.state_dict())
    tables = [n for n, m in big.named_modules() if isinstance(m, RelativeAttention)]
    assert sorted(resized) == sorted(f"{n}.bias_table" for n in tables) and resized
    for key, value in small.state_dict().items():
        if key not in resized:
            assert torch.equal(big.state_dict()[key], value), key
    big.eval()
    assert big(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_other_architectures_are_refused_naming_both_shapes() -> None:
    with pytest.raises(CoatnetError, match=r"shape \(32, .*\) in the checkpoint but \(48, "):
        load_weights(_model(widths=[8, 8, 16, 16, 48]), _model().state_dict())
    with pytest.raises(CoatnetError, match="another architecture"):
        load_weights(_model(depths=[1, 1, 2, 1, 1]), _model().state_dict())


def test_init_fine_tunes_at_a_new_size_and_a_wrong_checkpoint_exits_2(
    tmp_path: Path, capsys
) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(spec_from_dict(TINY).to_yaml())
    ck = tmp_path / "ck32.pt"
    base = tiny_train(spec, "--json", "--precise-bn", "1")
    assert run([*base, "--save", str(ck)]) == 0
    capsys.readouterr()
    assert run([*base, "--init", str(ck), "--image-size", "64"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["spec"]["image_size"] == [64, 64] and result["init"] == str(ck)
    assert result["status"] == "ok"
    assert run([*base, "--init", str(ck), "--width-mult", "2"]) == 2
    err = capsys.readouterr().err
    assert "--init" in err and "in the checkpoint but" in err and "Traceback" not in err
