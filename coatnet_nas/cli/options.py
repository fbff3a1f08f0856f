"""Options that several commands share, declared once so their flags and help stay identical.

Each is an ``Annotated`` type; a command gives it a default (``dataset: Dataset = "synthetic"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Dataset = Annotated[
    str,
    typer.Option(
        "--dataset", "-d", help="synthetic[:N], fashion-mnist, cifar10, cifar100 or folder:PATH."
    ),
]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Where to look for dataset files first.")
]
Holdout = Annotated[
    str, typer.Option("--holdout", help="split (seeded val split) or test (official test set).")
]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Training batch size.")]
LearningRate = Annotated[float, typer.Option("--lr", help="Peak AdamW learning rate.")]
WeightDecay = Annotated[float, typer.Option("--weight-decay", help="AdamW weight decay.")]
Warmup = Annotated[float, typer.Option("--warmup", help="Warm-up as a fraction of the schedule.")]
LabelSmoothing = Annotated[
    float, typer.Option("--label-smoothing", help="Cross-entropy label smoothing.")
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
ProxyDataset = Annotated[str | None, typer.Option("--dataset", help="Override the proxy data set.")]
