"""The diffusion parts' own optimizer: built from the shipped configs, one
backward for both optimizers, accumulation, resume and config errors."""
import copy

import pytest
import torch
import torch.nn as nn
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from cocodiff_mm.engine import JointOptimWrapperDict
from cocodiff_mm.utils.config_keys import ConfigError, ConfigKeyError

CONFIG = 'configs/ctrgcn_cocodiff_utd_mhad.py'
DIFFUSION_PREFIXES = ('cls_head.denoiser.', 'cls_head.projection.',
                      'cls_head.loss_text.')


@pytest.fixture(scope='module')
def cfg(tmp_path_factory) -> Config:
    init_default_scope('mmaction')
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.base_channels = 8
    cfg.model.cls_head.in_channels = 32
    cfg.model.cls_head.text_bank.encoder = 'random'
    # Encoded once for the module: every model built here reads the file.
    cfg.model.cls_head.text_bank.cache_dir = str(
        tmp_path_factory.mktemp('text_banks'))
    cfg.model.cls_head.denoiser.widths = (16, )
    return cfg


def build(cfg: Config, **wrapper_options):
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    wrapper_cfg.update(wrapper_options)
    return model, build_optim_wrapper(model, wrapper_cfg)


def params_of(optimizer: torch.optim.Optimizer):
    return [p for group in optimizer.param_groups for p in group['params']]


def head_loss(model: nn.Module, seed: int) -> torch.Tensor:
    """A loss that reaches the GCN's classifier and every diffusion part:
    the head's joint objective on random pooled features."""
    head = model.cls_head
    generator = torch.Generator().manual_seed(seed)
    pooled = torch.randn(6, head.in_channels, generator=generator)
    labels = torch.arange(6) % head.num_classes
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        losses, generated = head.diffusion_losses(pooled, labels)
    scores = head.fc(pooled) + head.fc(generated.detach())
    return sum(losses.values()) + nn.functional.cross_entropy(scores,
                                                              labels)


def test_shipped_config_splits_the_parameters(cfg):
    model, wrapper = build(cfg)
    assert isinstance(wrapper, JointOptimWrapperDict)
    assert list(wrapper.keys()) == ['gcn', 'diffusion']
    gcn, diffusion = wrapper['gcn'].optimizer, wrapper['diffusion'].optimizer
    assert type(gcn).__name__ == cfg.optim_wrapper.optimizer.type == 'SGD'
    assert type(diffusion).__name__ == 'AdamW'
    names = {id(p): n for n, p in model.named_parameters()}
    gcn_names = {names[id(p)] for p in params_of(gcn)}
    diffusion_names = {names[id(p)] for p in params_of(diffusion)}
    # Disjoint, together every parameter, split by the head's parts.
    assert not gcn_names & diffusion_names
    assert gcn_names | diffusion_names == set(names.values())
    assert all(n.startswith(DIFFUSION_PREFIXES) for n in diffusion_names)
    assert not any(n.startswith(DIFFUSION_PREFIXES) for n in gcn_names)
    assert 'cls_head.fc.weight' in gcn_names
    # Each its own lr; the logs name them.
    lrs = wrapper.get_lr()
    assert lrs['gcn.lr'][0] == cfg.optim_wrapper.optimizer.lr
    assert lrs['diffusion.lr'][0] == \
        cfg.optim_wrapper.diffusion.optimizer.lr


def test_paramwise_cfg_of_the_diffusion_optimizer(cfg):
    """Names under the head: 'loss_text' reaches the temperature."""
    _, wrapper = build(cfg, diffusion=dict(
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        paramwise_cfg=dict(custom_keys={'loss_text': dict(decay_mult=0.0)})))
    decays = {tuple(g['params'][0].shape): g['weight_decay']
              for g in wrapper['diffusion'].optimizer.param_groups}
    assert decays.pop(()) == 0.0  # the scalar logit scale
    assert set(decays.values()) == {0.05}


