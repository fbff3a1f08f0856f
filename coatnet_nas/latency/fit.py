"""Interpolation for kinds the table did not measure, and the whole-model correction.

Per group of kinds (role and type) a linear model with non-negative coefficients maps closed-form
cost features to per-block milliseconds: more FLOPs, weights or activations never predict less
time, and it extrapolates in proportion instead of flat (as trees would). Fits minimize relative
error (weights 1/y²), because a 10% miss matters the same on a 0.1 ms head as on a 50 ms stage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from coatnet_nas.latency.kinds import BlockKind
from coatnet_nas.latency.modules import kind_cost
from coatnet_nas.latency.table import Correction, LatencyTable, Regressor

__all__ = ["FEATURES", "fit_correction", "fit_regressors", "kind_features"]

FEATURES = ("mflops", "mparams", "in_kelems", "out_kelems", "attn_kscores")


def _out_grid(kind: BlockKind) -> tuple[int, int]:
    h, w = kind.size
    if kind.role == "stem":
        stride = kind.option("patch_size") or 2
        return h // stride, w // stride
    if kind.role == "first":
        return h // 2, w // 2
    if kind.role == "head":
        return 1, 1
    return h, w


def kind_features(kind: BlockKind) -> list[float]:
    """Closed-form features of one block: MFLOPs, M params, K elements in/out, K scores."""
    cost = kind_cost(kind)
    oh, ow = _out_grid(kind)
    head_dim = kind.option("head_dim")
    scores = (kind.out_ch // head_dim) * (oh * ow) ** 2 if head_dim else 0
    return [
        cost.flops / 1e6,
        cost.params / 1e6,
        kind.in_ch * kind.size[0] * kind.size[1] / 1e3,
        kind.out_ch * oh * ow / 1e3,
        scores / 1e3,
    ]


def fit_regressors(table: LatencyTable) -> dict[str, Regressor]:
    """One regressor per kind group that has measured entries."""
    from sklearn.linear_model import LinearRegression

    groups: dict[str, list[tuple[list[float], float]]] = {}
    for entry in table.entries.values():
        kind = BlockKind.from_dict(entry.kind)
        groups.setdefault(kind.group, []).append((kind_features(kind), entry.median_ms))
    out = {}
    for group, points in sorted(groups.items()):
        x = np.array([p[0] for p in points])
        y = np.array([p[1] for p in points])
        model = LinearRegression(positive=True, fit_intercept=len(points) > 1)
        model.fit(x, y, sample_weight=1.0 / y**2)
        intercept = float(model.intercept_) if len(points) > 1 else 0.0
        out[group] = Regressor(
            features=list(FEATURES),
            coef=[float(c) for c in model.coef_],
            intercept=max(0.0, intercept),
            points=len(points),
        )
    return out


def _theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Median of pairwise slopes, then the median intercept: robust to a few noisy points."""
    i, j = np.triu_indices(len(x), k=1)
    keep = x[j] != x[i]
    slope = float(np.median((y[j] - y[i])[keep] / (x[j] - x[i])[keep]))
    return slope, float(np.median(y - slope * x))


def fit_correction(
    block_sums_ms: Sequence[float], measured_ms: Sequence[float], flops: Sequence[int]
) -> Correction:
    """``measured ≈ scale·Σblocks + offset`` over the calibration models.

    The offset is the model's own glue (module calls, the stage reshapes, allocation) that no
    isolated block carries; the scale absorbs what isolation changes for every block alike
    (weights a re-run block finds in cache, allocator state). A handful of points timed on a
    possibly busy machine call for a robust fit (Theil–Sen); a negative offset or a
    non-positive scale is not physical, and then the median ratio (through the origin) is used.
    The FLOPs-proportional baseline gets its ratio from the same points, the same robust way.
    """
    s = np.asarray(block_sums_ms, dtype=float)
    m = np.asarray(measured_ms, dtype=float)
    f = np.asarray(flops, dtype=float) / 1e9
    if len(m) == 0:
        return Correction()
    flops_ratio = float(np.median(m / f)) if np.all(f > 0) else None
    scale, offset = float(np.median(m / s)), 0.0
    if len(m) >= 4:
        slope, intercept = _theil_sen(s, m)
        if slope > 0 and intercept >= 0 and math.isfinite(slope):
            scale, offset = slope, intercept
    return Correction(scale=scale, offset_ms=offset, points=len(m), flops_ms_per_gflop=flops_ratio)
