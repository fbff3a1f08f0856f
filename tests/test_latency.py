"""Latency tables: kinds a spec or space runs, interleaved timing, resumable builds, the fit,
prediction, configuration checks, and the `coatnet latency table` / `build --latency` commands.

Timings here are tiny (16-32 px, 1-2 repeats) and asserted only for structure, never speed."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from coatnet_nas.cli import run
from coatnet_nas.errors import CoatnetError
from coatnet_nas.latency import (
    LatencyTable,
    build_table,
    estimate_latency,
    kinds_of_specs,
    latency_breakdown,
    sample_specs,
    space_kinds,
    spec_kinds,
)
from coatnet_nas.latency.fit import fit_correction
from coatnet_nas.latency.kinds import BlockKind
from coatnet_nas.latency.predict import group_sums_ms
from coatnet_nas.latency.timing import time_rounds
from coatnet_nas.search import space_from_dict
from coatnet_nas.spec import spec_from_dict
from tests.conftest import tiny_space

CT = {
    "name": "tiny-ct",
    "layout": "C-T",
    "depths": [1, 2, 2],
    "widths": [16, 16, 32],
    "image_size": 32,
    "num_classes": 10,
    "transformer": {"head_dim": 16},
}


def _spec(**changes):
    return spec_from_dict({**CT, **changes})


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> tuple[LatencyTable, object]:
    path = tmp_path_factory.mktemp("latency") / "table.json"
    specs = [_spec(), _spec(widths=[16, 24, 48]), _spec(depths=[1, 1, 3])]
    built = build_table(
        kinds_of_specs(specs),
        specs,
        out=path,
        repeats=2,
        per_round=1,
        warmup=0,
        image_size=(32, 32),
        source="test",
    )
    return built, path


# --- kinds ----------------------------------------------------------------------------------
def test_spec_kinds_count_every_block_once() -> None:
    rows = spec_kinds(_spec())
    assert [r.name for r in rows] == ["S0", "S1", "S2", "head"]
    s1, s2 = rows[1], rows[2]
    assert [(k.role, n) for k, n in s1.kinds] == [("first", 1), ("repeat", 1)]
    assert [(k.role, n) for k, n in s2.kinds] == [("first", 1), ("repeat", 1)]
    # the first block reads the previous grid, the repeated ones the stage's own (halved) grid
    assert s1.kinds[0][0].size == (16, 16) and s1.kinds[1][0].size == (8, 8)
    assert s2.kinds[0][0].in_ch == 16 and s2.kinds[0][0].out_ch == 32
    deeper = spec_kinds(_spec(depths=[1, 2, 5]))[2]
    assert dict((k.role, n) for k, n in deeper.kinds) == {"first": 1, "repeat": 4}


def test_kinds_round_trip_and_deduplicate() -> None:
    kinds = kinds_of_specs([_spec(), _spec()])
    assert len(kinds) == len({k.key for k in kinds})
    for kind in kinds:
        assert BlockKind.from_dict(json.loads(json.dumps(kind.to_dict()))) == kind


def test_space_kinds_cover_every_sampled_spec() -> None:
    space = space_from_dict(tiny_space())
    keys = {k.key for k in space_kinds(space)}
    for spec in sample_specs(space, 12, seed=3):
        for row in spec_kinds(spec):
            for kind, _ in row.kinds:
                assert kind.key in keys, kind.key


def test_sample_specs_are_seeded_and_distinct() -> None:
    space = space_from_dict(tiny_space())
    a = [s.to_dict() for s in sample_specs(space, 6, seed=1)]
    assert a == [s.to_dict() for s in sample_specs(space, 6, seed=1)]
    assert len({json.dumps(x, sort_keys=True) for x in a}) == len(a)
    with pytest.raises(CoatnetError, match="n must be"):
        sample_specs(space, -1, seed=1)


# --- timing ---------------------------------------------------------------------------------
def test_time_rounds_interleaves_and_reports_each_round() -> None:
    calls: list[str] = []
    runs = [lambda: calls.append("a"), lambda: calls.append("b")]
    rounds_seen = []
    samples = time_rounds(
        runs,
        torch.device("cpu"),
        threads=1,
        rounds=3,
        per_round=2,
        warmup=1,
        on_round=lambda i, s: rounds_seen.append((i, [len(x) for x in s])),
    )
    assert [len(s) for s in samples] == [6, 6]
    assert rounds_seen == [(0, [2, 2]), (1, [2, 2]), (2, [2, 2])]
    # warm-up once each, then per round: a (1 untimed + 2 timed), then b likewise
    assert calls[:2] == ["a", "b"]
    assert calls[2:] == (["a"] * 3 + ["b"] * 3) * 3
    with pytest.raises(CoatnetError, match="per_round"):
        time_rounds(runs, torch.device("cpu"), threads=1, rounds=1, per_round=0)


# --- building, resuming ---------------------------------------------------------------------
def test_table_covers_the_specs_and_predicts_them(table) -> None:
    built, path = table
    assert built.complete and path.exists()
    assert LatencyTable.load(path) == built
    specs = [spec_from_dict(c.spec) for c in built.calibration.values()]
    assert len(specs) == 3
    for entry in built.entries.values():
        assert entry.repeats == 2 and len(entry.samples_ms) == 2 and entry.median_ms > 0
    for spec in specs:
        b = latency_breakdown(spec, built)
        assert [s.name for s in b.stages] == ["S0", "S1", "S2", "head"]
        assert all(s.interpolated_kinds == 0 for s in b.stages)  # all measured exactly
        assert b.total_ms == pytest.approx(sum(s.ms for s in b.stages) + b.overhead_ms)
        assert estimate_latency(spec, built) == pytest.approx(b.total_ms / 1e3)


def test_unmeasured_kinds_are_interpolated_never_negative(table) -> None:
    built, _ = table
    wider = _spec(widths=[16, 40, 64])
    b = latency_breakdown(wider, built)
    assert sum(s.interpolated_kinds for s in b.stages) > 0
    assert all(s.ms > 0 for s in b.stages)
    # the regressors have non-negative coefficients: more of every feature never predicts less
    for reg in built.regressors.values():
        assert all(c >= 0 for c in reg.coef) and reg.intercept >= 0


def test_image_size_override_predicts_the_bigger_grid(table) -> None:
    built, _ = table
    spec = _spec()
    at_64 = latency_breakdown(spec, built, image_size=64)
    assert at_64 == latency_breakdown(spec.with_image_size(64), built)
    assert sum(s.interpolated_kinds for s in at_64.stages) > 0  # 64 px was never measured
    assert at_64.total_ms > latency_breakdown(spec, built).total_ms


def test_a_killed_build_resumes_and_keeps_its_samples(tmp_path) -> None:
    path = tmp_path / "t.json"
    specs = [_spec()]
    kinds = kinds_of_specs(specs)

    def stop_after_first_round(done: int, total: int, what: str) -> None:
        if what.startswith("round 1/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_table(
            kinds,
            specs,
            out=path,
            repeats=3,
            per_round=1,
            warmup=0,
            on_progress=stop_after_first_round,
        )
    partial = LatencyTable.load(path)
    assert not partial.complete and partial.interrupted == "SIGINT"
    assert {len(e.samples_ms) for e in partial.entries.values()} == {1}
    first = {k: e.samples_ms for k, e in partial.entries.items()}
    done = build_table(kinds, specs, out=path, repeats=3, per_round=1, warmup=0)
    assert done.complete and done.interrupted is None
    for key, samples in first.items():
        assert done.entries[key].samples_ms[:1] == samples
        assert len(done.entries[key].samples_ms) == 3
    # a complete table measures nothing more, and recalibration re-times only the models
    seen = []
    again = build_table(
        kinds,
        specs,
        out=path,
        repeats=3,
        per_round=1,
        warmup=0,
        on_progress=lambda d, t, w: seen.append(w),
    )
    assert not any(w.startswith("round") for w in seen)
    assert again.entries == done.entries
    recal = build_table(kinds, specs, out=path, repeats=3, per_round=1, warmup=0, recalibrate=True)
    assert recal.entries == done.entries
    assert recal.calibration.keys() == done.calibration.keys()
    assert recal.calibration != done.calibration


def test_resuming_on_another_configuration_is_refused(table, tmp_path) -> None:
    built, path = table
    with pytest.raises(CoatnetError, match="threads is 1 in the table but 2 here") as err:
        build_table(kinds_of_specs([_spec()]), out=path, threads=2, repeats=2, warmup=0)
    assert err.value.param == "out"
    with pytest.raises(CoatnetError, match="batch is 1 in the table but 4 here"):
        built.check_matches(batch=4, threads=1)
    built.check_matches(**built.meta.config())  # its own configuration passes


def test_a_block_type_missing_from_the_table_is_named(table) -> None:
    built, _ = table
    only_c = LatencyTable.model_validate(built.model_dump())
    only_c.entries = {k: e for k, e in only_c.entries.items() if ":T:" not in k}
    only_c.regressors = {g: r for g, r in only_c.regressors.items() if not g.endswith(":T")}
    with pytest.raises(CoatnetError, match=r"no measurements of .*first:T") as err:
        estimate_latency(_spec(), only_c)
    assert "coatnet latency table" in str(err.value) and len(str(err.value)) < 600


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "no such file"),
        ("{not json", "invalid JSON at line 1"),
        ('{"meta": {"format": 99}}', "not a latency table of format 1"),
        ('{"meta": {"format": 1}}', "not a valid latency table"),
    ],
)
def test_bad_table_files_are_refused_in_one_line(tmp_path, content, match) -> None:
    path = tmp_path / "t.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CoatnetError, match=match) as err:
        LatencyTable.load(path)
    assert err.value.param == "table" and "\n" not in str(err.value)


# --- the fit --------------------------------------------------------------------------------
def test_correction_recovers_per_type_scales_and_offset() -> None:
    rng = np.random.default_rng(0)
    sums = [
        {"C": float(c), "T": float(t), "ends": float(e)}
        for c, t, e in zip(*rng.uniform(1, 10, (2, 16)), rng.uniform(0.1, 1.0, 16), strict=True)
    ]
    measured = [1.2 * s["C"] + 0.9 * s["T"] + 1.0 * s["ends"] + 0.5 for s in sums]
    measured[3] *= 1.8  # a burst of load while one model was timed
    corr = fit_correction(sums, measured, [10**9] * len(sums))
    assert corr.scales["C"] == pytest.approx(1.2, rel=0.02)
    assert corr.scales["T"] == pytest.approx(0.9, rel=0.02)
    assert corr.scales["ends"] == 1.0  # the stem and head keep their measured time
    assert corr.offset_ms == pytest.approx(0.5, abs=0.1)
    assert corr.points == len(sums) - 1  # the outlier was dropped
    assert corr.flops_ms_per_gflop == pytest.approx(float(np.median(measured)))


def test_correction_counts_nothing_twice() -> None:
    """Stem and head time is nearly constant over models, like the offset; once an earlier fit
    gave the ends scale 0 (absorbed by the offset) and then put the shared scale back in its
    place, predicting every model ~0.5 ms high (76% within ±10% at 32 px instead of 100%)."""
    rng = np.random.default_rng(1)
    sums = [
        {"C": float(c), "T": float(t), "ends": 0.40 + 0.02 * float(e)}
        for c, t, e in zip(*rng.uniform(0.5, 3, (2, 24)), rng.uniform(0, 1, 24), strict=True)
    ]
    measured = [1.1 * s["C"] + 1.3 * s["T"] + 0.1 + 0.4 * rng.uniform(0.99, 1.01) for s in sums]
    corr = fit_correction(sums, measured, [10**9] * len(sums))
    for s, m in zip(sums, measured, strict=True):
        predicted = sum(corr.scales[g] * v for g, v in s.items()) + corr.offset_ms
        assert predicted == pytest.approx(m, rel=0.03)


def test_correction_with_few_points_uses_one_shared_scale() -> None:
    sums = [{"C": 2.0, "T": 1.0}, {"C": 4.0, "T": 2.0}]
    corr = fit_correction(sums, [6.0, 12.0], [10**9, 2 * 10**9])
    assert corr.scales == {"C": 2.0, "T": 2.0} and corr.offset_ms == 0.0
    assert fit_correction([], [], []).scale == 1.0


def test_group_sums_add_up_to_the_uncorrected_prediction(table) -> None:
    built, _ = table
    sums = group_sums_ms(_spec(), built)
    assert set(sums) == {"ends", "C", "T"}
    raw = sum(r.ms for r in latency_breakdown(_spec(), built).stages)
    corr = built.correction
    assert raw == pytest.approx(sum(corr.scales.get(g, corr.scale) * v for g, v in sums.items()))


# --- the commands ---------------------------------------------------------------------------
def test_cli_table_then_build_latency_json(tmp_path, capsys) -> None:
    spec = tmp_path / "ct.yaml"
    spec.write_text(json.dumps(CT))
    out = tmp_path / "t.json"
    args = [
        "latency",
        "table",
        str(spec),
        "--out",
        str(out),
        "--repeats",
        "2",
        "--warmup-runs",
        "0",
        "--calibration",
        "1",
        "--json",
    ]
    assert run(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kinds"] > 0 and summary["calibration_models"] == 1
    assert summary["meta"]["threads"] == 1 and summary["meta"]["batch"] == 1

    assert run(["build", str(spec), "--latency", "--table", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["latency_ms"]
    assert report["predicted"] > 0 and report["measured"] is None
    assert [s["name"] for s in report["stages"]] == ["S0", "S1", "S2", "head"]
    assert all(s["flops"] > 0 for s in report["stages"])

    assert run(["build", str(spec), "--latency", "--table", str(out), "--measure", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["latency_ms"]
    assert report["measured"] > 0 and math.isfinite(report["predicted"])

    assert run(["build", str(spec), "--latency", "--table", str(out)]) == 0
    captured = capsys.readouterr()
    assert "latency predicted from" in captured.out and "total" in captured.out
    assert "note:" not in captured.err  # every block of the spec was measured

    # at another resolution the prediction is an extrapolation, and says so
    assert run(["build", str(spec), "--latency", "--table", str(out), "--image-size", "64"]) == 0
    err = capsys.readouterr().err
    assert "note: none of the" in err and "interpolated" in err
    assert f"latency table {spec} --image-size 64" in err


def test_cli_build_latency_in_onnxruntime(tmp_path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    spec = tmp_path / "ct.yaml"
    spec.write_text(json.dumps(CT))
    assert run(["build", str(spec), "--latency", "--runtime", "onnxruntime", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["latency_ms"]
    assert report["runtime"]["name"] == "onnxruntime" and report["runtime"]["measured"] > 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["build", "coatnet0", "--latency", "--table", "{missing}"], "no such file"),
        (["build", "coatnet0", "--latency", "--table", "{corrupt}"], "invalid JSON"),
        (["build", "coatnet0", "--table", "{corrupt}"], "go with --latency"),
        (["build", "coatnet0", "--latency", "--measure"], "give --table"),
        (["build", "coatnet0", "--latency", "--runtime", "tflite"], "onnxruntime or torch"),
        (["latency", "table", "--out", "{dir}/t.json", "--threads", "0"], "threads must be"),
        (
            ["latency", "table", "--out", "{dir}/t.json", "--width-mult", "0"],
            "width_mult|width-mult",
        ),
        (["latency", "table", "--out", "{dir}/none.json", "--recalibrate"], "no table to"),
        (["latency", "table", "--out", "{dir}/t.json", "--device", "tpu"], "not a device"),
    ],
)
def test_cli_bad_input_exits_2_in_one_paragraph(tmp_path, capsys, args, match) -> None:
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{oops")
    names = {"missing": tmp_path / "nope.json", "corrupt": corrupt, "dir": tmp_path}
    argv = [a.format(**names) for a in args]
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err) < 1500
    assert __import__("re").search(match, err), err
