"""One data path: Fashion-MNIST and CIFAR are read once into the prepared, memory-mapped cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from coatnet_nas.data import load_raw, locate, prepare_data
from coatnet_nas.data.cache import list_caches
from coatnet_nas.data.native import native_dir
from tests.test_data_sources import write_cifar10, write_fmnist


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COATNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    monkeypatch.setattr(locate, "SYSTEM_ROOT", tmp_path / "no-system-datasets")
    return tmp_path / "cache"


def _garble_keeping_stamps(root: Path) -> None:
    """Overwrite every file with zeros of the same size and mtime: a re-read would fail."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        st = path.stat()
        path.write_bytes(b"\0" * st.st_size)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_fashion_mnist_is_read_once_then_mapped(tmp_path: Path) -> None:
    arrays = write_fmnist(tmp_path / "fm", n_train=40, n_test=20)
    raw = load_raw("fashion-mnist", tmp_path / "fm")
    assert isinstance(raw.train_images, np.memmap) and not raw.train_images.flags.writeable
    np.testing.assert_array_equal(raw.train_images[:, 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(raw.test_images[:, 0], arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(raw.train_labels, arrays["train-labels-idx1-ubyte"])
    directory = native_dir("fashion-mnist", str((tmp_path / "fm").resolve()))
    manifest = json.loads((directory / "manifest.json").read_text())
    assert (manifest["train"], manifest["test"], manifest["size"]) == (40, 20, [28, 28])
    (row,) = list_caches()
    assert row["complete"] and row["kind"] == "fashion-mnist" and row["images"] == 60

    before = prepare_data("fashion-mnist", 32, data_dir=tmp_path / "fm", val_fraction=0.25)
    _garble_keeping_stamps(tmp_path / "fm")  # same stamps: the cache is still fresh
    after = prepare_data("fashion-mnist", 32, data_dir=tmp_path / "fm", val_fraction=0.25)
    torch.testing.assert_close(after.train.images, before.train.images, rtol=0, atol=0)
    torch.testing.assert_close(after.val.labels, before.val.labels, rtol=0, atol=0)
    mapped = prepare_data(
        "fashion-mnist", 28, data_dir=tmp_path / "fm", in_chans=1, holdout="test", memory_cap=1
    )
    assert mapped.storage == "memmap" and len(mapped.val) == 20

    write_fmnist(tmp_path / "fm", n_train=30, n_test=10)  # new files, new stamps: read again
    assert len(load_raw("fashion-mnist", tmp_path / "fm").train_labels) == 30


def test_cifar_through_the_cache_keeps_its_pixels(tmp_path: Path) -> None:
    root = write_cifar10(tmp_path / "c")
    direct = load_raw("cifar10", tmp_path / "c")
    assert isinstance(direct.train_images, np.memmap) and direct.train_images.shape[1:] == (
        3,
        32,
        32,
    )
    from coatnet_nas.data.cifar import load_cifar

    reference = load_cifar.__wrapped__("cifar10", str(root.parent.resolve()), 0.0)
    np.testing.assert_array_equal(direct.train_images, reference.train_images)
    np.testing.assert_array_equal(direct.test_labels, reference.test_labels)
    assert direct.classes == reference.classes


def test_cli_lists_and_cleans_a_data_set_cache(tmp_path: Path, capsys) -> None:
    from coatnet_nas.cli import run

    write_fmnist(tmp_path / "fm")
    write_cifar10(tmp_path / "c")
    load_raw("fashion-mnist", tmp_path / "fm")
    load_raw("cifar10", tmp_path / "c")
    assert run(["data", "list", "--data-dir", str(tmp_path / "fm")]) == 0
    out = capsys.readouterr().out
    assert "prepared caches in" in out and "fashion-mnist @ 28x28: 60 images" in out
    assert run(["data", "clean", "fashion-mnist"]) == 0
    assert "1 prepared cache(s) removed" in capsys.readouterr().out
    assert [row["kind"] for row in list_caches()] == ["cifar10"]
