"""Training-free scores: rank untrained architectures from one mini-batch in about a second.

Every score maps ``(model, images, labels)`` to a float where **higher predicts better**, and is
registered by name (:func:`register_score`) so that ``coatnet proxy-check`` and
a search's proxy (``proxy=NAME``) can be any of them, including ones a user adds.
:func:`compute_score` runs a score on a deep copy of the model under a fixed seed, so scoring never
changes the model (``synflow`` takes absolute values of the weights, the others run backward
passes and update BatchNorm statistics) and the same inputs always give the same number.

Scores (after the papers that proposed them, adapted to this model family):

``params``, ``flops``
    Baselines: parameter count and multiply-accumulates per image. Published studies find that
    many zero-cost proxies barely beat them, so every proxy check should show them.
``synflow`` (Tanaka et al. 2020; Abdelfattah et al. 2021)
    ``sum |theta * dR/dtheta|`` over conv/linear weights, where ``R`` is the summed output for an
    all-ones input through a copy with ``|theta|`` in float64. Data-free. BatchNorm runs in eval
    mode with its initial statistics, i.e. as an identity: the BN-free variant the authors use.
``snip`` (Lee et al. 2019)
    ``sum |theta * dL/dtheta|`` over conv/linear weights, cross-entropy on the batch.
``grad_norm``
    Sum over conv/linear layers of the L2 norm of ``dL/dW``.
``naswot`` (Mellor et al. 2021)
    ``log|K|`` with ``K[i, j] = N_A - Hamming(c_i, c_j)``, ``c_i`` the binary activation code of
    input ``i`` over all ReLU/GELU units. *GELU*: ``GELU(x) = x * Phi(x)`` is the smooth version
    of ``ReLU(x) = x * 1[x > 0]``, and ``Phi(x) > 1/2`` exactly when ``x > 0``; so a unit's bit is
    the sign of its GELU *input*, the gate it would have as a ReLU. A module applied twice (an
    MBConv's ``act``) contributes both applications. BatchNorm uses batch statistics.
``jacob_cov`` (Mellor et al. 2020, the first NASWOT version)
    ``-sum(log(l + k) + 1 / (l + k))`` over the eigenvalues ``l`` of the correlation matrix of the
    per-input Jacobians ``d(sum of outputs)/d(input)``, ``k = 1e-5``: larger when inputs map to
    less correlated local linear maps.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from coatnet_nas.errors import CoatnetError

__all__ = [
    "SCORES",
    "Score",
    "compute_score",
    "get_score",
    "register_score",
    "score_names",
]

ScoreFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]


@dataclass(frozen=True)
class Score:
    """A registered training-free score; ``uses_data`` is False when the batch is ignored,
    ``seeded`` False when no seed changes the value (weights, batch: ``params``, ``flops``)."""

    name: str
    fn: ScoreFn
    summary: str
    uses_data: bool = True
    seeded: bool = True


SCORES: dict[str, Score] = {}
RESERVED = ("train",)  # proxy names with another meaning (a short training run)


def register_score(
    name: str, summary: str, *, uses_data: bool = True, seeded: bool = True
) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator: register ``fn(model, images, labels) -> float`` (higher = better) by name."""
    if name in RESERVED or not name.replace("_", "").isalnum():
        raise ValueError(f"invalid score name {name!r}")

    def add(fn: ScoreFn) -> ScoreFn:
        SCORES[name] = Score(name, fn, summary, uses_data, seeded)
        return fn

    return add


def score_names() -> list[str]:
    return list(SCORES)


def get_score(name: str) -> Score:
    try:
        return SCORES[name]
    except KeyError:
        raise CoatnetError(
            f"unknown proxy score {name!r}; registered: {', '.join(SCORES)} (or 'train')."
        ) from None


def compute_score(
    name: str, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, seed: int = 0
) -> float:
    """Score a deep copy of ``model`` on ``(images, labels)`` under ``seed``; no side effects."""
    score = get_score(name)
    clone = copy.deepcopy(model).to(images.device)
    clone.zero_grad(set_to_none=True)
    devices = [images.device.index or 0] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return float(score.fn(clone, images, labels))


