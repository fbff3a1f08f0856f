"""Device names -> ``torch.device``, with user-facing errors (shared by data and trainer)."""

from __future__ import annotations

import torch

from coatnet_nas.errors import CoatnetError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if isinstance(name, torch.device):
        name = str(name)
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise CoatnetError(
                f"device {name}: CUDA was requested but is not available "
                f"(torch {torch.__version__}, built {'with' if torch.version.cuda else 'without'} "
                "CUDA); use device cpu or auto.",
                param="device",
            )
        try:
            device = torch.device(text)
        except RuntimeError:
            device = None
        if device is None or (
            device.index is not None and device.index >= torch.cuda.device_count()
        ):
            raise CoatnetError(
                f"device {name}: no such CUDA device ({torch.cuda.device_count()} available).",
                param="device",
            )
        return device
    check_device_name(name)
    raise AssertionError(name)  # check_device_name refused it


def check_device_name(name: str) -> str:
    """``name`` if it has a device's form (auto, cpu, cuda, cuda:N); availability is checked
    when the device is resolved."""
    text = str(name).strip().lower()
    index = text.removeprefix("cuda:")
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and index.isdigit()):
        return name
    raise CoatnetError(
        f"device {name!r}: expected auto, cpu, cuda or cuda:N; that is not a device name.",
        param="device",
    )


def worker_device(device: str, worker_index: int, visible: int) -> str:
    """The device worker ``worker_index`` of several should use: one trial (or rank) per GPU.

    ``cuda`` spreads workers round-robin over the ``visible`` GPUs (worker i on
    ``cuda:{i % visible}``); ``auto`` does the same when a GPU is visible and is ``cpu``
    otherwise; an explicit ``cpu`` or ``cuda:N`` is the user's choice and is kept. Pure (no CUDA
    query), so callers pass ``torch.cuda.device_count()`` and tests need no GPU.
    """
    text = str(device).strip().lower()
    if text == "auto":
        text = "cuda" if visible > 0 else "cpu"
    if text == "cuda" and visible > 0:
        return f"cuda:{worker_index % visible}"
    return text
