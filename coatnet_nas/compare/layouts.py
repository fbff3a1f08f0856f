"""Layout words (``C-C-T-T``, ``ViT``) instantiated from one base spec and fitted to one budget.

The paper compares layouts at equal cost, so every layout here is the base spec with its stage
types swapped (depths, widths and block options kept) and then scaled to the same FLOPs budget
with the closed-form cost model. ``fit_to_budget`` lands within a few percent for C/T layouts;
where width steps are coarse (T widths move in multiples of ``head_dim``, tiny budgets) a greedy
fill adds single width steps until the cost is within :data:`FILL_TARGET` of the budget.

The ViT baseline (the paper's ViT_REL) is a patch stem followed by one T stage whose depth is the
base's total stage depth (12 for CoAtNet-0, as in ViT-S) and whose token grid is the paper's /16
(14x14 at 224) unless that leaves fewer than 8x8 tokens: at proxy resolutions the grid drops to
/8 or /4 so attention still sees a meaningful map (``ViT/8`` pins the total stride explicitly).
(Just over ~300 lines: parsing layout words and fitting them are one job.)
Its width and depth are searched jointly so its cost reaches the budget with a ViT-like shape.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coatnet_nas.blocks.options import BlockOptions
from coatnet_nas.cost import estimate_cost
from coatnet_nas.errors import BudgetError, CoatnetError, SpecError
from coatnet_nas.registry import block_type, block_types
from coatnet_nas.scaling import Vary, fit_to_budget, round_width, width_quantum
from coatnet_nas.spec import ModelSpec, StageSpec, parse_layout

VIT_NAME = "ViT"
VIT_STRIDES = (16, 8, 4)  # preferred total strides of the ViT token grid, paper's first
MIN_GRID = 8  # fewest tokens per side for the automatic ViT stride
FILL_TARGET = 0.98  # fill width steps until the cost reaches this fraction of the budget
VIT_FILL_TARGET = 0.96  # the ViT fills with its patch-embedding width: no more than needed
_VIT_WORD = re.compile(r"^VIT(?:[-_]?REL)?(?:/(\d+))?$", re.IGNORECASE)


@dataclass(frozen=True)
class Layout:
    """One layout word: stage letters, or the ViT baseline (``letters == ("T",)``)."""

    name: str
    letters: tuple[str, ...]
    vit: bool = False
    vit_stride: int | None = None  # ViT only: total stride of the token grid; None = automatic


@dataclass(frozen=True)
class Entrant:
    """A layout fitted to the budget: the spec that every run of this layout trains."""

    layout: Layout
    spec: ModelSpec
    params: int
    flops: int
    budget: int

    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def flops_ratio(self) -> float:
        return self.flops / self.budget

    def describe(self) -> dict[str, Any]:
        h, w = self.spec.image_size
        return {
            "layout": self.name,
            "params": self.params,
            "flops": self.flops,
            "flops_ratio": round(self.flops_ratio, 4),
            "depths": list(self.spec.depths),
            "widths": list(self.spec.widths),
            "stem": self.spec.stem.kind,
            "patch_size": self.spec.stem.patch_size if self.spec.stem.kind == "patch" else None,
            "image_size": [h, w],
        }


def _bad_word(word: str, why: str) -> CoatnetError:
    letters = ", ".join(f"{k} ({bt.description})" for k, bt in block_types().items())
    return SpecError(
        f"layouts: {why} in {word!r}; a layout word is one stage letter per stage, like "
        f"C-C-T-T (letters: {letters}), or {VIT_NAME} (ViT_REL baseline; ViT/8 fixes its stride).",
        param="layouts",
    )


def parse_layout_word(word: str, stages: int) -> Layout:
    """``"C-C-T-T"``, ``"cctt"``, ``"ViT"``, ``"VIT_REL"`` or ``"ViT/8"`` -> :class:`Layout`."""
    text = word.strip()
    match = _VIT_WORD.match(text)
    if match:
        stride = int(match.group(1)) if match.group(1) else None
        if stride is not None and (stride < 4 or stride % 2):
            raise _bad_word(text, f"ViT stride must be an even number >= 4, got {stride}")
        name = VIT_NAME if stride is None else f"{VIT_NAME}/{stride}"
        return Layout(name=name, letters=("T",), vit=True, vit_stride=stride)
    if not text:
        raise _bad_word(word, "empty layout word")
    try:
        letters = parse_layout(text)
    except SpecError as exc:
        why = str(exc).split("; registered")[0].removeprefix("layout: ")
        raise _bad_word(text, re.sub(r" in layout .*$", "", why)) from None
    if len(letters) != stages:
        raise _bad_word(
            text, f"{len(letters)} stage(s) given but the base spec has {stages} stages"
        )
    return Layout(name="-".join(letters), letters=tuple(letters))


def parse_layouts(words: str | Sequence[str], stages: int) -> list[Layout]:
    """A comma-separated list (or sequence) of layout words; duplicates are rejected."""
    items = words.split(",") if isinstance(words, str) else list(words)
    layouts = [parse_layout_word(w, stages) for w in items if w.strip()]
    if not layouts:
        raise SpecError(
            "layouts: give at least one layout, e.g. C-C-C-C,C-C-T-T,ViT.", param="layouts"
        )
    seen: set[str] = set()
    for layout in layouts:
        if layout.name in seen:
            raise SpecError(f"layouts: {layout.name} is listed twice.", param="layouts")
        seen.add(layout.name)
    return layouts


def vit_stride(image_size: tuple[int, int], requested: int | None = None) -> int:
    """Total stride of the ViT token grid: the paper's /16 unless the grid gets below 8x8."""
    side = min(image_size)
    if requested is not None:
        if any(s % requested for s in image_size):
            raise SpecError(
                f"ViT/{requested}: image size {image_size[0]}x{image_size[1]} is not divisible "
                f"by the stride {requested}."
            )
        return requested
    divides = [s for s in VIT_STRIDES if all(v % s == 0 for v in image_size)]
    for stride in divides:
        if side // stride >= MIN_GRID:
            return stride
    if divides:
        return divides[-1]
    raise SpecError(
        f"{VIT_NAME}: image size {image_size[0]}x{image_size[1]} is not divisible by any of the "
        f"token-grid strides {', '.join(map(str, VIT_STRIDES))}."
    )


