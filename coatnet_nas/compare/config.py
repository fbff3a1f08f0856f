"""What a comparison is: layouts, one budget, data regimes, seeds and one training recipe.

Every (layout, regime, seed) run uses the same :class:`CompareRecipe`, so differences between
layouts come from the architecture alone. A regime is a seeded fraction of the training pool;
regimes are nested (the small one is a subset of the large one) and share one validation set.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

from coatnet_nas.compare.capacity import CapacityOptions
from coatnet_nas.data.options import Holdout
from coatnet_nas.errors import CoatnetError, as_choice
from coatnet_nas.scaling import Vary
from coatnet_nas.spec import ModelSpec
from coatnet_nas.train import TrainRecipe, recipe_from

DEFAULT_LAYOUTS = ("C-C-C-C", "C-C-C-T", "C-C-T-T", "C-T-T-T", "ViT")
DEFAULT_TRAIN_EVAL_IMAGES = 2000
# Compare's training defaults: TrainRecipe's, with stochastic depth off (the spec's own rate is
# tuned for ImageNet-length runs and would only add noise to a few-epoch proxy).
DEFAULT_TRAIN = TrainRecipe(epochs=3, drop_path_rate=0.0)
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
                f"regimes: cannot read {part!r}; give name=fraction pairs with fractions of "
                "the training data in (0, 1], e.g. small=0.1,full=1.0.",
                param="regimes",
            )
        if any(r.name == name for r in regimes):
            raise CoatnetError(f"regimes: regime {name!r} is listed twice.", param="regimes")
        regimes.append(Regime(name, fraction))
    if not regimes:
        raise CoatnetError(
            "regimes: give at least one regime, e.g. small=0.1,full=1.0.", param="regimes"
        )
    return tuple(regimes)


@dataclass(frozen=True)
class CompareRecipe:
    """How every run is trained (``train``) and then measured (``train_eval_images``).

    One value rather than two ``CompareConfig`` fields because together they are the per-run
    protocol: the results file pins them as one ``recipe`` entry, and ``CompareConfig(recipe=...)``
    stays the single argument old callers pass. ``train`` is a plain
    :class:`~coatnet_nas.train.TrainRecipe` (its ``eval_every`` is replaced by one final
    evaluation). ``steps`` gives every regime the same compute (the small regime then makes more
    passes over less data, as a small data set does in the paper); ``epochs`` the same number of
    passes; with both, the first reached ends a run. ``train_eval_images`` is the size of the
    clean (eval-mode, unaugmented) sample of each run's training data for the final train loss.
    """

    train: TrainRecipe = DEFAULT_TRAIN
    train_eval_images: int = DEFAULT_TRAIN_EVAL_IMAGES

    def __post_init__(self) -> None:
        if not isinstance(self.train, TrainRecipe):
            raise CoatnetError("train must be a TrainRecipe.", param="train")
        if self.train.epochs is None and self.train.steps is None:
            raise CoatnetError(
                "give a training budget in epochs and/or steps: every run must get a planned "
                "amount of compute.",
                param="epochs",
            )
        if self.train_eval_images < 1:
            raise CoatnetError(
                f"train_eval_images must be >= 1, got {self.train_eval_images}.",
                param="train_eval_images",
            )

    def planned_steps(self, train_images: int) -> int:
        """Steps of a run on ``train_images`` images (the trainer drops partial batches)."""
        recipe = self.train
        per_epoch = max(1, train_images // min(recipe.batch_size, train_images))
        planned = []
        if recipe.epochs is not None:
            planned.append(max(1, math.ceil(recipe.epochs * per_epoch)))
        if recipe.steps is not None:
            planned.append(recipe.steps)
        return min(planned)

    def to_dict(self) -> dict[str, Any]:
        """Flat: the TrainRecipe fields plus ``train_eval_images`` (the old form had a subset)."""
        return {**self.train.model_dump(mode="json"), "train_eval_images": self.train_eval_images}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CompareRecipe:
        """Read :meth:`to_dict` output, or the pre-TrainRecipe flat form (missing fields took the
        same defaults then as TrainRecipe's now, so equal values parse to an equal recipe)."""
        values = dict(values)
        images = values.pop("train_eval_images", DEFAULT_TRAIN_EVAL_IMAGES)
        return cls(recipe_from(values, what="stored comparison recipe"), int(images))


def Recipe(*, train_eval_images: int = DEFAULT_TRAIN_EVAL_IMAGES, **train: Any) -> CompareRecipe:
    """Deprecated: build a :class:`CompareRecipe` from the old flat keywords."""
    warnings.warn(
        "compare.Recipe is deprecated: pass CompareRecipe(train=TrainRecipe(...), "
        "train_eval_images=...)",
        DeprecationWarning,
        stacklevel=2,
    )
    return CompareRecipe(DEFAULT_TRAIN.evolve(**train), train_eval_images)


@dataclass(frozen=True)
class CompareConfig:
    """A whole comparison. ``flops`` is the budget at the training image size (None: the base
    spec's own cost there); ``image_size`` None trains at the base spec's size (see
    :func:`~coatnet_nas.compare.natural_image_size` for the data's); ``depth_mult`` shrinks the
    base's depths before fitting (CPU proxies). ``data_seed`` seeds the validation split and the
    regime subsets; ``seeds`` are the per-run seeds (model init, batch order). ``capacity`` says
    how capacity runs (trained to a plateau) are made; its settings are stored with each capacity
    run rather than in the fingerprint, so changing them re-runs only those runs.
    """

    base: ModelSpec
    layouts: tuple[str, ...] = DEFAULT_LAYOUTS
    flops: int | None = None
    vary: Vary = Vary.WIDTHS
    depth_mult: float = 1.0
    dataset: str = "synthetic"
    data_dir: str | None = None
    image_size: tuple[int, int] | None = None
    val_fraction: float = 0.1
    holdout: Holdout = Holdout.SPLIT
    data_seed: int = 0
    regimes: tuple[Regime, ...] = DEFAULT_REGIMES
    seeds: tuple[int, ...] = (0, 1, 2)
    recipe: CompareRecipe = field(default_factory=CompareRecipe)
    capacity: CapacityOptions = field(default_factory=CapacityOptions)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vary", as_choice(Vary, self.vary, "vary"))
        object.__setattr__(self, "holdout", as_choice(Holdout, self.holdout, "holdout"))

    def validate(self) -> None:
        if not self.seeds:
            raise CoatnetError("seeds must be >= 1.", param="seeds")
        if len(set(self.seeds)) != len(self.seeds):
            raise CoatnetError(f"seeds must be distinct, got {list(self.seeds)}.", param="seeds")
        if not self.regimes:
            raise CoatnetError("regimes: give at least one regime.", param="regimes")
        if not self.depth_mult > 0:
            raise CoatnetError(
                f"depth_mult must be positive, got {self.depth_mult}.", param="depth_mult"
            )
        if not 0 < self.val_fraction < 1:
            raise CoatnetError(
                f"val_fraction must be in (0, 1), got {self.val_fraction}.", param="val_fraction"
            )
        if not isinstance(self.recipe, CompareRecipe):
            raise CoatnetError("recipe must be a CompareRecipe.", param="recipe")
        if not isinstance(self.capacity, CapacityOptions):
            raise CoatnetError("capacity must be a CapacityOptions.", param="capacity")

    @property
    def train_size(self) -> tuple[int, int]:
        return self.image_size or self.base.image_size

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes a run's outcome except its own key (layout, regime, seed).

        Stored beside the results: resuming with other settings would mix incomparable runs.
        """
        h, w = self.train_size
        return {
            "base": self.base.to_dict(),
            "flops": self.flops,
            "vary": self.vary.value,
            "depth_mult": self.depth_mult,
            "dataset": self.dataset,
            "image_size": [h, w],
            "val_fraction": self.val_fraction,
            "holdout": self.holdout.value,
            "data_seed": self.data_seed,
            "recipe": self.recipe.to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.fingerprint(),
            "layouts": list(self.layouts),
            "regimes": [asdict(r) for r in self.regimes],
            "seeds": list(self.seeds),
            "data_dir": self.data_dir,
            "capacity": self.capacity.to_dict(),
        }


def canonical_fingerprint(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored fingerprint with its recipe re-read, so an older recipe form with equal values
    compares equal to today's (an unreadable recipe is left as stored and so differs)."""
    recipe = stored.get("recipe")
    if not isinstance(recipe, dict):
        return stored
    try:
        return {**stored, "recipe": CompareRecipe.from_dict(recipe).to_dict()}
    except (CoatnetError, TypeError, ValueError):
        return stored


def run_key(layout: str, regime: Regime, seed: int) -> str:
    """The identity of one run in the results file."""
    return f"{layout}|{regime.name}={regime.fraction:g}|seed={seed}"
