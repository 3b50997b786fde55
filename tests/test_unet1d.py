"""Tests of the 1-D UNet noise predictors."""
import pytest

import cocodiff_mm  # noqa: F401  (runtime fixes before mmaction)
import torch

from mmaction.registry import MODELS
from cocodiff_mm.models.diffusion import ConditionalUNet1D, UNet1D
from cocodiff_mm.models.diffusion.unet1d import FiLMResBlock1D

SMALL = dict(
    feat_dim=32, base_channels=8, channel_mults=(1, 2, 2), time_embed_dim=16)


def one_sgd_step(net, cond_dim, seed=0):
    """Fit a random target for one step so the zero output conv moves."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(8, net.feat_dim, generator=gen)
    t = torch.randint(0, 30, (8, ), generator=gen)
    cond = None if cond_dim is None else torch.randn(
        8, cond_dim, generator=gen)
    target = torch.randn(8, net.feat_dim, generator=gen)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = (net(x, t, cond) - target).pow(2).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()


def test_default_shape_and_zero_init():
    net = MODELS.build(dict(type='ConditionalUNet1D'))
    assert isinstance(net, ConditionalUNet1D)
    assert net.feat_dim == 256 and net.cond_dim == 512
    x = torch.randn(3, 256)
    t = torch.tensor([0, 10, 29])
    out = net(x, t, torch.randn(3, 512))
    assert out.shape == (3, 256)
    assert torch.count_nonzero(out) == 0  # zero-initialised output conv


@pytest.mark.parametrize('mults,num_res_blocks', [((1, ), 1), ((1, 2), 2),
                                                  ((1, 2, 2, 4), 1)])
def test_shapes_for_depths(mults, num_res_blocks):
    net = ConditionalUNet1D(
        feat_dim=64,
        cond_dim=5,
        base_channels=8,
        channel_mults=mults,
        num_res_blocks=num_res_blocks,
        time_embed_dim=16)
    one_sgd_step(net, 5)
    out = net(torch.randn(2, 64), torch.tensor([1, 2]), torch.randn(2, 5))
    assert out.shape == (2, 64) and torch.isfinite(out).all()


def test_film_uses_text_at_every_resolution():
    torch.manual_seed(0)
    net = ConditionalUNet1D(cond_dim=6, **SMALL)
    blocks = [m for m in net.modules() if isinstance(m, FiLMResBlock1D)]
    # down (3) + middle (2) + up (3) residual blocks, each FiLM-modulated.
    assert len(blocks) == 8
    one_sgd_step(net, 6)
    x = torch.randn(4, 32)
    t = torch.tensor([3, 3, 3, 3])
    cond_a, cond_b = torch.randn(1, 6).expand(4, 6), torch.randn(1, 6).expand(
        4, 6)
    out_a, out_b = net(x, t, cond_a), net(x, t, cond_b)
    assert (out_a - out_b).abs().max() > 1e-4
    # The text reaches every block: each FiLM projection gets a gradient
    # through the text branch.
    net.zero_grad()
    cond = torch.randn(4, 6, requires_grad=True)
    net(x, t, cond).pow(2).sum().backward()
    assert cond.grad.abs().sum() > 0
    for blk in blocks:
        assert blk.film[1].weight.grad.abs().sum() > 0


def test_time_changes_output():
    torch.manual_seed(1)
    net = ConditionalUNet1D(cond_dim=None, **SMALL)
    one_sgd_step(net, None)
    x = torch.randn(2, 32)
    out0 = net(x, torch.tensor([0, 0]))
    out1 = net(x, torch.tensor([20, 20]))
    assert (out0 - out1).abs().max() > 1e-4


def test_unconditional_ignores_cond():
    torch.manual_seed(2)
    net = MODELS.build(dict(type='UNet1D', **SMALL))
    assert isinstance(net, UNet1D) and net.cond_dim is None
    assert net.embedding.cond_mlp is None
    one_sgd_step(net, None)
    x, t = torch.randn(3, 32), torch.tensor([1, 5, 9])
    out = net(x, t, None)
    assert out.abs().max() > 0
    torch.testing.assert_close(net(x, t, torch.randn(3, 512)), out)
    torch.testing.assert_close(net(x, t, torch.randn(3, 7)), out)
    with pytest.raises(ValueError, match='cond_dim must be None, got 512'):
        UNet1D(cond_dim=512)


def test_errors():
    with pytest.raises(ValueError, match='divisible by 2 \\*\\* .* = 4'):
        ConditionalUNet1D(feat_dim=30, channel_mults=(1, 2, 2))
    with pytest.raises(ValueError, match='norm_groups=8'):
        ConditionalUNet1D(feat_dim=32, base_channels=12)
    with pytest.raises(ValueError, match='num_res_blocks'):
        ConditionalUNet1D(num_res_blocks=0)
    net = ConditionalUNet1D(cond_dim=6, **SMALL)
    x, t = torch.randn(2, 32), torch.tensor([0, 1])
    with pytest.raises(ValueError) as err:
        net(x, t, torch.randn(2, 5))
    assert '6' in str(err.value) and '5' in str(err.value)
    with pytest.raises(ValueError, match='got None'):
        net(x, t, None)
    with pytest.raises(ValueError, match=r'\(N, 32\)'):
        net(torch.randn(2, 31), t, torch.randn(2, 6))
    with pytest.raises(ValueError, match='t must have shape'):
        net(x, torch.tensor([0, 1, 2]), torch.randn(2, 6))


def test_positional_embedding_option():
    with_pos = ConditionalUNet1D(cond_dim=4, **SMALL)
    assert with_pos.pos_embed.shape == (1, 8, 32)
    without = ConditionalUNet1D(cond_dim=4, pos_embed=False, **SMALL)
    assert without.pos_embed is None
    assert (sum(p.numel() for p in with_pos.parameters()) -
            sum(p.numel() for p in without.parameters())) == 8 * 32
    one_sgd_step(without, 4)
    out = without(torch.randn(2, 32), torch.tensor([0, 1]), torch.randn(2, 4))
    assert out.shape == (2, 32)
