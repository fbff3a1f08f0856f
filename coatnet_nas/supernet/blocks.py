"""Elastic blocks: one set of weights at the largest sizes, run at any smaller choice.

Every block's ``weights(choice)`` returns the slices a choice uses, keyed by the parameter and
buffer names of the standalone block (:class:`~coatnet_nas.blocks.mbconv.MBConv`,
:class:`~coatnet_nas.blocks.attention.TransformerBlock`, the conv stem and the head), and its
``forward`` computes with exactly those slices through the same functional calls the standalone
modules make. Extraction (:mod:`coatnet_nas.supernet.extraction`) copies the same slices, so a
sub-network and the model built from its spec agree by construction (and a test checks it).

Slicing: channels are the first ``c`` of the widest choice; a kernel is the centre ``k x k`` of
the largest; q, k and v take the first ``c`` channels each of their thirds of ``qkv``; heads
(and their rows of the relative-position table) are the first ``c / head_dim``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from coatnet_nas.blocks.attention import relative_position_index
from coatnet_nas.blocks.layers import pool2d, pool_tokens
from coatnet_nas.supernet.fit import BlockChoice, BlockLimits

__all__ = ["ElasticHead", "ElasticMBConv", "ElasticStem", "ElasticTransformerBlock", "bn_slices"]

Weights = dict[str, torch.Tensor]


def bn_slices(prefix: str, norm: nn.BatchNorm2d, c: int) -> Weights:
    return {
        f"{prefix}.weight": norm.weight[:c],
        f"{prefix}.bias": norm.bias[:c],
        f"{prefix}.running_mean": norm.running_mean[:c],
        f"{prefix}.running_var": norm.running_var[:c],
        f"{prefix}.num_batches_tracked": norm.num_batches_tracked,
    }


def batch_norm(x: torch.Tensor, w: Weights, prefix: str, training: bool) -> torch.Tensor:
    """``nn.BatchNorm2d``'s computation on sliced parameters (running stats update in place)."""
    return F.batch_norm(
        x,
        w[f"{prefix}.running_mean"],
        w[f"{prefix}.running_var"],
        w[f"{prefix}.weight"],
        w[f"{prefix}.bias"],
        training,
        0.1,
        1e-5,
    )


def _conv_slice(conv: nn.Conv2d, out_ch: int, in_ch: int, prefix: str) -> Weights:
    found = {f"{prefix}.weight": conv.weight[:out_ch, :in_ch]}
    if conv.bias is not None:
        found[f"{prefix}.bias"] = conv.bias[:out_ch]
    return found


def _linear_slice(linear: nn.Linear, out_ch: int, in_ch: int, prefix: str) -> Weights:
    return {
        f"{prefix}.weight": linear.weight[:out_ch, :in_ch],
        f"{prefix}.bias": linear.bias[:out_ch],
    }


def _layer_norm_slice(norm: nn.LayerNorm, c: int, prefix: str) -> Weights:
    return {f"{prefix}.weight": norm.weight[:c], f"{prefix}.bias": norm.bias[:c]}


