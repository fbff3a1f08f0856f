"""TensorBoard event files for a training run, fed by the trainer's progress callback.

``torch.utils.tensorboard`` needs the ``tensorboard`` package (``pip install
coatnet-nas[tensorboard]``); it is imported only when a log is opened. A
:class:`TensorBoardLog` writes, per progress snapshot, ``train/loss``, ``train/accuracy``,
``train/lr`` and ``train/images_per_second`` (and ``val/accuracy`` after each evaluation), at
the global step, plus the model graph once.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coatnet_nas.errors import CoatnetError

__all__ = ["TensorBoardLog", "TensorBoardRuns"]


def _summary_writer(param: str) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise CoatnetError(
            f"{param} needs the tensorboard package: pip install 'coatnet-nas[tensorboard]'.",
            param=param,
        ) from None
    return SummaryWriter


def _folder(folder: str | Path, param: str) -> Path:
    from coatnet_nas._io import ensure_dir

    return ensure_dir(Path(folder), param=param)


class TensorBoardLog:
    """An event-file writer in ``folder`` (created); :meth:`chain` wraps a progress callback."""

    def __init__(self, folder: str | Path, *, param: str = "tensorboard") -> None:
        writer = _summary_writer(param)
        self.folder = _folder(folder, param)
        self.writer = writer(log_dir=str(self.folder))
        self._last_val: float | None = None

    def start(self, model: Any, data: Any) -> None:
        """The model graph, traced on one validation-sized input (skipped if it cannot trace)."""
        import torch

        h, w = model.spec.image_size
        example = torch.zeros(1, model.spec.in_chans, h, w, device=next(model.parameters()).device)
        was_training = model.training
        model.eval()
        try:
            with warnings.catch_warnings():  # the tracer's notes are about tracing, not the run
                warnings.simplefilter("ignore")
                self.writer.add_graph(model, example, use_strict_trace=False)
        except Exception:  # a graph is a nicety; the scalars are what the run is watched by
            pass
        finally:
            model.train(was_training)

    def write(self, info: Any) -> None:
        """One progress snapshot (:class:`~coatnet_nas.train.ProgressInfo`) as scalars."""
        step = info.step
        self.writer.add_scalar("train/loss", info.train_loss, step)
        self.writer.add_scalar("train/accuracy", info.train_accuracy, step)
        self.writer.add_scalar("train/images_per_second", info.images_per_second, step)
        if info.lr is not None:
            self.writer.add_scalar("train/lr", info.lr, step)
        if info.val_accuracy is not None and self._last_val != info.val_accuracy:
            self.writer.add_scalar("val/accuracy", info.val_accuracy, step)  # a new evaluation
            self._last_val = info.val_accuracy

    def chain(self, progress: Callable | None) -> Callable:
        """A progress callback that writes each snapshot, then calls ``progress``."""

        def both(info: Any) -> None:
            self.write(info)
            if progress is not None:
                progress(info)

        return both

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class TensorBoardRuns:
    """One event folder per run under ``folder`` (``folder/<run name>``), for commands that
    train many runs (``coatnet compare``, ``coatnet search``) and hear their progress as
    ``(run, info)`` events."""

    def __init__(self, folder: str | Path, *, param: str = "tensorboard") -> None:
        self.folder, self.param = Path(folder), param
        self.logs: dict[str, TensorBoardLog] = {}
        _summary_writer(param)  # both fail now, not after the first run trained
        _folder(self.folder, param)

    def write(self, run: str, info: Any) -> None:
        self._log(run).write(info)

    def _log(self, run: str) -> TensorBoardLog:
        log = self.logs.get(run)
        if log is None:
            name = re.sub(r"[^A-Za-z0-9._=-]+", "_", run).strip("_") or "run"
            log = self.logs[run] = TensorBoardLog(self.folder / name, param=self.param)
        return log

    def summarise(self, run: str, scalars: dict[str, float], texts: dict[str, str]) -> None:
        """A run's outcome (e.g. a search trial's objective and status) at step 0, then
        :meth:`finish`; a run that never reported progress still gets its folder."""
        log = self._log(run)
        for tag, value in scalars.items():
            log.writer.add_scalar(tag, value, 0)
        for tag, text in texts.items():
            log.writer.add_text(tag, text, 0)
        self.finish(run)

    def finish(self, run: str) -> None:
        log = self.logs.pop(run, None)
        if log is not None:
            log.close()

    def close(self) -> None:
        for run in list(self.logs):
            self.finish(run)
