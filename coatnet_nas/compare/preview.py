"""A comparison previewed by a proxy: every layout's candidate scored, not trained.

Each layout is fitted exactly as :func:`~coatnet_nas.compare.run_compare` fits it (the base spec
adapted to the data's classes and channels, depth-scaled, its stage types swapped, fitted to the
budget at the comparison's image size), and that candidate is handed to a
:class:`~coatnet_nas.proxies.ProxyEvaluator` as a target-size spec, just as a search or a proxy
check hands it one: a ``supernet:SUPER.pt`` proxy shrinks it to the supernet's size and scores it
with inherited weights on the supernet's own data; a training proxy or training-free score uses
its recipe's data and shrink. The result is a ranking of the layouts in seconds (for a supernet),
held to the paper's generalization ranking; fitting speed and capacity are properties of
training and are not measured.

Seeds: a proxy whose value depends on the caller's seed (a supernet's BatchNorm calibration
batches, a training run, a score's batch and initial weights) is scored once per comparison seed;
one that pins ``seed=`` or ignores seeds (``params``, ``flops``) once. A candidate the proxy
refuses (outside the supernet) is a failed layout with the proxy's reason; the others are scored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coatnet_nas._io import atomic_write_json, ensure_dir, json_safe
from coatnet_nas.compare.analysis import PaperComparison, Ranking, Stat, compare_with_paper, rank
from coatnet_nas.compare.config import CompareConfig
from coatnet_nas.compare.layouts import Entrant, fit_layouts, parse_layouts
from coatnet_nas.compare.report import write_csv
from coatnet_nas.compare.store import CONFIG_FILE, RUNS_FILE
from coatnet_nas.errors import CoatnetError
from coatnet_nas.proxies.evaluate import ProxyEvaluator
from coatnet_nas.proxies.parse import ProxySpec
from coatnet_nas.proxies.recipe import ProxyRecipe
from coatnet_nas.scaling import scale_spec
from coatnet_nas.spec import ModelSpec
from coatnet_nas.threads import cpu_threads

__all__ = ["NOT_MEASURED", "PROXY", "LayoutScore", "ProxyPreview", "preview_compare"]

PROXY = "proxy"  # the kind of a scored run, the regime part of its key, the ranking's name
NOT_MEASURED = (
    "fitting speed and capacity are not measured: they are properties of training a layout, "
    "which a proxy does not do; run the comparison without a proxy for them."
)
LAYOUT_COLUMNS = ("layout", "params", "flops", "flops_ratio", "proxy", "proxy_score")
LAYOUT_COLUMNS += ("proxy_score_std", "proxy_runs", "proxy_params", "status", "reason")
# the settings that shape a preview (the data regimes, training recipe and capacity do not)
CONFIG_KEYS = ("base", "layouts", "flops", "vary", "depth_mult", "image_size", "seeds")
RUN_COLUMNS = ("key", "kind", "layout", "seed", "proxy", "status", "proxy_score", "params")
RUN_COLUMNS += ("flops", "proxy_params", "seconds", "reason")


@dataclass(frozen=True)
class LayoutScore:
    """One layout's proxy score over the seeds scored (``reason``: why it was not scored)."""

    layout: str
    regime: str  # always PROXY: lets compare's ranking code read these like regime rows
    params: int
    flops: int
    flops_ratio: float
    score: Stat
    proxy_params: int | None
    reason: str | None = None

    @property
    def status(self) -> str:
        return "failed" if self.reason else "ok"

    def to_dict(self) -> dict[str, Any]:
        out = {k: v.to_dict() if isinstance(v, Stat) else v for k, v in self.__dict__.items()}
        return {**out, "status": self.status}


