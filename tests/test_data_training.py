"""Training from the data paths of issue 15: streamed files with soft labels, and a memory cap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from coatnet_nas.cli import run
from coatnet_nas.data import prepare_data
from coatnet_nas.data.mapped import MappedImages
from coatnet_nas.train import Runtime, TrainRecipe, train_spec
from coatnet_nas.train.loop import training_loss
from tests.test_data_cache import TINY, write_jpegs

pytest.importorskip("kornia")
from coatnet_nas.data.stream import StreamingData


@pytest.fixture(autouse=True)
def _cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COATNET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY.to_dict()))
    return path


def _flat_folder(root: Path, colours: list[int]) -> None:
    """One class per colour, each image a single grey level (so mixing is visible in pixels)."""
    for c, level in enumerate(colours):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(4):
            pixels = np.full((40, 48, 3), level, dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"c{c}" / f"{i}.png")


def test_mixup_targets_are_the_pixel_shares(tmp_path: Path) -> None:
    levels = [0, 120, 240]
    _flat_folder(tmp_path / "imgs", levels)
    stream = StreamingData.from_folder(
        tmp_path / "imgs", 32, workers=0, augment="none", mixup=0.9, val_fraction=0.25
    )
    torch.manual_seed(3)
    x, y = next(stream.train_batches(6))
    assert y.shape == (6, 3) and y.dtype == torch.float32
    torch.testing.assert_close(y.sum(1), torch.ones(6))  # probabilities
    assert bool(((y > 0) & (y < 1)).any())  # some rows really are mixed
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    pixels = (x * std + mean) * 255  # back to grey levels: each image is flat
    expected = y @ torch.tensor(levels, dtype=torch.float32)  # the soft label's mixture
    torch.testing.assert_close(pixels.mean((1, 2, 3)), expected, atol=1.0, rtol=0)


def test_soft_target_loss_is_the_expected_cross_entropy() -> None:
    logits = torch.randn(4, 3)
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [0.1, 0.0, 0.9]])
    by_hand = -(soft * logits.log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(training_loss(logits, soft, 0.0), by_hand)
    smoothed = soft * 0.9 + 0.1 / 3
    by_hand = -(smoothed * logits.log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(training_loss(logits, soft, 0.1), by_hand)
    assert not torch.allclose(
        training_loss(logits, soft, 0.0), training_loss(logits, soft.argmax(1), 0.0)
    )


def test_streaming_train_end_to_end(tmp_path: Path, capsys) -> None:
    write_jpegs(tmp_path / "imgs" / "train", classes=3, per_class=10)
    write_jpegs(tmp_path / "imgs" / "val", classes=3, per_class=2, seed=1)
    stream = StreamingData.from_folder(
        tmp_path / "imgs",
        32,
        workers=1,
        augment="trivial",
        cutmix=0.5,
        mixup=0.3,
        holdout="test",
    )
    assert (len(stream.train), len(stream.val)) == (30, 6)
    recipe = TrainRecipe(epochs=None, steps=4, batch_size=8, precise_bn=1)
    result = train_spec(TINY, stream, recipe, runtime=Runtime(device="cpu", threads=1), seed=0)
    assert result.steps == 4 and np.isfinite(result.train_loss) and result.status == "ok"
    assert 0.0 <= result.val_accuracy <= 1.0

    spec = _spec_file(tmp_path)
    code = run(
        [
            "train",
            str(spec),
            "-d",
            f"folder:{tmp_path / 'imgs'}",
            "--stream",
            "--image-size",
            "32",
            "--steps",
            "3",
            "--batch-size",
            "8",
            "--loader-workers",
            "1",
            "--mixup",
            "0.4",
            "--auto-augment",
            "rand",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--precise-bn",
            "0",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["steps"] == 3 and out["dataset"]["storage"] == "stream"
    assert out["dataset"]["train"] == 27 and out["dataset"]["mixup"] == 0.4  # 10% held out
    assert run(["train", str(spec), "-d", "synthetic:64", "--stream"]) == 2
    assert "needs --dataset folder:PATH" in capsys.readouterr().err
    assert run(["train", str(spec), "-d", "synthetic:64", "--mixup", "0.2"]) == 2
    assert "only apply with --stream" in capsys.readouterr().err


def test_over_the_cap_trains_batch_by_batch_from_the_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    write_jpegs(tmp_path / "imgs", classes=4, per_class=25)
    name = f"folder:{tmp_path / 'imgs'}"
    reads: list[int] = []
    real = MappedImages.__getitem__

    def counted(self, key):  # the real read, with the number of rows it gathers recorded
        out = real(self, key)
        reads.append(1 if out.ndim == 3 else len(out))
        return out

    monkeypatch.setattr(MappedImages, "__getitem__", counted)
    data = prepare_data(name, 32, val_fraction=0.2, memory_cap="50KB")  # 100 x 3 KiB > 50 KiB
    assert data.storage == "memmap" and isinstance(data.train.images, MappedImages)
    reads.clear()  # from here on: training only
    recipe = TrainRecipe(epochs=None, steps=4, batch_size=16, eval_batch_size=10, precise_bn=2)
    result = train_spec(TINY, data, recipe, runtime=Runtime(device="cpu", threads=1), seed=0)
    assert result.steps == 4 and np.isfinite(result.train_loss)
    assert reads and max(reads) <= 16 < len(data.train)  # never the whole split at once

    spec = _spec_file(tmp_path)
    args = [
        "train",
        str(spec),
        "-d",
        name,
        "--image-size",
        "32",
        "--steps",
        "2",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--json",
    ]
    assert run([*args, "--memory-cap", "50KB"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"]["storage"] == "memmap"
    assert run([*args, "--memory-cap", "2GB"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"]["storage"] == "memory"
    assert run([*args, "--memory-cap", "lots"]) == 2
    err = capsys.readouterr().err
    assert "--memory-cap must be a size like 2GB" in err and "Traceback" not in err
