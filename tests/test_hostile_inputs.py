"""Regressions for issue 14: every bad input and fault gets one clear, bounded paragraph.

Each test here failed (or hung) before the fix it guards; the comment says how.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from coatnet_nas.cli import run
from coatnet_nas.errors import CoatnetError, SpecError
from coatnet_nas.search import space as space_mod
from coatnet_nas.search.pattern import LayoutLanguage
from coatnet_nas.search.space import space_from_dict
from coatnet_nas.search.storage import make_storage, safe_dir_name
from coatnet_nas.spec import parse_yaml
from coatnet_nas.units import parse_flops
from tests.conftest import ROOT, tiny_space, write

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def _cli(capsys, args: list[str]) -> tuple[int, str, str]:
    code = run(args)
    out, err = capsys.readouterr()
    return code, out, err


def _one_bounded_error(err: str) -> str:
    assert err.startswith("error: "), err[:300]
    assert "Traceback" not in err
    assert len(err) <= 1_600, len(err)
    assert "\n\n" not in err.strip()
    return err


# --- YAML --------------------------------------------------------------------------------------


def test_alias_bomb_fails_fast_with_a_spec_error():
    # Before: parsed "successfully" into a 9^9-element shared structure that exploded later.
    assert len(BOMB) < 450
    start = time.perf_counter()
    with pytest.raises(SpecError, match="aliases"):
        parse_yaml(BOMB, "bomb.yaml")
    assert time.perf_counter() - start < 2


def test_alias_bomb_in_a_spec_file_is_one_bounded_error(tmp_path, capsys):
    path = write(tmp_path, BOMB.replace("i: &i", "layout: &i"))
    code, _, err = _cli(capsys, ["validate", str(path)])
    assert code == 2
    assert "aliases" in _one_bounded_error(err)


def test_recursive_alias_and_deep_nesting_are_spec_errors():
    with pytest.raises(SpecError, match="refer to themselves"):
        parse_yaml("a: &a [*a]", "r.yaml")
    with pytest.raises(SpecError, match="nested too deeply"):  # before: RecursionError
        parse_yaml("[" * 3000 + "]" * 3000, "deep.yaml")


def test_unhashable_key_is_not_called_a_python_tag():
    with pytest.raises(SpecError) as info:
        parse_yaml("? [1]\n: 2\n", "k.yaml")
    assert "unhashable" in str(info.value) and "Python objects" not in str(info.value)


def test_fifo_spec_is_refused_not_read(tmp_path, capsys):
    # Before: a FIFO was reported as "is a directory" (and reading one blocks forever).
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    code, _, err = _cli(capsys, ["validate", str(fifo)])
    assert code == 2 and "not a regular file" in _one_bounded_error(err)


# --- specs and the CLI -------------------------------------------------------------------------


def test_unknown_layout_letter_is_reported_once(tmp_path, capsys):
    # Before: a second, internal-looking "field 'stages': Tuple should have at least 1 item".
    path = write(tmp_path, "layout: C-X-T-T\ndepths: [2,2,3,5,2]\nwidths: [64,96,192,384,768]\n")
    code, _, err = _cli(capsys, ["build", str(path), "--estimate"])
    assert code == 2
    assert "unknown stage type 'X'" in _one_bounded_error(err)
    assert "stages" not in err and "Tuple" not in err


def test_image_size_reason_is_printed_once(capsys):
    code, _, err = _cli(capsys, ["build", "coatnet0", "--image-size", "100", "--estimate"])
    assert code == 2 and _one_bounded_error(err).count("does not divide") == 1


def test_huge_values_are_not_echoed(tmp_path, capsys):
    path = write(tmp_path, f"layout: {'Q' * 100_000}\ndepths: [1, 1]\nwidths: [8, 8]\n")
    code, _, err = _cli(capsys, ["validate", str(path)])
    assert code == 2 and "unknown stage type" in _one_bounded_error(err)
    with pytest.raises(CoatnetError) as info:
        parse_flops("9" * 100_000 + "GB")
    assert len(str(info.value)) < 400


def test_usage_errors_follow_the_error_contract(capsys):
    # Before: click's "Usage: ... Try ... \n\nError: ..." block (several paragraphs).
    code, _, err = _cli(capsys, ["build", "coatnet0", "--no-such-option"])
    assert code == 2 and "--no-such-option" in _one_bounded_error(err)


# --- search spaces -----------------------------------------------------------------------------


def _space_error(change: dict) -> str:
    with pytest.raises(SpecError) as info:
        space_from_dict(tiny_space() | change, "space.yaml")
    message = str(info.value)
    assert len(message) <= 1_500 and "field 'spec'" not in message
    assert "synthetic:400" not in message  # the whole input is never echoed
    return message


def test_long_pattern_lengths_are_refused_at_load_bounded():
    # Before: a 10 MB message listing 2^18 layouts; lengths [40] hung enumerating 2^40.
    start = time.perf_counter()
    message = _space_error({"layouts": {"pattern": "[CT]*", "lengths": [18]}})
    assert "layouts.lengths[0]" in message and "from 1 to 8" in message
    assert time.perf_counter() - start < 2


def test_lengths_40_does_not_hang_in_a_real_process():
    code = (
        "from coatnet_nas.search.space import space_from_dict\n"
        "from tests.conftest import tiny_space\n"
        "try:\n"
        "    space_from_dict(tiny_space() | {'layouts': {'pattern': '[CT]*', 'lengths': [40]}})\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, len(str(e)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.stdout.split()[0] == "SpecError" and int(done.stdout.split()[1]) < 1_500


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"widths": [[16], [32], []]}, ["widths[2]", "at least one width"]),  # min() of empty
        ({"layouts": {"pattern": "[CT]*", "lengths": [-1]}}, ["layouts.lengths[0]", "got -1"]),
        ({"depths": [[1, 2], [1, 300]]}, ["depths[1]", "<= 256", "[1, 300]"]),  # was a FAIL trial
        ({"stem_depth": 9}, ["stem_depth", "<= 8"]),
        ({"widths": [[16], [32], [32, 99999]]}, ["widths[2]", "16384"]),
        ({"mbconv": {"expand_ratio": [3, "x"]}}, ["mbconv.expand_ratio[1]", "'x'"]),
        (
            {"mbconv": {"expand_ration": [4]}},
            ["mbconv.expand_ration", "did you mean 'expand_ratio'"],
        ),
        ({"mbconv": 5}, ["field 'mbconv'", "must map option names"]),
        ({"depht": [[1, 1]]}, ["did you mean 'depths'"]),
        ({"targt": {"image_size": 64}}, ["did you mean 'target'"]),
        ({"target": {"imag_size": 64}}, ["target.imag_size", "did you mean 'image_size'"]),
        ({"layouts": {"patern": "C*", "lengths": [2]}}, ["did you mean 'pattern'"]),
        ({"layouts": {"pattern": "C(?=T)", "lengths": [2]}}, ["layouts.pattern", "position"]),
        ({"layouts": {"pattern": "C*X", "lengths": [2]}}, ["'X' is not a registered"]),
        ({"layouts": 5}, ["field 'layouts'", "pattern like"]),
        ({"layouts": ["C-T" * 5]}, ["layouts[0]", "at most 8"]),
        ({"layouts": {"pattern": "[CT]*", "lengths": [3]}}, ["must have 2 stages", "8 with 3"]),
    ],
)
def test_space_problems_are_located_in_the_users_words(change, needles):
    message = _space_error(change)
    for needle in needles:
        assert needle in message, (needle, message)


def test_large_patterns_are_sampled_by_index_not_listed(monkeypatch):
    # Above the enumeration limit a space is counted and unranked; nothing lists every layout.
    monkeypatch.setattr(space_mod, "ENUMERATE_LAYOUTS", 3)
    space = space_from_dict(tiny_space() | {"layouts": {"pattern": "[CT]*", "lengths": [2]}})
    assert space.layout_count() == 4 and space.describe_layouts().startswith("4 layouts")
    with pytest.raises(SpecError, match="too many to list"):
        space.layout_choices()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        seen.add(space.sample(trial).layout)
        assert "layout" not in trial.params and 0 <= trial.params["layout_index"] < 4
        study.tell(trial, 0.0)
    assert seen == {"C-C", "C-T", "T-C", "T-T"}


def test_pattern_language_counts_without_enumerating():
    start = time.perf_counter()
    lang = LayoutLanguage("[CT]*", [40], ["C", "T"])
    assert lang.count == 2**40
    assert lang.unrank(0) == "-".join("C" * 40) and lang.unrank(2**40 - 1) == "-".join("T" * 40)
    assert time.perf_counter() - start < 2


# --- storages ----------------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_memory_storage_is_refused():
    for url in ("sqlite:///:memory:", "sqlite://"):
        with pytest.raises(CoatnetError, match="persistent") as info:
            make_storage(url, None)
        assert info.value.param == "storage_url"


def test_foreign_sqlite_database_is_refused_and_left_byte_identical(tmp_path):
    path = tmp_path / "app.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    con.execute("INSERT INTO customers VALUES (1, 'ada')")
    con.commit()
    con.close()
    before, listing = _digest(path), sorted(os.listdir(tmp_path))
    with pytest.raises(CoatnetError, match="another program's SQLite database"):
        make_storage(f"sqlite:///{path}", None)
    assert _digest(path) == before and sorted(os.listdir(tmp_path)) == listing


def test_non_sqlite_file_is_refused_untouched(tmp_path):
    path = write(tmp_path, "my notes\n", "notes.db")
    with pytest.raises(CoatnetError, match="not an SQLite database"):
        make_storage(f"sqlite:///{path}", None)
    assert path.read_text() == "my notes\n"


def test_empty_file_and_new_path_are_fine(tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    make_storage(f"sqlite:///{empty}", None)
    make_storage(f"sqlite:///{tmp_path}/new/dir/study.db", None)
    assert (tmp_path / "new" / "dir" / "study.db").is_file()


def test_path_under_a_regular_file_is_explained(tmp_path):
    blocker = write(tmp_path, "x", "blocker")
    with pytest.raises(CoatnetError, match="is a file, not a folder"):
        make_storage(f"sqlite:///{blocker}/sub/study.db", None)


def test_unreachable_folder_is_explained_not_an_oserror():
    # /proc refuses mkdir for root too (chmod would not stop root).
    with pytest.raises(CoatnetError, match="cannot create the folder"):
        make_storage("sqlite:////proc/coatnet-nas-test/study.db", None)


def test_read_only_mount_is_explained(tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode:
        pytest.skip("cannot mount a read-only tmpfs here (needs root and mount rights)")
    try:
        with pytest.raises(CoatnetError, match=r"cannot create the folder|not writable"):
            make_storage(f"sqlite:///{mount}/sub/study.db", None)
        with pytest.raises(CoatnetError, match="not writable"):
            make_storage(f"sqlite:///{mount}/study.db", None)
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_create_false_never_creates_a_database(tmp_path):
    path = tmp_path / "coatnet-search.db"
    with pytest.raises(CoatnetError, match="no such study storage"):
        make_storage(f"sqlite:///{path}", None, create=False)
    assert not path.exists() and os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", "a/b", "..", ".", "", "x\0y", "é/../"])
def test_safe_dir_name_stays_inside_its_parent(tmp_path, name):
    safe = safe_dir_name(name)
    target = (tmp_path / "runs" / safe).resolve()
    assert target.parent == (tmp_path / "runs").resolve()
    assert safe not in ("", ".", "..") and "/" not in safe and "\0" not in safe


def test_safe_dir_name_keeps_ordinary_names_and_separates_mapped_ones():
    assert safe_dir_name("default-training-free_v2.1") == "default-training-free_v2.1"
    assert safe_dir_name("a/b") != safe_dir_name("a_b")


@pytest.mark.parametrize(
    "stored",
    ["{not json", '{"space": {"layouts": [], "depths": []}, "flops": 1, "params": null}'],
    ids=["not-json", "invalid-space"],
)
def test_an_edited_stored_study_config_is_explained(tmp_path, capsys, stored) -> None:
    """report and worker read the config a study stores; a hand-edited one must not traceback."""
    import optuna

    from coatnet_nas.search import make_storage
    from coatnet_nas.search.opening import CONFIG_ATTR

    url = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(study_name="edited", storage=make_storage(url, None))
    study.set_user_attr(CONFIG_ATTR, stored)
    before = (tmp_path / "s.db").read_bytes()
    for command in (["report", "--out", str(tmp_path / "out")], ["worker"]):
        code = run([*command, "--storage", url, "--study", "edited"])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and "Traceback" not in err
        assert "edited" in err and "search configuration" in err and len(err) < 1600
    assert (tmp_path / "s.db").read_bytes() == before  # read, never rewritten
