"""The command line only turns flags into library values: every bad value gets the library's
own message (with the flag where the Python caller reads the parameter), a new option's errors
name its flag with no second edit, old spellings still work with a note, options sit in panels."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
import typer
import yaml

from coatnet_nas.cli import app, command, run
from coatnet_nas.compare import CompareConfig
from coatnet_nas.data.options import DataOptions
from coatnet_nas.errors import CoatnetError
from coatnet_nas.export.formats import parse_format, parse_runtime
from coatnet_nas.proxies import parse_proxy
from coatnet_nas.scaling import shrink_spec
from coatnet_nas.search import SearchConfig, space_from_dict
from coatnet_nas.spec import load_spec
from coatnet_nas.train import Runtime, TrainRecipe
from coatnet_nas.train.job import Saving, TrainJob
from coatnet_nas.train.tensorboard import TensorBoardRuns
from coatnet_nas.units import parse_flops
from tests.conftest import tiny_space

TINY = {
    "name": "tiny",
    "layout": "C-T",
    "depths": [1, 1, 1],
    "widths": [8, 16, 32],
    "image_size": 32,
    "num_classes": 10,
    "transformer": {"head_dim": 16},
}


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def _cases(spec: Path, tmp: Path) -> list:
    """(command line, the same value through the Python API, parameter, flag)."""
    train = ["train", str(spec), "--steps", "1", "--device", "cpu"]
    model = load_spec(spec)
    missing = tmp / "missing.pt"
    space_file = tmp / "space.yaml"
    space_file.write_text(yaml.safe_dump(tiny_space()))
    space = space_from_dict(tiny_space())
    search = ["search", "--space", str(space_file), "--storage", f"sqlite:///{tmp}/s.db"]
    search += ["--trials", "1", "--device", "cpu"]
    a_file = tmp / "a-file"
    a_file.write_text("x")
    return [
        (
            [*search, "--objective", "flops"],
            lambda: SearchConfig(space=space, objectives=("flops",)),
            "objectives",
            "--objective",
        ),
        ([*search, "--proxy", "nope"], lambda: parse_proxy("nope"), "proxy", "--proxy"),
        (
            [*search, "--tensorboard", str(a_file)],
            lambda: TensorBoardRuns(a_file),
            "tensorboard",
            "--tensorboard",
        ),
        ([*train, "--lr", "-1"], lambda: TrainRecipe().evolve(lr=-1), "lr", "--lr"),
        ([*train, "--amp", "fp8"], lambda: Runtime(amp="fp8"), "amp", "--amp"),
        (
            ["train", str(spec), "--device", "tpu"],
            lambda: Runtime(device="tpu"),
            "device",
            "--device",
        ),
        (
            [*train, "--holdout", "train"],
            lambda: DataOptions(holdout="train"),
            "holdout",
            "--holdout",
        ),
        ([*train, "--subset", "2"], lambda: DataOptions(subset=2.0), "subset", "--subset"),
        (
            [*train, "--val-fraction", "1.5"],
            lambda: DataOptions(val_fraction=1.5),
            "val_fraction",
            "--val-fraction",
        ),
        ([*train, "--mixup", "0.5"], lambda: DataOptions(mixup=0.5), "mixup", "--mixup"),
        ([*train, "--stream"], lambda: DataOptions(stream=True), "stream", "--stream"),
        (
            [*train, "-d", "folder:/x", "--stream", "--loader-workers", "-1"],
            lambda: DataOptions(dataset="folder:/x", stream=True, loader_workers=-1),
            "loader_workers",
            "--loader-workers",
        ),
        (
            [*train, "--auto-augment", "sideways"],
            lambda: DataOptions(auto_augment="sideways"),
            "auto_augment",
            "--auto-augment",
        ),
        (
            [*train, "--memory-cap", "lots"],
            lambda: DataOptions(memory_cap="lots"),
            "memory_cap",
            "--memory-cap",
        ),
        ([*train, "--nproc", "0"], lambda: TrainJob(model, nproc=0), "nproc", "--nproc"),
        ([*train, "--resume", str(missing)], lambda: Saving(resume=missing), "resume", "--resume"),
        (
            [*train, "--save-every", "-1"],
            lambda: Saving(save_every=-1),
            "save_every",
            "--save-every",
        ),
        (
            [*train, "--width-mult", "0"],
            lambda: shrink_spec(model, width_mult=0),
            "width_mult",
            "--width-mult",
        ),
        (
            [*train, "--image-size", "abc"],
            lambda: shrink_spec(model, image_size="abc"),
            "image_size",
            "--image-size",
        ),
        (
            ["compare", "--vary", "sideways"],
            lambda: CompareConfig(base=model, vary="sideways"),
            "vary",
            "--vary",
        ),
        (
            ["scale", str(spec), "--budget", "4GB"],
            lambda: parse_flops("4GB", what="flops"),
            "flops",
            "--budget",
        ),
        (
            ["export", str(spec), "--out", str(tmp / "m.onnx"), "--format", "tflite"],
            lambda: parse_format("tflite"),
            "format",
            "--format",
        ),
        (
            ["build", str(spec), "--latency", "--runtime", "tflite"],
            lambda: parse_runtime("tflite"),
            "runtime",
            "--runtime",
        ),
    ]


def test_each_bad_value_gets_the_librarys_message_through_cli_and_api(
    spec_file: Path, tmp_path: Path, capsys
) -> None:
    for argv, api, param, flag in _cases(spec_file, tmp_path):
        with pytest.raises(CoatnetError) as info:
            api()
        assert info.value.param == param, (argv, str(info.value))
        # Other parameters a message names in `backquotes` are spelled as their flags too.
        said = re.sub(r"`([a-z_]+)`", lambda m: "--" + m[1].replace("_", "-"), str(info.value))
        assert run(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, err
        shown = err.removeprefix("error: ").strip()
        # The same sentence: the flag where the parameter was, or in front of it.
        assert shown in (f"{flag}{said[len(param) :]}", f"{flag}: {said}"), (shown, said)


def test_a_new_options_error_names_its_flag_with_no_second_edit(capsys) -> None:
    @app.command("probe-new-option")
    def probe(window_size: int = typer.Option(3, "--window", metavar="N")) -> None:
        raise CoatnetError(f"window_size must be odd, got {window_size}.", param="window_size")

    try:
        assert run(["probe-new-option", "--window", "4"]) == 2
        assert capsys.readouterr().err == "error: --window must be odd, got 4.\n"
    finally:
        app.registered_commands.pop()


def test_old_spellings_still_work_with_a_one_line_note(spec_file: Path, tmp_path: Path, capsys):
    out = tmp_path / "m.onnx"
    assert run(["export", str(spec_file), "--out", str(out), "--batch", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "note: --batch is deprecated and will be removed; use --batch-size"
    assert err[1].startswith("error: --batch-size must be an integer >= 1")
    missing = tmp_path / "none.yaml"
    assert (
        run(
            [
                "latency",
                "table",
                "--spec",
                str(missing),
                "--out",
                str(tmp_path / "t.json"),
                "--warmup",
                "0",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "note: --spec is deprecated and will be removed; give it as an argument"
    assert err[1] == "note: --warmup is deprecated and will be removed; use --warmup-runs"
    assert "no such spec" in err[2]
    for argv in (["proxy-check", "--help"], ["latency", "table", "--help"]):
        assert run(argv) == 0
        text = capsys.readouterr().out
        assert "--n " not in text and "--spec" not in text and "--warmup " not in text


def test_options_are_grouped_in_help_panels(capsys) -> None:
    assert run(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for panel in ("Data", "Model shrink", "Optimisation", "Runtime", "Output"):
        assert f"─ {panel} ─" in text


def _commands(group, path=()):  # type: ignore[no-untyped-def]
    for name, sub in getattr(group, "commands", {}).items():
        yield from _commands(sub, (*path, name)) if hasattr(sub, "commands") else [(path, sub)]


def test_commands_are_short_and_every_flag_means_one_thing() -> None:
    root = typer.main.get_command(app)
    meaning: dict[str, set[str]] = {}
    for _, cmd in _commands(root):
        source = inspect.getsource(cmd.callback)
        func = ast.parse(source.lstrip()).body[0]
        body = func.end_lineno - func.body[0].lineno + 1  # type: ignore[attr-defined]
        assert body <= 60, f"{cmd.name}: {body} lines"
        for param in cmd.params:
            for flag in param.opts:
                meaning.setdefault(flag, set()).add(param.name)
    # One flag, one meaning across all commands: the parameter behind a flag is the same or a
    # library synonym of it (--out is a file or a folder, as the command says).
    synonyms = [{"batch", "batch_size"}, {"n", "trials"}, {"table", "latency_table"}]
    clashes = {
        f: names
        for f, names in meaning.items()
        if len(names) > 1 and f != "--out" and not any(names <= s for s in synonyms)
    }
    assert not clashes, clashes
    assert "--batch" not in meaning and "--n" not in meaning and "--spec" not in meaning
    assert command("latency", "table").params[0].name == "specs"
