"""Options that several commands share, declared once so their flags and help stay identical.

Each is an ``Annotated`` type; a command gives it a default (``dataset: Dataset = "synthetic"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coatnet_nas.train.recipe import TrainRecipe

Dataset = Annotated[
    str,
    typer.Option(
        "--dataset",
        "-d",
        metavar="NAME",
        help="synthetic[:N], fashion-mnist, cifar10, cifar100 or folder:PATH.",
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", metavar="PATH", help="Where to look for dataset files first."),
]
Holdout = Annotated[
    str, typer.Option("--holdout", help="split (seeded val split) or test (official test set).")
]
# Training settings: a command leaves them None unless given, so TrainRecipe's defaults apply.
_RECIPE = TrainRecipe()
BatchSize = Annotated[
    int | None,
    typer.Option(
        "--batch-size", metavar="N", help=f"Training batch size (default {_RECIPE.batch_size})."
    ),
]
LearningRate = Annotated[
    float | None,
    typer.Option("--lr", metavar="LR", help=f"Peak AdamW learning rate (default {_RECIPE.lr:g})."),
]
WeightDecay = Annotated[
    float | None,
    typer.Option(
        "--weight-decay",
        metavar="WD",
        help=f"AdamW weight decay (default {_RECIPE.weight_decay:g}).",
    ),
]
Warmup = Annotated[
    float | None,
    typer.Option(
        "--warmup",
        metavar="FRACTION",
        help=f"Warm-up as a fraction of the schedule (default {_RECIPE.warmup:g}).",
    ),
]
LabelSmoothing = Annotated[
    float | None,
    typer.Option(
        "--label-smoothing",
        metavar="EPS",
        help=f"Cross-entropy label smoothing (default {_RECIPE.label_smoothing:g}).",
    ),
]
Device = Annotated[
    str, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N.")
]
ProxyDataset = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        "-d",
        metavar="NAME",
        help="Override the proxy data set: synthetic[:N], fashion-mnist, cifar10, cifar100 or "
        "folder:PATH.",
    ),
]
MemoryCap = Annotated[
    str | None,
    typer.Option(
        "--memory-cap",
        metavar="SIZE",
        help="Largest data set held in memory, e.g. 2GB or 512M; bigger ones are read from "
        "the memory-mapped cache batch by batch (default $COATNET_DATA_MEMORY_CAP, else 4G).",
    ),
]


def check_memory_cap(text: str | None) -> None:
    """Fail on a bad --memory-cap before any data is read (the library names no flags)."""
    from coatnet_nas.data.mapped import memory_cap_bytes
    from coatnet_nas.errors import CoatnetError

    if text is None:
        return
    try:
        memory_cap_bytes(text)
    except CoatnetError:
        raise CoatnetError(
            f"--memory-cap must be a size like 2GB, 512M or 1.5G (bytes without a unit), got "
            f"{text!r}."
        ) from None
