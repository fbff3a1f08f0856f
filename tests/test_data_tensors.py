"""Prepared tensors: seeded splits, subsets, channel/size adaptation, on-device augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coatnet_nas.data import ProxyData, Split, adapt_images, prepare_data, resolve_device
from coatnet_nas.data.sources import FMNIST_CLASSES
from coatnet_nas.data.tensors import split_indices
from coatnet_nas.errors import CoatnetError, DataError


def _proxy(images: torch.Tensor, labels: torch.Tensor, **kw) -> ProxyData:
    c = images.shape[1]
    return ProxyData(
        name="t",
        classes=tuple(str(i) for i in range(10)),
        in_chans=c,
        image_size=tuple(images.shape[2:]),
        train=Split(images, labels),
        val=Split(images[:2], labels[:2]),
        mean=torch.zeros(c),
        std=torch.ones(c),
        **kw,
    )


def test_split_is_seeded_disjoint_and_sized() -> None:
    train, val = split_indices(1000, 1.0, 0.1, seed=0, holdout="split")
    assert (len(train), len(val)) == (900, 100)
    assert not set(train) & set(val)
    again = split_indices(1000, 1.0, 0.1, seed=0, holdout="split")
    assert all(np.array_equal(a, b) for a, b in zip((train, val), again, strict=True))
    other = split_indices(1000, 1.0, 0.1, seed=1, holdout="split")
    assert not np.array_equal(val, other[1])
    sub_train, sub_val = split_indices(1000, 0.25, 0.2, seed=0, holdout="split")
    assert (len(sub_train), len(sub_val)) == (200, 50)


def test_prepare_data_split_and_subset_are_reproducible() -> None:
    a = prepare_data("synthetic:500", 32, seed=7, subset=0.5)
    b = prepare_data("synthetic:500", 32, seed=7, subset=0.5)
    c = prepare_data("synthetic:500", 32, seed=8, subset=0.5)
    assert (len(a.train), len(a.val)) == (225, 25)
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.train.labels, b.train.labels)
    assert not torch.equal(a.val.images, c.val.images)


def test_bad_fractions_are_data_errors() -> None:
    with pytest.raises(DataError, match="subset"):
        prepare_data("synthetic:100", 32, subset=0)
    with pytest.raises(DataError, match="val_fraction"):
        prepare_data("synthetic:100", 32, val_fraction=1.0)
    with pytest.raises(DataError, match="crop_padding"):
        prepare_data("synthetic:100", 32, crop_padding=-1)
    with pytest.raises(DataError, match="in_chans"):
        prepare_data("synthetic:100", 32, in_chans=4)


def test_channel_and_size_adaptation() -> None:
    grey = np.random.default_rng(0).integers(0, 256, (5, 1, 28, 28), dtype=np.uint8)
    out = adapt_images(grey, 3, (32, 32), torch.device("cpu"))
    assert out.shape == (5, 3, 32, 32) and out.dtype == torch.uint8
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    same = adapt_images(grey, 1, (28, 28), torch.device("cpu"))
    assert torch.equal(same, torch.from_numpy(grey))  # no-op when nothing changes

    rgb = np.zeros((2, 3, 8, 8), np.uint8)
    rgb[:, 1] = 200  # pure green
    luma = adapt_images(rgb, 1, (8, 8), torch.device("cpu"))
    assert luma.shape == (2, 1, 8, 8) and int(luma[0, 0, 0, 0]) == round(0.587 * 200)

    flat = np.full((1, 1, 10, 10), 77, np.uint8)
    assert (adapt_images(flat, 1, (64, 48), torch.device("cpu")) == 77).all()


def test_normalization_uses_training_statistics() -> None:
    data = prepare_data("synthetic:400", 32)
    x = data.normalize(data.train.images)
    assert x.dtype == torch.float32
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-3)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)


def test_crop_is_a_shifted_window_of_the_zero_padded_image() -> None:
    images = torch.randint(1, 256, (16, 3, 12, 12), dtype=torch.uint8)
    data = _proxy(images, torch.arange(16), crop_padding=2, flip=False)
    gen = torch.Generator().manual_seed(0)
    out = data.augment(images, gen)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = F.pad(images, (2, 2, 2, 2))
    shifted = 0
    for i in range(16):
        windows = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 12, dx : dx + 12])
        ]
        assert windows, f"sample {i} is not a crop of its padded image"
        shifted += windows[0] != (2, 2)
    assert shifted > 8  # offsets really vary


def test_flip_mirrors_about_half_of_the_batch() -> None:
    images = torch.randint(0, 256, (200, 1, 6, 6), dtype=torch.uint8)
    data = _proxy(images, torch.arange(200), crop_padding=0, flip=True)
    out = data.augment(images, torch.Generator().manual_seed(0))
    same = (out == images).flatten(1).all(1)
    mirrored = (out == images.flip(3)).flatten(1).all(1)
    assert (same | mirrored).all()
    assert 60 < int(mirrored.sum()) < 140
    off = _proxy(images, torch.arange(200), crop_padding=0, flip=False)
    assert torch.equal(off.augment(images), images)


def test_train_batches_cover_each_sample_once_per_epoch() -> None:
    images = torch.zeros((103, 1, 4, 4), dtype=torch.uint8)
    data = _proxy(images, torch.arange(103), crop_padding=1)
    gen = torch.Generator().manual_seed(0)
    seen = [y for _, y in data.train_batches(10, generator=gen)]
    assert len(seen) == data.steps_per_epoch(10) == 10
    flat = torch.cat(seen)
    assert len(flat.unique()) == 100  # shuffled, no repeats, partial batch dropped
    second = torch.cat([y for _, y in data.train_batches(10, generator=gen)])
    assert not torch.equal(flat, second)  # a new order each epoch
    x, _ = next(iter(data.train_batches(10)))
    assert x.dtype == torch.float32 and x.shape == (10, 1, 4, 4)


def test_val_batches_are_ordered_and_complete() -> None:
    data = prepare_data("synthetic:300", 32)
    labels = torch.cat([y for _, y in data.val_batches(7)])
    assert torch.equal(labels, data.val.labels)


def test_devices() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(CoatnetError, match="expected auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(CoatnetError, match="CUDA was requested but is not available"):
            prepare_data("synthetic:100", 32, device="cuda")


def test_real_fashion_mnist_if_installed() -> None:
    from coatnet_nas.data.sources import find_dataset

    if find_dataset("fashion-mnist")[0] is None:
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    data = prepare_data("fashion-mnist", 32, subset=0.05)
    assert (len(data.train), len(data.val)) == (2700, 300)
    assert data.classes == FMNIST_CLASSES
    assert data.train.images.shape[1:] == (3, 32, 32)
    assert set(data.train.labels.tolist()) == set(range(10))
