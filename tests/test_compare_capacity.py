"""Capacity (lowest clean train loss at a plateau) vs fitting speed: the plateau criterion."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from coatnet_nas.compare.analysis import PAPER_RANKINGS
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


# --- capacity runs inside `coatnet compare` ----------------------------------------------------
LAYOUTS = ["C-C-C-C", "C-T-T-T", "ViT"]
# 3 layouts x 1 regime x 2 seeds fit runs (2 steps) + 3 x 2 capacity runs on 32 images at 128 px
CAP = [
    "--dataset",
    "synthetic:200",
    "--image-size",
    "32",
    "--budget",
    "1M",
    "--layouts",
    ",".join(LAYOUTS),
    "--regimes",
    "full=1.0",
    "--steps",
    "2",
    "--batch-size",
    "32",
    "--seeds",
    "2",
    "--train-eval-images",
    "32",
    "--capacity-images",
    "32",
    "--capacity-batch-size",
    "16",
    "--capacity-steps",
    "4",
    "--capacity-eval-every",
    "2",
    "--capacity-patience",
    "1",
    "--threads",
    "1",
    "--device",
    "cpu",
    "--json",
]


@pytest.fixture
def base_path(tmp_path: Path) -> Path:
    from tests.test_compare_run import BASE_YAML

    path = tmp_path / "tiny.yaml"
    path.write_text(BASE_YAML)
    return path


def _compare(base_path: Path, out: Path, capsys, *extra: str) -> dict:
    from coatnet_nas.cli import run

    code = run(["compare", "--base", str(base_path), *CAP, *extra, "--out", str(out)])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_compare_reports_fit_and_capacity_loss_and_resumes(base_path, tmp_path, capsys) -> None:
    out = tmp_path / "cmp"
    summary = _compare(base_path, out, capsys)
    assert summary["ran"] == 12 and summary["resumed"] == 0  # 6 fit + 6 capacity runs
    capacity = summary["capacity_runs"]
    assert len(capacity) == 6 and {r["kind"] for r in capacity} == {"capacity"}
    for r in capacity:
        losses = [loss for _, loss in r["curve"]]
        assert r["image_size"] == [128, 128]  # S4 of C-T-T-T runs at /32: 4x4 tokens
        assert r["train_images"] == 32 and r["steps"] <= 4
        assert r["capacity_loss"] == pytest.approx(min(losses))
        assert r["plateaued"] == plateaued(losses, 1, 0.02)

    layouts = _csv(out / "layouts.csv")
    assert [r["layout"] for r in layouts] == LAYOUTS
    full = {r["layout"]: r for r in summary["rows"] if r["regime"] == "full"}
    for row in layouts:
        fit = full[row["layout"]]["train_loss"]
        assert float(row["fit_loss"]) == pytest.approx(fit["mean"], rel=1e-5)
        mine = [r["capacity_loss"] for r in capacity if r["layout"] == row["layout"]]
        assert float(row["capacity_loss"]) == pytest.approx(sum(mine) / 2, rel=1e-5)
        assert row["capacity_runs"] == "2" and row["capacity_image_size"] == "128"
    runs = _csv(out / "runs.csv")
    assert sorted(r["kind"] for r in runs) == ["capacity"] * 6 + ["fit"] * 6
    assert all(r["capacity_loss"] for r in runs if r["kind"] == "capacity")

    # Each ordering is held to the paper's capacity ordering (3 layouts: 3 pairs each).
    ranks, paper = summary["rankings"], summary["paper"]
    assert set(ranks) == {"generalization", "fitting_speed", "capacity"}
    assert ranks["capacity"]["metric"] == "capacity_loss"
    for name in ("fitting_speed", "capacity"):
        assert paper[name]["paper"] == PAPER_RANKINGS["capacity"]
        assert len(paper[name]["pairs"]) == 3

    # The same command retrains nothing; other capacity settings re-run only capacity runs.
    lines = (out / "runs.jsonl").read_text().splitlines()
    again = _compare(base_path, out, capsys)
    assert again["ran"] == 0 and again["resumed"] == 12
    assert (out / "runs.jsonl").read_text().splitlines() == lines
    assert again["capacity_runs"] == capacity
    longer = _compare(base_path, out, capsys, "--capacity-steps", "6")
    assert longer["ran"] == 6 and longer["resumed"] == 6
    assert longer["runs"] == summary["runs"]


def test_an_interrupted_capacity_phase_resumes_where_it_stopped(base_path, tmp_path) -> None:
    from coatnet_nas.compare import CapacityOptions, CompareConfig, CompareRecipe, run_compare
    from coatnet_nas.compare.config import Regime
    from coatnet_nas.train import TrainRecipe

    config = CompareConfig(
        base=spec_from_dict(yaml.safe_load(base_path.read_text())),
        layouts=("C-C-T-T", "ViT"),
        flops=1_000_000,
        dataset="synthetic:200",
        image_size=(32, 32),
        regimes=(Regime("full", 1.0),),
        seeds=(0,),
        recipe=CompareRecipe(TrainRecipe(epochs=None, steps=1, batch_size=32), 32),
        capacity=CapacityOptions(images=32, batch_size=16, steps=2, eval_every=1, patience=1),
    )

    class Stop(Exception):
        pass

    def stop_after_first_capacity_run(event) -> None:
        if event.kind == "done" and event.job.kind == "capacity":
            raise Stop

    out = tmp_path / "cmp"
    with pytest.raises(Stop):
        run_compare(config, out, threads=1, on_event=stop_after_first_capacity_run)
    stored = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [r.get("kind") for r in stored] == ["fit", "fit", "capacity"]
    result = run_compare(config, out, threads=1)
    assert result.ran == 1 and result.resumed == 3
    assert [r["layout"] for r in result.capacity] == ["C-C-T-T", "ViT"]
    assert result.capacity[0] == stored[2]  # the finished one was not retrained


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--capacity-images", "1", "--capacity-images must be a whole number >= 2"),
        ("--capacity-steps", "1", "--capacity-steps must be >= the evaluation interval"),
        ("--capacity-patience", "0", "--capacity-patience must be a whole number >= 1"),
        ("--capacity-min-delta", "1.5", "--capacity-min-delta must be in [0, 1)"),
        ("--capacity-batch-size", "0", "--capacity-batch-size must be a whole number >= 1"),
    ],
)
def test_bad_capacity_options_exit_2_with_one_paragraph(
    base_path, tmp_path, capsys, option, value, needle
) -> None:
    from coatnet_nas.cli import run

    out = tmp_path / "never"
    code = run(["compare", "--base", str(base_path), *CAP, option, value, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and needle in err
    assert "Traceback" not in err and "\n\n" not in err.strip() and len(err) < 400
    assert not out.exists()


def test_capacity_resolution_gives_every_t_stage_4x4_tokens(base_path) -> None:
    from coatnet_nas.compare import CompareConfig, capacity_size, parse_layouts
    from coatnet_nas.compare.capacity_run import capacity_entrants

    base = spec_from_dict(yaml.safe_load(base_path.read_text()))
    layouts = parse_layouts(["C-C-C-T", "C-C-T-C", "ViT"], len(base.stages))
    assert capacity_size(base, layouts[1:2], (32, 32)) == (64, 64)  # S3 runs at /16
    assert capacity_size(base, layouts, (32, 32)) == (128, 128)  # S4 at /32
    assert capacity_size(base, layouts[2:], (32, 32)) == (32, 32)  # never below the run's size
    config = CompareConfig(base=base, image_size=(32, 32), flops=1_000_000)
    for entrant in capacity_entrants(base, layouts, 1_000_000, (128, 128), config):
        grids = [
            res
            for stage, res in zip(entrant.spec.stages, entrant.spec.resolutions()[1:], strict=True)
            if stage.type == "T"
        ]
        assert grids and min(min(g) for g in grids) >= 4, entrant.name
        assert entrant.flops <= 16 * 1_000_000  # the budget scaled by the pixel count
    vit = capacity_entrants(base, layouts[2:], 1_000_000, (128, 128), config)[0]
    assert vit.spec.resolutions()[-1] == (8, 8)  # ViT keeps its /16 token grid
