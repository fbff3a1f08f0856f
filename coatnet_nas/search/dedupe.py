"""Each architecture is evaluated once per study: a canonical key and the earlier result.

With a promotion ladder the key also holds the rung's recipe and the seed: at most one training
per architecture, rung and seed (none when an equal recipe and seed were trained on a lower rung).

Samplers propose the same point again (TPE in a small space, several workers with one seed, a
re-queued trial), and on the training proxy a repeat costs a full training. A trial stores
:func:`arch_key` (the normalized target spec without its name, plus the proxy that scores it) as
the ``arch_key`` user attribute before it is trained; :func:`earlier_result` then finds an earlier
evaluation of the same key, so the trial can be told that result instead.

Two workers that sample one key at the same moment both store it first and then look: the lower
trial number wins and the other waits for its result, so a key is never trained twice at once. A
trial looks only once every lower-numbered trial has stored its key (they are still being sampled
for a few milliseconds): otherwise a higher trial that looked before a lower one stored the same
key would train it, and so would the lower one, which wins.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from coatnet_nas.search.config import EVALUATED, SearchConfig, TrialStatus
from coatnet_nas.search.liveness import reap

__all__ = ["DUPLICATE_ATTR", "KEY_ATTR", "arch_key", "copy_result", "earlier_result"]

KEY_ATTR = "arch_key"
DUPLICATE_ATTR = "duplicate_of"
_POLL_SECONDS = 0.5
_SAMPLING_POLL_SECONDS = 0.02
# A RUNNING trial without a key older than this is not being sampled any more (its process died
# before storing one, or it runs an older version): it is not waited for.
SAMPLING_SECONDS = 60.0


def arch_key(spec: Any, config: SearchConfig, rung: int = 0, seed: int = 0) -> str:
    """A stable digest of what decides a trial's score: the architecture, how it is scored
    (the rung's proxy recipe) and the seed; rung 0 seed 0 keys as before the ladder existed.

    The rung itself is not part of it: a rung that only adds seeds (the recipe below, more
    seeds) reuses the trainings the rung below already did with those seeds.
    """
    data = spec.to_dict()
    data.pop("name", None)  # "<space>-trial" for every candidate: not part of the architecture
    scored_by = (
        config.proxy
        if config.training_free
        else config.space.rung_recipe(rung).model_dump(mode="json", exclude={"data_dir"})
    )
    what: dict[str, Any] = {"spec": data, "proxy": scored_by}
    if seed:
        what["seed"] = seed
    text = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def earlier_result(
    study: optuna.Study, number: int, key: str, wait: float = 24 * 3600.0
) -> FrozenTrial | None:
    """The earliest evaluated trial with ``key`` (not ``number`` itself), or ``None``.

    Lower-numbered trials still being sampled are awaited first (until they store their key),
    so that the lowest trial with a key is the one that trains it. While a lower-numbered trial
    with the key is still RUNNING its result is awaited (for at most ``wait`` seconds); if it
    ends without an evaluation (failed, worker died), ``None`` lets this trial train the
    architecture itself.
    """
    deadline = time.monotonic() + wait
    while True:
        trials = study.get_trials(deepcopy=False)
        same = [t for t in trials if t.number != number and t.user_attrs.get(KEY_ATTR) == key]
        done = [t for t in same if _evaluated(t)]
        if done:
            return min(done, key=lambda t: t.number)
        ahead = [t for t in same if t.state == TrialState.RUNNING and t.number < number]
        sampling = [t for t in trials if t.number < number and _being_sampled(t)]
        if not (ahead or sampling) or time.monotonic() > deadline:
            return None
        time.sleep(_POLL_SECONDS if ahead else _SAMPLING_POLL_SECONDS)
        reap(study)  # the trial awaited may belong to a dead process: end it rather than wait


def _being_sampled(t: FrozenTrial) -> bool:
    """A trial asked moments ago whose key is not stored yet (Optuna stamps local time)."""
    if t.state != TrialState.RUNNING or KEY_ATTR in t.user_attrs or t.datetime_start is None:
        return False
    age = datetime.datetime.now() - t.datetime_start
    return age.total_seconds() < SAMPLING_SECONDS


def _evaluated(t: FrozenTrial) -> bool:
    return (
        t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        and t.user_attrs.get("status") in EVALUATED
        and DUPLICATE_ATTR not in t.user_attrs
    )


def copy_result(trial: optuna.Trial, earlier: FrozenTrial) -> None:
    """Record on ``trial`` what the earlier evaluation measured, and which trial it was."""
    for key, value in earlier.user_attrs.items():
        if key in ("val_accuracy", "best_val_accuracy", "train_loss", "proxy_score"):
            trial.set_user_attr(key, value)
    trial.set_user_attr(DUPLICATE_ATTR, earlier.number)
    trial.set_user_attr("status", TrialStatus.DUPLICATE.value)
    trial.set_user_attr("reason", f"same architecture as trial {earlier.number}; not trained")