@dataclass
class ProxyPreview:
    """The outcome: the fitted layouts, one record per scored (layout, seed), and the ranking."""

    config: CompareConfig
    proxy: ProxySpec
    out_dir: Path
    entrants: list[Entrant]
    seeds: tuple[int, ...]
    records: list[dict[str, Any]]
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    between: dict[str, str] = field(default_factory=dict)  # supernet: widths it never trained
    scores: list[LayoutScore] = field(default_factory=list, init=False)
    ranking: Ranking = field(init=False)
    paper: PaperComparison = field(init=False)
    files: dict[str, Path] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        failed = {r["layout"]: r["reason"] for r in self.records if r["status"] != "ok"}
        for e in self.entrants:
            runs = [r for r in self.records if r["layout"] == e.name and r["status"] == "ok"]
            self.scores.append(
                LayoutScore(
                    e.name,
                    PROXY,
                    e.params,
                    e.flops,
                    round(e.flops_ratio, 4),
                    Stat.of([r["proxy_score"] for r in runs]),
                    runs[0]["proxy_params"] if runs else None,
                    failed.get(e.name) if not runs else None,
                )
            )
        self.ranking = rank(self.scores, PROXY, PROXY, "score", True)  # type: ignore[arg-type]
        vit = next((e.name for e in self.entrants if e.layout.vit), None)
        self.paper = compare_with_paper(self.ranking, vit)

    @property
    def budget(self) -> int:
        return self.entrants[0].budget

    def notes(self) -> list[str]:
        out = [NOT_MEASURED]
        if self.between:
            shown = "; ".join(f"{k}: {v}" for k, v in self.between.items())
            out.append(
                f"fitted widths the supernet never trained as a choice: {shown}. These scores "
                "rest on channel slices trained only inside wider choices; a budget that fits "
                "the layouts to the space's widths avoids it."
            )
        if len(self.seeds) < len(self.config.seeds):
            out.append(
                f"{self.proxy.label} does not depend on the comparison's seeds: one value per "
                "layout (no spread)."
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "out": str(self.out_dir),
                "proxy": self.proxy.label,
                "budget_flops": self.budget,
                "config": {k: v for k, v in self.config.to_dict().items() if k in CONFIG_KEYS},
                "data": self.data,
                "seeds": list(self.seeds),
                "layouts": [e.describe() for e in self.entrants],
                "scores": [s.to_dict() for s in self.scores],
                "rankings": {PROXY: self.ranking.to_dict()},
                "paper": {PROXY: self.paper.to_dict()},
                "runs": self.records,
                "errors": self.errors,
                "seconds": round(self.seconds, 1),
                "notes": self.notes(),
                "files": {k: str(v) for k, v in self.files.items()},
            }
        )


def evaluator_for(config: CompareConfig, seed: int, device: str) -> ProxyEvaluator:
    """An evaluator whose non-supernet proxies use the comparison's data set."""
    recipe = ProxyRecipe(dataset=config.dataset, data_dir=config.data_dir)
    return ProxyEvaluator(recipe, seed=seed, device=device)


def preview_entrants(
    config: CompareConfig, proxy: ProxySpec, evaluator: ProxyEvaluator
) -> list[Entrant]:
    """The layouts fitted as compare fits them, on the proxy's data (its classes, channels)."""
    data = evaluator.data(proxy)  # loads a supernet (checking its options) or the proxy's data
    base = scale_spec(config.base, 1.0, config.depth_mult)
    base = base.evolve(
        image_size=config.train_size, num_classes=data.num_classes, in_chans=data.in_chans
    )
    layouts = parse_layouts(config.layouts, len(base.stages))
    return fit_layouts(base, layouts, config.flops, config.vary.value)


def check_out_dir(out_dir: Path) -> None:
    """Refuse a folder holding a trained comparison: the preview would overwrite its report."""
    if (out_dir / RUNS_FILE).exists() or (out_dir / CONFIG_FILE).exists():
        raise CoatnetError(
            f"{out_dir} holds a trained comparison; a proxy preview there would overwrite its "
            "layouts.csv and compare.json: write the preview to another folder (out_dir).",
            param="proxy",
        )


