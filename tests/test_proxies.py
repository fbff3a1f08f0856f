"""Training-free scores and rank statistics, checked against hand-computed values."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from coatnet_nas.builder import build_model
from coatnet_nas.cost import estimate_cost
from coatnet_nas.errors import CoatnetError
from coatnet_nas.proxies import (
    SCORES,
    compute_score,
    kendall_tau,
    rankdata,
    register_score,
    score_names,
    spearman,
    top_k_overlap,
)
from coatnet_nas.spec import spec_from_dict


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models gain nothing from intra-op threads; on a busy machine two threads are far slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_model(tiny_compact) -> nn.Module:
    spec = spec_from_dict({**tiny_compact, "image_size": 32})
    torch.manual_seed(0)
    return build_model(spec)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)


# --- rank statistics ---------------------------------------------------------------------------
def test_rankdata_averages_ties():
    assert rankdata([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]
    assert rankdata([3, 1, 2]) == [3, 1, 2]
    assert rankdata([5, 5, 5]) == [2, 2, 2]


def test_spearman_hand_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks x = 1, 2.5, 2.5, 4 and y = 1..4: sxy = 4.5, sxx = 4.5, syy = 5
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    # monotone transforms do not matter
    assert spearman([1, 5, 2, 8], [math.exp(v) for v in (1, 5, 2, 8)]) == pytest.approx(1.0)


def test_kendall_tau_b_hand_values():
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx((5 - 1) / 6)
    # one pair tied in x: 5 concordant, 0 discordant; denominators 5 and 6 (tau-b)
    assert kendall_tau([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))
    # a pair tied in both counts nowhere
    assert kendall_tau([1, 1, 2], [1, 1, 2]) == pytest.approx(1.0)
    # -inf (a degenerate naswot kernel) ranks lowest and ties with itself
    assert kendall_tau([-math.inf, -math.inf, 1.0], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))


def test_rank_statistics_undefined_cases():
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau([1, 2, 3], [7, 7, 7]))
    with pytest.raises(ValueError, match="NaN"):
        spearman([1, math.nan], [1, 2])
    with pytest.raises(ValueError, match="length"):
        kendall_tau([1, 2], [1, 2, 3])


def test_top_k_overlap():
    assert top_k_overlap([4, 3, 2, 1], [4, 3, 1, 2], 2) == 1.0
    assert top_k_overlap([4, 3, 2, 1], [4, 3, 1, 2], 3) == pytest.approx(2 / 3)
    assert top_k_overlap([1, 2, 3, 4], [4, 3, 2, 1], 1) == 0.0
    assert top_k_overlap([1, 1, 1, 1], [4, 3, 2, 1], 1) == 1.0  # ties: first listed wins
    with pytest.raises(ValueError):
        top_k_overlap([1, 2], [1, 2], 3)


# --- every registered score --------------------------------------------------------------------
def test_every_score_is_finite_deterministic_and_side_effect_free(tiny_model, batch):
    images, labels = batch
    before = copy.deepcopy(tiny_model.state_dict())
    tiny_model.eval()
    assert {"params", "flops", "synflow", "snip", "grad_norm", "naswot", "jacob_cov"} <= set(
        score_names()
    )
    for name in ("params", "flops", "synflow", "snip", "grad_norm", "naswot", "jacob_cov"):
        first = compute_score(name, tiny_model, images, labels, seed=3)
        again = compute_score(name, tiny_model, images, labels, seed=3)
        assert math.isfinite(first), name
        assert first == again, name
    assert not tiny_model.training
    assert all(p.grad is None for p in tiny_model.parameters())
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_params_and_flops_baselines(tiny_model, batch):
    images, labels = batch
    assert compute_score("params", tiny_model, images, labels) == sum(
        p.numel() for p in tiny_model.parameters()
    )
    assert (
        compute_score("flops", tiny_model, images, labels) == estimate_cost(tiny_model.spec).flops
    )
    # any module: fvcore count, per image
    assert compute_score("flops", nn.Linear(4, 3), torch.randn(5, 4), labels[:5]) == 12


def test_synflow_positive_data_free_and_sign_invariant(tiny_model, batch):
    images, labels = batch
    value = compute_score("synflow", tiny_model, images, labels)
    assert value > 0
    assert compute_score("synflow", tiny_model, -images, labels) == value
    assert compute_score("synflow", tiny_model, torch.zeros_like(images), labels) == value
    flipped = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for p in flipped.parameters():
            p.neg_()
    assert compute_score("synflow", flipped, images, labels) == pytest.approx(value, rel=1e-12)


def test_synflow_hand_value_of_a_linear_chain():
    # R = sum(|W2| |W1| 1); sum over layers of |W * dR/dW| = 2 R for a two-layer linear chain
    model = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, -1.0]]))
        model[1].weight.copy_(torch.tensor([[2.0, -3.0]]))
    r = 2 * 3.5 + 3 * 2.0
    assert compute_score("synflow", model, torch.randn(4, 3), torch.zeros(4).long()) == 2 * r


def _cross_entropy_grad(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = (x @ w.T).softmax(dim=1)
    p[torch.arange(len(y)), y] -= 1
    return p.T @ x / len(y)


def test_snip_and_grad_norm_match_the_closed_form_gradient():
    torch.manual_seed(0)
    model = nn.Linear(5, 3, bias=False)
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    grad = _cross_entropy_grad(model.weight.detach(), x, y)
    snip = compute_score("snip", model, x, y)
    assert snip == pytest.approx((model.weight.detach() * grad).abs().sum().item(), rel=1e-5)
    assert compute_score("grad_norm", model, x, y) == pytest.approx(grad.norm().item(), rel=1e-5)


def test_naswot_hand_value_and_gelu_convention():
    # codes (x > 0): [1, 1] and [1, 0]; N_A = 2, Hamming 1 -> K = [[2, 1], [1, 2]], det 3
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    y = torch.zeros(2).long()
    assert compute_score("naswot", nn.GELU(), x, y) == pytest.approx(math.log(3))
    assert compute_score("naswot", nn.ReLU(), x, y) == pytest.approx(math.log(3))
    # a GELU applied twice (as MBConv applies its ``act``) contributes both times: K doubles
    act = nn.GELU()
    twice = nn.Sequential(act, act)
    assert compute_score("naswot", twice, x, y) == pytest.approx(math.log(3) + 2 * math.log(2))
    # identical codes for two inputs: singular kernel, the lowest possible score
    assert compute_score("naswot", nn.GELU(), torch.ones(2, 2), y) == -math.inf
    with pytest.raises(CoatnetError, match="ReLU or GELU"):
        compute_score("naswot", nn.Linear(2, 2), x, y)


def test_naswot_prefers_more_distinct_activation_patterns():
    torch.manual_seed(0)
    x, y = torch.randn(16, 8), torch.zeros(16).long()
    random_layer = nn.Sequential(nn.Linear(8, 32), nn.GELU())
    always_on = copy.deepcopy(random_layer)  # every unit active for every input: one pattern
    with torch.no_grad():
        always_on[0].weight.zero_()
        always_on[0].bias.fill_(1.0)
    few_units = nn.Sequential(nn.Linear(8, 6), nn.GELU())
    distinct = compute_score("naswot", random_layer, x, y)
    assert math.isfinite(distinct)
    assert compute_score("naswot", always_on, x, y) < distinct
    assert compute_score("naswot", few_units, x, y) < distinct


def test_jacob_cov_hand_value_for_a_linear_model():
    # A linear map has the same Jacobian for every input: correlation matrix of ones,
    # eigenvalues N and 0 (N - 1 times).
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    n, k = 5, 1e-5
    expected = -((math.log(n + k) + 1 / (n + k)) + (n - 1) * (math.log(k) + 1 / k))
    value = compute_score("jacob_cov", model, torch.randn(n, 1, 2, 2), torch.zeros(n).long())
    assert value == pytest.approx(expected, rel=1e-6)
    relu = nn.Sequential(nn.Flatten(), nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 3))
    assert compute_score("jacob_cov", relu, torch.randn(n, 1, 2, 2), torch.zeros(n).long()) > value


def test_registry_accepts_new_scores_and_names_unknown_ones(batch):
    images, labels = batch

    @register_score("test_mean_weight", "mean weight (test only)")
    def mean_weight(model, images, labels):
        return float(sum(p.detach().sum() for p in model.parameters()))

    try:
        assert compute_score("test_mean_weight", nn.Linear(2, 1), images, labels) is not None
    finally:
        SCORES.pop("test_mean_weight")
    with pytest.raises(CoatnetError, match=r"unknown proxy score 'nope'.*naswot"):
        compute_score("nope", nn.Linear(2, 1), images, labels)
    with pytest.raises(ValueError):
        register_score("train", "reserved")
