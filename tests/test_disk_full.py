"""A full disk, for real (a small tmpfs), and broken checkpoints: one paragraph, exit 2, the
previous file intact. Mounting needs root (CI runs as root); elsewhere these tests skip."""

from __future__ import annotations

import errno
import os
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from coatnet_nas._io import atomic_write, atomic_write_text, free_bytes
from coatnet_nas.cli import run
from coatnet_nas.data import locate
from coatnet_nas.errors import CoatnetError, DiskFullError
from coatnet_nas.train.checkpoint import read_payload, save_payload
from tests.conftest import tiny_space, tiny_train, write

SPEC = {
    "name": "tiny-ct",
    "layout": "C-T",
    "depths": [1, 1, 1],
    "widths": [16, 16, 32],
    "image_size": 32,
    "num_classes": 10,
    "transformer": {"head_dim": 16},
}
OLD = b"the previous version of this file\n"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator:
    """``small_fs(kib)``: a fresh tmpfs of that size (unmounted afterwards)."""
    mounts: list[Path] = []

    def mount(kib: int) -> Path:
        folder = tmp_path / f"fs{len(mounts)}"
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounts.append(folder)
        return folder

    yield mount
    for folder in mounts:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path, leave: int = 8 * 1024) -> None:
    """Take all but ``leave`` bytes of ``folder``'s file system."""
    free = free_bytes(folder)
    assert free is not None
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def previous(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(OLD)
    return path


def one_paragraph(text: str, *needles: str) -> None:
    assert "Traceback" not in text and "\n\n" not in text.strip(), text
    assert len(text) < 1200, text
    for needle in needles:
        assert needle in text, (needle, text)


def no_temporaries(folder: Path) -> None:
    assert not [p.name for p in folder.rglob(".*.tmp")]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a rescued model lands here, never in the repository
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    monkeypatch.setattr(locate, "SYSTEM_ROOT", tmp_path / "no-system-datasets")


# --- the library ---------------------------------------------------------------------------
def test_enospc_raises_disk_full_with_path_needed_and_free(small_fs) -> None:
    fs = small_fs(256)
    target = previous(fs / "out.txt")
    fill(fs)
    with pytest.raises(DiskFullError) as info:
        atomic_write_text(target, "x" * 100_000, param="out")
    err = info.value
    assert err.path == str(target) and err.needed == 100_000
    assert err.free is not None and err.free < 100_000 and err.param == "out"
    one_paragraph(str(err), str(target), "file system is full", "100.0 kB", "intact")
    assert target.read_bytes() == OLD
    no_temporaries(fs)
    # torch's zip writer fails with a RuntimeError, not OSError: still recognised, sized
    payload = {"format": "coatnet-nas/checkpoint-2", "state_dict": {"w": torch.zeros(50_000)}}
    with pytest.raises(DiskFullError, match=r"about 20\d\.\d kB") as info:
        save_payload(target, payload)
    assert info.value.needed > 200_000 and info.value.free >= 4096  # the temporary is gone
    assert target.read_bytes() == OLD
    no_temporaries(fs)


def test_other_write_errors_stay_what_they_were(tmp_path: Path) -> None:
    def bug(tmp: Path) -> None:
        raise RuntimeError("a bug in the writer")

    with pytest.raises(RuntimeError, match="a bug"):
        atomic_write(tmp_path / "x", bug)  # room on this disk: not blamed on it

    def denied(tmp: Path) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(CoatnetError, match="cannot write") as info:
        atomic_write(tmp_path / "x", denied)
    assert not isinstance(info.value, DiskFullError)


def test_a_download_onto_a_full_disk(small_fs, tmp_path: Path) -> None:
    from coatnet_nas.data.fetch import download
    from tests.test_fetch import Server

    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "big.bin").write_bytes(os.urandom(300_000))
    server = Server(tmp_path / "www")
    try:
        fs = small_fs(128)
        with pytest.raises(DiskFullError) as info:
            download(f"{server.url}/big.bin", fs / "big.bin", "0" * 32)
    finally:
        server.close()
    assert info.value.needed == 300_000 and info.value.path == str(fs / "big.bin")
    one_paragraph(str(info.value), "big.bin", "file system is full", "300.0 kB")
    assert list(fs.iterdir()) == []  # no partial file


# --- the commands --------------------------------------------------------------------------
def test_train_save_onto_a_full_disk(small_fs, tmp_path: Path, capsys) -> None:
    fs = small_fs(512)
    ckpt = previous(fs / "run" / "tiny.pt")
    spec = write(tmp_path, yaml.safe_dump(SPEC), "ct.yaml")
    fill(fs)
    code = run(tiny_train(spec, "--save", str(ckpt)))
    err = capsys.readouterr().err
    assert code == 2
    one_paragraph(err, str(ckpt), "file system is full", "free there", "coatnet-rescued-tiny.pt")
    assert ckpt.read_bytes() == OLD  # the previous file, untouched
    no_temporaries(fs)
    assert read_payload(tmp_path / "coatnet-rescued-tiny.pt")["result"]["steps"] == 2


