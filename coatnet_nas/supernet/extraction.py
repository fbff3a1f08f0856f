"""A sub-network as a normal model: its weights copied out of the supernet.

``extract(supernet, spec)`` is the state dict of ``build_model(spec)`` holding the inherited
weights (copies, so training the model never touches the supernet); ``subnet`` builds that
model and loads them; ``extract_checkpoint`` writes them as a normal checkpoint (``coatnet
train SPEC --init CKPT`` fine-tunes it, ``coatnet export`` ships it).
"""

from __future__ import annotations

from pathlib import Path

import torch

from coatnet_nas.builder import CoAtNet
from coatnet_nas.spec import ModelSpec
from coatnet_nas.supernet.model import Supernet

__all__ = ["extract", "subnet"]


@torch.no_grad()
def extract(supernet: Supernet, spec: ModelSpec) -> dict[str, torch.Tensor]:
    """The proxy-size ``spec``'s inherited weights as the state dict of its standalone model."""
    return {k: v.detach().clone().contiguous() for k, v in supernet.weights(spec).items()}


def subnet(supernet: Supernet, spec: ModelSpec) -> CoAtNet:
    """``spec``'s standalone model (in eval mode) holding the inherited weights."""
    model = CoAtNet(spec, initialize=False)
    model.load_state_dict(extract(supernet, spec), strict=True)
    return model.to(next(supernet.parameters()).device).eval()


def save_subnet(supernet: Supernet, spec: ModelSpec, path: str | Path) -> Path:
    """Write ``spec``'s inherited weights as a normal checkpoint (weights + spec)."""
    from coatnet_nas.train.checkpoint import save_checkpoint

    model = subnet(supernet, spec)
    return save_checkpoint(path, model.cpu(), spec=spec)
