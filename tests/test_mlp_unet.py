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


def test_every_module_is_called_as_a_module():
    """Hooks and profilers see every layer, in the precomputed chain path
    as in a plain call."""
    net = perturbed(ConditionalMLPUNet(feat_dim=32, cond_dim=8,
                                       widths=(32, 16), num_steps=10))
    x, cond, t = torch.randn(6, 32), torch.randn(6, 8), torch.full((6, ), 3)
    bound = net.conditioned_on(cond)
    called = set()
    for name, module in net.named_modules():
        module.register_forward_hook(
            lambda module, args, out, name=name: called.add(name))
    bound(x, t, cond)
    skipped = ('time_mlp', 'cond_mlp')  # run once, by conditioned_on
    # (and each block's skip: one addmm on its weight, see FiLMResMLPBlock)
    expected = {name for name, module in net.named_modules()
                if not name.startswith(skipped) and not name.endswith('skip')
                and not isinstance(module, torch.nn.ModuleList)}
    assert expected <= called, expected - called


@pytest.mark.parametrize('type_name', ['ConditionalMLPUNet', 'MLPUNet',
                                       'ConditionalUNet1D', 'UNet1D'])
def test_every_denoiser_has_the_head_interface(type_name):
    """The head fills in num_steps and calls conditioned_on for any
    registered denoiser; the result predicts like the network."""
    cond_dim = 8 if type_name.startswith('Conditional') else None
    net = MODELS.build(dict(type=type_name, feat_dim=32, cond_dim=cond_dim,
                            num_steps=7))
    assert net.num_steps == 7
    x, t = torch.randn(3, 32), torch.tensor([0, 3, 6])
    cond = None if cond_dim is None else torch.randn(3, cond_dim)
    bound = net.conditioned_on(cond)
    assert torch.allclose(bound(x, t, cond), net(x, t, cond), atol=1e-6)
    if 'UNet1D' in type_name:  # nothing to precompute
        assert bound is net


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