class ElasticStem(nn.Module):
    """A conv stem of one depth (``depth`` 3x3 convs, BN + GELU between) at its widest."""

    def __init__(self, in_chans: int, max_width: int, depth: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            last = i == depth - 1
            cin = in_chans if i == 0 else max_width
            layers.append(
                nn.Conv2d(cin, max_width, 3, stride=2 if i == 0 else 1, padding=1, bias=last)
            )
            if not last:
                layers += [nn.BatchNorm2d(max_width), nn.GELU()]
        self.layers = nn.Sequential(*layers)

    def weights(self, width: int) -> Weights:
        out: Weights = {}
        for i, layer in enumerate(self.layers):
            if isinstance(layer, nn.Conv2d):
                cin = layer.in_channels if i == 0 else width
                out |= _conv_slice(layer, width, cin, f"layers.{i}")
            elif isinstance(layer, nn.BatchNorm2d):
                out |= bn_slices(f"layers.{i}", layer, width)
        return out

    def forward(self, x: torch.Tensor, width: int) -> torch.Tensor:
        w = self.weights(width)
        for i, layer in enumerate(self.layers):
            if isinstance(layer, nn.Conv2d):
                x = F.conv2d(
                    x,
                    w[f"layers.{i}.weight"],
                    w.get(f"layers.{i}.bias"),
                    stride=layer.stride,
                    padding=layer.padding,
                )
            elif isinstance(layer, nn.BatchNorm2d):
                x = batch_norm(x, w, f"layers.{i}", self.training)
            else:
                x = F.gelu(x)
        return x


class ElasticMBConv(nn.Module):
    """MBConv at its largest (see :class:`~coatnet_nas.blocks.mbconv.MBConv`)."""

    def __init__(self, lim: BlockLimits, stride: int):
        super().__init__()
        hid, k = lim.max_hidden, lim.max_kernel
        self.stride, self.max_kernel = stride, k
        self.shortcut = nn.Conv2d(lim.max_in, lim.max_out, 1) if lim.shortcut else None
        self.norm = nn.BatchNorm2d(lim.max_in)
        self.expand = nn.Conv2d(lim.max_in, hid, 1, stride=stride, bias=False)
        self.expand_norm = nn.BatchNorm2d(hid)
        self.depthwise = nn.Conv2d(hid, hid, k, padding=k // 2, groups=hid, bias=False)
        self.depthwise_norm = nn.BatchNorm2d(hid)
        self.se = nn.Module() if lim.max_reduced else None
        if self.se is not None:
            self.se.reduce = nn.Conv2d(hid, lim.max_reduced, 1)
            self.se.expand = nn.Conv2d(lim.max_reduced, hid, 1)
        self.project = nn.Conv2d(hid, lim.max_out, 1)

    def weights(self, c: BlockChoice) -> Weights:
        h, start = c.hidden, (self.max_kernel - c.kernel) // 2
        w: Weights = {}
        if c.in_ch != c.out_ch:
            w |= _conv_slice(self.shortcut, c.out_ch, c.in_ch, "shortcut")
        w |= bn_slices("norm", self.norm, c.in_ch)
        w |= _conv_slice(self.expand, h, c.in_ch, "expand")
        w |= bn_slices("expand_norm", self.expand_norm, h)
        end = start + c.kernel
        w["depthwise.weight"] = self.depthwise.weight[:h, :, start:end, start:end]
        w |= bn_slices("depthwise_norm", self.depthwise_norm, h)
        if c.reduced:
            w |= _conv_slice(self.se.reduce, c.reduced, h, "se.reduce")
            w |= _conv_slice(self.se.expand, h, c.reduced, "se.expand")
        w |= _conv_slice(self.project, c.out_ch, h, "project")
        return w

    def forward(self, x: torch.Tensor, c: BlockChoice) -> torch.Tensor:
        w = self.weights(c)
        shortcut = pool2d(x, c.pool) if self.stride > 1 else x
        if c.in_ch != c.out_ch:
            shortcut = F.conv2d(shortcut, w["shortcut.weight"], w["shortcut.bias"])
        x = batch_norm(x, w, "norm", self.training)
        x = F.conv2d(x, w["expand.weight"], None, stride=self.stride)
        x = F.gelu(batch_norm(x, w, "expand_norm", self.training))
        x = F.conv2d(x, w["depthwise.weight"], None, padding=c.kernel // 2, groups=c.hidden)
        x = F.gelu(batch_norm(x, w, "depthwise_norm", self.training))
        if c.reduced:
            s = x.mean(dim=(2, 3), keepdim=True)
            s = F.gelu(F.conv2d(s, w["se.reduce.weight"], w["se.reduce.bias"]))
            x = x * F.conv2d(s, w["se.expand.weight"], w["se.expand.bias"]).sigmoid()
        x = F.conv2d(x, w["project.weight"], w["project.bias"])
        return shortcut + x


class ElasticTransformerBlock(nn.Module):
    """Transformer block at its largest (as the standalone ``TransformerBlock``)."""

    def __init__(self, lim: BlockLimits, in_size: tuple[int, int], downsample: bool):
        super().__init__()
        self.in_size, self.downsample = tuple(in_size), downsample
        h, w = (in_size[0] // 2, in_size[1] // 2) if downsample else tuple(in_size)
        self.max_out = lim.max_out
        self.shortcut = nn.Linear(lim.max_in, lim.max_out) if lim.shortcut else None
        self.norm1 = nn.LayerNorm(lim.max_in)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(lim.max_in, 3 * lim.max_out)
        self.attn.proj = nn.Linear(lim.max_out, lim.max_out)
        self.attn.bias_table = nn.Parameter(torch.zeros(lim.max_heads, (2 * h - 1) * (2 * w - 1)))
        nn.init.trunc_normal_(self.attn.bias_table, std=0.02)
        self.register_buffer("rel_index", relative_position_index(h, w).flatten(), persistent=False)
        self.norm2 = nn.LayerNorm(lim.max_out)
        self.ffn = nn.Module()
        self.ffn.fc1 = nn.Linear(lim.max_out, lim.max_hidden)
        self.ffn.fc2 = nn.Linear(lim.max_hidden, lim.max_out)

    def weights(self, c: BlockChoice) -> Weights:
        w: Weights = {}
        if c.in_ch != c.out_ch:
            w |= _linear_slice(self.shortcut, c.out_ch, c.in_ch, "shortcut")
        w |= _layer_norm_slice(self.norm1, c.in_ch, "norm1")
        qkv = self.attn.qkv
        w["attn.qkv.weight"] = qkv.weight.view(3, self.max_out, -1)[:, : c.out_ch, : c.in_ch]
        w["attn.qkv.weight"] = w["attn.qkv.weight"].reshape(3 * c.out_ch, c.in_ch)
        w["attn.qkv.bias"] = qkv.bias.view(3, self.max_out)[:, : c.out_ch].reshape(-1)
        w |= _linear_slice(self.attn.proj, c.out_ch, c.out_ch, "attn.proj")
        w["attn.bias_table"] = self.attn.bias_table[: c.heads]
        w |= _layer_norm_slice(self.norm2, c.out_ch, "norm2")
        w |= _linear_slice(self.ffn.fc1, c.hidden, c.out_ch, "ffn.fc1")
        w |= _linear_slice(self.ffn.fc2, c.out_ch, c.hidden, "ffn.fc2")
        return w

    def _attention(self, x: torch.Tensor, w: Weights, c: BlockChoice) -> torch.Tensor:
        n, length, _ = x.shape
        qkv = F.linear(x, w["attn.qkv.weight"], w["attn.qkv.bias"])
        q, k, v = qkv.reshape(n, length, 3, c.heads, c.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        table = w["attn.bias_table"]
        bias = table.index_select(1, self.rel_index).view(c.heads, length, length)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype).unsqueeze(0))
        out = out.transpose(1, 2).reshape(n, length, c.heads * c.head_dim)
        return F.linear(out, w["attn.proj.weight"], w["attn.proj.bias"])

    def forward(self, x: torch.Tensor, c: BlockChoice) -> torch.Tensor:
        w = self.weights(c)
        h = F.layer_norm(x, (c.in_ch,), w["norm1.weight"], w["norm1.bias"])
        if self.downsample:
            x = pool_tokens(x, self.in_size, c.pool)
            h = pool_tokens(h, self.in_size, c.pool)
        if c.in_ch != c.out_ch:
            x = F.linear(x, w["shortcut.weight"], w["shortcut.bias"])
        x = x + self._attention(h, w, c)
        h = F.layer_norm(x, (c.out_ch,), w["norm2.weight"], w["norm2.bias"])
        h = F.linear(
            F.gelu(F.linear(h, w["ffn.fc1.weight"], w["ffn.fc1.bias"])),
            w["ffn.fc2.weight"],
            w["ffn.fc2.bias"],
        )
        return x + h


class ElasticHead(nn.Module):
    """Global average pool -> LayerNorm -> linear, over the first ``width`` features."""

    def __init__(self, max_width: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(max_width)
        self.fc = nn.Linear(max_width, num_classes)

    def weights(self, width: int) -> Weights:
        return _layer_norm_slice(self.norm, width, "norm") | {
            "fc.weight": self.fc.weight[:, :width],
            "fc.bias": self.fc.bias,
        }

    def forward(self, x: torch.Tensor, width: int) -> torch.Tensor:
        w = self.weights(width)
        x = F.layer_norm(x.mean(dim=(2, 3)), (width,), w["norm.weight"], w["norm.bias"])
        return F.linear(x, w["fc.weight"], w["fc.bias"])