def test_data_prepare_onto_a_full_disk(small_fs, tmp_path: Path, monkeypatch, capsys) -> None:
    from PIL import Image

    for c in range(2):
        (tmp_path / "imgs" / f"c{c}").mkdir(parents=True)
        for i in range(6):
            pixels = np.full((40, 40, 3), 40 * c + i, dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / f"c{c}" / f"{i}.png")
    fs = small_fs(256)  # 12 images x 3 x 128 x 128 = 590 kB do not fit
    monkeypatch.setenv("COATNET_CACHE", str(fs))
    code = run(
        ["data", "prepare", f"folder:{tmp_path / 'imgs'}", "--image-size", "128", "--workers", "1"]
    )
    err = capsys.readouterr().err
    assert code == 2
    one_paragraph(err, "images.npy", "file system is full", "590.0 kB")
    assert not list(fs.rglob("manifest.json"))  # never declared complete
    assert (
        run(
            [
                "data",
                "prepare",
                f"folder:{tmp_path / 'imgs'}",
                "--image-size",
                "32",
                "--workers",
                "1",
            ]
        )
        == 0
    )  # what fits still prepares


def test_search_outputs_and_report_onto_a_full_disk(small_fs, tmp_path: Path, capsys) -> None:
    space = write(tmp_path, yaml.safe_dump(tiny_space(steps=2)), "space.yaml")
    url = f"sqlite:///{tmp_path}/s.db"
    fs = small_fs(256)
    out = fs / "runs"
    best = previous(out / "best.yaml")
    fill(fs, leave=2 * 1024)
    code = run(
        [
            "search",
            "--space",
            str(space),
            "--storage",
            url,
            "--study",
            "s",
            "--trials",
            "1",
            "--device",
            "cpu",
            "--sampler",
            "random",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    one_paragraph(err, str(out), "file system is full", "free there")
    assert best.read_bytes() == OLD
    no_temporaries(fs)
    code = run(["report", "--storage", url, "--study", "s", "--out", str(out)])
    one_paragraph(capsys.readouterr().err, str(out), "file system is full")
    assert code == 2 and best.read_bytes() == OLD
    (fs / "filler").unlink()  # room again: the same report now writes everything
    assert run(["report", "--storage", url, "--study", "s", "--out", str(out)]) == 0
    assert (out / "trials.csv").exists() and best.read_bytes() != OLD


def test_latency_table_onto_a_full_disk(small_fs, tmp_path: Path, capsys) -> None:
    spec = write(tmp_path, yaml.safe_dump(SPEC), "ct.yaml")
    fs = small_fs(128)
    table = fs / "table.json"  # (an existing table would be read and extended: none here)
    fill(fs, leave=1024)
    code = run(
        [
            "latency",
            "table",
            "--spec",
            str(spec),
            "--out",
            str(table),
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--calibration",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    one_paragraph(err, str(table), "file system is full", "free there")
    assert not table.exists()
    no_temporaries(fs)


@pytest.mark.parametrize("suffix", [".pt", ".onnx"])
def test_export_onto_a_full_disk(small_fs, tmp_path: Path, capsys, suffix: str) -> None:
    if suffix == ".onnx":
        pytest.importorskip("onnx")
    spec = write(tmp_path, yaml.safe_dump(SPEC), "ct.yaml")
    fs = small_fs(256)
    model = previous(fs / f"model{suffix}")
    fill(fs)
    code = run(["export", str(spec), "--out", str(model), "--no-check"])
    err = capsys.readouterr().err
    assert code == 2
    one_paragraph(err, str(model), "file system is full", "free there")
    assert model.read_bytes() == OLD
    no_temporaries(fs)


# --- broken and foreign checkpoints --------------------------------------------------------
@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ck") / "good.pt"
    spec = path.parent / "ct.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    assert run(tiny_train(spec, "--save", str(path))) == 0
    return path


def _broken(kind: str, good: Path, folder: Path) -> Path:
    path = folder / f"{kind}.pt"
    data = bytearray(good.read_bytes())
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "bitflip":  # one bit inside the stored weights
        with zipfile.ZipFile(good) as z:
            info = max(z.infolist(), key=lambda i: i.file_size)  # the largest tensor
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        data[start + info.file_size // 2] ^= 0x04
        path.write_bytes(data)
    elif kind == "foreign-torch":  # another program's torch file (a bare state dict)
        torch.save({"model": {"w": torch.zeros(3)}, "epoch": 3}, path)
    elif kind == "foreign-zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("data.txt", "not a checkpoint")
    elif kind == "foreign-pickle":  # a pickle that would run code: never unpickled
        import pickle

        path.write_bytes(pickle.dumps(os.getcwd) + b"\0" * 64)
    return path


@pytest.mark.parametrize(
    "kind, needle",
    [
        ("truncated", "truncated or damaged"),
        ("bitflip", "checkpoint is damaged"),
        ("foreign-torch", "another program wrote it"),
        ("foreign-zip", "another program wrote it"),
        ("foreign-pickle", "another program wrote it"),
    ],
)
def test_broken_checkpoints_are_one_paragraph(
    good_checkpoint: Path, tmp_path: Path, capsys, kind: str, needle: str
) -> None:
    path = _broken(kind, good_checkpoint, tmp_path)
    spec = tmp_path / "ct.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    base = tiny_train(spec)
    for args in (["--resume", str(path)], ["--init", str(path)]):
        assert run([*base, *args]) == 2
        one_paragraph(capsys.readouterr().err, str(path), needle)
    assert run(["export", str(spec), "--weights", str(path), "--out", str(tmp_path / "m.pt")]) == 2
    one_paragraph(capsys.readouterr().err, str(path), needle)
