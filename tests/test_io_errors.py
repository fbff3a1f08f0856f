"""Safe writes (coatnet_nas._io) and errors that name their parameter (CLI maps it to a flag)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coatnet_nas._io import (
    atomic_write_json,
    atomic_write_text,
    check_output_file,
    pyplot,
    save_figure,
)
from coatnet_nas.cli import command, run
from coatnet_nas.cli.errors import user_message
from coatnet_nas.data import resolve_device
from coatnet_nas.errors import CoatnetError


def test_atomic_writes_leave_only_the_target(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "a" / "b.txt", "hello")
    assert target.read_text() == "hello" and os.listdir(target.parent) == ["b.txt"]
    atomic_write_json(target, {"x": float("nan"), "t": (1, 2)})
    assert target.read_text() == '{\n  "x": null,\n  "t": [\n    1,\n    2\n  ]\n}\n'


def test_atomic_writes_get_the_umask_mode_or_keep_the_old_one(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        fresh = atomic_write_text(tmp_path / "new.json", "{}")
        assert fresh.stat().st_mode & 0o777 == 0o640  # not mkstemp's 0600
    finally:
        os.umask(old)
    kept = tmp_path / "kept.txt"
    kept.write_text("x")
    kept.chmod(0o604)
    atomic_write_text(kept, "y")
    assert kept.stat().st_mode & 0o777 == 0o604 and kept.read_text() == "y"


def test_targets_that_are_not_regular_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(CoatnetError, match="is a directory") as info:
        atomic_write_text(tmp_path / "dir", "x", param="save")
    assert info.value.param == "save" and str(info.value).startswith("save ")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(CoatnetError, match="not a regular file"):
        check_output_file(fifo)
    assert fifo.exists() and not fifo.is_file()  # untouched
    (tmp_path / "file").write_text("x")
    with pytest.raises(CoatnetError, match="not a directory"):
        atomic_write_text(tmp_path / "file" / "inner.txt", "x")


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    def broken(path: Path) -> None:
        path.write_text("partial")
        raise OSError(28, "No space left on device")

    from coatnet_nas._io import atomic_write

    with pytest.raises(CoatnetError, match="No space left on device"):
        atomic_write(tmp_path / "out.bin", broken)
    assert os.listdir(tmp_path) == []


def test_figures_are_saved_in_the_suffix_format(tmp_path: Path) -> None:
    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "plot.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and os.listdir(tmp_path) == ["plot.png"]


def test_library_errors_name_parameters_and_the_cli_names_flags(capsys) -> None:
    with pytest.raises(CoatnetError) as info:
        resolve_device("tpu")
    assert info.value.param == "device" and "--" not in str(info.value)
    train, search, compare = command("train"), command("search"), command("compare")
    assert user_message(info.value, train).startswith("--device 'tpu': expected auto")
    assert user_message(CoatnetError("workers must be >= 1", param="workers"), search) == (
        "--workers must be >= 1"
    )
    inside = CoatnetError("unknown dataset 'x'; available: synthetic", param="dataset")
    assert user_message(inside, train) == "--dataset: unknown dataset 'x'; available: synthetic"
    assert user_message(CoatnetError("workersX", param="workers"), search) == "--workers: workersX"
    assert user_message(CoatnetError("no mention", param="seeds"), compare) == "--seeds: no mention"
    assert user_message(CoatnetError("untagged"), train) == "untagged"
    code = run(["train", "x.yaml", "--device", "tpu"])
    err = capsys.readouterr().err
    assert code == 2 and "--device" in err and "Traceback" not in err


def test_train_save_target_is_checked_before_training(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "layout: C-T\ndepths: [1, 1, 1]\nwidths: [8, 16, 32]\ntransformer: {head_dim: 16}\n"
    )
    (tmp_path / "taken").mkdir()
    code = run(
        [
            "train",
            str(spec),
            "--dataset",
            "synthetic:100",
            "--image-size",
            "32",
            "--steps",
            "1",
            "--save",
            str(tmp_path / "taken"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 2 and "--save" in captured.err and "is a directory" in captured.err
    assert "training" not in captured.out  # refused before any work


def test_a_parameter_in_parentheses_is_spelled_as_its_flag() -> None:
    exc = CoatnetError("runs from other settings are here; start over (fresh): /x", param="out_dir")
    compare = command("compare")
    assert (
        user_message(exc, compare)
        == "--out: runs from other settings are here; start over (--fresh): /x"
    )
    assert user_message(CoatnetError("keep (recipe) as is"), compare) == "keep (recipe) as is"
