"""Cheap scores for architectures and a check of how far to trust them.

``recipe`` (data + shrink + a training recipe), ``parse`` (proxy strings like ``train:epochs=1``),
``evaluate`` (scoring one spec), ``scores`` (training-free scores, a registry), ``rank``
(Spearman/Kendall/top-k), ``check`` (the proxy-check runner) and ``export`` (CSV, JSON, PNG).
Names load on first use, so the recipe imports without torch.
"""

from coatnet_nas._lazy import lazy_exports

_EXPORTS = {
    "ProxyEvaluator": "coatnet_nas.proxies.evaluate",
    "ProxyOutcome": "coatnet_nas.proxies.evaluate",
    "TRAIN": "coatnet_nas.proxies.parse",
    "ProxySpec": "coatnet_nas.proxies.parse",
    "parse_proxies": "coatnet_nas.proxies.parse",
    "parse_proxy": "coatnet_nas.proxies.parse",
    "kendall_tau": "coatnet_nas.proxies.rank",
    "rankdata": "coatnet_nas.proxies.rank",
    "spearman": "coatnet_nas.proxies.rank",
    "top_k_overlap": "coatnet_nas.proxies.rank",
    "ProxyRecipe": "coatnet_nas.proxies.recipe",
    "SCORES": "coatnet_nas.proxies.scores",
    "Score": "coatnet_nas.proxies.scores",
    "compute_score": "coatnet_nas.proxies.scores",
    "get_score": "coatnet_nas.proxies.scores",
    "register_score": "coatnet_nas.proxies.scores",
    "score_names": "coatnet_nas.proxies.scores",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
