"""Opening a study: create it with its config, or resume it only with the same config.

A study is self-describing: its :class:`SearchConfig` is stored as a user attribute, so a worker
on another machine scores trials exactly like the process that created it, and a resumed run with
other settings is refused with the differences named (compared by value, so an older stored form
of the same settings still resumes).
"""

from __future__ import annotations

import optuna
from optuna.storages import RDBStorage

from coatnet_nas.errors import CoatnetError
from coatnet_nas.search.config import SearchConfig

__all__ = ["CONFIG_ATTR", "TARGET_ATTR", "open_study"]

CONFIG_ATTR = "coatnet_config"
TARGET_ATTR = "coatnet_target_trials"
_MAX_DIFFS = 5  # differences named in one error, so that it stays one paragraph


def open_study(
    storage: RDBStorage,
    study_name: str,
    config: SearchConfig | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> tuple[optuna.Study, SearchConfig]:
    """Create or resume ``study_name``; with ``config=None`` it must exist (worker, report)."""
    if config is None:
        try:
            study = optuna.load_study(
                study_name=study_name, storage=storage, sampler=sampler, pruner=pruner
            )
        except KeyError:
            known = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage))
            raise CoatnetError(
                f"no study named {study_name!r} in this storage (studies: {known or 'none'}).",
                param="study_name",
            ) from None
        return study, _stored_config(study)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        directions=config.directions,
        load_if_exists=True,
    )
    stored = [d.name.lower() for d in study.directions]
    if stored != config.directions:
        raise CoatnetError(
            f"study {study_name!r} exists with other objectives (directions {', '.join(stored)}); "
            "resume it with the same objectives, or pass another study name.",
            param="study_name",
        )
    if study.user_attrs.get(CONFIG_ATTR) is None:
        study.set_user_attr(CONFIG_ATTR, config.to_json())
        return study, config
    diff = _stored_config(study).differences(config)
    if diff:
        more = f"; and {len(diff) - _MAX_DIFFS} more" if len(diff) > _MAX_DIFFS else ""
        raise CoatnetError(
            f"study {study_name!r} already exists with a different configuration (stored -> "
            f"given: {'; '.join(diff[:_MAX_DIFFS])}{more}); resume it with the same settings, "
            "or pass another study name.",
            param="study_name",
        )
    return study, config


def _stored_config(study: optuna.Study) -> SearchConfig:
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        raise CoatnetError(
            f"study {study.study_name!r} has no stored search configuration (it was not created "
            "by run_search).",
            param="study_name",
        )
    try:
        return SearchConfig.from_json(stored)
    except CoatnetError as exc:
        raise CoatnetError(f"study {study.study_name!r}: {exc}", param="study_name") from None
