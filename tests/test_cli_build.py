"""The ``coatnet`` CLI as a user runs it: build/profile/estimate/scale/validate and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from coatnet_nas.cli import run
from coatnet_nas.spec import load_spec
from tests.conftest import ROOT, SPECS, write

TINY = """name: tiny
layout: C-T
depths: [1, 1, 1]
widths: [16, 32, 64]
image_size: 32
num_classes: 10
"""


def coatnet(*args: str) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-c", "from coatnet_nas.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_build_profile_json_matches_schema():
    result = coatnet("build", str(SPECS / "coatnet0.yaml"), "--profile", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert {"name", "image_size", "params", "flops", "stages"} <= set(out)
    assert out["image_size"] == [224, 224]
    assert out["params"] == pytest.approx(25e6, rel=0.05)
    assert out["flops"] == pytest.approx(4.2e9, rel=0.05)
    stage = out["stages"][3]
    assert {"name", "type", "depth", "width", "resolution", "params", "flops"} <= set(stage)
    assert (stage["name"], stage["type"], stage["depth"], stage["width"]) == ("S3", "T", 5, 384)
    assert all(isinstance(s["flops"], int) for s in out["stages"])


def test_profile_table_and_image_size_override(tmp_path, capsys):
    spec = write(tmp_path, TINY)
    assert run(["build", str(spec), "--profile", "--image-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "@ 64x64" in out and "S2" in out and "total" in out


def test_estimate_equals_profile(tmp_path, capsys):
    spec = write(tmp_path, TINY)
    assert run(["build", str(spec), "--estimate", "--json"]) == 0
    est = json.loads(capsys.readouterr().out)
    assert run(["build", str(spec), "--profile", "--json"]) == 0
    prof = json.loads(capsys.readouterr().out)
    assert (est["params"], est["flops"]) == (prof["params"], prof["flops"])


def test_write_normalized_spec_round_trips(tmp_path, capsys):
    out = tmp_path / "out" / "normalized.yaml"
    assert run(["build", str(SPECS / "coatnet0.yaml"), "--estimate", "--write", str(out)]) == 0
    text = out.read_text()
    assert "stages:" in text and "layout" not in text
    assert load_spec(out) == load_spec(SPECS / "coatnet0.yaml")


def test_validate_many(capsys):
    files = [str(p) for p in sorted((SPECS / "layouts").glob("*.yaml"))]
    assert run(["validate", *files]) == 0
    assert capsys.readouterr().out.count("ok ") == len(files)


def test_scale_writes_spec_within_budget(tmp_path, capsys):
    out = tmp_path / "c1_4g.yaml"
    assert (
        run(["scale", str(SPECS / "coatnet1.yaml"), "--budget", "4GFLOPs", "--write", str(out)])
        == 0
    )
    capsys.readouterr()
    assert run(["build", str(out), "--profile", "--json"]) == 0
    flops = json.loads(capsys.readouterr().out)["flops"]
    assert 3.8e9 <= flops <= 4e9


BAD_SPECS = {
    "unknown_key": (TINY + "dropout: 0.1\n", "unknown key 'dropout'"),
    "wrong_type": (TINY.replace("[1, 1, 1]", "[1, one, 1]"), "depths[1]"),
    "depth_zero": (TINY.replace("[1, 1, 1]", "[1, 0, 1]"), "depths[1]"),
    "length": (TINY.replace("[1, 1, 1]", "[1, 1]"), "needs 3 entries"),
    "head_dim": (TINY.replace("[16, 32, 64]", "[16, 32, 48]"), "head_dim"),
    "image_size": (TINY.replace("image_size: 32", "image_size: 36"), "image_size"),
    "letter": (TINY.replace("C-T", "C-Q"), "unknown stage type 'Q'"),
    "syntax": (TINY + "widths: [1, 2\n", "YAML syntax error"),
    "python_tag": ("layout: !!python/object/apply:os.system ['true']\n", "Python objects"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_specs_exit_2_with_one_message(tmp_path, capsys, case):
    text, needle = BAD_SPECS[case]
    path = write(tmp_path, text, "bad.yaml")
    for command in (["build", str(path), "--profile"], ["validate", str(path)]):
        assert run(command) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "bad.yaml" in err and needle in err
        assert "Traceback" not in err


def test_missing_file_and_bad_options_in_a_real_process(tmp_path):
    result = coatnet("build", str(tmp_path / "nope.yaml"), "--profile")
    assert result.returncode == 2
    assert "nope.yaml: no such spec file" in result.stderr
    assert "Traceback" not in result.stderr
    result = coatnet("build", str(SPECS / "coatnet0.yaml"), "--image-size", "abc")
    assert result.returncode == 2 and "--image-size" in result.stderr
    assert "Traceback" not in result.stderr
    result = coatnet("build", str(SPECS / "coatnet0.yaml"), "--image-size", "100")
    assert result.returncode == 2 and "multiples of 32" in result.stderr
    result = coatnet("scale", str(SPECS / "coatnet1.yaml"), "--budget", "4GB")
    assert result.returncode == 2 and "accepted forms" in result.stderr
    assert "Traceback" not in result.stderr
    result = coatnet("build", "--no-such-option")
    assert result.returncode == 2


@pytest.mark.parametrize("budget", ["4GB", "-1", "abc", "0"])
def test_scale_bad_budgets(capsys, budget):
    assert run(["scale", str(SPECS / "coatnet1.yaml"), f"--budget={budget}"]) == 2
    err = capsys.readouterr().err
    assert "--budget" in err and "accepted forms" in err


def test_scale_says_which_limit_bound(capsys) -> None:
    from coatnet_nas.cli import run

    assert run(["scale", "coatnet0", "--budget", "8GFLOPs", "--max-params", "30M"]) == 0
    out = capsys.readouterr().out
    assert "the params cap bound it" in out and "scaled to 8.00G FLOPs" not in out
    assert run(["scale", "coatnet0", "--budget", "8GFLOPs", "--max-params", "30M", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bound_by"] == "params"
    assert run(["scale", "coatnet0", "--budget", "2GFLOPs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bound_by"] == "flops"
