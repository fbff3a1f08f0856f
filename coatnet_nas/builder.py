"""Spec -> ``nn.Module``: one builder for every layout; stage letters resolve via the registry."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from coatnet_nas.blocks.attention import RelativeAttention
from coatnet_nas.blocks.layers import init_weights
from coatnet_nas.blocks.stem import build_stem
from coatnet_nas.spec import ModelSpec, load_spec


class ClassifierHead(nn.Module):
    """Global average pool -> LayerNorm -> linear classifier."""

    def __init__(self, width: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x.mean(dim=(2, 3))))


class CoAtNet(nn.Module):
    """A conv stem, typed stages (each halving the resolution) and a pooled linear head.

    ``initialize=False`` keeps PyTorch's per-layer default initialization instead of the
    trunc-normal/Kaiming pass: for profiling, where weights never matter and that pass costs
    more than the trace of a batch-1 forward.
    """

    def __init__(self, spec: ModelSpec, *, initialize: bool = True):
        super().__init__()
        self.spec = spec
        self.stem = build_stem(spec.in_chans, spec.stem)
        total_blocks = sum(s.depth for s in spec.stages)
        step = spec.drop_path_rate / max(total_blocks - 1, 1)
        rates = [i * step for i in range(total_blocks)]  # linear stochastic-depth schedule
        size = spec.resolutions()[0]  # after the stem
        in_ch = spec.stem.width
        stages, start = [], 0
        for stage in spec.stages:
            build = stage.block.builder()
            stages.append(build(in_ch, stage, size, rates[start : start + stage.depth]))
            start += stage.depth
            in_ch, size = stage.width, (size[0] // 2, size[1] // 2)
        self.stages = nn.ModuleList(stages)
        self.head = ClassifierHead(in_ch, spec.num_classes)
        self.num_features = in_ch
        if initialize:
            self.apply(init_weights)

    @property
    def stage_names(self) -> list[str]:
        return ["S0", *(f"S{i + 1}" for i in range(len(self.stages)))]

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of the stem and of every stage, in order (NCHW)."""
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    def no_weight_decay(self) -> set[str]:
        """Names of parameters the optimizer must not decay (the timm convention).

        Biases and norm scales (every 1-D parameter) and the relative-position bias tables:
        decaying those pulls attention toward uniform positions and norms toward zero, which is
        why ViT-family recipes exempt them.
        """
        tables = {
            f"{name}.bias_table" if name else "bias_table"
            for name, module in self.named_modules()
            if isinstance(module, RelativeAttention)
        }
        return {name for name, p in self.named_parameters() if p.ndim <= 1 or name in tables}

    def set_fused_attention(self, fused: bool) -> None:
        """Switch every attention layer between SDPA and the explicit formula."""
        for module in self.modules():
            if hasattr(module, "fused"):
                module.fused = fused


def build_model(
    spec: ModelSpec | str | Path,
    image_size: int | Sequence[int] | None = None,
    *,
    initialize: bool = True,
) -> CoAtNet:
    """Build a model from a spec (object or YAML path), optionally at another image size."""
    if not isinstance(spec, ModelSpec):
        spec = load_spec(spec)
    if image_size is not None:
        spec = spec.with_image_size(image_size)
    return CoAtNet(spec, initialize=initialize)
