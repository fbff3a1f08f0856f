"""The promotion ladder's decisions and the verdict's arithmetic, checked by hand."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from coatnet_nas.errors import CoatnetError
from coatnet_nas.search import SearchConfig, space_from_dict
from coatnet_nas.search.dedupe import arch_key
from coatnet_nas.search.finalists import summarize
from coatnet_nas.search.rungs import NOISE_SEEDS, Evaluation, Rung, arch_id, promotions
from coatnet_nas.search.verdict import (
    margin,
    mean_ci95,
    rung_correlation,
    seed_noise,
    t975,
    verdict,
)
from tests.conftest import tiny_space


def ev(n, arch, value, rung=0, seed=0, state="scored", baseline=None):
    params = {"a": arch}
    return Evaluation(
        n,
        arch_id(params),
        params,
        rung,
        seed,
        state,
        value if state == "scored" else None,
        baseline,
    )


def promoted(due, rung):
    return sorted((p.params["a"], p.seed) for p in due if p.rung == rung)


LADDER = [Rung(top=2, seeds=2), Rung(top=1, seeds=3)]


def test_top_k_enter_the_next_rung_once_rung_0_is_complete():
    evs = [ev(i, f"x{i}", v) for i, v in enumerate([0.5, 0.9, 0.7, 0.8])]
    due, complete = promotions(evs, LADDER, expected0=4)
    assert complete[0] and not complete[1]
    assert promoted(due, 1) == [("x1", 0), ("x1", 1), ("x3", 0), ("x3", 1)]
    # the promoted get a second rung-0 seed: the proxy's noise is measured on them
    assert promoted(due, 0) == [("x1", 1), ("x3", 1)]
    assert NOISE_SEEDS == 2


def test_promotion_waits_until_the_rank_is_certain():
    evs = [ev(0, "x0", 0.9), ev(1, "x1", 0.5)]
    # 2 finished, 2 more to come, top 2: x0 ranks 0, 0 + 2 < 2 is false: nothing is certain
    due, complete = promotions(evs, LADDER, expected0=4)
    assert due == [] and not complete[0]
    # one more finished (1 to come): x0 is in the top 2 whatever comes, x1 (rank 2) is not
    evs.append(ev(2, "x2", 0.7))
    due, _ = promotions(evs, LADDER, expected0=4)
    assert promoted(due, 1) == [("x0", 0), ("x0", 1)]
    # a running candidate counts as one that may still come
    evs.append(ev(3, "x3", None, state="pending"))
    due, complete = promotions(evs, LADDER, expected0=3)
    assert promoted(due, 1) == [("x0", 0), ("x0", 1)] and not complete[0]


def test_baselines_always_go_up_and_take_no_place():
    evs = [ev(i, f"x{i}", v) for i, v in enumerate([0.5, 0.9, 0.7])]
    evs += [ev(3, "base", 0.1, baseline="B")]
    due, _ = promotions(evs, LADDER, expected0=3)
    # the baseline first measures its seed noise at rung 0, then is promoted
    assert promoted(due, 0) == [("base", 1), ("x1", 1), ("x2", 1)]
    assert ("base", 0) not in promoted(due, 1)
    evs += [ev(4, "base", 0.12, seed=1, baseline="B")]
    due, _ = promotions(evs, LADDER, expected0=3)
    assert promoted(due, 1) == [
        ("base", 0),
        ("base", 1),
        ("x1", 0),
        ("x1", 1),
        ("x2", 0),
        ("x2", 1),
    ]
    # on rung 2 (top 1) the worst baseline still goes up, next to the best candidate
    evs += [
        ev(5 + i, a, v, rung=1, seed=s)
        for i, (a, v, s) in enumerate(
            [
                ("x1", 0.8, 0),
                ("x1", 0.82, 1),
                ("x2", 0.85, 0),
                ("x2", 0.87, 1),
                ("base", 0.2, 0),
                ("base", 0.3, 1),
            ]
        )
    ]
    due, complete = promotions(evs, LADDER, expected0=3)
    assert promoted(due, 2) == [("base", s) for s in range(3)] + [("x2", s) for s in range(3)]
    assert complete[1] and not complete[2]


def test_ties_rank_the_earlier_trial_first():
    evs = [ev(0, "x0", 0.7), ev(1, "x1", 0.9), ev(2, "x2", 0.7), ev(3, "x3", 0.7)]
    due, _ = promotions(evs, [Rung(top=2)], expected0=4)
    assert promoted(due, 1) == [("x0", 0), ("x1", 0)]


def test_a_rung_with_fewer_finished_candidates_than_top():
    # 5 drawn, 2 failed (dead), 1 pruned; top 8: the 2 scored ones go up once rung 0 is done
    evs = [
        ev(0, "x0", 0.6),
        ev(1, "x1", None, state="dead"),
        ev(2, "x2", 0.4),
        ev(3, "x3", None, state="dead"),
    ]
    due, complete = promotions(evs, [Rung(top=8)], expected0=4)
    assert promoted(due, 1) == [("x0", 0), ("x2", 0)] and complete[0]
    evs += [ev(4, "x0", 0.7, rung=1), ev(5, "x2", 0.5, rung=1)]
    evs += [ev(6, "x0", 0.6, seed=1), ev(7, "x2", 0.4, seed=1)]
    due, complete = promotions(evs, [Rung(top=8)], expected0=4)
    assert due == [] and complete == [True, True]


def test_a_dead_seed_is_retried_not_lost():
    evs = [
        ev(0, "x0", 0.6),
        ev(1, "x0", None, rung=1, state="dead"),
        ev(2, "x0", None, rung=1, state="pending"),
    ]
    due, complete = promotions(evs, [Rung(top=1)], expected0=1)
    assert promoted(due, 1) == [] and not complete[1]  # the re-queued copy is awaited


def test_rungs_in_the_space_and_their_recipes():
    data = tiny_space()
    data["rungs"] = [{"top": 2, "seeds": 2, "proxy": {"steps": 8, "image_size": 32}}]
    space = space_from_dict(data)
    assert space.rung_recipe(1).steps == 8 and space.rung_recipe(1).image_size == 32
    assert space.rung_recipe(1).batch_size == space.proxy.batch_size  # the rest inherited
    assert space.with_rungs(1).rungs == ()
    with pytest.raises(CoatnetError, match="rungs must be >= 1") as info:
        space.with_rungs(0)
    assert info.value.param == "rungs"
    data["rungs"] = [{"top": 2, "proxy": {"dataset": "cifar10"}}]
    with pytest.raises(CoatnetError, match=r"rungs\[0\]\.proxy.*dataset cannot change"):
        space_from_dict(data)
    data["rungs"] = [{"top": 0, "seed": 2}]
    with pytest.raises(CoatnetError, match=r"rungs\[0\]") as info:
        space_from_dict(data)
    assert "seed" in str(info.value) and "top" in str(info.value)


def test_one_key_per_architecture_rung_and_seed():
    data = tiny_space()
    data["rungs"] = [{"top": 1, "seeds": 2, "proxy": {"steps": 8}}]
    space = space_from_dict(data)
    cfg = SearchConfig(space=space, flops=space.budget.flops)
    spec = space.sample(
        optuna.trial.FixedTrial(
            {"layout": "C-T", "depth_s1": 1, "depth_s2": 1, "width_s1": 32, "width_s2": 32}
        )
    )
    keys = {arch_key(spec, cfg, r, s) for r in (0, 1) for s in (0, 1)}
    assert len(keys) == 4
    assert arch_key(spec, cfg) == arch_key(spec, cfg, 0, 0)  # rung 0 seed 0: as before
    assert arch_key(spec, cfg) == arch_key(
        spec, SearchConfig(space=space.with_rungs(1), flops=space.budget.flops)
    )


# --- the verdict's arithmetic ------------------------------------------------------------------


def test_mean_and_t_interval_by_hand():
    ci = mean_ci95([0.80, 0.82, 0.84])
    assert ci.mean == pytest.approx(0.82)
    assert ci.half == pytest.approx(4.303 * 0.02 / math.sqrt(3))
    assert mean_ci95([0.7]).half is None
    assert t975(1) == 12.706 and t975(1000) == pytest.approx(1.962, abs=0.002)


def test_margin_and_verdict_words():
    a, b = [0.90, 0.91, 0.92], [0.80, 0.81, 0.82]
    d = margin(a, b)
    # equal variances and sizes: Welch df = 4, se = sqrt(2 * 0.0001 / 3)
    assert d.mean == pytest.approx(0.10)
    assert d.half == pytest.approx(2.776 * math.sqrt(2 * 0.0001 / 3))
    assert verdict(d, "CoAtNet-0") == f"beats CoAtNet-0 by 10.0 ± {d.half * 100:.1f} points"
    close = margin([0.80, 0.84], [0.81, 0.82])
    assert verdict(close, "B").startswith("not distinguishable from B (+0.5 ± ")
    worse = margin(b, a)
    assert verdict(worse, "B").startswith("is beaten by B by 10.0 ± ")
    assert "too few seeds" in verdict(margin([0.9], [0.8, 0.81]), "B")


def test_rung_correlation_and_seed_noise():
    rho, n = rung_correlation({"a": 0.1, "b": 0.2, "c": 0.3, "z": 1}, {"a": 1, "b": 3, "c": 2})
    assert n == 3 and rho == pytest.approx(0.5)
    assert rung_correlation({"a": 1, "b": 2}, {"a": 1, "b": 2}) == (None, 2)
    sd, half, used = seed_noise([[0.80, 0.82], [0.70, 0.74], [0.9]])
    # pooled variance (0.0002 + 0.0008) / 2 df; t(2) = 4.303; a difference has sqrt(2) x sd
    assert used == 2 and sd == pytest.approx(math.sqrt(0.0005))
    assert half == pytest.approx(4.303 * math.sqrt(2) * math.sqrt(0.0005))
    assert seed_noise([[0.5]]) == (None, None, 0)


def _stored(study, params, value, rung, seed, yardstick=None):
    attrs = {
        "rung": rung,
        "seed": seed,
        "status": "ok",
        "layout": "C-T",
        "spec": {"name": "x", "stages": [], "layout_of": params["a"]},
    }
    if yardstick:
        attrs["yardstick"] = yardstick
    study.add_trial(
        create_trial(
            params=params,
            distributions={"a": CategoricalDistribution(["w", "x", "y", "base"])},
            value=value,
            user_attrs=attrs,
            state=TrialState.COMPLETE,
        )
    )


def test_summary_of_a_stored_tiny_study_by_hand():
    data = tiny_space()
    data["rungs"] = [{"top": 2, "seeds": 3}]
    space = space_from_dict(data)
    cfg = SearchConfig(space=space, flops=space.budget.flops)
    study = optuna.create_study(direction="maximize")
    for arch, value in (("w", 0.5), ("x", 0.7), ("y", 0.6)):
        _stored(study, {"a": arch}, value, 0, 0)
    for arch, values in (("base", (0.55, 0.57)), ("x", (0.72,)), ("y", (0.60,))):
        for s, v in enumerate(values, start=0 if arch == "base" else 1):
            _stored(study, {"a": arch}, v, 0, s, "B" if arch == "base" else None)
    for arch, values in (
        ("x", (0.80, 0.82, 0.84)),
        ("y", (0.83, 0.85, 0.87)),
        ("base", (0.70, 0.71, 0.72)),
    ):
        for s, v in enumerate(values):
            _stored(study, {"a": arch}, v, 1, s, "B" if arch == "base" else None)
    summary = summarize(study.get_trials(), cfg)
    assert summary.complete and summary.top_rung == 1 and summary.rungs == 2
    # y wins on rung 1 although x led rung 0: the validated winner, not the proxy's favourite
    assert [f["scores"] for f in summary.finalists] == [[0.83, 0.85, 0.87], [0.80, 0.82, 0.84]]
    top = summary.finalists[0]
    assert top["mean"] == pytest.approx(0.85) and top["seeds"] == 3
    assert top["ci95"] == pytest.approx(
        [0.85 - 4.303 * 0.02 / math.sqrt(3), 0.85 + 4.303 * 0.02 / math.sqrt(3)]
    )
    (v,) = summary.verdicts
    assert v["baseline"] == "B" and v["margin"] == pytest.approx(0.14)
    assert v["text"].startswith("beats B by 14.0 ± ")
    (corr,) = summary.rung_correlations
    assert corr["n"] == 3 and corr["spearman"] == pytest.approx(0.5)  # x, y, base
    assert summary.noise["architectures"] == 3
    assert summary.noise["text"].startswith("differences below ±")
    assert summary.winner_trial == 10  # y's first rung-1 trial (it holds the spec)


def test_a_requeued_promotion_keeps_its_rung_seed_and_baseline():
    # Ctrl-C and a dead worker both end the trial and requeue it: the copy must stay a rung-1,
    # seed-1 evaluation of the same baseline, not become a new rung-0 candidate
    from coatnet_nas.search.config import TrialStatus
    from coatnet_nas.search.liveness import end_trial, requeue

    study = optuna.create_study(direction="maximize")
    attrs = {"rung": 1, "seed": 1, "yardstick": "B"}
    study.enqueue_trial({"a": "x"}, user_attrs=attrs)
    trial = study.ask()
    trial.suggest_categorical("a", ["x", "y"])
    frozen = study._storage.get_trial(trial._trial_id)
    assert end_trial(study, frozen, TrialStatus.INTERRUPTED, "interrupted")
    assert requeue(study, study._storage.get_trial(trial._trial_id), count_retry=False)
    (waiting,) = study.get_trials(states=(TrialState.WAITING,))
    assert {k: waiting.user_attrs[k] for k in attrs} == attrs
    assert waiting.user_attrs["retry_of"] == trial.number
