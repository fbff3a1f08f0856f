"""Streaming full-resolution input: DataLoader workers decode, kornia augments on the device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from coatnet_nas.spec import spec_from_dict
from coatnet_nas.train import build_for_data

pytest.importorskip("kornia")
from coatnet_nas.data.stream import StreamingData
from tests.test_data_cache import write_jpegs


def test_streaming_batches_are_augmented_mixed_and_train(tmp_path: Path) -> None:
    write_jpegs(tmp_path / "train", classes=3, per_class=8)
    write_jpegs(tmp_path / "val", classes=3, per_class=2, seed=1)
    (tmp_path / "train" / "class00" / "bad.jpg").write_bytes(b"\xff\xd8\xff broken")
    stream = StreamingData.from_folder(tmp_path, 64, workers=2, augment="trivial", mixup=0.4)
    assert (stream.num_classes, stream.steps_per_epoch(8)) == (3, 3)
    batches = list(stream.train_batches(8))
    assert len(batches) == 3
    sizes = [len(y) for _, y in batches]
    assert sum(sizes) >= 23 and min(sizes) >= 7  # an unreadable file is dropped from its batch
    x, y = batches[0]
    assert x.shape[1:] == (3, 64, 64) and x.dtype == torch.float32
    assert y.shape == (len(x), 3)
    torch.testing.assert_close(y.sum(1), torch.ones(len(x)))  # soft targets: rows sum to one
    plain = next(stream.train_batches(8, augment=False))
    assert plain[1].dtype == torch.int64 and plain[0].shape[1:] == (3, 64, 64)
    val = list(stream.val_batches(4))
    assert sum(len(b[1]) for b in val) == 6 and val[0][0].shape[2:] == (64, 64)

    model = build_for_data(
        spec_from_dict(
            {
                "name": "t",
                "layout": "C-C-T-T",
                "depths": [1, 1, 1, 1, 1],
                "widths": [8, 8, 16, 16, 16],
                "transformer": {"head_dim": 8},
                "image_size": 224,
                "num_classes": 1000,
            }
        ),
        stream,
    )
    loss = torch.nn.functional.cross_entropy(model(x), y)  # soft targets are accepted as-is
    loss.backward()
    assert torch.isfinite(loss)


def test_cutmix_and_randaugment(tmp_path: Path) -> None:
    write_jpegs(tmp_path / "imgs", classes=2, per_class=4)
    stream = StreamingData.from_folder(tmp_path / "imgs", 32, workers=0, augment="rand", cutmix=1.0)
    x, y = next(stream.train_batches(4))
    assert x.shape == (4, 3, 32, 32) and y.shape == (4, 2)
    torch.testing.assert_close(y.sum(1), torch.ones(4))
