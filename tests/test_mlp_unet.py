"""ConditionalMLPUNet: the default denoiser, its conditioning and its cost."""
import pytest
import torch

from mmaction.registry import MODELS

from cocodiff_mm.models.diffusion import (ConditionalMLPUNet,
                                          ConditionalUNet1D, MLPUNet)


def perturbed(net: ConditionalMLPUNet, seed: int = 0) -> ConditionalMLPUNet:
    """The network with its zero output layer replaced by random weights."""
    torch.manual_seed(seed)
    torch.nn.init.normal_(net.out_proj.weight, std=0.1)
    return net


def test_starts_at_zero_and_predicts_per_sample():
    net = ConditionalMLPUNet(feat_dim=64, cond_dim=16, widths=(64, 32))
    x, cond = torch.randn(5, 64), torch.randn(5, 16)
    t = torch.tensor([0, 3, 7, 9, 2])
    assert torch.equal(net(x, t, cond), torch.zeros(5, 64))
    perturbed(net)
    out = net(x, t, cond)
    assert out.shape == (5, 64) and out.abs().sum() > 0
    # Each row depends on its own sample only.
    assert torch.allclose(net(x[:2], t[:2], cond[:2]), out[:2], atol=1e-6)


def test_time_and_text_change_the_prediction():
    net = perturbed(ConditionalMLPUNet(feat_dim=32, cond_dim=8,
                                       widths=(32, )))
    x, cond = torch.randn(4, 32), torch.randn(4, 8)
    t = torch.full((4, ), 5)
    base = net(x, t, cond)
    assert not torch.allclose(base, net(x, t + 1, cond))
    assert not torch.allclose(base, net(x, t, torch.randn(4, 8)))


def test_conditioned_on_is_the_same_network():
    """The precomputed per-chain conditioning gives the network's output."""
    net = perturbed(ConditionalMLPUNet(feat_dim=32, cond_dim=8,
                                       widths=(32, 16), num_steps=10))
    x, cond = torch.randn(6, 32), torch.randn(6, 8)
    bound = net.conditioned_on(cond)
    for step in (9, 4, 0):
        t = torch.full((6, ), step)
        assert torch.allclose(bound(x, t, cond), net(x, t, cond), atol=1e-5)
    with pytest.raises(ValueError, match='another cond'):
        bound(x, t, cond.clone())


def test_no_text_variant_ignores_cond():
    net = perturbed(MODELS.build(dict(type='MLPUNet', feat_dim=16,
                                      widths=(16, ))))
    x, t = torch.randn(3, 16), torch.tensor([1, 2, 3])
    assert torch.equal(net(x, t, torch.randn(3, 4)), net(x, t, None))
    with pytest.raises(ValueError, match='no-text denoiser'):
        MLPUNet(cond_dim=8)


@pytest.mark.parametrize('kwargs, message', [
    (dict(widths=()), 'widths'),
    (dict(widths=(0, )), 'widths'),
    (dict(cond_dim=0), 'cond_dim'),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConditionalMLPUNet(**kwargs)


def test_bad_inputs_name_the_expected_shape():
    net = ConditionalMLPUNet(feat_dim=16, cond_dim=4, widths=(16, ))
    x, t = torch.randn(2, 16), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r'\(N, 16\)'):
        net(torch.randn(2, 8), t, torch.randn(2, 4))
    with pytest.raises(ValueError, match=r'\(N, 4\)'):
        net(x, t, torch.randn(2, 5))
    with pytest.raises(ValueError, match='got None'):
        net(x, t, None)
    with pytest.raises(ValueError, match='rows'):
        net(x, t, torch.randn(3, 4))


def test_far_cheaper_than_the_conv_unet_for_the_same_feature():
    """The reason it is the default: a fraction of the conv UNet's FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    def flops(net):
        x, t, cond = torch.randn(8, 256), torch.zeros(8).long(), \
            torch.randn(8, 512)
        with FlopCounterMode(display=False) as counter:
            net(x, t, cond)
        return counter.get_total_flops()

    mlp = flops(ConditionalMLPUNet())
    conv = flops(ConditionalUNet1D(base_channels=32))
    assert mlp * 10 < conv
