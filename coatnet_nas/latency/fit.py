"""Interpolation for kinds the table did not measure, and the whole-model correction.

Per group of kinds (role and type) a linear model with non-negative coefficients maps closed-form
cost features to per-block milliseconds: more FLOPs, weights or activations never predict less
time, and it extrapolates in proportion instead of flat (as trees would). Fits minimize relative
error (weights 1/y²), because a 10% miss matters the same on a 0.1 ms head as on a 50 ms stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coatnet_nas.latency.kinds import BlockKind
from coatnet_nas.latency.modules import kind_cost
from coatnet_nas.latency.table import Correction, LatencyTable, Regressor

__all__ = ["FEATURES", "correction_group", "fit_correction", "fit_regressors", "kind_features"]

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


ENDS = "ends"  # the correction group of the stem and the head


def correction_group(stage_type: str) -> str:
    """The correction group of a stage: its block type, with the stem and head pooled ("ends")."""
    return ENDS if stage_type in ("stem", "head") else stage_type


def _weighted_fit(x: np.ndarray, y: np.ndarray, measured: np.ndarray, intercept: bool):
    """Non-negative least squares of ``y`` relative to the whole model's ``measured`` time."""
    from sklearn.linear_model import LinearRegression

    model = LinearRegression(positive=True, fit_intercept=intercept)
    return model.fit(x, y, sample_weight=1.0 / measured**2)


def fit_correction(
    group_sums_ms: Sequence[dict[str, float]], measured_ms: Sequence[float], flops: Sequence[int]
) -> Correction:
    """``measured ≈ Σ_type scale_type · Σblocks_type + Σblocks_ends + offset`` over the calibration
    models.

    The offset is the model's own glue (module calls, the stage reshapes, allocation) that no
    isolated block carries; a scale per block type absorbs what isolation changes for that type
    (an MBConv block timed alone is relatively slower than in the model than a Transformer block
    is: measured on this CPU, C-C-C-C models came out ~8% high with one shared scale). The stem
    and head ("ends") keep their measured time (scale 1): every model has one of each, so their
    sum barely varies and a scale for it would trade off against the offset (fitted scales swung
    from 0 to 2.9 between runs). The fit is non-negative and relative (weights 1/m²); points off
    by more than 3 MADs of the relative residuals (a burst of load while one model was timed) are
    dropped once and the fit repeated. A type whose fitted scale is 0 keeps it (its time went
    into the offset; putting a scale back would count it twice). With too few points for a scale
    per type, one shared scale (the median ratio) is used. The FLOPs-proportional baseline gets
    its ratio from the same points.
    """
    m = np.asarray(measured_ms, dtype=float)
    f = np.asarray(flops, dtype=float) / 1e9
    if len(m) == 0:
        return Correction()
    groups = sorted({g for sums in group_sums_ms for g in sums})
    x_all = np.array([[sums.get(g, 0.0) for g in groups] for sums in group_sums_ms])
    flops_ratio = float(np.median(m / f)) if np.all(f > 0) else None
    shared = float(np.median(m / x_all.sum(axis=1)))
    types = [g for g in groups if g != ENDS]
    if len(m) < len(types) + 3 or not types:
        return Correction(
            scale=shared,
            points=len(m),
            scales={g: shared for g in groups},
            flops_ms_per_gflop=flops_ratio,
        )
    x = x_all[:, [groups.index(g) for g in types]]
    ends = np.array([sums.get(ENDS, 0.0) for sums in group_sums_ms])
    keep = np.ones(len(m), dtype=bool)
    for _ in range(2):
        model = _weighted_fit(x[keep], (m - ends)[keep], m[keep], intercept=True)
        if model.intercept_ < 0:
            model = _weighted_fit(x[keep], (m - ends)[keep], m[keep], intercept=False)
        rel = (model.predict(x) + ends - m) / m
        mad = float(np.median(np.abs(rel[keep] - np.median(rel[keep])))) or 1e-9
        outliers = np.abs(rel - np.median(rel[keep])) > 3 * 1.4826 * mad
        if not outliers.any() or (~outliers).sum() < len(types) + 3:
            break
        keep = ~outliers
    scales = {g: max(0.0, float(c)) for g, c in zip(types, model.coef_, strict=True)}
    if ENDS in groups:
        scales[ENDS] = 1.0
    return Correction(
        scale=shared,
        offset_ms=max(0.0, float(model.intercept_)),
        points=int(keep.sum()),
        scales=scales,
        flops_ms_per_gflop=flops_ratio,
    )
