"""Bundled specs (presets) and the spec-argument rule, and the build/validate command UX."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from coatnet_nas.cli import run
from coatnet_nas.errors import SpecError
from coatnet_nas.presets import (
    default_space_path,
    load_preset,
    preset_names,
    preset_path,
    resolve_spec,
)
from coatnet_nas.search.space import DEFAULT_SPACE, load_space
from coatnet_nas.spec import load_spec
from tests.conftest import ROOT, SPECS, write

CLI = "from coatnet_nas.cli import main; main()"
TINY = """name: tiny
layout: C-T
depths: [1, 1, 1]
widths: [16, 32, 64]
image_size: 32
num_classes: 10
"""


def test_presets_are_the_files_of_the_one_specs_folder():
    names = preset_names()
    assert names[:5] == ["coatnet0", "coatnet1", "coatnet2", "coatnet3", "coatnet4"]
    assert {"layouts/cccc", "layouts/ccct", "layouts/cctt", "layouts/cttt"} <= set(names)
    assert not any(n.startswith("search") for n in names)  # a space is not a model spec
    on_disk = sorted(
        str(p.relative_to(SPECS).with_suffix(""))
        for p in SPECS.rglob("*.yaml")
        if p.parent.name != "search"
    )
    assert sorted(names) == on_disk
    for name in names:
        assert load_preset(name) == load_spec(SPECS / f"{name}.yaml")
        assert preset_path(name).is_file()


def test_top_level_specs_is_a_link_to_the_package_data():
    assert (ROOT / "specs").is_symlink()
    assert (ROOT / "specs").resolve() == (ROOT / "coatnet_nas" / "specs").resolve()
    assert preset_path("coatnet0").resolve() == (SPECS / "coatnet0.yaml").resolve()
    if shutil.which("git") and (ROOT / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "-s", "specs"], cwd=ROOT, capture_output=True, text=True
        ).stdout
        assert listed.startswith("120000 "), listed  # stored as a symlink, not a copy


def test_unknown_preset_suggests_and_lists():
    with pytest.raises(SpecError) as err:
        load_preset("coatnet-0")
    message = str(err.value)
    assert "unknown preset 'coatnet-0'" in message and "did you mean 'coatnet0'" in message
    assert "layouts/cttt" in message


def test_default_space_is_bundled_and_found_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_space_path() == DEFAULT_SPACE and DEFAULT_SPACE.is_file()
    assert load_space().layout_choices() == ["C-C-C-C", "C-C-C-T", "C-C-T-T", "C-T-T-T"]


def test_resolve_spec_file_wins_then_preset_then_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_spec("coatnet0") == load_spec(SPECS / "coatnet0.yaml")
    assert resolve_spec("layouts/cttt").layout == "C-T-T-T"
    write(tmp_path, TINY, "coatnet0")  # a user's own file of the same name
    assert resolve_spec("coatnet0").name == "tiny"
    with pytest.raises(SpecError) as err:
        resolve_spec("coatnet9.yaml")
    message = str(err.value)
    assert message.startswith("coatnet9.yaml: no such spec file or preset")
    assert "did you mean" in message and "coatnet0, coatnet1" in message
    with pytest.raises(SpecError, match=r"^x{120}\.\.\.: "):
        resolve_spec("x" * 5000)  # bounded, whatever the file system says about the name


def test_build_a_preset_from_an_empty_folder(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", CLI, "build", "coatnet0", "--profile", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["name"] == "coatnet-0" and out["params"] == pytest.approx(25e6, rel=0.05)
    assert list(tmp_path.iterdir()) == []


def test_validate_reports_every_spec(tmp_path, capsys):
    bad = write(tmp_path, TINY.replace("[1, 1, 1]", "[1, 0, 1]"), "bad.yaml")
    good = write(tmp_path, TINY, "good.yaml")
    assert run(["validate", str(bad), "coatnet0", str(tmp_path / "nope.yaml"), str(good)]) == 2
    out, err = capsys.readouterr()
    assert out.count("ok  ") == 2 and "ok  coatnet0: coatnet-0" in out and "good.yaml" in out
    lines = err.splitlines()
    assert lines[0].startswith("error: ") and "bad.yaml" in lines[0] and "depths[1]" in lines[0]
    assert lines[1].startswith("error: ") and "nope.yaml: no such spec file" in lines[1]
    assert lines[2] == "2 of 4 specs are invalid"
    assert "Traceback" not in err
    assert run(["validate", str(good), "layouts/cctt"]) == 0
    assert capsys.readouterr().err == ""


def test_build_write_says_what_it_wrote(tmp_path, capsys):
    target = tmp_path / "deep" / "coatnet0.yml"
    assert run(["build", "coatnet0", "--estimate", "--write", str(target)]) == 0
    out, err = capsys.readouterr()
    assert f"wrote the normalized spec coatnet-0 to {target}" in out and "total" in out
    assert load_spec(target) == load_preset("coatnet0")
    # Under --json stdout stays one JSON object; the note goes to stderr.
    target = tmp_path / "again.yaml"
    assert run(["build", "coatnet0", "--estimate", "--json", "--write", str(target)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["name"] == "coatnet-0"
    assert err == f"wrote the normalized spec coatnet-0 to {target}\n"
    assert not list(tmp_path.glob("**/*.tmp")) and not list(tmp_path.glob("**/.*"))


def test_build_write_target_checked_before_any_work(tmp_path, capsys):
    bad = write(tmp_path, TINY.replace("[1, 1, 1]", "[1, 0, 1]"), "bad.yaml")
    assert run(["build", str(bad), "--write", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --write ") and "is a directory" in err
    assert "depths" not in err  # the spec was not even read


def test_image_size_reason_is_one_sentence(capsys):
    assert run(["build", "coatnet0", "--image-size", "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --image-size 100: image size 100 ")
    assert err.count("multiples of 32") == 1 and "e.g. 96 or 128." in err
    assert err.count("(") == err.count(")") and "\n" not in err
    assert run(["build", "coatnet0", "--image-size", "224x100"]) == 2
    err = capsys.readouterr().err
    assert "width 100" in err and "height" not in err and err.count("multiples of 32") == 1
