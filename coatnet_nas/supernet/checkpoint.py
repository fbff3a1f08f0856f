"""The supernet's file: its space, the data it trained on, its weights and its run's state.

Plain tensors and containers only, so ``torch.load(weights_only=True)`` reads it; written to a
temporary name and renamed, so a ``kill -9`` mid-write leaves the previous file intact.
``"train"`` holds what resuming needs (optimizer, sampler position, step, history); the
sub-network drawn at each step is a function of (seed, step), so no sampler state is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coatnet_nas._io import atomic_write
from coatnet_nas.errors import CoatnetError
from coatnet_nas.spec import settings_problems
from coatnet_nas.supernet.model import Supernet
from coatnet_nas.supernet.space import ElasticSpace

__all__ = ["FORMAT", "SupernetData", "SupernetFile", "load_supernet", "save_supernet"]

FORMAT = "coatnet-nas/supernet-1"


class SupernetData(BaseModel):
    """The data a supernet trained on; scoring validates on the same split's held-out part."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    image_size: int = Field(32, ge=8)
    subset: float = Field(0.2, gt=0, le=1)
    val_fraction: float = Field(0.1, gt=0, lt=1)
    seed: int = 0

    def prepare(self, device: str = "cpu") -> Any:
        from coatnet_nas.data import prepare_data

        return prepare_data(
            self.dataset,
            self.image_size,
            subset=self.subset,
            val_fraction=self.val_fraction,
            seed=self.seed,
            device=device,
            data_dir=self.data_dir,
        )


@dataclass
class SupernetFile:
    """What :func:`load_supernet` read: build the network with :meth:`build`."""

    path: Path
    space: ElasticSpace
    data: SupernetData
    state_dict: dict[str, torch.Tensor]
    train: dict[str, Any] | None
    source: dict[str, Any] | None

    def build(self) -> Supernet:
        net = Supernet(self.space, initialize=False)
        net.load_state_dict(self.state_dict)
        return net.eval()


def save_supernet(
    path: str | Path,
    net: Supernet,
    data: SupernetData,
    *,
    train: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
) -> Path:
    payload = {
        "format": FORMAT,
        "space": net.space.model_dump(mode="json"),
        "data": data.model_dump(mode="json"),
        "source": source,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "train": train,
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp), param="out")


def load_supernet(path: str | Path, *, param: str = "proxy") -> SupernetFile:
    """Read a supernet file (weights_only); any other file is refused in one sentence."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CoatnetError(f"{path}: no such supernet file.", param=param) from None
    except IsADirectoryError:
        raise CoatnetError(f"{path}: is a directory, not a supernet file.", param=param) from None
    except Exception as exc:  # corrupt or not a torch file
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise CoatnetError(
            f"{path}: not a loadable supernet file ({reason}).", param=param
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CoatnetError(
            f"{path}: not a supernet file (expected format {FORMAT}; 'coatnet supernet train' "
            "writes one).",
            param=param,
        )
    try:
        space = ElasticSpace.model_validate(payload["space"])
        data = SupernetData.model_validate(payload["data"])
    except ValidationError as exc:
        raise CoatnetError(
            f"{path}: damaged supernet file ({settings_problems(exc)}).", param=param
        ) from None
    return SupernetFile(
        path, space, data, payload["state_dict"], payload.get("train"), payload.get("source")
    )
