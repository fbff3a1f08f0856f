"""``coatnet search --tensorboard DIR``: one run folder per trained trial, from every worker."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from coatnet_nas.cli import run
from tests.conftest import tiny_space, write

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)


def test_search_with_two_workers_writes_a_run_per_trial(tmp_path: Path, capsys) -> None:
    space_path = write(tmp_path, yaml.safe_dump(tiny_space()), "space.yaml")
    url = f"sqlite:///{tmp_path}/tb.db"
    logs = tmp_path / "tb"
    args = ["search", "--space", str(space_path), "--storage", url, "--study", "tb"]
    args += ["--trials", "2", "--workers", "2", "--sampler", "random", "--budget", "30MFLOPs"]
    args += ["--device", "cpu", "--out", str(tmp_path / "runs"), "--heartbeat", "2"]
    assert run([*args, "--tensorboard", str(logs), "--json"]) == 0
    study = optuna.load_study(study_name="tb", storage=url)
    trained = [t for t in study.get_trials() if "val_accuracy" in t.user_attrs]
    assert len(trained) >= 2
    folders = {p.name for p in logs.iterdir()}
    for t in trained:
        name = f"trial_{t.number:04d}_rung=0_seed=0"
        assert name in folders
        events = EventAccumulator(str(logs / name), size_guidance={"scalars": 0, "tensors": 0})
        events.Reload()
        tags = set(events.Tags()["scalars"])
        assert {"train/loss", "train/accuracy", "train/lr", "train/images_per_second"} <= tags
        assert all(e.value > 0 for e in events.Scalars("train/loss"))
        if t.state == optuna.trial.TrialState.COMPLETE:
            objective = events.Scalars("trial/objective/accuracy")
            assert objective[-1].value == pytest.approx(t.value, abs=1e-6)
        status = events.Tensors("trial/status/text_summary")[-1]
        text = status.tensor_proto.string_val[0].decode()
        assert text.startswith(t.user_attrs["status"])


def test_a_search_tensorboard_target_that_is_a_file_is_refused(tmp_path: Path, capsys) -> None:
    space_path = write(tmp_path, yaml.safe_dump(tiny_space()), "space.yaml")
    taken = tmp_path / "file"
    taken.write_text("x")
    args = ["search", "--space", str(space_path), "--storage", f"sqlite:///{tmp_path}/b.db"]
    args += ["--trials", "1", "--budget", "30MFLOPs", "--device", "cpu"]
    assert run([*args, "--tensorboard", str(taken)]) == 2
    err = capsys.readouterr().err
    assert "--tensorboard" in err and "Traceback" not in err
    assert not (tmp_path / "b.db").exists()  # refused before any study was created