def preview_compare(
    config: CompareConfig,
    proxy: ProxySpec,
    out_dir: str | Path,
    *,
    device: str = "auto",
    threads: int | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> ProxyPreview:
    """Score every layout's fitted candidate with ``proxy`` (see the module docstring) and write
    ``layouts.csv``, ``runs.csv`` and ``compare.json`` to ``out_dir``; ``on_record`` sees each
    scored or failed run as it ends."""
    start = time.perf_counter()
    config.validate()
    out = Path(out_dir)
    check_out_dir(out)
    wanted = config.seeds if proxy.varies_with_seed else config.seeds[:1]
    first = evaluator_for(config, wanted[0], device)
    evaluators = [first.with_seed(s) for s in wanted]  # one supernet load serves every seed
    seeds = tuple(e.seed_of(proxy) for e in evaluators)  # a pinned seed= is the one used
    with cpu_threads(threads):
        entrants = preview_entrants(config, proxy, evaluators[0])
        records: list[dict[str, Any]] = []
        for e in entrants:
            records += _score_layout(e, proxy, evaluators, on_record or (lambda r: None))
    errors = [f"{r['key']}: {r['reason']}" for r in records if r["status"] != "ok"]
    data = evaluators[0].data(proxy).describe()
    scored = [
        e for e in entrants if any(r["layout"] == e.name for r in records if r["status"] == "ok")
    ]
    scorer = evaluators[0].supernet(proxy) if proxy.is_supernet else None
    untrained = {e.name: scorer.untrained_widths(e.spec) for e in scored} if scorer else {}
    between = {name: ", ".join(found) for name, found in untrained.items() if found}
    preview = ProxyPreview(
        config, proxy, out, entrants, seeds, records, errors, data=data, between=between
    )
    preview.seconds = time.perf_counter() - start
    write_preview(preview)
    return preview


def _score_layout(
    entrant: Entrant,
    proxy: ProxySpec,
    evaluators: list[ProxyEvaluator],
    emit: Callable[[dict[str, Any]], None],
) -> list[dict[str, Any]]:
    """One record per seed; a refused candidate (the same for every seed) fails once."""
    spec: ModelSpec = entrant.spec
    out = []
    for evaluator in evaluators:
        seed = evaluator.seed_of(proxy)
        record = {
            "key": f"{entrant.name}|{PROXY}|seed={seed}",
            "kind": PROXY,
            "layout": entrant.name,
            "seed": seed,
            "proxy": proxy.label,
            "params": entrant.params,
            "flops": entrant.flops,
        }
        begin = time.perf_counter()
        try:
            outcome = evaluator.evaluate(proxy, spec)
        except Exception as exc:  # one candidate the proxy cannot score must not stop the others
            reason = str(exc) if isinstance(exc, CoatnetError) else f"{type(exc).__name__}: {exc}"
            record.update(status="failed", reason=reason[:2000], proxy_score=None)
            record.update(proxy_params=None, seconds=round(time.perf_counter() - begin, 3))
            out.append(record)
            emit(record)
            if isinstance(exc, CoatnetError):  # refused: every seed would be refused alike
                break
            continue
        ok = outcome.status == "ok"
        record.update(status=outcome.status, reason=None if ok else outcome.status)
        record.update(proxy_score=outcome.value if ok else None, seconds=round(outcome.seconds, 3))
        record["proxy_params"] = outcome.detail.get("proxy_params")
        out.append(record)
        emit(record)
    return out


def write_preview(preview: ProxyPreview) -> dict[str, Path]:
    """``layouts.csv`` (one proxy score per layout), ``runs.csv`` and ``compare.json``."""
    out = ensure_dir(preview.out_dir, param="out_dir")
    layouts = [
        [
            s.layout,
            s.params,
            s.flops,
            s.flops_ratio,
            preview.proxy.label,
            _num(s.score.mean),
            _num(s.score.std),
            s.score.n,
            s.proxy_params,
            s.status,
            s.reason,
        ]
        for s in preview.scores
    ]
    runs = [[r.get(k) for k in RUN_COLUMNS] for r in preview.records]
    preview.files = {
        "layouts.csv": write_csv(out / "layouts.csv", list(LAYOUT_COLUMNS), layouts),
        "runs.csv": write_csv(out / "runs.csv", list(RUN_COLUMNS), runs),
        "compare.json": out / "compare.json",
    }
    atomic_write_json(out / "compare.json", preview.to_dict(), param="out_dir")
    return preview.files


def _num(value: float) -> str:
    return "" if value != value else f"{value:.6g}"  # NaN (not scored): empty
