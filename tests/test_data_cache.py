"""Prepared caches of image folders: decode once, memory-map, resume after kill -9, memory cap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from coatnet_nas.cli import run
from coatnet_nas.data import prepare_data
from coatnet_nas.data.cache import cache_dir, list_caches, prepare_folder
from coatnet_nas.data.prepare import DECODED
from coatnet_nas.errors import DataError
from coatnet_nas.spec import spec_from_dict
from coatnet_nas.train import Runtime, TrainRecipe, train_spec

ROOT = Path(__file__).resolve().parents[1]
TINY = spec_from_dict(
    {
        "name": "tiny",
        "layout": "C-C-T-T",
        "depths": [1, 1, 1, 1, 1],
        "widths": [16, 16, 32, 32, 32],
        "transformer": {"head_dim": 16},
        "image_size": 224,
        "num_classes": 1000,
    }
)


@pytest.fixture(autouse=True)
def _cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COATNET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def write_jpegs(root: Path, classes: int = 10, per_class: int = 30, seed: int = 0) -> int:
    """Photos-like JPEGs at 96-256 px: a smooth colour field per class plus noise."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        (root / f"class{c:02d}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = (int(v) for v in rng.integers(96, 257, 2))
            base = np.array([(c * 25) % 256, (c * 70) % 256, 255 - c * 20], np.float32)
            ramp = np.linspace(0, 60, w, dtype=np.float32)[None, :, None]
            pixels = base + ramp + rng.normal(0, 20, (h, w, 3))
            img = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
            img.save(root / f"class{c:02d}" / f"{i:03d}.jpg", quality=90)
    return classes * per_class


def train(data, **kw):
    recipe = TrainRecipe(**{"epochs": None, "batch_size": 32, **kw})
    return train_spec(TINY, data, recipe, runtime=Runtime(device="cpu", threads=1), seed=0)


def test_prepare_once_then_reload_from_memmap_without_decoding(tmp_path: Path) -> None:
    n = write_jpegs(tmp_path / "imgs", per_class=200)  # 2,000 files, 96-256 px
    before = DECODED["images"]
    seen: list[tuple[int, int]] = []
    data = prepare_data(
        f"folder:{tmp_path / 'imgs'}", 32, progress=lambda d, t: seen.append((d, t))
    )
    assert DECODED["images"] - before == n and seen[-1] == (n, n)
    assert len(data.train) + len(data.val) == n and data.num_classes == 10
    directory = cache_dir(tmp_path / "imgs", (32, 32))
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["train"] == n and manifest["skipped"] == [] and manifest["size"] == [32, 32]
    first = np.load(directory / "images.npy").copy()

    # Overwrite every source file with garbage of the same size and mtime: the folder still
    # digests the same, so a reload must come from the map (a decode would fail or differ).
    for path in sorted((tmp_path / "imgs").rglob("*.jpg")):
        st = path.stat()
        path.write_bytes(b"\0" * st.st_size)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = prepare_data(f"folder:{tmp_path / 'imgs'}", 32)
    assert DECODED["images"] - before == n  # nothing decoded the second time
    assert json.loads((directory / "manifest.json").read_text()) == manifest
    torch.testing.assert_close(again.train.images, data.train.images, rtol=0, atol=0)
    np.testing.assert_array_equal(np.load(directory / "images.npy", mmap_mode="r"), first)

    result = train(again, steps=3, eval_every=3)
    assert result.steps == 3 and np.isfinite(result.train_loss)


def test_edited_folder_is_prepared_again_and_bad_images_are_listed(tmp_path: Path) -> None:
    n = write_jpegs(tmp_path / "imgs", classes=3, per_class=8)
    prepare_folder(tmp_path / "imgs", (24, 24), workers=1)
    (tmp_path / "imgs" / "class01" / "zz.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    before = DECODED["images"]
    directory = prepare_folder(tmp_path / "imgs", (24, 24), workers=2)
    assert DECODED["images"] - before == n + 1
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["skipped"] == [
        {"file": "class01/zz.jpg", "reason": manifest["skipped"][0]["reason"]}
    ]
    assert "cannot read image" in manifest["skipped"][0]["reason"]
    assert manifest["train"] == n and manifest["images"] == "images.valid.npy"
    assert np.load(directory / manifest["images"], mmap_mode="r").shape == (n, 3, 24, 24)


_KILLED_PREPARE = """
import sys, time
from coatnet_nas.data.cache import prepare_folder
# A slow consumer of progress: the parent kills this process mid-way, between chunk records.
prepare_folder(sys.argv[1], (40, 40), workers=2, chunk=16, progress=lambda d, t: time.sleep(0.15))
"""


def test_kill9_mid_prepare_then_rerun_matches_uninterrupted(tmp_path: Path) -> None:
    n = write_jpegs(tmp_path / "imgs", classes=4, per_class=40)
    (tmp_path / "imgs" / "class02" / "broken.jpg").write_bytes(b"garbage")
    env = {**os.environ, "COATNET_CACHE": str(tmp_path / "a"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_PREPARE, str(tmp_path / "imgs")],
        env=env,
        start_new_session=True,
    )
    os.environ["COATNET_CACHE"] = env["COATNET_CACHE"]  # restored by the autouse fixture
    marker = cache_dir(tmp_path / "imgs", (40, 40)) / "progress.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if len(json.loads(marker.read_text())["done"]) >= 3:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    assert proc.poll() is None, "prepare finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the prepare and its worker processes
    proc.wait()
    partial = cache_dir(tmp_path / "imgs", (40, 40))
    assert not (partial / "manifest.json").exists()
    assert not list_caches()[0]["complete"]

    before = DECODED["images"]
    resumed = prepare_folder(tmp_path / "imgs", (40, 40), workers=2, chunk=16)
    assert 0 < DECODED["images"] - before < n + 1  # only the chunks not recorded before the kill
    os.environ["COATNET_CACHE"] = str(tmp_path / "b")
    clean = prepare_folder(tmp_path / "imgs", (40, 40), workers=1, chunk=16)
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (resumed, clean)]
    assert manifests[0] == manifests[1] and len(manifests[0]["skipped"]) == 1
    for name in (manifests[0]["images"], "labels.npy"):
        assert (resumed / name).read_bytes() == (clean / name).read_bytes()


