"""coatnet export: ONNX, TorchScript and torch.export files that run without coatnet-nas and
agree with eager PyTorch; checkpoint weights really exported; bad input exits 2, writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from coatnet_nas.builder import CoAtNet
from coatnet_nas.cli import run
from coatnet_nas.errors import CoatnetError
from coatnet_nas.export import ExportFormat, export_model, parse_format, runtime_latency
from coatnet_nas.export.deps import require
from coatnet_nas.spec import spec_from_dict
from coatnet_nas.train import load_weights, save_checkpoint

CT = {
    "name": "tiny-ct",
    "layout": "C-T",
    "depths": [1, 1, 1],
    "widths": [16, 16, 32],
    "image_size": 32,
    "num_classes": 10,
    "transformer": {"head_dim": 16},
}
CTTT = {
    "name": "tiny-cttt",
    "layout": "C-T-T-T",
    "depths": [1, 1, 1, 2, 1],
    "widths": [16, 16, 32, 32, 64],
    "image_size": 64,
    "num_classes": 10,
    "transformer": {"head_dim": 16},
}

# Runs in a fresh interpreter outside the repository with no PYTHONPATH; importing coatnet_nas
# is made impossible, so the files must run on onnxruntime / torch alone.
STANDALONE = textwrap.dedent(
    """
    import sys
    sys.modules["coatnet_nas"] = None  # any import of our package now fails
    import numpy as np
    images = np.load(sys.argv[1])
    for path in sys.argv[2:]:
        if path.endswith(".onnx"):
            import onnxruntime as ort
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            out = session.run(None, {session.get_inputs()[0].name: images})[0]
        else:
            import torch
            if path.endswith(".pt2"):
                module = torch.export.load(path).module()
            else:
                module = torch.jit.load(path)
            with torch.inference_mode():
                out = module(torch.from_numpy(images)).numpy()
        np.save(path + ".out.npy", out)
    assert not any(name.startswith("coatnet_nas") and sys.modules[name] is not None
                   for name in sys.modules)
    """
)


def _model(config: dict, seed: int = 0) -> CoAtNet:
    torch.manual_seed(seed)
    return CoAtNet(spec_from_dict(config)).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[CoAtNet, dict[ExportFormat, Path]]]:
    """Both tiny models in all three formats (exporting is the slow part: done once)."""
    folder = tmp_path_factory.mktemp("exports")
    result = {}
    for config in (CT, CTTT):
        model = _model(config)
        files = {}
        for fmt in ExportFormat:
            report = export_model(model, fmt, folder / f"{config['name']}{fmt.suffix}")
            assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-4
            assert report.check_batches == (1, 2) and report.dynamic_batch
            assert report.bytes == report.path.stat().st_size > 0
            files[fmt] = report.path
        result[config["name"]] = (model, files)
    assert sorted(p.name for p in folder.iterdir()) == sorted(  # no temporary files left
        p.name for _, files in result.values() for p in files.values()
    )
    return result


def test_files_run_without_coatnet_nas_and_agree(exported, tmp_path) -> None:
    for name, (model, files) in exported.items():
        size = model.spec.image_size
        images = torch.randn(3, 3, *size, generator=torch.Generator().manual_seed(7))
        np.save(tmp_path / f"{name}.npy", images.numpy())
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                STANDALONE,
                str(tmp_path / f"{name}.npy"),
                *map(str, files.values()),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        with torch.inference_mode():
            expected = model(images).numpy()
        for fmt, path in files.items():
            got = np.load(f"{path}.out.npy")
            assert got.shape == expected.shape == (3, 10)  # batch 3: neither traced nor checked
            assert np.abs(got - expected).max() <= 1e-4, (name, fmt)


def test_onnx_graph_uses_standard_ops_only(exported) -> None:
    import onnx

    for _, files in exported.values():
        graph = onnx.load(str(files[ExportFormat.ONNX]))
        assert {op.domain for op in graph.opset_import} <= {"", "ai.onnx"}
        assert {node.domain for node in graph.graph.node} <= {"", "ai.onnx"}
        ops = {node.op_type for node in graph.graph.node}
        assert {"Softmax", "MatMul"} <= ops  # the attention is spelled out in ONNX ops
        batch = graph.graph.input[0].type.tensor_type.shape.dim[0]
        assert batch.dim_param and not batch.dim_value  # a named, dynamic batch dimension


def test_eager_model_unchanged_by_export(exported) -> None:
    """Exporting switches no mode and touches no weight of the model it was given."""
    model, _ = exported["tiny-cttt"]
    fresh = _model(CTTT)
    images = torch.randn(2, 3, 64, 64)
    assert not model.training
    with torch.inference_mode():
        assert torch.equal(model(images), fresh(images))


@pytest.mark.filterwarnings("ignore:.*torch.jit.load.*:DeprecationWarning")
def test_checkpoint_weights_are_exported(tmp_path) -> None:
    trained = _model(CT, seed=1)
    ckpt = save_checkpoint(tmp_path / "ckpt.pt", trained)
    default = _model(CT, seed=0)
    images = torch.randn(2, 3, 32, 32)
    for fmt in (ExportFormat.TORCHSCRIPT, ExportFormat.EXPORTED):
        report = export_model(spec_from_dict(CT), fmt, tmp_path / f"m{fmt.suffix}", weights=ckpt)
        assert report.weights == str(ckpt) and report.resized_tables == ()
        runner = (
            torch.jit.load(str(report.path))
            if fmt is ExportFormat.TORCHSCRIPT
            else (torch.export.load(str(report.path)).module())
        )
        with torch.inference_mode():
            got, want, other = runner(images), trained(images), default(images)
        assert (got - want).abs().max() <= 1e-4
        assert (got - other).abs().max() > 1e-3  # different weights, different outputs
    # At another size the relative-position tables are resized, as training's --init does.
    report = export_model(
        spec_from_dict(CT), "torchscript", tmp_path / "m64.pt", weights=ckpt, image_size=64
    )
    assert report.image_size == (64, 64) and report.resized_tables
    bigger = CoAtNet(spec_from_dict(CT).with_image_size(64)).eval()
    load_weights(bigger, ckpt)
    images = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert (torch.jit.load(str(report.path))(images) - bigger(images)).abs().max() <= 1e-4


def test_cli_json_report(tmp_path, capsys) -> None:
    spec = tmp_path / "ct.yaml"
    spec.write_text(yaml.safe_dump(CT))
    out = tmp_path / "model.pt"
    assert run(["export", str(spec), "--out", str(out), "--json", "--batch-size", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "torchscript"  # from the suffix
    assert report["path"] == str(out) and report["bytes"] == out.stat().st_size
    assert report["max_abs_diff"] <= 1e-4 and report["check_batches"] == [2, 3]


def _bad(args: list[str], capsys, folder: Path) -> str:
    before = sorted(folder.iterdir())
    assert run(["export", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("error:") == 1, err
    assert "Traceback" not in err and "\n\n" not in err.strip()
    assert sorted(folder.iterdir()) == before  # nothing written, no temporary file left
    return err


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys) -> None:
    spec = tmp_path / "ct.yaml"
    spec.write_text(yaml.safe_dump(CT))
    other = save_checkpoint(tmp_path / "other.pt", _model({**CT, "widths": [16, 16, 48]}))
    out = str(tmp_path / "m.onnx")
    assert "--format must be one of" in _bad(
        [str(spec), "--out", out, "--format", "tflite"], capsys, tmp_path
    )
    assert "no such spec" in _bad([str(tmp_path / "none.yaml"), "--out", out], capsys, tmp_path)
    assert "--weights" in _bad(
        [str(spec), "--out", out, "--weights", str(tmp_path / "no.pt")], capsys, tmp_path
    )
    err = _bad(
        [str(spec), "--out", out, "--weights", str(other), "--format", "torchscript"],
        capsys,
        tmp_path,
    )
    assert err.startswith("error: --weights: weight ") and "shape" in err
    assert "is a directory" in _bad([str(spec), "--out", str(tmp_path)], capsys, tmp_path)
    assert "--image-size" in _bad([str(spec), "--out", out, "--image-size", "36"], capsys, tmp_path)
    assert "--batch" in _bad([str(spec), "--out", out, "--batch-size", "0"], capsys, tmp_path)
    # A real mismatch (onnxruntime is ~1e-7 off): refused, and an existing file is kept as it was.
    Path(out).write_text("previous")
    err = _bad([str(spec), "--out", out, "--atol", "1e-12"], capsys, tmp_path)
    assert err.startswith("error: --atol: the onnx export differs from PyTorch by up to ")
    assert Path(out).read_text() == "previous"


def test_runtime_latency(exported) -> None:
    model, files = exported["tiny-ct"]
    for fmt, runtime in (
        (ExportFormat.ONNX, "onnxruntime"),
        (ExportFormat.TORCHSCRIPT, "torch"),
        (ExportFormat.EXPORTED, "torch"),
    ):
        stats = runtime_latency(files[fmt], 32, repeats=5, warmup=1)
        assert stats.runtime == runtime and stats.what == fmt.value and stats.repeats == 5
        assert 0 < stats.q1_ms <= stats.median_ms <= stats.q3_ms and stats.iqr_ms >= 0
    eager = runtime_latency(model, 32, repeats=3, warmup=1)
    assert (eager.runtime, eager.what, eager.batch, eager.threads) == ("torch", "eager", 1, 1)
    ort = runtime_latency(model, 32, batch=2, runtime="onnxruntime", repeats=3, warmup=1)
    assert (ort.runtime, ort.what, ort.batch) == ("onnxruntime", "onnx", 2)
    with pytest.raises(CoatnetError, match="runs in onnxruntime"):
        runtime_latency(files[ExportFormat.ONNX], 32, runtime="torch")
    with pytest.raises(CoatnetError) as info:
        runtime_latency(model, 32, repeats=0)
    assert info.value.param == "repeats"


def test_formats() -> None:
    assert parse_format("ONNX") is ExportFormat.ONNX
    assert ExportFormat.from_path("a/b.pt2") is ExportFormat.EXPORTED
    assert ExportFormat.from_path("m.ts") is ExportFormat.TORCHSCRIPT
    assert ExportFormat.from_path("m.bin") is None
    with pytest.raises(CoatnetError) as info:
        parse_format("tflite")
    assert info.value.param == "format"
    with pytest.raises(CoatnetError, match=r"pip install 'coatnet-nas\[export\]'"):
        require("coatnet_nas_no_such_package", why="ONNX export")


def test_a_checkpoint_trained_at_32px_on_10_classes_exports_on_its_own(tmp_path, capsys) -> None:
    spec = tmp_path / "ct.yaml"  # the spec as written: ImageNet's 1000 classes at 64 px
    spec.write_text(yaml.safe_dump({**CT, "num_classes": 1000, "image_size": 64}))
    ckpt = tmp_path / "m.pt"
    args = [
        "train",
        str(spec),
        "--dataset",
        "synthetic:64",
        "--image-size",
        "32",
        "--steps",
        "1",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--save",
        str(ckpt),
        "--json",
    ]
    assert run(args) == 0
    assert json.loads(capsys.readouterr().out)["dataset"]["num_classes"] == 10
    out = tmp_path / "m.onnx"
    assert run(["export", str(ckpt), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "onnx" and report["image_size"] == [32, 32]
    assert report["max_abs_diff"] <= 1e-4
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: np.zeros((2, 3, 32, 32), "f4")})[0]
    assert logits.shape == (2, 10)
    # The spec with the checkpoint: classes and size filled in from it, and said so.
    again = tmp_path / "again.onnx"
    assert run(["export", str(spec), "--weights", str(ckpt), "--out", str(again)]) == 0
    err = capsys.readouterr().err
    assert "num_classes 10 (the spec says 1000)" in err and "image_size 32x32" in err
    assert again.read_bytes() == out.read_bytes()
