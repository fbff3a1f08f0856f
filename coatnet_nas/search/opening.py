"""Opening a study: create it with its config, or resume it only with the same config.

A study is self-describing: its :class:`SearchConfig` is stored as a user attribute, so a worker
on another machine scores trials exactly like the process that created it, and a resumed run with
other settings is refused with the differences named (compared by value, so an older stored form
of the same settings still resumes). The sampler, pruner and heartbeat it was created with are
stored too (:data:`STRATEGY_ATTR`), so a joining worker uses them unless told otherwise.

:func:`open_storage` wraps ``make_storage`` in a file lock next to an SQLite file: two processes
creating one fresh file at once raced on Optuna's schema (``UNIQUE constraint failed:
alembic_version.version_num``).
"""

from __future__ import annotations

import hashlib
import tempfile
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage

from coatnet_nas.errors import CoatnetError
from coatnet_nas.search.config import SearchConfig
from coatnet_nas.search.storage import make_storage, sqlite_file

__all__ = [
    "CONFIG_ATTR",
    "RUN_ATTR_PREFIX",
    "STRATEGY_ATTR",
    "TARGET_ATTR",
    "open_existing_study",
    "open_storage",
    "open_study",
    "strategy_of",
]

CONFIG_ATTR = "coatnet_config"
TARGET_ATTR = "coatnet_target_trials"
STRATEGY_ATTR = "coatnet_strategy"
RUN_ATTR_PREFIX = "coatnet_run:"
_LOCK_SECONDS = 120


def open_storage(
    storage_url: str,
    heartbeat_interval: int | None = None,
    *,
    create: bool = True,
    retry_seconds: float | None = None,
) -> RDBStorage:
    """``make_storage``, serialized per SQLite file so that concurrent creators do not race.

    ``create=False`` (joining or reporting an existing study) never creates a database file;
    ``retry_seconds`` is the storage's retry window (default: ``make_storage``'s).
    """
    prefix = "sqlite:///"
    if not storage_url.startswith(prefix) or storage_url == prefix + ":memory:":
        return make_storage(
            storage_url, heartbeat_interval, create=create, retry_seconds=retry_seconds
        )
    from filelock import FileLock, Timeout

    path = Path(storage_url.removeprefix(prefix))
    # The lock lives in the temp dir, keyed by the file's resolved path: nothing is left beside
    # the user's database (or beside a foreign file that is then refused).
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    lock = Path(tempfile.gettempdir()) / f"coatnet-storage-{digest}.lock"
    if not path.parent.is_dir():  # make_storage creates it, or names the problem
        return make_storage(
            storage_url, heartbeat_interval, create=create, retry_seconds=retry_seconds
        )
    try:
        with FileLock(str(lock), timeout=_LOCK_SECONDS):
            return make_storage(
                storage_url, heartbeat_interval, create=create, retry_seconds=retry_seconds
            )
    except Timeout:
        raise CoatnetError(
            f"storage_url {storage_url!r}: another process held {lock} for "
            f"{_LOCK_SECONDS} s while opening the study file.",
            param="storage_url",
        ) from None


def strategy_of(study: optuna.Study) -> dict[str, Any]:
    """The sampler, pruner and heartbeat the study was created with (empty for older studies)."""
    stored = study.user_attrs.get(STRATEGY_ATTR)
    return stored if isinstance(stored, dict) else {}


_MAX_DIFFS = 5  # differences named in one error, so that it stays one paragraph


def open_study(
    storage: RDBStorage,
    study_name: str,
    config: SearchConfig | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    strategy: dict[str, Any] | None = None,
) -> tuple[optuna.Study, SearchConfig]:
    """Create or resume ``study_name``; with ``config=None`` it must exist (worker, report).

    ``strategy`` (sampler/pruner/heartbeat names) is stored when the study gets its config.
    """
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
        _name_metrics(study, config)
        if strategy is not None:
            study.set_user_attr(STRATEGY_ATTR, strategy)
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


def open_existing_study(
    storage_url: str, study_name: str, heartbeat_interval: int | None = None
) -> tuple[optuna.Study, SearchConfig]:
    """A study that must already exist (report, inspection): nothing is ever created.

    A storage file that does not exist holds no study, so the answer names the study as well as
    the file.
    """
    path = sqlite_file(storage_url)
    if path is not None and not path.exists():
        raise CoatnetError(
            f"no study named {study_name!r}: the storage {path} does not exist (nothing was "
            "created); give the storage the search was run with.",
            param="study_name",
        )
    return open_study(make_storage(storage_url, heartbeat_interval, create=False), study_name)


def _name_metrics(study: Any, config: SearchConfig) -> None:
    """The objectives' names on the study, so dashboards label their axes (``val_accuracy``,
    ``flops``) instead of "Objective 0"."""
    first = config.proxy if config.training_free else "val_accuracy"
    names = [first, *config.objectives[1:]]
    with warnings.catch_warnings():  # set_metric_names is "experimental" in Optuna
        warnings.simplefilter("ignore")
        study.set_metric_names(names)
