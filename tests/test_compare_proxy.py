"""``coatnet compare --proxy``: every layout's fitted candidate scored by a proxy, not trained."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from coatnet_nas.cli import run
from coatnet_nas.compare import (
    CompareConfig,
    Ranking,
    Stat,
    compare_with_paper,
    fit_layouts,
    parse_layouts,
    preview_compare,
)
from coatnet_nas.proxies import ProxyEvaluator, ProxyRecipe, parse_proxy
from coatnet_nas.spec import load_spec
from tests.test_supernet import SPACE, _train_args

# The supernet's space (tests/test_supernet.py) at its 64-px target: C-C-T and C-T-T positions.
BASE = {
    "name": "tinybase",
    "image_size": 64,
    "num_classes": 10,
    "stem": {"depth": 1, "width": 16},
    "stages": [
        {"type": "C", "depth": 1, "width": 32, "kernel_size": 3, "expand_ratio": 2},
        {"type": "C", "depth": 2, "width": 64, "kernel_size": 3, "expand_ratio": 2},
        {"type": "T", "depth": 1, "width": 128, "head_dim": 32, "mlp_ratio": 2},
    ],
}
COVERED = ("C-C-T", "C-T-T")  # fitted to 5M FLOPs, both fit inside the supernet
BUDGET = 5_000_000


@pytest.fixture(scope="module")
def supernet(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("supernet")
    space = folder / "space.yaml"
    space.write_text(SPACE)
    out = folder / "super.pt"
    assert run(_train_args(space, out)) == 0
    return out


@pytest.fixture
def base_path(tmp_path: Path) -> Path:
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(BASE))
    return path


def _args(base: Path, out: Path, proxy: str, *extra: str) -> list[str]:
    return [
        "compare",
        "--base",
        str(base),
        "--budget",
        str(BUDGET),
        "--layouts",
        "C-C-T,C-T-T,C-C-C",  # C-C-C: S3 is C, which the supernet never holds
        "--seeds",
        "2",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--out",
        str(out),
        "--proxy",
        proxy,
        *extra,
    ]


def test_supernet_scores_each_covered_layout_as_proxy_check_does(
    supernet, base_path, tmp_path, capsys, monkeypatch
):
    import coatnet_nas.supernet.score as score_module

    loads = []
    real_load = score_module.load_supernet

    def counting_load(path, **kw):
        loads.append(path)
        return real_load(path, **kw)

    monkeypatch.setattr(score_module, "load_supernet", counting_load)
    out = tmp_path / "preview"
    proxy = f"supernet:{supernet}"
    assert run([*_args(base_path, out, proxy, "--no-capacity"), "--json"]) == 1  # one refused
    assert len(loads) == 1  # one load serves both seeds; each seed recalibrates with its own
    summary = json.loads(capsys.readouterr().out)
    scores = {s["layout"]: s for s in summary["scores"]}
    refused = scores["C-C-C"]
    assert refused["status"] == "failed" and refused["score"]["n"] == 0
    assert (
        "outside what this supernet covers" in refused["reason"] and "S3 is C" in refused["reason"]
    )
    assert len(summary["errors"]) == 1 and summary["errors"][0].startswith("C-C-C|proxy|")
    # The same candidates, fitted independently, scored by the evaluator proxy-check uses.
    base = load_spec(base_path).evolve(num_classes=10, in_chans=3)  # the supernet's data
    entrants = fit_layouts(base, parse_layouts(",".join(COVERED), 3), BUDGET)
    runs = {(r["layout"], r["seed"]): r["proxy_score"] for r in summary["runs"]}
    for e in entrants:
        assert scores[e.name]["status"] == "ok" and scores[e.name]["score"]["n"] == 2
        for seed in (0, 1):
            evaluator = ProxyEvaluator(ProxyRecipe(), seed=seed, device="cpu")
            assert runs[e.name, seed] == evaluator.evaluate(parse_proxy(proxy), e.spec).value
    assert [lay["widths"] for lay in summary["layouts"][:2]] == [
        list(e.spec.widths) for e in entrants
    ]
    assert summary["rankings"]["proxy"]["higher_is_better"] is True
    with (out / "layouts.csv").open() as f:
        rows = {r["layout"]: r for r in csv.DictReader(f)}
    assert rows["C-C-T"]["proxy"] == proxy and float(rows["C-C-T"]["proxy_score"]) >= 0
    assert rows["C-C-C"]["proxy_score"] == "" and rows["C-C-C"]["status"] == "failed"
    assert {"runs.csv", "compare.json"} <= {p.name for p in out.iterdir()}
    pinned = f"{proxy},seed=3"  # the proxy's own seed: one value per layout, scored with it
    assert run([*_args(base_path, tmp_path / "pinned", pinned), "--json"]) == 1
    again = json.loads(capsys.readouterr().out)
    assert again["seeds"] == [3] and {r["seed"] for r in again["runs"]} == {3}
    assert run(_args(base_path, out, proxy)) == 1  # the table view says what it cannot measure
    text = " ".join(capsys.readouterr().out.split())
    assert "fitting speed and capacity are not measured" in text
    assert "failed: C-C-C|proxy|seed=0: candidate" in text and "Traceback" not in text


def test_widths_between_the_supernets_choices_are_named(supernet, base_path, tmp_path):
    config = CompareConfig(load_spec(base_path), COVERED, flops=3_000_000, seeds=(0,))
    preview = preview_compare(config, parse_proxy(f"supernet:{supernet}"), tmp_path, device="cpu")
    assert not preview.errors and all(s.score.n == 1 for s in preview.scores)
    assert preview.between == {"C-C-T": "S2 C 24 (choices 16/32)"}  # C-T-T: all at choices
    assert any("C-C-T: S2 C 24 (choices 16/32)" in n for n in preview.notes())


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--regimes", "small=0.5"], "--regimes"),
        (["--epochs", "1"], "--epochs"),
        (["--capacity-steps", "5"], "--capacity-steps"),
        (["--capacity"], "--capacity"),
        (["--workers", "2"], "--workers"),
        (["-d", "synthetic:100"], "--dataset"),  # a supernet scores on its own data
    ],
)
def test_training_options_with_a_proxy_exit_2_naming_both(
    supernet, base_path, tmp_path, capsys, flags, flag
):
    assert run(_args(base_path, tmp_path / "x", f"supernet:{supernet}", *flags)) == 2
    err = capsys.readouterr().err
    text = " ".join(err.split())
    assert f"--proxy cannot be combined with {flag}:" in text and "drop --proxy" in text
    assert "Traceback" not in err and "\n\n" not in err.strip() and len(text) < 600
    assert not (tmp_path / "x").exists()


def test_an_unknown_proxy_exits_2_naming_the_option(base_path, tmp_path, capsys):
    assert run(_args(base_path, tmp_path / "x", "nonsense")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--proxy" in err and "nonsense" in err and "Traceback" not in err


def test_a_seed_free_proxy_gives_one_value_and_spares_a_trained_comparison(
    base_path, tmp_path, capsys
):
    out = tmp_path / "p"
    assert run([*_args(base_path, out, "params"), "--json"]) == 0  # C-C-C too: no supernet here
    summary = json.loads(capsys.readouterr().out)
    assert summary["seeds"] == [0] and all(s["score"]["n"] == 1 for s in summary["scores"])
    assert any("does not depend on the comparison's seeds" in n for n in summary["notes"])
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "runs.jsonl").write_text("")
    assert run(_args(base_path, trained, "params")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "holds a trained comparison" in err and "--out" in err and "--proxy" in err
    assert not (trained / "layouts.csv").exists()


def test_a_proxy_ranking_is_held_to_the_papers_generalization_ranking():
    paper = ["C-C-C-C", "C-C-C-T", "C-C-T-T", "C-T-T-T", "ViT"]
    agree = Ranking(
        "proxy", "proxy", "score", True, [(n, Stat(5 - i, 0, 1)) for i, n in enumerate(paper)]
    )
    check = compare_with_paper(agree, "ViT")
    assert check.counts()["reversed"] == 0 and check.rho is not None and check.rho > 0.9
    flipped = Ranking(
        "proxy", "proxy", "score", True, [(n, Stat(i, 0, 1)) for i, n in enumerate(paper)]
    )
    assert compare_with_paper(flipped, "ViT").rho < -0.9
