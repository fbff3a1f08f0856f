"""Capacity (lowest clean train loss at a plateau) vs fitting speed: the plateau criterion."""

from __future__ import annotations

import math

import pytest

from coatnet_nas.compare.capacity import (
    Plateau,
    min_size_for_tokens,
    plateaued,
    train_to_plateau,
)
from coatnet_nas.errors import CoatnetError
from coatnet_nas.spec import spec_from_dict


def test_plateau_criterion_by_hand():
    # still improving by more than 2% within the last 3 measurements: go on
    assert not plateaued([2.0, 1.5, 1.2, 1.0], patience=3, min_delta=0.02)
    # the best of the last 3 (0.99) is within 2% of the best before them (1.0): stop
    assert plateaued([2.0, 1.0, 1.01, 0.99, 1.0], patience=3, min_delta=0.02)
    assert not plateaued([2.0, 1.0, 1.01, 0.97, 1.0], patience=3, min_delta=0.02)
    assert not plateaued([1.0, 1.0, 1.0], patience=3, min_delta=0.02)  # too few to tell
    assert plateaued([1.0, math.nan], patience=3, min_delta=0.02)  # diverged
    with pytest.raises(CoatnetError, match="plateau"):
        Plateau(patience=0)


def test_every_t_stage_sees_4x4_tokens():
    spec = spec_from_dict(
        {
            "name": "x",
            "layout": "C-C-T-T",
            "depths": [1, 1, 1, 1, 1],
            "widths": [16, 16, 32, 64, 64],
            "transformer": {"head_dim": 16},
        }
    )
    assert min_size_for_tokens(spec) == 128  # S4 runs at input/32
    cctc = spec_from_dict(
        {
            "name": "y",
            "layout": "C-C-T-C",
            "depths": [1, 1, 1, 1, 1],
            "widths": [16, 16, 32, 64, 64],
            "transformer": {"head_dim": 16},
        }
    )
    assert min_size_for_tokens(cctc) == 64  # S3 at input/16


def test_a_tiny_model_trains_to_a_plateau_on_a_fixed_set():
    from coatnet_nas.data import prepare_data
    from coatnet_nas.train import build_for_data

    data = prepare_data("synthetic:64", 16, subset=1.0, val_fraction=0.25, seed=0, device="cpu")
    spec = spec_from_dict(
        {
            "name": "t",
            "layout": "C-T",
            "depths": [1, 1, 1],
            "widths": [8, 16, 32],
            "transformer": {"head_dim": 16},
            "image_size": 16,
            "num_classes": 10,
        }
    )
    model = build_for_data(spec, data, seed=0)
    result = train_to_plateau(
        model,
        data,
        Plateau(patience=2, min_delta=0.05, eval_every=5, max_steps=400),
        batch_size=16,
        lr=5e-3,
    )
    losses = [loss for _, loss in result.curve]
    assert result.plateaued and result.steps < 400  # stopped by the criterion, not the cap
    assert plateaued(losses, 2, 0.05) and not plateaued(losses[:-1], 2, 0.05)
    assert result.capacity_loss == min(losses) < losses[0]  # it fitted, then stopped improving