def mirrored_groups(optimizer: torch.optim.Optimizer, model: nn.Module,
                    reference: nn.Module):
    """``optimizer``'s parameter groups over ``reference``'s copies of
    ``model``'s parameters (same settings, for a plain torch optimizer)."""
    names = {id(p): n for n, p in model.named_parameters()}
    ref_params = dict(reference.named_parameters())
    return [dict({k: v for k, v in g.items() if k != 'params'},
                 params=[ref_params[names[id(p)]] for p in g['params']])
            for g in optimizer.param_groups]


def test_one_backward_steps_both_optimizers_like_torch(cfg):
    model, wrapper = build(cfg)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    reference = copy.deepcopy(model)
    ref_params = dict(reference.named_parameters())
    sgd = torch.optim.SGD(
        mirrored_groups(wrapper['gcn'].optimizer, model, reference))
    adamw = torch.optim.AdamW(
        mirrored_groups(wrapper['diffusion'].optimizer, model, reference))
    for step in range(3):
        wrapper.update_params(head_loss(model, step))
        head_loss(reference, step).backward()
        sgd.step()
        adamw.step()
        sgd.zero_grad()
        adamw.zero_grad()
    for name, param in model.named_parameters():
        torch.testing.assert_close(param, ref_params[name], msg=name)
    assert all(p.grad is None for p in model.parameters())
    # Both optimizers took their steps.
    changed = {n for n, p in model.named_parameters()
               if not torch.equal(p, initial[n])}
    assert 'cls_head.fc.weight' in changed
    assert 'cls_head.projection.weight' in changed
    assert wrapper['diffusion'].optimizer.state


def test_accumulation_steps_both_every_second_call(cfg):
    model, wrapper = build(cfg, accumulative_counts=2)
    wrapper.initialize_count_status(model, 0, 4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrapper.update_params(head_loss(model, 0))
    assert all(torch.equal(p, before[n])
               for n, p in model.named_parameters())
    wrapper.update_params(head_loss(model, 1))
    changed = {n for n, p in model.named_parameters()
               if not torch.equal(p, before[n])}
    assert 'cls_head.fc.weight' in changed
    assert any(n.startswith('cls_head.denoiser.') for n in changed)


def test_state_dict_resumes_both_optimizers(cfg):
    model, wrapper = build(cfg)
    wrapper.update_params(head_loss(model, 0))
    state = copy.deepcopy(wrapper.state_dict())
    assert set(state) == {'gcn', 'diffusion'}
    resumed_model = copy.deepcopy(model)
    # A fresh wrapper for the copied model, loaded from the saved state.
    resumed = build_optim_wrapper(resumed_model,
                                  copy.deepcopy(cfg.optim_wrapper))
    resumed.load_state_dict(state)
    wrapper.update_params(head_loss(model, 1))
    resumed.update_params(head_loss(resumed_model, 1))
    for (name, a), b in zip(model.named_parameters(),
                            resumed_model.parameters()):
        torch.testing.assert_close(a, b, msg=name)


def test_diffusion_none_is_one_optimizer_for_all(cfg):
    """--cfg-options optim_wrapper.diffusion=None: the GCN's SGD trains
    the diffusion too (the lever the stage-1 study compares)."""
    model, wrapper = build(cfg, diffusion=None)
    assert type(wrapper).__name__ == 'OptimWrapper'
    assert type(wrapper.optimizer).__name__ == 'SGD'
    assert len(params_of(wrapper.optimizer)) == len(list(model.parameters()))


def test_bad_diffusion_options_are_refused(cfg):
    with pytest.raises(ConfigError, match=r"optim_wrapper\.diffusion must be "
                       r"None .* or a dict with an optimizer.*got 'AdamW'"):
        build(cfg, diffusion='AdamW')
    with pytest.raises(ConfigKeyError, match=r"optim_wrapper\.diffusion\."
                       r"optimiser.*optimizer"):
        build(cfg, diffusion=dict(optimizer=dict(type='AdamW', lr=1e-3),
                                  optimiser=dict(type='SGD')))


def test_needs_a_cocodiff_head(cfg):
    baseline = Config.fromfile('configs/ctrgcn_utd_mhad.py')
    model = MODELS.build(baseline.model)
    with pytest.raises(ConfigError, match='needs a model whose cls_head is a '
                       'DiffusionAugmentedHead; got cls_head GCNHead'):
        build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))


