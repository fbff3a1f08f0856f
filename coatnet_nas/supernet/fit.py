"""How big each elastic block is, what one spec asks of it, and why a spec does not fit.

:func:`block_limits` sizes the supernet's blocks from an :class:`ElasticSpace` (the widest
input and output, the largest hidden width, kernel, SE width, head count and FFN width any
choice can ask for, and whether a projection shortcut is ever needed). :func:`block_choice`
reads one block's sizes from a spec with the builder's own formulas, so a sub-network and the
model built from the same spec agree by construction. :func:`fit_problems` compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from coatnet_nas.blocks.attention import ffn_width
from coatnet_nas.blocks.mbconv import hidden_width, se_width

if TYPE_CHECKING:
    from coatnet_nas.spec import ModelSpec, StageSpec
    from coatnet_nas.supernet.space import ElasticSpace

__all__ = ["BlockChoice", "BlockLimits", "block_choice", "block_limits", "fit_problems"]


@dataclass(frozen=True)
class BlockLimits:
    """The largest sizes one elastic block holds (the weights are allocated at these)."""

    max_in: int
    max_out: int
    shortcut: bool  # a projection exists (some input width differs from some output width)
    max_hidden: int = 0  # C: expand width; T: FFN width
    max_kernel: int = 0  # C
    max_reduced: int = 0  # C: SE squeeze width (0: no SE anywhere)
    max_heads: int = 0  # T


@dataclass(frozen=True)
class BlockChoice:
    """What one spec asks of one block: the same numbers the builder computes."""

    in_ch: int
    out_ch: int
    pool: str
    hidden: int = 0
    kernel: int = 0
    reduced: int = 0
    heads: int = 0
    head_dim: int = 0


def _widths_before(space: ElasticSpace, i: int) -> set[int]:
    return set(space.stem_widths) if i == 0 else space.stages[i - 1].all_widths()


def block_limits(space: ElasticSpace, i: int, letter: str, j: int) -> BlockLimits:
    """Limits of block ``j`` of the ``letter`` path at stage position ``i``."""
    stage = space.stages[i]
    outs = set(stage.widths[letter])
    ins = _widths_before(space, i) if j == 0 else outs
    max_out = max(outs)
    max_in = max(ins) if j == 0 else max_out
    shortcut = j == 0 and any(a != b for a in ins for b in outs)
    opts = space.options[letter]
    if letter == "C":
        return BlockLimits(
            max_in,
            max_out,
            shortcut,
            max_hidden=hidden_width(max_out, max(opts["expand_ratio"])),
            max_kernel=max(opts["kernel_size"]),
            max_reduced=se_width(max_in, max(opts["se_ratio"])),
        )
    heads = max(w // d for w in outs for d in opts["head_dim"])
    return BlockLimits(
        max_in,
        max_out,
        shortcut,
        max_hidden=ffn_width(max_out, max(opts["mlp_ratio"])),
        max_heads=heads,
    )


def block_choice(stage: StageSpec, in_ch: int, j: int) -> BlockChoice:
    """Block ``j`` of ``stage`` whose stage input has ``in_ch`` channels."""
    cin = in_ch if j == 0 else stage.width
    o = stage.options
    if stage.type == "C":
        return BlockChoice(
            cin,
            stage.width,
            o.pool,
            hidden=hidden_width(stage.width, o.expand_ratio),
            kernel=o.kernel_size,
            reduced=se_width(cin, o.se_ratio),
        )
    return BlockChoice(
        cin,
        stage.width,
        o.pool,
        hidden=ffn_width(stage.width, o.mlp_ratio),
        heads=stage.width // o.head_dim,
        head_dim=o.head_dim,
    )


def _block_problems(where: str, lim: BlockLimits, c: BlockChoice, letter: str) -> list[str]:
    out = []
    if c.in_ch != c.out_ch and not lim.shortcut:
        out.append(
            f"{where} needs a projection from {c.in_ch} to {c.out_ch} channels, which "
            "the supernet never trained (its widths there always match)"
        )
    what = "expand" if letter == "C" else "FFN"
    if c.hidden > lim.max_hidden:
        out.append(f"{where} {what} width {c.hidden} > {lim.max_hidden}")
    if letter == "C":
        if c.kernel > lim.max_kernel:
            out.append(f"{where} kernel {c.kernel} > {lim.max_kernel}")
        if c.reduced > lim.max_reduced:
            out.append(f"{where} SE width {c.reduced} > {lim.max_reduced}")
    elif c.heads > lim.max_heads:
        out.append(f"{where} {c.heads} heads > {lim.max_heads}")
    return out


def fit_problems(space: ElasticSpace, spec: ModelSpec) -> list[str]:
    """Why the proxy-size ``spec`` cannot run inside ``space``'s supernet (empty: it can)."""
    problems = []
    for what, mine, theirs in (
        ("image size", tuple(spec.image_size), tuple(space.image_size)),
        ("classes", spec.num_classes, space.num_classes),
        ("input channels", spec.in_chans, space.in_chans),
    ):
        if mine != theirs:
            problems.append(f"{what} {mine} (the supernet's: {theirs})")
    if spec.stem.kind != "conv" or spec.stem.depth not in space.stem_depths:
        problems.append(
            f"stem {spec.stem.kind} of depth {spec.stem.depth} (the supernet has conv "
            f"stems of depth {', '.join(map(str, space.stem_depths))})"
        )
    if spec.stem.width > max(space.stem_widths):
        problems.append(f"stem width {spec.stem.width} > {max(space.stem_widths)}")
    if len(spec.stages) > len(space.stages):
        problems.append(f"{len(spec.stages)} stages (the supernet has {len(space.stages)})")
        return problems
    in_ch = spec.stem.width
    for i, stage in enumerate(spec.stages):
        pos, name = space.stages[i], f"S{i + 1}"
        if stage.type not in pos.letters:
            problems.append(
                f"{name} is {stage.type} (the supernet has {'/'.join(pos.letters)} there)"
            )
            in_ch = stage.width
            continue
        if stage.depth > pos.depths[1]:
            problems.append(f"{name} depth {stage.depth} > {pos.depths[1]}")
        if stage.width > pos.max_width(stage.type):
            problems.append(
                f"{name} width {stage.width} > {pos.max_width(stage.type)} (the widest "
                f"{stage.type} choice at the proxy's size)"
            )
        elif in_ch <= max(_widths_before(space, i)):
            for j in range(min(stage.depth, pos.depths[1])):
                lim = block_limits(space, i, stage.type, j)
                choice = block_choice(stage, in_ch, j)
                problems += _block_problems(f"{name} block {j + 1}", lim, choice, stage.type)
        in_ch = stage.width
    return problems