def _options(base: ModelSpec, letter: str) -> Any:
    """Block options for a stage of ``letter``: the base's first such stage, else the defaults."""
    for stage in base.stages:
        if stage.type == letter:
            return stage.options
    return block_type(letter).options()


def instantiate(base: ModelSpec, layout: Layout) -> ModelSpec:
    """``base`` with the stage types of ``layout`` (before fitting to a budget)."""
    suffix = layout.name.lower().replace("-", "").replace("/", "")
    if layout.vit:
        options = _options(base, "T")
        stage = base.stages[min(2, len(base.stages) - 1)]  # S3 runs at /16, like ViT's tokens
        quantum = width_quantum_for(options)
        width = round_width(stage.width, quantum)
        stride = vit_stride(base.image_size, layout.vit_stride)
        return base.evolve(
            name=f"{base.name}-{suffix}",
            stem={"kind": "patch", "depth": 1, "width": width, "patch_size": stride // 2},
            stages=[
                {
                    "type": "T",
                    "depth": sum(s.depth for s in base.stages),
                    "width": width,
                    "options": options,
                }
            ],
        )
    stages = []
    for stage, letter in zip(base.stages, layout.letters, strict=True):
        options = stage.options if stage.type == letter else _options(base, letter)
        quantum = width_quantum_for(options)
        width = stage.width
        if options.width_problem(width):
            width = round_width(width, quantum)
        stages.append({"type": letter, "depth": stage.depth, "width": width, "options": options})
    return base.evolve(name=f"{base.name}-{suffix}", stages=stages)


def width_quantum_for(options: BlockOptions) -> int:
    """The width step of a stage with ``options``: :func:`~coatnet_nas.scaling.width_quantum`'s,
    asked of an unvalidated stage (its width is what is being rounded, so it may be invalid)."""
    return width_quantum(StageSpec.model_construct(options=options))


def _flops(spec: ModelSpec) -> int:
    return estimate_cost(spec).flops


def _set_width(spec: ModelSpec, index: int, width: int) -> ModelSpec:
    """``spec`` with position ``index`` (0 = stem, i = stage i) at ``width``."""
    if index == 0:
        return spec.evolve(stem={**spec.stem.model_dump(), "width": width})
    stages = [
        {
            "type": s.type,
            "depth": s.depth,
            "width": width if i == index else s.width,
            "options": s.options,
        }
        for i, s in enumerate(spec.stages, 1)
    ]
    return spec.evolve(stages=stages)


def _set_vit(spec: ModelSpec, width: int, depth: int, stem_width: int | None = None) -> ModelSpec:
    stage = spec.stages[0]
    return spec.evolve(
        stem={**spec.stem.model_dump(), "width": stem_width or width},
        stages=[{"type": "T", "depth": depth, "width": width, "options": stage.options}],
    )


def fill(spec: ModelSpec, flops: int, target: float = FILL_TARGET) -> ModelSpec:
    """Greedily add one width step at a time (the largest that fits) until ``target * flops``."""
    cost = _flops(spec)
    stages = (None, *spec.stages)
    while cost < target * flops:
        best: tuple[int, ModelSpec] | None = None
        for i, stage in enumerate(stages):
            candidate = _set_width(spec, i, spec.widths[i] + width_quantum(stage))
            c = _flops(candidate)
            if c <= flops and (best is None or c > best[0]):
                best = (c, candidate)
        if best is None:
            break
        cost, spec = best
    return spec


def _fit_vit(spec: ModelSpec, flops: int) -> ModelSpec:
    """Joint width x depth search for the ViT; its patch embedding's width closes a last gap."""
    stage = spec.stages[0]
    canonical = stage.depth
    quantum = width_quantum(stage)
    candidates: list[tuple[int, int, int]] = []  # (width, depth, flops)
    width = quantum
    while width <= 256 * quantum:
        one = _flops(_set_vit(spec, width, 1))
        if one > flops:
            break
        per_block = max(1, _flops(_set_vit(spec, width, 2)) - one)
        depth = min(256, 1 + (flops - one) // per_block)
        while depth > 1 and _flops(_set_vit(spec, width, depth)) > flops:
            depth -= 1
        candidates.append((width, depth, _flops(_set_vit(spec, width, depth))))
        width += quantum
    if not candidates:
        smallest = estimate_cost(_set_vit(spec, quantum, 1))
        raise BudgetError(
            f"budget cannot be met by {VIT_NAME}: one block of width {quantum} already has "
            f"{smallest.flops:,} FLOPs."
        )
    # Preference: a ViT-like depth (within 2x of the canonical), no patch-embedding fill needed,
    # then within 5% of the budget after a fill, else simply the closest to the budget.
    shaped = [c for c in candidates if canonical / 2 <= c[1] <= 2 * canonical] or candidates
    best: tuple[tuple[float, ...], ModelSpec] | None = None
    for width, depth, cost in shaped:
        plain = _set_vit(spec, width, depth)
        filled = plain if cost >= VIT_FILL_TARGET * flops else fill(plain, flops, VIT_FILL_TARGET)
        final = _flops(filled)
        tier = 0 if filled is plain else 1 if final >= 0.95 * flops else 2
        key = (tier, abs(math.log(depth / canonical)) if tier < 2 else 0.0, -final)
        if best is None or key < best[0]:
            best = (key, filled)
    assert best is not None
    return best[1]


def fit_layout(
    spec: ModelSpec, flops: int, vary: Vary = "widths", *, vit: bool = False
) -> ModelSpec:
    """Scale an instantiated layout to ``flops`` (at its image size), never above it."""
    if vit:
        return _fit_vit(spec, flops)
    return fill(fit_to_budget(spec, flops=flops, vary=vary), flops)


def fit_layouts(
    base: ModelSpec,
    layouts: Sequence[Layout],
    flops: int | None = None,
    vary: Vary = "widths",
) -> list[Entrant]:
    """Instantiate and fit every layout to ``flops`` (default: the base spec's own cost)."""
    budget = flops if flops is not None else _flops(base)
    out = []
    for layout in layouts:
        spec = instantiate(base, layout)
        try:
            fitted = fit_layout(spec, budget, vary, vit=layout.vit)
        except BudgetError as exc:
            raise BudgetError(f"layout {layout.name}: {exc}") from None
        cost = estimate_cost(fitted)
        out.append(Entrant(layout, fitted, cost.params, cost.flops, budget))
    return out
