"""Blocks: relative position index, fused vs explicit attention, MBConv and SE behaviour."""

from __future__ import annotations

import torch

from coatnet_nas.blocks.attention import RelativeAttention, relative_position_index
from coatnet_nas.blocks.layers import DropPath, pool_tokens
from coatnet_nas.blocks.mbconv import MBConv
from coatnet_nas.blocks.options import MBConvOptions


def test_relative_position_index_3x3_first_row():
    index = relative_position_index(3, 3)
    assert index.shape == (9, 9)
    assert index[0].tolist() == [12, 11, 10, 7, 6, 5, 2, 1, 0]
    # The slide's row 7 has a typo (13 where the formula gives 15); the formula wins.
    assert index[6].tolist() == [22, 21, 20, 17, 16, 15, 12, 11, 10]


def test_relative_position_index_matches_formula_rectangular():
    h, w = 3, 5
    index = relative_position_index(h, w)
    for i in range(h * w):
        for j in range(h * w):
            dy, dx = i // w - j // w, i % w - j % w
            assert index[i, j] == (dy + h - 1) * (2 * w - 1) + (dx + w - 1)
    assert index.min() == 0 and index.max() == (2 * h - 1) * (2 * w - 1) - 1


def test_relative_bias_depends_only_on_offset():
    attn = RelativeAttention(32, 32, 16, (4, 4))
    bias = attn.relative_bias()
    assert bias.shape == (2, 16, 16)
    # positions (0,0)->(1,1) and (2,2)->(3,3) share an offset, so share a bias
    assert torch.equal(bias[:, 0, 5], bias[:, 10, 15])


def test_sdpa_equals_explicit_attention():
    torch.manual_seed(1)
    attn = RelativeAttention(48, 64, 16, (5, 7)).eval()
    with torch.no_grad():
        attn.bias_table.normal_(std=1.0)  # a bias large enough to matter
        x = torch.randn(3, 35, 48)
        fused = attn(x)
        attn.fused = False
        explicit = attn(x)
    assert torch.allclose(fused, explicit, atol=1e-5, rtol=0)


def test_attention_rejects_wrong_grid():
    attn = RelativeAttention(32, 32, 16, (4, 4))
    try:
        attn(torch.randn(1, 25, 32))
    except ValueError as exc:
        assert "4x4 grid" in str(exc)
    else:
        raise AssertionError("expected a ValueError")


def test_mbconv_downsamples_in_first_pointwise_conv():
    block = MBConv(16, 24, 2, MBConvOptions())
    assert block.expand.stride == (2, 2)
    assert block.depthwise.stride == (1, 1)
    assert block.expand.out_channels == 96  # hidden = 4 x output width
    out = block(torch.randn(2, 16, 8, 8))
    assert out.shape == (2, 24, 4, 4)


def test_mbconv_identity_block_keeps_shape_and_has_residual():
    block = MBConv(24, 24, 1, MBConvOptions()).eval()
    with torch.no_grad():
        block.project.weight.zero_()
        block.project.bias.zero_()
        x = torch.randn(1, 24, 6, 6)
        assert torch.equal(block(x), x)  # zero branch -> pure shortcut


def test_se_can_be_disabled():
    block = MBConv(8, 8, 1, MBConvOptions(se_ratio=0))
    assert isinstance(block.se, torch.nn.Identity)


def test_pool_tokens_matches_2d_pooling():
    x = torch.randn(2, 4, 6, 8)  # N C H W
    tokens = x.flatten(2).transpose(1, 2)
    pooled = pool_tokens(tokens, (6, 8), "avg")
    ref = torch.nn.functional.avg_pool2d(x, 2).flatten(2).transpose(1, 2)
    assert torch.allclose(pooled, ref, atol=1e-6)
    pooled = pool_tokens(tokens, (6, 8), "max")
    ref = torch.nn.functional.max_pool2d(x, 2).flatten(2).transpose(1, 2)
    assert torch.equal(pooled, ref)


def test_drop_path_is_identity_in_eval_and_drops_samples_in_train():
    layer = DropPath(0.5)
    x = torch.ones(64, 3)
    assert torch.equal(layer.eval()(x), x)
    out = layer.train()(x)
    kept = (out != 0).all(dim=1)
    assert 0 < kept.sum() < 64
    assert torch.allclose(out[kept], torch.full_like(out[kept], 2.0))
