"""Dataset sources read from small real files written here: IDX, CIFAR pickles, image folders."""

from __future__ import annotations

import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coatnet_nas.data import load_raw, locate, parse_name, prepare_data, read_idx, synthetic
from coatnet_nas.errors import DataError


@pytest.fixture(autouse=True)
def _isolated_search_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No dataset leaks in from the machine: empty cache, no $COATNET_DATA, no system copy."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("COATNET_CACHE", raising=False)  # prepared caches go under it too
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    monkeypatch.setattr(locate, "SYSTEM_ROOT", tmp_path / "no-system-datasets")


# --- fixture writers -------------------------------------------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_fmnist(root: Path, n_train: int = 40, n_test: int = 20, gz: bool = True) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": ((np.arange(n_test) + 3) % 10).astype(np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)
    return arrays


def cifar_batch(n: int, n_classes: int, labels_key: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"fixture",
        labels_key.encode(): [int(v) for v in rng.integers(0, n_classes, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }


def write_cifar10(root: Path, per_batch: int = 4) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        batch = cifar_batch(per_batch, 10, "labels", i)
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(cifar_batch(6, 10, "labels", 9), protocol=2))
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def write_cifar100(root: Path) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    (folder / "train").write_bytes(pickle.dumps(cifar_batch(30, 100, "fine_labels", 1), protocol=2))
    (folder / "test").write_bytes(pickle.dumps(cifar_batch(10, 100, "fine_labels", 2), protocol=2))
    meta = {b"fine_label_names": [f"fine{i}".encode() for i in range(100)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def write_folder(root: Path, classes: dict[str, int], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    modes = ("RGB", "L", "RGBA")
    for c, (cls, count) in enumerate(classes.items()):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            img = Image.fromarray(pixels).convert(modes[(c + i) % 3])
            suffix = "jpg" if img.mode != "RGBA" and i % 2 else "png"  # JPEG has no alpha
            img.save(root / cls / f"{i}.{suffix}")


# --- names -----------------------------------------------------------------------------------
def test_names_normalize_and_unknown_names_suggest() -> None:
    assert parse_name("Fashion_MNIST") == ("fashion-mnist", None)
    assert parse_name("CIFAR-10") == ("cifar10", None)
    assert parse_name("synthetic:500") == ("synthetic", "500")
    assert parse_name("folder:/x/y") == ("folder", "/x/y")
    with pytest.raises(DataError, match="did you mean 'cifar100'"):
        parse_name("cifar1000")
    with pytest.raises(DataError, match="needs a path"):
        parse_name("folder")


# --- IDX / Fashion-MNIST ---------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    arrays = write_fmnist(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    images = read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}")
    np.testing.assert_array_equal(images, arrays["train-images-idx3-ubyte"])


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path: Path) -> None:
    good = idx_bytes(np.zeros((5, 28, 28), np.uint8))
    (tmp_path / "short").write_bytes(good[:-10])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(tmp_path / "short")
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "png")


def test_fashion_mnist_from_data_dir(tmp_path: Path) -> None:
    arrays = write_fmnist(tmp_path / "fm")
    data = prepare_data("fashion-mnist", 32, data_dir=tmp_path / "fm", val_fraction=0.25)
    assert (len(data.train), len(data.val)) == (30, 10)
    assert data.train.images.shape == (30, 3, 32, 32)
    assert data.train.images.dtype.is_floating_point is False
    assert data.num_classes == 10 and data.classes[0] == "T-shirt/top"
    # grey -> 3 identical channels
    assert (data.train.images[:, 0] == data.train.images[:, 2]).all()
    all_labels = sorted(data.train.labels.tolist() + data.val.labels.tolist())
    assert all_labels == sorted(arrays["train-labels-idx1-ubyte"].tolist())


def test_fashion_mnist_official_test_split_as_holdout(tmp_path: Path) -> None:
    arrays = write_fmnist(tmp_path, n_train=40, n_test=20)
    data = prepare_data("fashion-mnist", 28, data_dir=tmp_path, holdout="test", in_chans=1)
    assert len(data.train) == 40 and len(data.val) == 20
    np.testing.assert_array_equal(
        data.val.images[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"]
    )  # native size, 1 channel: the test images unchanged


def test_dataset_found_in_named_subfolder_and_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_fmnist(tmp_path / "datasets" / "fashion-mnist")
    assert load_raw("fashion-mnist", tmp_path / "datasets").source.endswith("fashion-mnist")
    monkeypatch.setenv(locate.ENV_VAR, str(tmp_path / "datasets"))
    assert len(load_raw("fashion-mnist").train_labels) == 40


def test_missing_dataset_names_places_and_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        prepare_data("fashion-mnist", 32, data_dir=tmp_path / "empty")
    message = str(info.value)
    assert str(tmp_path / "empty") in message
    assert str(locate.cache_root()) in message
    assert "coatnet data fetch fashion-mnist" in message
    assert "dataset-fashion-mnist" in message
    with pytest.raises(DataError, match="coatnet data fetch cifar100"):
        load_raw("cifar100", tmp_path)


# --- CIFAR -----------------------------------------------------------------------------------
def test_cifar10_extracted_and_archive_agree(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path / "extracted")
    from_dir = load_raw("cifar10", tmp_path / "extracted")
    assert from_dir.train_images.shape == (20, 3, 32, 32)
    assert from_dir.test_images is not None and from_dir.test_images.shape == (6, 3, 32, 32)
    assert from_dir.classes == tuple(f"class{i}" for i in range(10))
    first = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")
    np.testing.assert_array_equal(from_dir.train_images[0].reshape(-1), first[b"data"][0])

    packed = tmp_path / "packed"
    packed.mkdir()
    with tarfile.open(packed / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    from_tar = load_raw("cifar10", packed)
    np.testing.assert_array_equal(from_tar.train_images, from_dir.train_images)
    np.testing.assert_array_equal(from_tar.train_labels, from_dir.train_labels)

    data = prepare_data("cifar10", 32, data_dir=packed, val_fraction=0.2)
    assert (len(data.train), len(data.val), data.in_chans) == (16, 4, 3)


def test_cifar100_fine_labels(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    raw = load_raw("cifar100", tmp_path)
    assert raw.num_classes == 100 and raw.train_images.shape == (30, 3, 32, 32)
    data = prepare_data("cifar100", 32, data_dir=tmp_path, in_chans=1, holdout="test")
    assert data.train.images.shape == (30, 1, 32, 32) and len(data.val) == 10


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(_Exploit.target),))


def test_cifar_pickles_cannot_run_code(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path)
    _Exploit.target = str(tmp_path / "pwned")
    batch = cifar_batch(4, 10, "labels", 1)
    batch[b"extra"] = _Exploit()
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match="refusing to load global"):
        load_raw("cifar10", tmp_path)
    assert not (tmp_path / "pwned").exists()


# --- image folders ---------------------------------------------------------------------------
def test_folder_of_class_subfolders(tmp_path: Path) -> None:
    write_folder(tmp_path / "imgs", {"cats": 6, "dogs": 5, "eels": 4})
    data = prepare_data(f"folder:{tmp_path / 'imgs'}", (32, 48), val_fraction=0.2)
    assert data.classes == ("cats", "dogs", "eels")
    assert len(data.train) + len(data.val) == 15
    assert data.train.images.shape[1:] == (3, 32, 48)
    counts = np.bincount(np.r_[data.train.labels.numpy(), data.val.labels.numpy()])
    assert counts.tolist() == [6, 5, 4]


def test_folder_with_train_and_val_splits(tmp_path: Path) -> None:
    write_folder(tmp_path / "train", {"a": 4, "b": 4})
    write_folder(tmp_path / "val", {"a": 2, "b": 3}, seed=1)
    data = prepare_data(f"folder:{tmp_path}", 32, holdout="test")
    assert (len(data.train), len(data.val)) == (8, 5)
    assert data.classes == ("a", "b")


def test_folder_problems_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such directory"):
        load_raw(f"folder:{tmp_path / 'nope'}")
    write_folder(tmp_path / "one", {"only": 3})
    with pytest.raises(DataError, match="at least 2"):
        load_raw(f"folder:{tmp_path / 'one'}")
    write_folder(tmp_path / "gap", {"a": 2})
    (tmp_path / "gap" / "b").mkdir()
    with pytest.raises(DataError, match="hold no images"):
        load_raw(f"folder:{tmp_path / 'gap'}")
    (tmp_path / "gap" / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image"):
        load_raw(f"folder:{tmp_path / 'gap'}")


# --- synthetic -------------------------------------------------------------------------------
def test_synthetic_is_seeded_balanced_and_colourful() -> None:
    a_images, a_labels = synthetic.make_synthetic(200, seed=3)
    b_images, b_labels = synthetic.make_synthetic(200, seed=3)
    np.testing.assert_array_equal(a_images, b_images)
    np.testing.assert_array_equal(a_labels, b_labels)
    assert a_images.shape == (200, 3, 32, 32) and a_images.dtype == np.uint8
    assert np.bincount(a_labels).tolist() == [20] * 10
    assert not np.array_equal(a_images[:, 0], a_images[:, 1])  # colour, not grey
    assert not np.array_equal(synthetic.make_synthetic(200, seed=4)[0], a_images)


def test_synthetic_size_in_name() -> None:
    data = prepare_data("synthetic:300", 32)
    assert len(data.train) + len(data.val) == 300 and data.num_classes == 10
    with pytest.raises(DataError, match="synthetic:6000"):
        load_raw("synthetic:abc")
