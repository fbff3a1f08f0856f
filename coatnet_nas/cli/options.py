"""Options that several commands share, declared once so their flags, help and panel stay
identical, and :func:`choice`, which hands a library enum to Typer.

Each is an ``Annotated`` type; a command gives it a default (``dataset: Dataset = "synthetic"``).
A function parameter carries the library's name for the value (``flops`` for ``--budget``), so a
library error about it names the flag with no table in between (see :mod:`.errors`).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from coatnet_nas.cli.app import DATA, OPTIMISATION, OUTPUT, RUNTIME, SHRINK
from coatnet_nas.data.options import Holdout as HoldoutChoice
from coatnet_nas.errors import as_choice
from coatnet_nas.train.recipe import AmpMode, TrainRecipe


def choice(
    kind: type[Enum], name: str, parse: Callable[[Any], Any] | None = None
) -> dict[str, Any]:
    """``typer.Option`` keywords for a str Enum: its values shown as the choices, the value
    checked by the library's own rule (``parse``, else the generic one), so the message is the
    one a Python caller gets."""
    return {
        "parser": parse or (lambda value: as_choice(kind, value, name)),
        "metavar": "[" + "|".join(m.value for m in kind) + "]",
    }


Dataset = Annotated[
    str,
    typer.Option(
        "--dataset",
        "-d",
        metavar="NAME",
        help="synthetic[:N], fashion-mnist, cifar10, cifar100 or folder:PATH.",
        rich_help_panel=DATA,
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        metavar="PATH",
        help="Where to look for dataset files first.",
        rich_help_panel=DATA,
    ),
]
Holdout = Annotated[
    HoldoutChoice,
    typer.Option(
        "--holdout",
        help="split (seeded val split) or test (official test set).",
        rich_help_panel=DATA,
        **choice(HoldoutChoice, "holdout"),
    ),
]
ValFraction = Annotated[
    float,
    typer.Option(
        "--val-fraction",
        metavar="FRACTION",
        help="Held-out fraction of the training data.",
        rich_help_panel=DATA,
    ),
]
ImageSize = Annotated[
    str | None,
    typer.Option(
        "--image-size",
        metavar="SIZE",
        help="Resolution, e.g. 32 or 256x192 (default: the spec's).",
        rich_help_panel=SHRINK,
    ),
]
WidthMult = Annotated[
    float,
    typer.Option(
        "--width-mult",
        metavar="FACTOR",
        help="Scale every width (rounded to valid values).",
        rich_help_panel=SHRINK,
    ),
]
DepthMult = Annotated[
    float,
    typer.Option(
        "--depth-mult",
        metavar="FACTOR",
        help="Scale stage depths (>= 1 block each).",
        rich_help_panel=SHRINK,
    ),
]
Budget = Annotated[
    str | None,
    typer.Option(
        "--budget",
        metavar="FLOPS",
        help="FLOPs budget (multiply-accumulates), e.g. 4GFLOPs, 500M or 4e9.",
        rich_help_panel=SHRINK,
    ),
]
MaxParams = Annotated[
    str | None,
    typer.Option(
        "--max-params",
        metavar="PARAMS",
        help="Parameter budget, e.g. 30M.",
        rich_help_panel=SHRINK,
    ),
]

# Training settings: a command leaves them None unless given, so TrainRecipe's defaults apply.
_RECIPE = TrainRecipe()
BatchSize = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        metavar="N",
        help=f"Training batch size (default {_RECIPE.batch_size}).",
        rich_help_panel=OPTIMISATION,
    ),
]
LearningRate = Annotated[
    float | None,
    typer.Option(
        "--lr",
        metavar="LR",
        help=f"Peak AdamW learning rate (default {_RECIPE.lr:g}).",
        rich_help_panel=OPTIMISATION,
    ),
]
WeightDecay = Annotated[
    float | None,
    typer.Option(
        "--weight-decay",
        metavar="WD",
        help=f"AdamW weight decay (default {_RECIPE.weight_decay:g}).",
        rich_help_panel=OPTIMISATION,
    ),
]
Warmup = Annotated[
    float | None,
    typer.Option(
        "--warmup",
        metavar="FRACTION",
        help=f"Learning-rate warm-up as a fraction of the schedule (default {_RECIPE.warmup:g}).",
        rich_help_panel=OPTIMISATION,
    ),
]
LabelSmoothing = Annotated[
    float | None,
    typer.Option(
        "--label-smoothing",
        metavar="EPS",
        help=f"Cross-entropy label smoothing (default {_RECIPE.label_smoothing:g}).",
        rich_help_panel=OPTIMISATION,
    ),
]
Device = Annotated[
    str,
    typer.Option(
        "--device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N.", rich_help_panel=RUNTIME
    ),
]
Amp = Annotated[
    AmpMode,
    typer.Option(
        "--amp",
        help="Mixed precision: auto (bf16/fp16 on CUDA, off on CPU), bf16, fp16, off.",
        rich_help_panel=RUNTIME,
        **choice(AmpMode, "amp"),
    ),
]
Nproc = Annotated[
    int,
    typer.Option(
        "--nproc",
        metavar="N",
        help="Data-parallel processes on this machine (one per GPU).",
        rich_help_panel=RUNTIME,
    ),
]
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        metavar="N",
        help="CPU threads (default: torch's; lower it when sharing).",
        rich_help_panel=RUNTIME,
    ),
]
ProxyDataset = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        "-d",
        metavar="NAME",
        help="Override the proxy data set: synthetic[:N], fashion-mnist, cifar10, cifar100 or "
        "folder:PATH.",
        rich_help_panel=DATA,
    ),
]
MemoryCap = Annotated[
    str | None,
    typer.Option(
        "--memory-cap",
        metavar="SIZE",
        help="Largest data set held in memory, e.g. 2GB or 512M; bigger ones are read from "
        "the memory-mapped cache batch by batch (default $COATNET_DATA_MEMORY_CAP, else 4G).",
        rich_help_panel=DATA,
    ),
]
StorageRetry = Annotated[
    str | None,
    typer.Option(
        "--storage-retry",
        metavar="DURATION",
        help="How long a storage outage (database restart, lost connection, locked file) is "
        "retried before the run stops, e.g. 300, 90s, 10m (default $COATNET_STORAGE_RETRY, "
        "else 5m).",
        rich_help_panel=RUNTIME,
    ),
]
Json = Annotated[
    bool, typer.Option("--json", help="Print one JSON object, no progress.", rich_help_panel=OUTPUT)
]


def check_memory_cap(text: str | None) -> None:
    """Fail on a bad memory cap before any data is read (the library's own check)."""
    from coatnet_nas.data.mapped import memory_cap_bytes

    if text is not None:
        memory_cap_bytes(text)
