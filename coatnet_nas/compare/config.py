"""What a comparison is: layouts, one budget, data regimes, seeds and one proxy recipe.

Every (layout, regime, seed) run uses the same :class:`Recipe`, so differences between layouts
come from the architecture alone. A regime is a seeded fraction of the training pool; regimes are
nested (the small one is a subset of the large one) and share one validation set.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from coatnet_nas.errors import CoatnetError
from coatnet_nas.spec import ModelSpec

DEFAULT_LAYOUTS = ("C-C-C-C", "C-C-C-T", "C-C-T-T", "C-T-T-T", "ViT")
_REGIME_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Regime:
    """A data regime: ``fraction`` of the training pool (after the validation split)."""

    name: str
    fraction: float

    @property
    def label(self) -> str:
        return f"{self.name}={self.fraction:g}"


DEFAULT_REGIMES = (Regime("small", 0.1), Regime("full", 1.0))


def parse_regimes(text: str) -> tuple[Regime, ...]:
    """``"small=0.1,full=1.0"`` -> regimes (names unique, fractions in (0, 1])."""
    regimes: list[Regime] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            fraction = float(value) if sep else float("nan")
        except ValueError:
            fraction = float("nan")
        if not _REGIME_NAME.match(name) or not (0 < fraction <= 1):
            raise CoatnetError(
                f"--regimes: cannot read {part!r}; give name=fraction pairs with fractions of "
                "the training data in (0, 1], e.g. small=0.1,full=1.0."
            )
        if any(r.name == name for r in regimes):
            raise CoatnetError(f"--regimes: regime {name!r} is listed twice.")
        regimes.append(Regime(name, fraction))
    if not regimes:
        raise CoatnetError("--regimes: give at least one regime, e.g. small=0.1,full=1.0.")
    return tuple(regimes)


@dataclass(frozen=True)
class Recipe:
    """The proxy training recipe shared by every run (see :class:`~coatnet_nas.train.TrainConfig`).

    ``steps`` gives every regime the same compute (the small regime then makes more passes over
    less data, as a small data set does in the paper); ``epochs`` gives every regime the same
    number of passes. With both, the first reached ends a run. ``train_eval_images`` is the size
    of the clean (eval-mode, unaugmented) sample of each run's training data on which the final
    train loss is measured.
    """

    epochs: float | None = 3
    steps: int | None = None
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: float = 0.05
    label_smoothing: float = 0.1
    drop_path_rate: float = 0.0
    augment: bool = True
    train_eval_images: int = 2000

    def validate(self) -> None:
        if self.epochs is None and self.steps is None:
            raise CoatnetError("give a training budget: --epochs and/or --steps.")
        if self.train_eval_images < 1:
            raise CoatnetError(f"--train-eval-images must be >= 1, got {self.train_eval_images}.")
        self.train_config(seed=0, device="cpu").validate()

    def planned_steps(self, train_images: int) -> int:
        """Steps of a run on ``train_images`` images (the trainer drops partial batches)."""
        per_epoch = max(1, train_images // min(self.batch_size, train_images))
        planned = []
        if self.epochs is not None:
            planned.append(max(1, math.ceil(self.epochs * per_epoch)))
        if self.steps is not None:
            planned.append(self.steps)
        return min(planned)

    def train_config(
        self,
        seed: int,
        device: str,
        threads: int | None = None,
        eval_every: int | None = None,
    ) -> Any:
        from coatnet_nas.train import TrainConfig

        return TrainConfig(
            epochs=self.epochs, steps=self.steps, batch_size=self.batch_size, lr=self.lr,
            weight_decay=self.weight_decay, warmup=self.warmup,
            label_smoothing=self.label_smoothing, drop_path_rate=self.drop_path_rate,
            device=device, seed=seed, eval_every=eval_every, augment=self.augment,
            threads=threads,
        )  # fmt: skip


@dataclass(frozen=True)
class CompareConfig:
    """A whole comparison. ``flops`` is the budget at the training image size (None: the base
    spec's own cost there); ``depth_mult`` shrinks the base's depths before fitting (CPU proxies).
    """

    base: ModelSpec
    layouts: tuple[str, ...] = DEFAULT_LAYOUTS
    flops: int | None = None
    vary: Literal["widths", "depths", "both"] = "widths"
    depth_mult: float = 1.0
    dataset: str = "synthetic"
    data_dir: str | None = None
    image_size: tuple[int, int] | None = None
    val_fraction: float = 0.1
    holdout: Literal["split", "test"] = "split"
    data_seed: int = 0
    regimes: tuple[Regime, ...] = DEFAULT_REGIMES
    seeds: tuple[int, ...] = (0, 1, 2)
    recipe: Recipe = field(default_factory=Recipe)

    def validate(self) -> None:
        if not self.seeds:
            raise CoatnetError("--seeds must be >= 1.")
        if len(set(self.seeds)) != len(self.seeds):
            raise CoatnetError(f"seeds must be distinct, got {list(self.seeds)}.")
        if not self.regimes:
            raise CoatnetError("give at least one regime.")
        if not self.depth_mult > 0:
            raise CoatnetError(f"--depth-mult must be positive, got {self.depth_mult}.")
        if self.vary not in ("widths", "depths", "both"):
            raise CoatnetError(f"--vary: expected widths, depths or both, got {self.vary!r}.")
        if self.holdout not in ("split", "test"):
            raise CoatnetError(f"--holdout: expected split or test, got {self.holdout!r}.")
        if not 0 < self.val_fraction < 1:
            raise CoatnetError(f"--val-fraction must be in (0, 1), got {self.val_fraction}.")
        self.recipe.validate()

    @property
    def train_size(self) -> tuple[int, int]:
        return self.image_size or self.base.image_size

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes a run's outcome except its own key (layout, regime, seed).

        Stored beside the results: resuming with other settings would mix incomparable runs.
        """
        h, w = self.train_size
        return {
            "base": self.base.to_dict(), "flops": self.flops, "vary": self.vary,
            "depth_mult": self.depth_mult, "dataset": self.dataset, "image_size": [h, w],
            "val_fraction": self.val_fraction, "holdout": self.holdout,
            "data_seed": self.data_seed, "recipe": asdict(self.recipe),
        }  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.fingerprint(),
            "layouts": list(self.layouts),
            "regimes": [asdict(r) for r in self.regimes],
            "seeds": list(self.seeds),
            "data_dir": self.data_dir,
        }


def run_key(layout: str, regime: Regime, seed: int) -> str:
    """The identity of one run in the results file."""
    return f"{layout}|{regime.name}={regime.fraction:g}|seed={seed}"
