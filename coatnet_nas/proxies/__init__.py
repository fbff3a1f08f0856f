"""Cheap scores for architectures and a check of how far to trust them.

``scores`` (training-free scores, a registry), ``rank`` (Spearman/Kendall/top-k), ``recipe``
(proxy strings like ``train:epochs=1`` and scoring one spec), ``check`` (the proxy-check runner)
and ``export`` (CSV, JSON, PNG). Rank statistics and scores import without data or Optuna.
"""

from coatnet_nas.proxies.rank import kendall_tau, rankdata, spearman, top_k_overlap
from coatnet_nas.proxies.recipe import (
    TRAIN,
    ProxyEvaluator,
    ProxyOutcome,
    ProxySpec,
    parse_proxies,
    parse_proxy,
    train_config,
)
from coatnet_nas.proxies.scores import (
    SCORES,
    Score,
    compute_score,
    get_score,
    register_score,
    score_names,
)

__all__ = [
    "SCORES",
    "TRAIN",
    "ProxyEvaluator",
    "ProxyOutcome",
    "ProxySpec",
    "Score",
    "compute_score",
    "get_score",
    "kendall_tau",
    "parse_proxies",
    "parse_proxy",
    "rankdata",
    "register_score",
    "score_names",
    "spearman",
    "top_k_overlap",
    "train_config",
]
