"""fvcore profile of a model: FLOPs, parameters and activations per stage, from one JIT trace.

fvcore has no handle for ``aten::scaled_dot_product_attention``; without one, attention FLOPs would
silently read zero. :func:`sdpa_flop_jit` counts it as the two matmuls it replaces
(``QK^T`` and ``AV``), so the fused and the explicit attention paths profile identically.
FLOPs are multiply-accumulates, as fvcore counts them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import generic_activation_jit, get_shape
from torch import nn

from coatnet_nas.builder import CoAtNet, build_model
from coatnet_nas.spec import ModelSpec
from coatnet_nas.threads import cpu_threads

SDPA_OP = "aten::scaled_dot_product_attention"
# Ops whose outputs fvcore's ActivationCountAnalysis counts as activations.
ACTIVATION_OPS = (
    "aten::_convolution",
    "aten::addmm",
    "aten::bmm",
    "aten::einsum",
    "aten::matmul",
    "aten::linear",
    SDPA_OP,
)


def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """MACs of ``softmax(QK^T + B) V``: ``B*L*S*E`` for the scores plus ``B*L*S*Ev`` for AV."""
    q, k, v = (get_shape(inputs[i]) for i in range(3))
    batch = prod(q[:-2])
    length, source, embed, value_dim = q[-2], k[-2], q[-1], v[-1]
    return batch * length * source * (embed + value_dim)


@dataclass(frozen=True)
class StageProfile:
    name: str
    type: str
    depth: int
    width: int
    resolution: tuple[int, int]
    params: int
    flops: int
    activations: int


@dataclass(frozen=True)
class ModelProfile:
    name: str
    layout: str
    image_size: tuple[int, int]
    params: int
    flops: int
    activations: int
    stages: list[StageProfile] = field(default_factory=list)
    latency_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (ints; FLOPs are MACs)."""
        out = asdict(self)
        out["image_size"] = list(self.image_size)
        for stage in out["stages"]:
            stage["resolution"] = list(stage["resolution"])
        if self.latency_ms is None:
            out.pop("latency_ms")
        return out


class _CostAnalysis(FlopCountAnalysis):
    """FLOPs and activations in one trace: each handle returns both, keyed by kind."""

    def __init__(self, model: nn.Module, inputs: tuple[torch.Tensor, ...]):
        super().__init__(model, inputs)
        handles = dict(self._op_handles)
        handles[SDPA_OP] = sdpa_flop_jit
        activation = generic_activation_jit()
        combined = {}
        for op, flop_handle in handles.items():
            combined[op] = _both(flop_handle, activation if op in ACTIVATION_OPS else None)
        self.set_op_handle(**combined)
        self.unsupported_ops_warnings(False)
        self.uncalled_modules_warnings(False)
        self.tracer_warnings("none")

    def counts_by_module(self) -> dict[str, Counter]:
        return {name: Counter(ops) for name, ops in self.by_module_and_operator().items()}


def _both(flop_handle, activation_handle):
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        flops = flop_handle(inputs, outputs)
        counts = Counter(flops=int(sum(flops.values()) if isinstance(flops, Counter) else flops))
        if activation_handle is not None:
            counts["activations"] = int(activation_handle(inputs, outputs))
        return counts

    return handle


def count_flops(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    """Total fvcore FLOPs (MACs) of ``model(*inputs)``, attention included."""
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    analysis = _CostAnalysis(model, inputs)
    return int(analysis.counts_by_module()[""]["flops"])


def profile_model(
    model: CoAtNet | ModelSpec | str | Path,
    image_size: int | Sequence[int] | None = None,
    latency: bool = False,
) -> ModelProfile:
    """Profile a built model, a spec, or a spec file at one image (batch 1), in eval mode.

    A model built here skips the weight-initialization pass: counts do not depend on weights.
    """
    if not isinstance(model, CoAtNet):
        model = build_model(model, image_size=image_size, initialize=False)
    elif image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if size != tuple(model.spec.image_size):
            model = build_model(model.spec, image_size=size, initialize=False)
    spec = model.spec
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    x = torch.zeros(1, spec.in_chans, *spec.image_size, device=param.device, dtype=param.dtype)
    try:
        # a batch-1 trace gains nothing from threads, and loses a lot under load
        with cpu_threads(1), torch.no_grad():
            counts = _CostAnalysis(model, (x,)).counts_by_module()
        with torch.no_grad():
            latency_ms = _latency_ms(model, x) if latency else None
    finally:
        model.train(was_training)

    def params_of(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    resolutions = spec.resolutions()
    rows = [
        StageProfile(
            "S0",
            "stem",
            spec.stem.depth,
            spec.stem.width,
            resolutions[0],
            params_of(model.stem),
            counts["stem"]["flops"],
            counts["stem"]["activations"],
        )
    ]
    for i, (stage, module) in enumerate(zip(spec.stages, model.stages, strict=True)):
        key = f"stages.{i}"
        rows.append(
            StageProfile(
                f"S{i + 1}",
                stage.type,
                stage.depth,
                stage.width,
                resolutions[i + 1],
                params_of(module),
                counts[key]["flops"],
                counts[key]["activations"],
            )
        )
    rows.append(
        StageProfile(
            "head",
            "head",
            1,
            spec.num_classes,
            (1, 1),
            params_of(model.head),
            counts["head"]["flops"],
            counts["head"]["activations"],
        )
    )
    return ModelProfile(
        name=spec.name,
        layout=spec.layout,
        image_size=tuple(spec.image_size),
        params=params_of(model),
        flops=counts[""]["flops"],
        activations=counts[""]["activations"],
        stages=rows,
        latency_ms=latency_ms,
    )


def _latency_ms(model: nn.Module, x: torch.Tensor, repeats: int = 10) -> float:
    """Median batch-1 forward latency in milliseconds (after warm-up)."""
    for _ in range(2):
        model(x)
    times = []
    for _ in range(repeats):
        if x.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(x)
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]
