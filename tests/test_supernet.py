"""Supernet training (resume after kill -9), scoring as a proxy, refusal, extraction, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from coatnet_nas.cli import run
from coatnet_nas.errors import CoatnetError
from coatnet_nas.proxies import ProxyEvaluator, parse_proxy
from coatnet_nas.search import SearchConfig, load_space, run_search
from coatnet_nas.spec import spec_from_dict
from coatnet_nas.supernet import load_supernet
from coatnet_nas.supernet.score import SupernetScorer
from coatnet_nas.train import load_checkpoint
from tests.conftest import coatnet_process, kill_9_after_save

SPACE = """\
name: tiny
layouts: ["C-C-T", "C-T-T"]
stem_depth: 1
depths: [[1, 2], [1, 2], [1, 2]]
widths: [[16], [16, 32], [32, 64], [64, 128]]
mbconv: {expand_ratio: [2, 4], kernel_size: [3, 5]}
transformer: {head_dim: [32], mlp_ratio: [2, 4]}
target: {image_size: 64, num_classes: 10}
budget: {flops: 1GFLOPs}
proxy: {dataset: "synthetic:400", image_size: 16, width_mult: 0.5, subset: 1.0,
        batch_size: 32, steps: 4, evals_per_epoch: 1}
"""
STEPS = "24"  # long enough that the killed run is caught mid-way on a fast machine


def _train_args(space: Path, out: Path, *extra: str) -> list[str]:
    return [
        "supernet",
        "train",
        "--space",
        str(space),
        "--steps",
        STEPS,
        "--children",
        "1",
        "--threads",
        "1",
        "--save-every",
        "0",
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("supernet")
    space = folder / "space.yaml"
    space.write_text(SPACE)
    out = folder / "super.pt"
    assert run(_train_args(space, out)) == 0
    return space, out


def _spec(**stages):
    return spec_from_dict(
        {
            "name": "cand",
            "image_size": 64,
            "num_classes": 10,
            "stem": {"depth": 1, "width": 16},
            "stages": stages.get("stages")
            or [
                {"type": "C", "depth": 1, "width": 32, "kernel_size": 3},
                {"type": "C", "depth": 2, "width": 64, "kernel_size": 3, "expand_ratio": 2},
                {"type": "T", "depth": 1, "width": 128, "head_dim": 32, "mlp_ratio": 2},
            ],
        }
    )


def test_the_file_loads_with_weights_only(trained):
    _, out = trained
    payload = torch.load(out, weights_only=True)
    assert payload["format"] == "coatnet-nas/supernet-1" and payload["train"]["finished"]
    found = load_supernet(out)
    assert found.space.layouts == ("C-C-T", "C-T-T") and found.train["step"] == int(STEPS)
    assert found.space.stages[1].letters == ("C", "T")  # both paths at the shared position


def test_resume_after_kill_9_continues_exactly(trained, tmp_path):
    space, reference = trained
    out = tmp_path / "killed.pt"
    proc = coatnet_process(*_train_args(space, out))
    killed_at = kill_9_after_save(proc, out, at_least=2, timeout=120)
    assert 2 <= killed_at < int(STEPS), "killed mid-run, after a save"
    assert run([*_train_args(space, out), "--resume"]) == 0
    a, b = torch.load(reference, weights_only=True), torch.load(out, weights_only=True)
    assert b["train"]["step"] == int(STEPS)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert [h["loss"] for h in a["train"]["history"]] == [h["loss"] for h in b["train"]["history"]]


def test_resume_with_other_settings_is_refused(trained, tmp_path, capsys):
    space, reference = trained
    out = tmp_path / "copy.pt"
    out.write_bytes(reference.read_bytes())
    assert run([*_train_args(space, out), "--resume", "--lr", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "differs from the file's in recipe" in err and "Traceback" not in err


def test_supernet_proxy_scores_and_refuses(trained):
    space_path, out = trained
    proxy = parse_proxy(f"supernet:{out},batches=2")
    assert proxy.label == f"supernet:{out},batches=2"
    evaluator = ProxyEvaluator(load_space(space_path).proxy, device="cpu")
    outcome = evaluator.evaluate(proxy, _spec())
    assert 0.0 <= outcome.value <= 1.0 and outcome.detail["calibration_batches"] == 2
    again = evaluator.evaluate(proxy, _spec())
    assert again.value == outcome.value  # recalibration is seeded: same score every time
    wide = _spec(
        stages=[
            {"type": "C", "depth": 1, "width": 32},
            {"type": "T", "depth": 1, "width": 64},
            {"type": "C", "depth": 1, "width": 256},
        ]
    )
    with pytest.raises(CoatnetError) as err:
        evaluator.evaluate(proxy, wide)
    text = str(err.value)
    assert "outside what this supernet covers" in text and "S3 is C" in text
    assert "\n" not in text and len(text) < 1200


def test_parse_needs_the_file_first(trained, tmp_path):
    with pytest.raises(CoatnetError, match="name the supernet file"):
        parse_proxy("supernet:batches=2")
    with pytest.raises(CoatnetError, match="no option 'epochs'"):
        parse_proxy(f"supernet:{trained[1]},epochs=1")
    with pytest.raises(CoatnetError, match="no such supernet file"):
        parse_proxy(f"supernet:{tmp_path}/missing.pt")


def test_search_with_a_missing_supernet_is_refused_before_it_starts(trained, tmp_path, capsys):
    space, _ = trained
    missing = f"supernet:{tmp_path}/missing.pt"
    storage = f"sqlite:///{tmp_path}/m.db"
    args = [
        "search",
        "--space",
        str(space),
        "--proxy",
        missing,
        "--trials",
        "1",
        "--storage",
        storage,
        "--device",
        "cpu",
    ]
    assert run(args) == 2
    err = capsys.readouterr().err
    assert "no such supernet file" in err and "Traceback" not in err
    assert not (tmp_path / "m.db").exists()


def test_search_with_the_supernet_proxy(trained, tmp_path):
    space_path, out = trained
    cfg = SearchConfig(space=load_space(space_path), flops=10**9, proxy=f"supernet:{out}")
    study = run_search(
        cfg,
        f"sqlite:///{tmp_path}/s.db",
        "s",
        trials=5,
        sampler="random",
        heartbeat_interval=None,
        device="cpu",
    )
    done = [t for t in study.get_trials() if t.user_attrs.get("status") == "ok"]
    assert len(done) == 5
    assert all(0.0 <= t.value <= 1.0 for t in done)
    assert {t.user_attrs["proxy"] for t in done} == {f"supernet:{out}"}


def test_supernet_search_with_two_workers_resumes_without_rescoring(trained, tmp_path):
    """The search's guarantees with the supernet proxy: two worker processes fill one study,
    a second run adds to it, and no architecture is scored twice (dedupe)."""
    space_path, out = trained
    cfg = SearchConfig(space=load_space(space_path), flops=10**9, proxy=f"supernet:{out}")
    url = f"sqlite:///{tmp_path}/w.db"
    common = {"sampler": "random", "device": "cpu", "heartbeat_interval": 30}
    run_search(cfg, url, "w", trials=4, workers=2, **common)
    study = run_search(cfg, url, "w", trials=2, **common)
    trials = study.get_trials()
    scored = [t for t in trials if t.user_attrs.get("status") == "ok"]
    assert len(scored) == 6
    assert len({t.user_attrs["arch_key"] for t in scored}) == 6  # none scored twice
    # worker processes, then the resume (one worker may score all four before the other starts)
    assert len({t.user_attrs["pid"] for t in scored}) >= 2
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]


def test_extract_writes_a_checkpoint_that_fine_tunes(trained, tmp_path):
    _, out = trained
    spec = tmp_path / "cand.yaml"
    spec.write_text(yaml.safe_dump(_spec().to_dict()))
    ckpt = tmp_path / "cand.pt"
    assert run(["supernet", "extract", str(out), str(spec), "--out", str(ckpt)]) == 0
    model = load_checkpoint(ckpt).build().eval()
    reference, proxy, _ = SupernetScorer(out, device="cpu").model(_spec())
    assert model.spec == proxy
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-5)
    args = [
        "train",
        str(spec),
        "-d",
        "synthetic:400",
        "--image-size",
        "16",
        "--width-mult",
        "0.5",
        "--steps",
        "1",
        "--init",
        str(ckpt),
        "--threads",
        "1",
        "--json",
    ]
    assert run(args) == 0
