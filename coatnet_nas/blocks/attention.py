"""2-D relative self-attention and the Transformer (``T``) stage of CoAtNet.

``softmax(QK^T / sqrt(d) + B) V`` where B is gathered, per head, from a learnable table of
(2H-1)(2W-1) entries by the relative position index ``(dy + H - 1)(2W - 1) + (dx + W - 1)``.
The fused path hands B to ``F.scaled_dot_product_attention`` as a float ``attn_mask``; the explicit
path spells the formula out and exists to test the fused one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from coatnet_nas.blocks import cost as C
from coatnet_nas.blocks.base import StageLike
from coatnet_nas.blocks.layers import DropPath, pool_tokens
from coatnet_nas.blocks.options import TransformerOptions


def relative_position_index(height: int, width: int) -> torch.Tensor:
    """``(H*W, H*W)`` long tensor: entry (i, j) indexes the bias table for query i, key j.

    With dy = y_i - y_j and dx = x_i - x_j (row-major positions), the index is
    ``(dy + H - 1) * (2W - 1) + (dx + W - 1)``; for a 3x3 map the first row is
    ``12 11 10 7 6 5 2 1 0``.
    """
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :]
    dx = xs[:, None] - xs[None, :]
    return (dy + height - 1) * (2 * width - 1) + (dx + width - 1)


class RelativeAttention(nn.Module):
    """Multi-head self-attention over an H x W token grid with a 2-D relative position bias."""

    def __init__(self, in_ch: int, out_ch: int, head_dim: int, size: tuple[int, int]):
        super().__init__()
        self.heads = out_ch // head_dim
        self.head_dim = head_dim
        self.size = tuple(size)
        self.qkv = nn.Linear(in_ch, 3 * out_ch)
        self.proj = nn.Linear(out_ch, out_ch)
        h, w = size
        self.bias_table = nn.Parameter(torch.zeros(self.heads, (2 * h - 1) * (2 * w - 1)))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        index = relative_position_index(h, w)
        self.register_buffer("rel_index", index, persistent=False)
        self.register_buffer("rel_index_flat", index.flatten(), persistent=False)
        self.fused = True

    def relative_bias(self) -> torch.Tensor:
        """``(heads, H*W, H*W)`` bias gathered from the table (index_select: one gather kernel)."""
        length = self.rel_index.shape[0]
        return self.bias_table.index_select(1, self.rel_index_flat).view(self.heads, length, length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        if length != self.rel_index.shape[0]:
            raise ValueError(
                f"attention built for a {self.size[0]}x{self.size[1]} grid got {length} tokens; "
                "build the model for this image size (relative position tables are per size)"
            )
        qkv = self.qkv(x).reshape(n, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        # A 4-D mask lets CPU SDPA use its fused kernel (a 3-D one falls back to the math path).
        bias = self.relative_bias().to(q.dtype).unsqueeze(0)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            scores = q @ k.transpose(-2, -1) / self.head_dim**0.5 + bias
            out = scores.softmax(dim=-1) @ v
        out = out.transpose(1, 2)
        if torch.compiler.is_exporting():
            # torch.export records the strides of the CPU SDPA kernel's output, where this
            # reshape is a view; the ONNX exporter then decomposes SDPA into a contiguous
            # result the view no longer fits (pytorch#141107). A copy fits both; values are
            # unchanged, and eager runs never take this branch.
            out = out.clone(memory_format=torch.contiguous_format)
        return self.proj(out.reshape(n, length, self.heads * self.head_dim))


class FeedForward(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm block on row-major tokens ``(N, H*W, C)``.

    A downsampling block computes ``Proj(Pool(x)) + Attention(Pool(Norm(x)))`` before its FFN.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        in_size: tuple[int, int],
        downsample: bool,
        opts: TransformerOptions,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.in_size = tuple(in_size)
        self.pool = opts.pool if downsample else None
        size = (in_size[0] // 2, in_size[1] // 2) if downsample else tuple(in_size)
        self.shortcut = nn.Linear(in_ch, out_ch) if in_ch != out_ch else nn.Identity()
        self.norm1 = nn.LayerNorm(in_ch)
        self.attn = RelativeAttention(in_ch, out_ch, opts.head_dim, size)
        self.norm2 = nn.LayerNorm(out_ch)
        self.ffn = FeedForward(out_ch, ffn_width(out_ch, opts.mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        if self.pool:
            x = pool_tokens(x, self.in_size, self.pool)
            h = pool_tokens(h, self.in_size, self.pool)
        x = self.shortcut(x) + self.drop_path(self.attn(h))
        return x + self.drop_path(self.ffn(self.norm2(x)))


class TransformerStage(nn.Module):
    """Takes and returns NCHW maps; runs its blocks on tokens in between."""

    def __init__(self, blocks: Sequence[TransformerBlock], out_size: tuple[int, int]):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.out_size = tuple(out_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x.flatten(2).transpose(1, 2))
        n, _, c = x.shape
        return x.transpose(1, 2).reshape(n, c, *self.out_size)


def ffn_width(width: int, mlp_ratio: float) -> int:
    return max(1, round(width * mlp_ratio))


def build_stage(
    in_ch: int, stage: StageLike, in_size: tuple[int, int], drop_path_rates: Sequence[float]
) -> TransformerStage:
    out_size = (in_size[0] // 2, in_size[1] // 2)
    blocks = [
        TransformerBlock(
            in_ch if i == 0 else stage.width,
            stage.width,
            in_size if i == 0 else out_size,
            downsample=i == 0,
            opts=stage.options,
            drop_path=drop_path_rates[i],
        )
        for i in range(stage.depth)
    ]
    return TransformerStage(blocks, out_size)


def block_cost(
    in_ch: int, out_ch: int, in_tokens: int, out_size: tuple[int, int], opts: TransformerOptions
) -> C.LayerCost:
    tokens = out_size[0] * out_size[1]
    heads = out_ch // opts.head_dim
    inner = heads * opts.head_dim
    hidden = ffn_width(out_ch, opts.mlp_ratio)
    table = heads * (2 * out_size[0] - 1) * (2 * out_size[1] - 1)
    total = (
        C.layer_norm(in_ch, in_tokens)
        + C.linear(in_ch, 3 * out_ch, tokens)
        + C.LayerCost(table, 2 * tokens * tokens * inner)  # bias table; QK^T and AV
        + C.linear(inner, out_ch, tokens)
        + C.layer_norm(out_ch, tokens)
        + C.linear(out_ch, hidden, tokens)
        + C.linear(hidden, out_ch, tokens)
    )
    if in_ch != out_ch:
        total += C.linear(in_ch, out_ch, tokens)
    return total


def stage_cost(in_ch: int, stage: StageLike, in_size: tuple[int, int]) -> C.LayerCost:
    out_size = (in_size[0] // 2, in_size[1] // 2)
    tokens = out_size[0] * out_size[1]
    first = block_cost(in_ch, stage.width, in_size[0] * in_size[1], out_size, stage.options)
    rest = block_cost(stage.width, stage.width, tokens, out_size, stage.options)
    return first + rest * (stage.depth - 1)
