"""Checkpoints that resume exactly: a stopped run continued equals the uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from coatnet_nas.cli import run
from coatnet_nas.data import prepare_data
from coatnet_nas.spec import spec_from_dict
from coatnet_nas.train import Checkpoints, Runtime, TrainRecipe, build_for_data, train_model
from tests.conftest import tiny_train

SPEC = spec_from_dict(
    {
        "name": "tiny",
        "layout": "C-C-T-T",
        "depths": [1, 1, 1, 1, 1],
        "widths": [8, 8, 16, 16, 32],
        "image_size": 32,
        "num_classes": 10,
        "transformer": {"head_dim": 8},
    }
)
RECIPE = TrainRecipe(
    epochs=None, steps=8, batch_size=32, eval_every=4, precise_bn=2, ema=0.9, drop_path_rate=0.1
)
RUNTIME = Runtime(device="cpu", threads=1)


@pytest.fixture(scope="module")
def data():
    return prepare_data("synthetic:256", 32)


def _train(data, checkpoints=None, resume=None, stop_at=None):
    model = build_for_data(SPEC, data, drop_path_rate=RECIPE.drop_path_rate, seed=0)
    stop = (lambda report: report.step >= stop_at) if stop_at else None
    result = train_model(
        model, data, RECIPE, stop, runtime=RUNTIME, seed=0, checkpoints=checkpoints, resume=resume
    )
    return model, result


def test_stopped_then_resumed_run_is_bitwise_the_uninterrupted_one(data, tmp_path: Path) -> None:
    full_model, full = _train(data)
    ck = tmp_path / "half.pt"
    plan = Checkpoints(ck, every=None)
    _, half = _train(data, checkpoints=plan, stop_at=4)
    assert half.steps == 4 and plan.written == ck and plan.error is None
    model, resumed = _train(data, resume=ck)
    assert resumed.steps == 8
    for (name, a), b in zip(
        full_model.state_dict().items(), model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name  # stochastic depth, EMA and augmentation included
    assert resumed.train_loss == full.train_loss
    assert resumed.val_accuracy == full.val_accuracy
    assert resumed.ema_val_accuracy == full.ema_val_accuracy is not None
    assert [h.step for h in resumed.history] == [4, 8]


def test_checkpoint_is_written_each_epoch_and_loads_weights_only(data, tmp_path: Path) -> None:
    ck = tmp_path / "ck.pt"
    recipe = RECIPE.evolve(steps=None, epochs=1.5, eval_every=None)
    model = build_for_data(SPEC, data, seed=0)
    train_model(model, data, recipe, runtime=RUNTIME, checkpoints=Checkpoints(ck, every=None))
    payload = torch.load(ck, weights_only=True)
    state = payload["train"]
    assert state["finished"] and state["recipe"]["epochs"] == 1.5
    assert isinstance(state["rng_cpu"], torch.Tensor) and state["ema"] is not None
    assert payload["result"]["steps"] == state["step"]


def test_resume_refuses_another_recipe_with_exit_2(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC.to_yaml())
    ck = tmp_path / "ck.pt"
    base = tiny_train(spec, "--json")
    assert run([*base, "--save", str(ck)]) == 0
    capsys.readouterr()
    assert run([*base, "--resume", str(ck), "--lr", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "lr 0.01 (checkpoint 0.002)" in err and "Traceback" not in err
