"""``coatnet train --tensorboard DIR``: event files TensorBoard reads back (scalars + graph)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from coatnet_nas.cli import run

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)

TINY = {
    "name": "tiny",
    "layout": "C-T",
    "depths": [1, 1, 1],
    "widths": [8, 16, 32],
    "image_size": 32,
    "num_classes": 10,
    "transformer": {"head_dim": 16},
}


def test_train_writes_loss_accuracy_lr_throughput_and_graph(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    logs = tmp_path / "tb"
    args = [
        "train",
        str(spec),
        "--dataset",
        "synthetic:128",
        "--steps",
        "6",
        "--eval-every",
        "3",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--precise-bn",
        "0",
        "--tensorboard",
        str(logs),
        "--json",
    ]
    assert run(args) == 0
    result = json.loads(capsys.readouterr().out)
    files = list(logs.glob("events.out.tfevents.*"))
    assert len(files) == 1
    events = EventAccumulator(str(logs), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "train/loss",
        "train/accuracy",
        "train/lr",
        "train/images_per_second",
        "val/accuracy",
    } <= tags
    loss = events.Scalars("train/loss")
    assert loss and all(e.value > 0 for e in loss) and loss[-1].step <= 6
    assert all(0 < e.value <= 2e-3 for e in events.Scalars("train/lr"))
    assert all(e.value > 0 for e in events.Scalars("train/images_per_second"))
    val = events.Scalars("val/accuracy")
    assert val[-1].value == pytest.approx(result["val_accuracy"], abs=1e-6)
    assert events.Tags()["graph"]  # the model graph, traced once


def test_a_tensorboard_target_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    taken = tmp_path / "file"
    taken.write_text("x")
    code = run(
        [
            "train",
            str(spec),
            "--dataset",
            "synthetic:64",
            "--steps",
            "1",
            "--tensorboard",
            str(taken),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --tensorboard") and "Traceback" not in err
