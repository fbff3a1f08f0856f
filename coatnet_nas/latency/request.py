"""What ``coatnet latency table`` asks for, as one validated value: :class:`TableRequest`.

A request names the specs and/or the search space whose blocks to measure, the device
configuration to measure them on and how carefully; :meth:`TableRequest.run` plans the block
kinds and calibration models and calls :func:`~coatnet_nas.latency.build.build_table`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coatnet_nas.errors import CoatnetError
from coatnet_nas.spec import ModelSpec

__all__ = ["CALIBRATION_SEED", "TableRequest"]

# Calibration models are drawn with this seed unless told otherwise; evaluations (the benchmark)
# draw with other seeds, so the correction is never fitted to the specs it is judged on.
CALIBRATION_SEED = 10_000


@dataclass(frozen=True)
class TableRequest:
    """Measure the blocks of ``specs`` and/or ``space`` (a loaded search space) at
    ``image_size``, each spec passed through ``shrink`` first (a proxy's width shrink, named
    ``shrink_label`` in the table's source), plus ``calibration`` whole models drawn with
    ``seed``, on ``device`` with ``threads`` and ``batch``; write the table to ``out``.
    ``recalibrate`` times the calibration models of the table at ``out`` again."""

    out: Path
    specs: Sequence[ModelSpec] = ()
    space: Any = None
    device: str = "auto"
    threads: int = 1
    batch: int = 1
    image_size: tuple[int, int] | None = None
    shrink: Callable[[ModelSpec], ModelSpec] | None = None
    shrink_label: str = ""
    calibration: int = 24
    seed: int = CALIBRATION_SEED
    warmup: int = 3
    repeats: int = 20
    channels_last: bool = False
    recalibrate: bool = False

    def __post_init__(self) -> None:
        from coatnet_nas.data.devices import check_device_name

        check_device_name(self.device)
        if self.calibration < 0:
            raise CoatnetError(
                f"calibration must be >= 0, got {self.calibration}.", param="calibration"
            )
        if self.space is None and not self.specs:
            raise CoatnetError("give specs or a search space to measure.", param="specs")
        if self.recalibrate and not Path(self.out).exists():
            raise CoatnetError(
                f"out {self.out}: no table to recalibrate; build one first (without "
                "`recalibrate`).",
                param="out",
            )

    def _shrink(self, spec: ModelSpec) -> ModelSpec:
        return self.shrink(spec) if self.shrink is not None else spec

    def plan(self) -> tuple[list, list, str]:
        """The block kinds to measure, the calibration models, and a one-line source."""
        from coatnet_nas.latency.kinds import kinds_of_specs, sample_specs, space_kinds

        kinds: list = []
        calib: list = []
        source: list[str] = []
        size = self.image_size
        sized = [self._shrink(s.with_image_size(size) if size else s) for s in self.specs]
        if sized:
            kinds += kinds_of_specs(sized)
            source.append(f"{len(sized)} spec(s)")
        if self.space is not None:
            kinds += space_kinds(self.space, size, self._shrink)
            calib += sample_specs(self.space, self.calibration, self.seed, size, self._shrink)
            source.append(f"space {self.space.name}")
        else:
            calib = sized[: self.calibration]
        if self.recalibrate:
            calib = self._calibration_of_out() or calib
        text = " + ".join(source) + (f", {self.shrink_label}" if self.shrink_label else "")
        return kinds, calib, text

    def _calibration_of_out(self) -> list:
        from coatnet_nas.latency.table import LatencyTable
        from coatnet_nas.spec import spec_from_dict

        table = LatencyTable.load(self.out, param="out")
        return [spec_from_dict(c.spec) for c in table.calibration.values()]

    def run(self, on_progress: Callable[[int, int, str], None] | None = None) -> Any:
        """Measure and write the table (resuming one of the same configuration at ``out``)."""
        import torch

        from coatnet_nas.latency.build import build_table

        kinds, calib, source = self.plan()
        device = self.device
        if device.strip().lower() == "auto":  # a table is for one concrete device
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return build_table(
            kinds,
            calib,
            out=self.out,
            device=device,
            threads=self.threads,
            batch=self.batch,
            channels_last=self.channels_last,
            warmup=self.warmup,
            repeats=self.repeats,
            image_size=self.image_size,
            recalibrate=self.recalibrate,
            source=source,
            on_progress=on_progress,
        )
