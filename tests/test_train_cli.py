"""``coatnet train`` end to end on the synthetic task, and its user-facing errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coatnet_nas.cli import run
from coatnet_nas.data import locate
from coatnet_nas.train import load_checkpoint

TINY_YAML = """\
name: tiny
layout: C-C-T-T
depths: [1, 1, 1, 1, 1]
widths: [32, 32, 64, 64, 128]
image_size: 224
num_classes: 1000
transformer: {head_dim: 32}
"""


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_YAML)
    return path


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    monkeypatch.setattr(locate, "SYSTEM_ROOT", tmp_path / "no-system-datasets")


def test_json_run_on_a_proxy_of_the_spec(spec_path: Path, tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "out" / "tiny.pt"
    code = run(
        [
            "train",
            str(spec_path),
            "--dataset",
            "synthetic:400",
            "--steps",
            "6",
            "--eval-every",
            "3",
            "--image-size",
            "32",
            "--width-mult",
            "0.5",
            "--batch-size",
            "32",
            "--device",
            "cpu",
            "--save",
            str(ckpt),
            "--json",
            "--threads",
            "1",
            "--crop-padding",
            "4",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)  # stdout holds exactly one JSON object
    assert result["status"] == "ok" and 0.0 <= result["val_accuracy"] <= 1.0
    for key in (
        "train_loss",
        "train_accuracy",
        "epochs",
        "seconds",
        "images_per_second",
        "params",
        "flops",
    ):
        assert isinstance(result[key], (int, float)), key
    assert result["steps"] == 6 and [h["step"] for h in result["history"]] == [3, 6]
    assert result["spec"]["widths"] == [16, 16, 32, 32, 64]  # width-mult 0.5, rounded
    assert result["spec"]["image_size"] == [32, 32]
    assert result["dataset"]["num_classes"] == 10
    ck = load_checkpoint(ckpt)
    assert ck.spec is not None and ck.spec.num_classes == 10 and ck.result["steps"] == 6


def test_human_output_has_a_summary(spec_path: Path, capsys) -> None:
    code = run(
        [
            "train",
            str(spec_path),
            "--dataset",
            "synthetic:300",
            "--steps",
            "3",
            "--image-size",
            "32",
            "--width-mult",
            "0.5",
            "--batch-size",
            "32",
            "--threads",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "on synthetic:300: 270 train / 30 val images" in out
    assert "val accuracy" in out and "img/s" in out


def test_diverged_run_exits_1_with_json(spec_path: Path, capsys) -> None:
    code = run(
        [
            "train",
            str(spec_path),
            "--dataset",
            "synthetic:300",
            "--steps",
            "20",
            "--image-size",
            "32",
            "--width-mult",
            "0.5",
            "--lr",
            "1e6",
            "--grad-clip",
            "0",
            "--warmup",
            "0",
            "--json",
            "--threads",
            "1",
        ]
    )
    assert code == 1
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "diverged" and "non-finite" in result["reason"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "cifar10"], "coatnet data fetch cifar10"),
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--image-size", "48"], "multiples of 32"),
        (["--subset", "2"], "subset must be a fraction"),
        (["--device", "gpu"], "expected auto, cpu, cuda"),
        (["--amp", "fp8"], "amp must be one of"),
        (["--width-mult", "0"], "multipliers must be positive"),
    ],
)
def test_user_errors_exit_2_without_traceback(spec_path: Path, capsys, args, message) -> None:
    code = run(["train", str(spec_path), "--steps", "1", "--image-size", "32", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


def test_missing_dataset_lists_the_searched_places(spec_path: Path, tmp_path: Path, capsys):
    code = run(
        [
            "train",
            str(spec_path),
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            str(tmp_path / "mine"),
            "--steps",
            "1",
            "--image-size",
            "32",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert str(tmp_path / "mine") in err and str(locate.cache_root()) in err
    assert "coatnet data fetch fashion-mnist" in err


def test_a_preset_name_trains_from_any_directory(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    code = run(
        [
            "train",
            "coatnet0",
            "-d",
            "synthetic:200",
            "--image-size",
            "32",
            "--width-mult",
            "0.125",
            "--depth-mult",
            "0.5",
            "--steps",
            "1",
            "--json",
            "--threads",
            "1",
        ]
    )
    assert code == 0 and json.loads(capsys.readouterr().out)["spec"]["layout"] == "C-C-T-T"
