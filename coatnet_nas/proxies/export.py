"""Proxy-check outputs: per-architecture CSV, per-proxy statistics CSV, JSON and a scatter PNG."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

from coatnet_nas.errors import CoatnetError
from coatnet_nas.proxies.check import ProxyCheckResult

__all__ = ["write_outputs"]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def write_outputs(result: ProxyCheckResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``proxy_check.csv``, ``proxy_stats.csv``, ``proxy_check.json`` and the PNG."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CoatnetError(f"--out {out}: cannot create the folder ({exc.strerror}).") from None
    files = {
        "proxy_check.csv": out / "proxy_check.csv",
        "proxy_stats.csv": out / "proxy_stats.csv",
        "proxy_check.json": out / "proxy_check.json",
        "proxy_check.png": out / "proxy_check.png",
    }
    _atomic_write(files["proxy_check.csv"], _csv(result.rows()))
    _atomic_write(files["proxy_stats.csv"], _csv([s.to_dict() for s in result.stats]))
    _atomic_write(files["proxy_check.json"], json.dumps(result.to_dict(), indent=2) + "\n")
    scatter(result, files["proxy_check.png"])
    return files


def scatter(result: ProxyCheckResult, path: Path) -> Path:
    """One panel per proxy: its value (x) against the reference (y), rho and tau in the title.

    Scores spanning orders of magnitude (synflow, params) get a log x axis.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
