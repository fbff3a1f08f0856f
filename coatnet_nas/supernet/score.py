"""Scoring a candidate with inherited weights: the ``supernet:SUPER.pt`` proxy.

A target-size candidate is shrunk exactly as a training proxy shrinks it, adapted to the
supernet's data, checked against what the supernet holds (refused in one paragraph otherwise),
extracted as a standalone model, its BatchNorm statistics recomputed over a few training
batches (the supernet's running statistics mix every sub-network's), and its top-1 accuracy
measured on the held-out split of the data the supernet trained on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from coatnet_nas.errors import CoatnetError
from coatnet_nas.scaling import scale_spec
from coatnet_nas.spec import ModelSpec
from coatnet_nas.supernet.checkpoint import load_supernet
from coatnet_nas.supernet.extraction import subnet
from coatnet_nas.train.adapt import spec_for_data
from coatnet_nas.train.evaluate import evaluate, recalibrate_batchnorm

__all__ = ["CALIBRATION_BATCHES", "CALIBRATION_BATCH_SIZE", "SupernetScorer"]

CALIBRATION_BATCHES = 4
CALIBRATION_BATCH_SIZE = 128


class SupernetScorer:
    """Loads a supernet file once and scores any number of candidates with it."""

    def __init__(
        self,
        path: str | Path,
        *,
        device: str = "auto",
        batches: int = CALIBRATION_BATCHES,
        batch_size: int = CALIBRATION_BATCH_SIZE,
        seed: int = 0,
        eval_batch_size: int = 512,
        param: str = "proxy",
    ):
        from coatnet_nas.data.devices import resolve_device

        if batches < 1 or batch_size < 2:
            raise CoatnetError(
                f"supernet proxy: need batches >= 1 and batch_size >= 2 for the BatchNorm "
                f"recalibration, got batches={batches}, batch_size={batch_size}.",
                param="proxy",
            )
        found = load_supernet(path, param=param)
        self.path, self.space, self.settings = Path(path), found.space, found.data
        dev = resolve_device(device)
        self.net = found.build().to(dev)
        self.data = found.data.prepare(dev)
        self.batches, self.batch_size, self.seed = batches, batch_size, seed
        self.eval_batch_size = eval_batch_size

    def proxy_spec(self, spec: ModelSpec) -> ModelSpec:
        """The target-size ``spec`` as the supernet runs it (shrunk, adapted to its data)."""
        shrunk = scale_spec(spec, self.space.width_mult, self.space.depth_mult)
        return spec_for_data(shrunk, self.data)

    def check(self, spec: ModelSpec) -> ModelSpec:
        proxy = self.proxy_spec(spec)
        self.net.check(proxy, what=f"candidate {spec.name} (supernet {self.path})")
        return proxy

    def untrained_widths(self, spec: ModelSpec) -> list[str]:
        """The widths of ``spec`` at the proxy's size that are no width choice of the supernet
        at their position (it runs them as slices of wider choices), e.g. ``S2 C 24 (choices
        16/32)``."""
        proxy, space = self.proxy_spec(spec), self.space
        found = []
        if proxy.stem.width not in space.stem_widths:
            found.append(f"stem {proxy.stem.width} ({_choices(space.stem_widths)})")
        for i, (stage, pos) in enumerate(zip(proxy.stages, space.stages, strict=False), 1):
            choices = pos.widths.get(stage.type, ())
            if choices and stage.width not in choices:
                found.append(f"S{i} {stage.type} {stage.width} ({_choices(choices)})")
        return found

    def model(
        self, spec: ModelSpec, seed: int | None = None
    ) -> tuple[torch.nn.Module, ModelSpec, int]:
        """``spec``'s standalone model with inherited weights, BatchNorm recalibrated on the
        batches drawn with ``seed`` (default: the scorer's).

        Returns the model, its proxy-size spec and the calibration batches used.
        """
        proxy = self.check(spec)
        model = subnet(self.net, proxy)
        used = recalibrate_batchnorm(
            model,
            self.data,
            self.batches,
            self.batch_size,
            seed=self.seed if seed is None else seed,
        )
        return model, proxy, used

    @torch.no_grad()
    def score(self, spec: ModelSpec, seed: int | None = None) -> tuple[float, dict[str, Any]]:
        """Validation accuracy (0..1) of ``spec`` with inherited weights, BatchNorm recalibrated
        with ``seed`` (default: the scorer's); one loaded scorer serves every seed."""
        start = time.perf_counter()
        model, _, used = self.model(spec, seed)
        accuracy = evaluate(model, self.data, self.eval_batch_size)
        detail = {
            "calibration_batches": used,
            "seconds": time.perf_counter() - start,
            "proxy_params": sum(p.numel() for p in model.parameters()),
        }
        return accuracy, detail


def _choices(widths: tuple[int, ...]) -> str:
    return "choices " + "/".join(str(w) for w in sorted(widths))
