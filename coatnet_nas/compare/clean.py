"""The clean training loss: cross-entropy and accuracy on training images, eval mode, unaugmented.

Both of compare's measures read it: fitting speed after a fixed budget (:mod:`.job`) and capacity
at a plateau (:mod:`.capacity`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from coatnet_nas.data import ProxyData

__all__ = ["clean_metrics"]


@torch.no_grad()
def clean_metrics(
    model: nn.Module, data: ProxyData, limit: int, batch_size: int = 512
) -> tuple[float, float]:
    """Cross-entropy and accuracy on the first ``limit`` training images, eval mode, unaugmented."""
    device = next(model.parameters()).device
    data = data.to(device)
    was_training = model.training
    model.eval()
    n = min(limit, len(data.train))
    loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    try:
        for start in range(0, n, batch_size):
            end = min(n, start + batch_size)
            images = data.normalize(data.train.images[start:end])
            labels = data.train.labels[start:end]
            logits = model(images).float()
            loss += F.cross_entropy(logits, labels, reduction="sum").double()
            correct += (logits.argmax(dim=1) == labels).sum()
    finally:
        model.train(was_training)
    return loss.item() / max(1, n), correct.item() / max(1, n)