# --- helpers ---------------------------------------------------------------------------------
def _weighted_layers(model: nn.Module) -> Iterator[nn.Module]:
    """Conv and linear layers: the 'prunable' weights the saliency scores sum over."""
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            yield module


def _loss_backward(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    model.train()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()


# --- baselines -------------------------------------------------------------------------------
@register_score("params", "parameter count (baseline)", uses_data=False, seeded=False)
def params_score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float(sum(p.numel() for p in model.parameters()))


@register_score("flops", "multiply-accumulates per image (baseline)", uses_data=False, seeded=False)
def flops_score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    from coatnet_nas.spec import ModelSpec

    spec = getattr(model, "spec", None)
    if isinstance(spec, ModelSpec):  # closed form, exact for this package's models
        from coatnet_nas.cost import estimate_cost

        return float(estimate_cost(spec).flops)
    from coatnet_nas.profile import count_flops

    model.eval()
    return float(count_flops(model, images[:1]))


# --- gradient saliencies ---------------------------------------------------------------------
@register_score("synflow", "synaptic flow of |weights| on an all-ones input", uses_data=False)
def synflow_score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64, device=images.device)
    model(ones).sum().backward()
    total = torch.zeros((), dtype=torch.float64, device=images.device)
    for layer in _weighted_layers(model):
        if layer.weight.grad is not None:
            total += (layer.weight * layer.weight.grad).abs().sum()
    return total.item()


@register_score("snip", "sum |weight * dLoss/dweight| on one batch")
def snip_score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    _loss_backward(model, images, labels)
    total = 0.0
    for layer in _weighted_layers(model):
        if layer.weight.grad is not None:
            total += (layer.weight * layer.weight.grad).abs().sum().item()
    return total


@register_score("grad_norm", "sum of per-layer gradient L2 norms on one batch")
def grad_norm_score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    _loss_backward(model, images, labels)
    total = 0.0
    for layer in _weighted_layers(model):
        if layer.weight.grad is not None:
            total += layer.weight.grad.norm().item()
    return total


# --- activation / Jacobian statistics --------------------------------------------------------
ACTIVATIONS = (nn.ReLU, nn.GELU)


@register_score("naswot", "log-determinant of the ReLU/GELU activation-code kernel")
def naswot_score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    n = images.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=images.device)

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        # Bit = the unit's gate: x > 0 (for GELU, where Phi(x) > 1/2). Agreements = N_A - Hamming.
        codes = (inputs[0].detach() > 0).reshape(n, -1).float()
        agree = codes @ codes.T + (1 - codes) @ (1 - codes).T  # exact in fp32 below 2**24 units
        kernel.add_(agree.double())

    handles = [
        m.register_forward_hook(record) for m in model.modules() if isinstance(m, ACTIVATIONS)
    ]
    try:
        if not handles:
            raise CoatnetError("naswot needs ReLU or GELU modules; this model has none.")
        model.train()
        with torch.no_grad():
            model(images)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return logdet.item() if sign.item() > 0 else -math.inf


JACOB_COV_K = 1e-5


@register_score("jacob_cov", "decorrelation of per-input Jacobians")
def jacob_cov_score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.train()
    x = images.detach().clone().requires_grad_(True)
    out = model(x)
    out.backward(torch.ones_like(out))
    jac = x.grad.reshape(x.shape[0], -1).double()
    jac = jac - jac.mean(dim=1, keepdim=True)
    norms = jac.norm(dim=1, keepdim=True)
    jac = jac / norms.clamp_min(1e-30)  # a zero Jacobian row stays zero (uncorrelated, no NaN)
    corr = jac @ jac.T
    eig = torch.linalg.eigvalsh(corr).clamp_min(0.0)
    k = JACOB_COV_K
    return -(torch.log(eig + k) + 1.0 / (eig + k)).sum().item()