def test_a_stopped_prepare_records_why_and_the_next_one_finishes(tmp_path: Path) -> None:
    """SIGTERM (a Terminated, as the CLI raises it) mid-prepare: the chunks done are kept and
    progress.json says why it stopped; the next prepare decodes only the rest."""
    from coatnet_nas.signals import Terminated

    n = write_jpegs(tmp_path / "imgs", classes=2, per_class=24)

    def stop_after_two_chunks(done: int, total: int) -> None:
        if done >= 32:
            raise Terminated()

    with pytest.raises(Terminated):
        prepare_folder(
            tmp_path / "imgs", (32, 32), workers=1, chunk=16, progress=stop_after_two_chunks
        )
    directory = cache_dir(tmp_path / "imgs", (32, 32))
    state = json.loads((directory / "progress.json").read_text())
    assert state["interrupted"] == "SIGTERM" and len(state["done"]) == 2
    assert not (directory / "manifest.json").exists()
    before = DECODED["images"]
    prepare_folder(tmp_path / "imgs", (32, 32), workers=1, chunk=16)
    assert DECODED["images"] - before == n - 32
    assert (directory / "manifest.json").exists()


def test_over_the_memory_cap_batches_come_from_the_map(tmp_path: Path) -> None:
    write_jpegs(tmp_path / "imgs", classes=4, per_class=25)
    name = f"folder:{tmp_path / 'imgs'}"
    in_memory = prepare_data(name, 32, val_fraction=0.2)
    mapped = prepare_data(name, 32, val_fraction=0.2, memory_cap="50K")  # 100 x 3 KiB > 50 KiB
    assert (in_memory.storage, mapped.storage) == ("memory", "memmap")
    assert mapped.describe()["storage"] == "memmap" and len(mapped.train) == 80
    torch.testing.assert_close(mapped.mean, in_memory.mean)
    for a, b in zip(
        in_memory.train_batches(16, generator=torch.Generator().manual_seed(1)),
        mapped.train_batches(16, generator=torch.Generator().manual_seed(1)),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    grey = prepare_data(name, 24, in_chans=1, memory_cap=1)  # adapted per batch: luma, resize
    assert next(grey.train_batches(8))[0].shape == (8, 1, 24, 24)
    result = train(mapped, steps=3, batch_size=16, eval_every=3)
    assert result.steps == 3 and np.isfinite(result.train_loss)
    with pytest.raises(DataError, match="memory_cap"):
        prepare_data(name, 32, memory_cap="lots")


def test_cli_prepare_list_clean(tmp_path: Path, _cache_root: Path, capsys) -> None:
    write_jpegs(tmp_path / "imgs", classes=2, per_class=6)
    folder = f"folder:{tmp_path / 'imgs'}"
    assert run(["data", "prepare", folder, "--image-size", "48x32", "--workers", "2"]) == 0
    assert "12 train + 0 held-out images" in capsys.readouterr().out
    assert run(["data", "list", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["prepared"]
    assert row["complete"] and row["size"] == [48, 32] and row["bytes"] >= 12 * 3 * 48 * 32
    outside = tmp_path / "keep"
    outside.mkdir()
    (_cache_root / "link").symlink_to(outside)  # a link out of the cache root is never followed
    assert run(["data", "clean"]) == 2
    assert "folder:PATH or --all" in capsys.readouterr().err
    assert run(["data", "clean", folder]) == 0
    assert "1 prepared cache(s) removed" in capsys.readouterr().out
    assert run(["data", "clean", "--all"]) == 0
    assert outside.is_dir() and (_cache_root / "link").is_symlink()
    assert run(["data", "prepare", "cifar10", "--image-size", "32"]) == 2
    assert run(["data", "prepare", folder, "--image-size", "32", "--workers", "0"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
