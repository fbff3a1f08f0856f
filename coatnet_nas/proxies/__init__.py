"""Cheap scores for architectures and a check of how far to trust them.

``recipe`` (data + shrink + a training recipe), ``parse`` (proxy strings like ``train:epochs=1``),
``evaluate`` (scoring one spec), ``scores`` (training-free scores, a registry), ``rank``
(Spearman/Kendall/top-k), ``check`` (the proxy-check runner) and ``export`` (CSV, JSON, PNG).
Rank statistics and scores import without data or Optuna.
"""

from coatnet_nas.proxies.evaluate import ProxyEvaluator, ProxyOutcome
from coatnet_nas.proxies.parse import TRAIN, ProxySpec, parse_proxies, parse_proxy
from coatnet_nas.proxies.rank import kendall_tau, rankdata, spearman, top_k_overlap
from coatnet_nas.proxies.recipe import ProxyRecipe
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
    "ProxyRecipe",
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
]