@pytest.fixture
def cpu_grad_scaler(monkeypatch):
    """Let mmengine build its AmpOptimWrapper on this CPU machine, with
    torch's CPU GradScaler: the wrappers' scaling, unscaling, clipping and
    skipping are the same code on every device. (The fp16 arithmetic itself
    needs CUDA; the GPU check is tools/benchmark_training.py.)"""
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)
    monkeypatch.setattr(amp_optimizer_wrapper, 'GradScaler',
                        lambda **kwargs: torch.amp.GradScaler('cpu', **kwargs))


#: AMP with a scale that doubles after every finite step, and SGD for the
#: diffusion too: a gradient unscaled by the wrong scale changes SGD's step
#: (AdamW would hide a constant factor).
AMP_OPTIONS = dict(
    type='AmpOptimWrapper',
    loss_scale=dict(init_scale=2.**10, growth_interval=1),
    clip_grad=dict(max_norm=0.5),
    diffusion=dict(optimizer=dict(type='SGD', lr=0.01)))


def test_amp_shares_one_scaler_and_steps_like_torch(cfg, cpu_grad_scaler):
    model, wrapper = build(cfg, **AMP_OPTIONS)
    gcn, diffusion = wrapper['gcn'], wrapper['diffusion']
    assert type(gcn).__name__ == type(diffusion).__name__ == 'AmpOptimWrapper'
    assert gcn.loss_scaler is diffusion.loss_scaler
    reference = copy.deepcopy(model)
    ref_params = dict(reference.named_parameters())
    optimizers = [
        torch.optim.SGD(mirrored_groups(w.optimizer, model, reference))
        for w in (gcn, diffusion)
    ]
    scaler = torch.amp.GradScaler('cpu', init_scale=2.**10,
                                  growth_interval=1)
    for step in range(3):
        wrapper.update_params(head_loss(model, step))
        scaler.scale(head_loss(reference, step)).backward()
        for optimizer in optimizers:  # unscale, clip, step; one update
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params_of(optimizer), 0.5)
            scaler.step(optimizer)
            optimizer.zero_grad()
        scaler.update()
    for name, param in model.named_parameters():
        torch.testing.assert_close(param, ref_params[name], msg=name)
    # One scale update per step: 2^10 doubled three times, not six.
    assert gcn.loss_scaler.get_scale() == scaler.get_scale() == 2.**13
    # The shared scale is saved with each optimizer and resumes.
    state = copy.deepcopy(wrapper.state_dict())
    assert state['gcn']['loss_scaler']['scale'] == 2.**13
    _, resumed = build(cfg, **AMP_OPTIONS)
    resumed.load_state_dict(state)
    assert resumed['diffusion'].loss_scaler.get_scale() == 2.**13


def test_amp_skips_both_steps_on_inf_and_halves_the_scale_once(
        cfg, cpu_grad_scaler):
    model, wrapper = build(cfg, **AMP_OPTIONS)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrapper.update_params(head_loss(model, 0) * float('inf'))
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert wrapper['gcn'].loss_scaler.get_scale() == 2.**9
    assert all(p.grad is None for p in model.parameters())
    # The next finite step updates both again.
    wrapper.update_params(head_loss(model, 1))
    changed = {n for n, p in model.named_parameters()
               if not torch.equal(p, before[n])}
    assert 'cls_head.fc.weight' in changed
    assert 'cls_head.projection.weight' in changed
