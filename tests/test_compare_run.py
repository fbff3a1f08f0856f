"""``coatnet compare`` end to end on the synthetic task: outputs, resume, workers, user errors."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from coatnet_nas.cli import run
from coatnet_nas.compare import (
    CapacityOptions,
    CompareConfig,
    CompareEvent,
    CompareRecipe,
    Regime,
    clean_metrics,
    regime_data,
    run_compare,
)
from coatnet_nas.compare.runner import load_data
from coatnet_nas.spec import spec_from_dict
from coatnet_nas.train import TrainRecipe, build_for_data

BASE_YAML = """\
name: tiny
layout: C-C-T-T
depths: [1, 1, 1, 2, 1]
widths: [16, 16, 32, 64, 128]
image_size: 32
num_classes: 10
transformer: {head_dim: 16, mlp_ratio: 3}
"""
# 5 layouts x 2 regimes x 2 seeds on 300 synthetic images, 2 steps each.
FAST = [
    "--dataset",
    "synthetic:300",
    "--image-size",
    "32",
    "--budget",
    "1M",
    "--steps",
    "2",
    "--batch-size",
    "32",
    "--seeds",
    "2",
    "--regimes",
    "small=0.3,full=1.0",
    "--train-eval-images",
    "64",
    "--threads",
    "1",
    "--device",
    "cpu",
    "--no-capacity",  # capacity runs: tests/test_compare_capacity.py
]


@pytest.fixture
def base_path(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(BASE_YAML)
    return path


def _config(base_path: Path, **changes) -> CompareConfig:
    base = spec_from_dict(__import__("yaml").safe_load(base_path.read_text()))
    settings = dict(
        base=base,
        layouts=("C-C-C-C", "C-T-T-T", "ViT"),
        flops=1_000_000,
        dataset="synthetic:300",
        regimes=(Regime("small", 0.3),),
        seeds=(0, 1),
        recipe=CompareRecipe(
            TrainRecipe(epochs=None, steps=2, batch_size=32, drop_path_rate=0.0),
            train_eval_images=64,
        ),
        capacity=CapacityOptions(enabled=False),
    )
    settings.update(changes)
    return CompareConfig(**settings)


def test_cli_writes_table_rankings_csv_json_and_figure(
    base_path: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "cmp"
    code = run(["compare", "--base", str(base_path), *FAST, "--out", str(out), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)  # stdout is exactly one JSON object
    layouts = ["C-C-C-C", "C-C-C-T", "C-C-T-T", "C-T-T-T", "ViT"]
    assert [e["layout"] for e in summary["layouts"]] == layouts
    assert all(0.95 <= e["flops_ratio"] <= 1.0 for e in summary["layouts"])
    assert [(r["regime"], r["layout"]) for r in summary["rows"]] == [
        (regime, layout) for regime in ("small", "full") for layout in layouts
    ]
    assert all(r["runs"] == 2 and r["val_accuracy"]["n"] == 2 for r in summary["rows"])
    small = summary["rows"][0]
    assert small["train_images"] == round(0.3 * 270) and summary["regime_sizes"]["full"] == 270
    ranks = summary["rankings"]
    assert ranks["generalization"]["regime"] == "small"
    assert ranks["fitting_speed"]["regime"] == "full" and "capacity" not in ranks
    assert sorted(ranks["fitting_speed"]["text"].replace("≈", ">").split(" > ")) == sorted(layouts)
    for name in ("generalization", "fitting_speed"):
        assert summary["paper"][name]["paper"].endswith(("ViT", "C-C-C-C"))
        assert len(summary["paper"][name]["pairs"]) == 10
    assert summary["ran"] == 20 and summary["resumed"] == 0
    files = {k: Path(v) for k, v in summary["files"].items()}
    assert files["compare.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with files["runs.csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20 and {r["seed"] for r in rows} == {"0", "1"}
    with files["summary.csv"].open() as f:
        assert len(list(csv.DictReader(f))) == 10
    assert json.loads(files["compare.json"].read_text())["rankings"] == ranks

    # The same command again trains nothing and reports the same rankings.
    code = run(["compare", "--base", str(base_path), *FAST, "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "0 run(s) trained now, 20 resumed" in text
    assert "generalization (val accuracy, regime small)" in text
    assert "paper:    C-C-C-C ≈ C-C-C-T ≥ C-C-T-T > C-T-T-T ≫ ViT" in text
    assert "small: 30% of the training data (81 images)" in text


def test_interrupted_compare_resumes_where_it_stopped(base_path: Path, tmp_path: Path) -> None:
    config = _config(base_path)
    out = tmp_path / "cmp"
    seen: list[CompareEvent] = []

    def stop_after_two(event: CompareEvent) -> None:
        seen.append(event)
        if sum(e.kind == "done" for e in seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_compare(config, out, device="cpu", threads=1, on_event=stop_after_two)
    first = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(first) == 2
    why = json.loads((out / "interrupted.json").read_text())  # the stop is recorded, with why
    assert why["interrupted"] == "SIGINT" and why["finished"] == 2 and why["left"] == 4
    assert why["in_flight"] == []  # stopped between runs

    events: list[CompareEvent] = []
    result = run_compare(config, out, device="cpu", threads=1, on_event=events.append)
    plan = events[0]
    assert plan.kind == "plan" and plan.total == 4 and plan.resumed == 2
    started = [e.job.key for e in events if e.kind == "start"]
    assert len(started) == 4 and not {r["key"] for r in first} & set(started)
    assert result.ran == 4 and result.resumed == 2 and len(result.records) == 6
    by_key = {r["key"]: r for r in result.records}
    for record in first:  # finished runs are kept as they were, not retrained
        assert by_key[record["key"]] == record
    assert not (out / "interrupted.json").exists()  # every run finished: nothing to explain

    # Another seed later reuses all six runs and trains only the new ones.
    more = _config(base_path, seeds=(0, 1, 2))
    result = run_compare(more, out, device="cpu", threads=1)
    assert result.resumed == 6 and result.ran == 3 and len(result.records) == 9


def test_killed_cli_process_resumes(base_path: Path, tmp_path: Path) -> None:
    """A real interruption: SIGKILL the CLI mid-comparison, then run the same command again."""
    out = tmp_path / "cmp"
    args = ["compare", "--base", str(base_path), *FAST, "--steps", "6", "--out", str(out)]
    code = f"import sys; from coatnet_nas.cli import main; sys.argv[1:] = {args!r}; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    runs = out / "runs.jsonl"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if runs.exists() and len(runs.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    stored = len(runs.read_text().splitlines())
    assert 2 <= stored < 20, "the comparison should have been killed part-way"
    assert (
        run(
            [
                "compare",
                "--base",
                str(base_path),
                *FAST,
                "--steps",
                "6",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads((out / "compare.json").read_text())
    assert summary["resumed"] >= stored and summary["ran"] + summary["resumed"] == 20
    assert len(summary["runs"]) == 20


def test_worker_processes_match_inline_runs(base_path: Path, tmp_path: Path) -> None:
    config = _config(base_path, layouts=("C-C-T-T", "ViT"), seeds=(0,))
    inline = run_compare(config, tmp_path / "a", device="cpu", threads=1)
    spawned = run_compare(config, tmp_path / "b", device="cpu", threads=1, workers=2)
    assert spawned.ran == 2
    a = {r["key"]: r for r in inline.records}
    b = {r["key"]: r for r in spawned.records}
    assert a.keys() == b.keys()
    for key in a:  # same recipe and seed on CPU: the same numbers, whichever process ran it
        for metric in ("train_loss", "val_accuracy", "running_train_loss"):
            assert a[key][metric] == pytest.approx(b[key][metric], abs=1e-5), (key, metric)


def test_regimes_are_nested_and_share_the_validation_split(base_path: Path) -> None:
    data = load_data(_config(base_path))
    small = regime_data(data, Regime("s", 0.25))
    half = regime_data(data, Regime("h", 0.5))
    assert len(small.train) == round(0.25 * len(data.train))
    assert regime_data(data, Regime("f", 1.0)) is data

    def rows(split) -> set[bytes]:
        return {bytes(x.numpy().tobytes()) for x in split.images}

    assert rows(small.train) <= rows(half.train) <= rows(data.train)
    assert torch.equal(small.val.images, data.val.images)


def test_clean_metrics_are_eval_mode_and_unaugmented(base_path: Path) -> None:
    config = _config(base_path)
    data = load_data(config)
    model = build_for_data(config.base, data, seed=0)
    model.train()
    graphs: list = []
    hook = model.register_forward_hook(lambda _m, _i, out: graphs.append(out.grad_fn))
    first = clean_metrics(model, data, limit=50)
    hook.remove()
    # no autograd graph is kept (a 128-px capacity run once held 24 GB of them)
    assert graphs and all(g is None for g in graphs)
    assert clean_metrics(model, data, limit=50) == first  # no augmentation, no dropout noise
    assert model.training  # mode restored
    assert 0.0 <= first[1] <= 1.0 and first[0] > 0


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--layouts", "C-C-X-T,ViT", "unknown stage type 'X'"),
        ("--layouts", "C-C-T,C-C-T-T", "3 stage(s) given"),
        ("--layouts", "ViT,vit", "listed twice"),
        ("--layouts", "Swin", "unknown stage type 'S'"),
        ("--regimes", "small=2", "--regimes"),
        ("--budget", "lots", "--budget"),
    ],
)
def test_bad_input_exits_2_without_traceback(
    base_path: Path, tmp_path: Path, capsys, option: str, value: str, needle: str
) -> None:
    out = tmp_path / "never"
    code = run(["compare", "--base", str(base_path), *FAST, option, value, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert not out.exists()


def test_resuming_with_other_settings_exits_2(base_path: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cmp"
    args = [
        "compare",
        "--base",
        str(base_path),
        *FAST,
        "--layouts",
        "C-C-T-T",
        "--seeds",
        "1",
        "--regimes",
        "full=1",
        "--out",
        str(out),
    ]
    assert run(args) == 0
    capsys.readouterr()
    assert run([*args, "--lr", "0.01"]) == 2
    assert "other settings (recipe)" in capsys.readouterr().err
    assert run([*args, "--lr", "0.01", "--fresh"]) == 0


def test_piped_run_logs_each_run_and_defaults_to_the_datas_size(
    base_path: Path, tmp_path: Path, capsys
) -> None:
    """Not a terminal: one plain line per finished run; no --image-size: the data's own size."""
    out = tmp_path / "cmp"
    at = FAST.index("--image-size")
    fast = FAST[:at] + FAST[at + 2 :]
    args = [
        "compare",
        "--base",
        str(base_path),
        *fast,
        "--layouts",
        "C-C-T-T,ViT",
        "--seeds",
        "1",
        "--out",
        str(out),
    ]
    base_224 = tmp_path / "tiny224.yaml"
    base_224.write_text(BASE_YAML.replace("image_size: 32", "image_size: 224"))
    args[2] = str(base_224)
    assert run(args) == 0
    text = capsys.readouterr().out
    assert "image size 32x32: synthetic:300 images are 32x32, already a multiple of the " in text
    lines = [line for line in text.splitlines() if line.startswith("[")]
    assert len(lines) == 4 and lines[0].startswith("[1/4] C-C-T-T small seed 0: val acc ")
    assert lines[-1].startswith("[4/4] ViT full seed 0: val acc ") and lines[-1].endswith("s")
    assert "±" not in text and "one seed: no spread measured" in text
    assert "beyond seed spread" not in text
    assert json.loads((out / "config.json").read_text())["image_size"] == [32, 32]
    # Options set to their default values resume: the stored recipe is compared by value.
    assert run([*args, "--lr", "0.002", "--batch-size", "32", "--image-size", "32"]) == 0
    assert "0 run(s) trained now, 4 resumed" in capsys.readouterr().out


def test_compare_writes_one_tensorboard_folder_per_run(base_path, tmp_path, capsys) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = tmp_path / "tb"
    args = [
        "compare",
        "--base",
        str(base_path),
        *FAST,
        "--layouts",
        "C-C-T-T,ViT",
        "--seeds",
        "1",
        "--regimes",
        "small=0.3",
        "--out",
        str(tmp_path / "out"),
        "--json",
        "--tensorboard",
        str(logs),
    ]
    assert run(args) == 0
    capsys.readouterr()
    folders = sorted(p.name for p in logs.iterdir())
    assert folders == ["C-C-T-T_small=0.3_seed=0", "ViT_small=0.3_seed=0"]
    for name in folders:
        events = EventAccumulator(str(logs / name))
        events.Reload()
        assert {"train/loss", "train/lr", "train/images_per_second"} <= set(
            events.Tags()["scalars"]
        )
