"""Proxy-check outputs: per-architecture CSV, per-proxy statistics CSV, JSON and a scatter PNG."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from coatnet_nas._io import atomic_write_json, atomic_write_text, ensure_dir, pyplot, save_figure
from coatnet_nas.proxies.check import ProxyCheckResult

__all__ = ["write_outputs"]


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def write_outputs(result: ProxyCheckResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``proxy_check.csv``, ``proxy_stats.csv``, ``proxy_check.json`` and the PNG."""
    out = ensure_dir(out_dir, param="out")
    files = {
        "proxy_check.csv": out / "proxy_check.csv",
        "proxy_stats.csv": out / "proxy_stats.csv",
        "proxy_check.json": out / "proxy_check.json",
        "proxy_check.png": out / "proxy_check.png",
    }
    atomic_write_text(files["proxy_check.csv"], _csv(result.rows()), param="out")
    atomic_write_text(files["proxy_stats.csv"], _csv([s.to_dict() for s in result.stats]))
    atomic_write_json(files["proxy_check.json"], result.to_dict())
    scatter(result, files["proxy_check.png"])
    return files


def scatter(result: ProxyCheckResult, path: Path) -> Path:
    """One panel per proxy: its value (x) against the reference (y), rho and tau in the title.

    Scores spanning orders of magnitude (synflow, params) get a log x axis.
    """
    plt = pyplot()
    panels = len(result.proxies)
    cols = min(4, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.0 * rows), squeeze=False)
    ref = result.values[result.reference]
    for i, (ax, stats) in enumerate(zip(axes.flat, result.stats, strict=False)):
        xs = result.values[stats.proxy]
        pts = [
            (x, y) for x, y in zip(xs, ref, strict=True) if math.isfinite(x) and math.isfinite(y)
        ]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=16)
        positive = [p[0] for p in pts if p[0] > 0]
        if len(positive) == len(pts) and pts and max(positive) / min(positive) > 100:
            ax.set_xscale("log")
        ax.set_title(
            f"{stats.proxy}\nrho {stats.spearman:.2f}  tau {stats.kendall:.2f}  "
            f"top-{stats.k} {stats.top_k:.2f}",
            fontsize=8,
        )
        ax.tick_params(labelsize=7)
        ax.set_xlabel("proxy value (higher = predicted better)", fontsize=7)
        if i % cols == 0:
            ax.set_ylabel(f"reference: {result.reference}", fontsize=7)
    for ax in list(axes.flat)[panels:]:
        ax.axis("off")
    fig.suptitle(f"proxy check: {len(result.specs)} architectures", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
