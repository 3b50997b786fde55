"""DiffusionAugmentedHead: stock inference path, losses per objective and
ablation, and the zero-inference-cost export."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint
from torch.utils.flop_counter import FlopCounterMode

from mmaction.models.heads import GCNHead
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample

from cocodiff_mm.engine.inference_export import export_inference_checkpoint
from cocodiff_mm.models.heads import DiffusionAugmentedHead, is_cocodiff_head
from cocodiff_mm.utils.config_keys import ConfigError

init_default_scope('mmaction')
NUM_CLASSES = 60
C = 32


def head_cfg(bank_dir, generation=None, **overrides):
    """A small head: T = 5, the full chain with a graph through every step
    unless ``generation`` says otherwise (key by key)."""
    cfg = dict(
        type='DiffusionAugmentedHead',
        num_classes=NUM_CLASSES,
        in_channels=C,
        text_bank=dict(texts='ntu120', classes=NUM_CLASSES,
                       encoder='minilm', cache_dir=str(bank_dir)),
        diffusion=dict(type='GaussianDiffusion', num_steps=5),
        denoiser=dict(type='ConditionalUNet1D', base_channels=16),
        generation=dict(dict(start_step=None, grad_steps=None),
                        **(generation or {})))
    cfg.update(overrides)
    return cfg


def samples(labels):
    out = []
    for label in labels:
        sample = ActionDataSample()
        sample.set_gt_label(int(label))
        out.append(sample)
    return out


@pytest.fixture
def feats():
    torch.manual_seed(0)
    return torch.randn(6, 2, C, 4, 25)


def test_forward_and_predict_are_the_stock_gcn_head(text_bank_cache, feats):
    head = MODELS.build(head_cfg(text_bank_cache))
    head.init_weights()
    stock = GCNHead(num_classes=NUM_CLASSES, in_channels=C)
    stock.fc.load_state_dict(head.fc.state_dict())
    head.eval()
    stock.eval()
    assert torch.equal(head(feats), stock(feats))
    data = samples([0, 1, 2, 3, 4, 5])
    ours = head.predict(feats, copy.deepcopy(data))
    theirs = stock.predict(feats, copy.deepcopy(data))
    for a, b in zip(ours, theirs):
        assert torch.equal(a.pred_score, b.pred_score)
    # Inference never touches the texts.
    assert not head.text_bank.is_built
    # Pooling for the diffusion matches GCNHead's pooling exactly.
    manual = feats.mean(dim=(3, 4)).mean(dim=1)
    assert torch.allclose(head.pool_features(feats), manual, atol=1e-6)


@pytest.mark.parametrize('text_mode, expected', [
    ('both', {'loss_rec', 'loss_con'}),
    ('fine', {'loss_rec'}),
    ('coarse', {'loss_rec', 'loss_con'}),
    ('none', {'loss_rec'}),
])
def test_losses_per_objective_and_text_mode(text_bank_cache, feats, text_mode,
                                            expected):
    head = MODELS.build(head_cfg(text_bank_cache, text_mode=text_mode))
    head.init_weights()
    head.train()
    data = samples([0, 0, 1, 1, 2, 2])

    head.set_objective('classify')
    assert {'loss_cls', 'top1_acc', 'top5_acc'} == set(head.loss(feats, data))

    head.set_objective('diffusion')
    losses = head.loss(feats, data)
    assert set(losses) == expected | {'acc_generated'}
    assert all(torch.isfinite(v) for v in losses.values())

    head.set_objective('joint')
    losses = head.loss(feats.requires_grad_(), data)
    assert set(losses) == expected | {
        'loss_cls', 'loss_gen_cls', 'top1_acc', 'top5_acc', 'acc_generated',
        'ce_generated'
    }
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert head.fc.weight.grad.abs().sum() > 0
    # The fine text conditions the denoiser only where the ablation says so.
    assert (head.denoiser.cond_dim is not None) == (text_mode in ('both',
                                                                  'fine'))
    assert (head.projection is not None) == (text_mode in ('both', 'coarse'))
    # text_mode='none' never needs the texts.
    assert head.text_bank.is_built == (text_mode != 'none')


def record_denoiser_calls(head):
    """Record (step, grad enabled) of every denoiser call of ``head``: each
    goes through the module's ``__call__``, so a forward hook sees it."""
    calls = []

    def hook(module, args):
        calls.append((int(args[1][0]), torch.is_grad_enabled()))

    head.denoiser.register_forward_pre_hook(hook)
    return calls


@pytest.mark.parametrize('denoiser', [
    dict(type='ConditionalUNet1D', base_channels=16),
    dict(type='ConditionalMLPUNet', widths=(C, )),
])
@pytest.mark.parametrize('generation, chain, tracked', [
    (dict(), [4, 3, 2, 1, 0], 5),
    (dict(start_step=2), [2, 1, 0], 3),
    (dict(grad_steps=2), [4, 3, 2, 1, 0], 2),
    (dict(sampler='ddim', ddim_steps=2, start_step=3), [3, 1], 2),
    (dict(sampler='ddim', ddim_steps=3, grad_steps=1), [4, 2, 1], 1),
])
def test_generation_options_decide_the_chain(text_bank_cache, feats,
                                             denoiser, generation, chain,
                                             tracked):
    """One L_rec call at a random step, then exactly the configured chain:
    its steps, and how many of them keep a graph."""
    head = MODELS.build(head_cfg(text_bank_cache, denoiser=denoiser,
                                 generation=generation))
    head.train()
    head.set_objective('diffusion')
    calls = record_denoiser_calls(head)
    head.loss(feats, samples([0, 1, 2, 3, 4, 5]))
    assert len(calls) == 1 + len(chain)
    assert calls[0][1]  # L_rec always trains the denoiser
    assert [step for step, _ in calls[1:]] == chain
    grads = [grad for _, grad in calls[1:]]
    assert grads == [False] * (len(chain) - tracked) + [True] * tracked


@pytest.mark.parametrize('generation, key', [
    (dict(sampler='euler'), 'sampler'),
    (dict(sampler='ddim'), 'ddim_steps'),  # DDIM needs its step count
    (dict(sampler='ddim', ddim_steps=0), 'ddim_steps'),
    (dict(sampler='ddim', ddim_steps=6), 'ddim_steps'),  # T = 5
    (dict(sampler='ddim', start_step=2, ddim_steps=4), 'ddim_steps'),
    (dict(ddim_steps=2.5), 'ddim_steps'),
    (dict(eta=-0.5), 'eta'),
    (dict(eta='0'), 'eta'),
    (dict(start_step=-1), 'start_step'),
    (dict(start_step=1.5), 'start_step'),
    (dict(start_step=True), 'start_step'),
    (dict(grad_steps=0), 'grad_steps'),
    (dict(grad_steps=-1), 'grad_steps'),
    (dict(grad_steps=1.5), 'grad_steps'),
    (dict(grad_steps=True), 'grad_steps'),
    (dict(grad_step=1), 'grad_step'),
])
def test_bad_generation_options_are_refused_at_build(text_bank_cache,
                                                      generation, key):
    """The head's constructor is where the generation options are checked
    (the diffusion runs them unchecked); the error names the config key."""
    with pytest.raises(ConfigError,
                       match=rf'^model\.cls_head\.generation\.{key}\b'):
        MODELS.build(head_cfg(text_bank_cache, generation=generation))


def test_good_generation_options_are_kept(text_bank_cache):
    for generation in (dict(sampler='ddim', ddim_steps=5, eta=1),
                       dict(sampler='ddim', start_step=2, ddim_steps=3),
                       dict(start_step=0, grad_steps=1)):
        head = MODELS.build(head_cfg(text_bank_cache, generation=generation))
        assert generation.items() <= head.generation.items()


def test_bad_text_mode_is_refused(text_bank_cache):
    with pytest.raises(ConfigError, match='model.cls_head.text_mode'):
        MODELS.build(head_cfg(text_bank_cache, text_mode='medium'))


def test_start_step_past_the_chain_is_refused_at_build(text_bank_cache):
    """The shipped start (step 10 of 30) with T = 10 alone: refused when
    the head is built, with the step of the same noise level (alpha-bar of
    the T = 10 chain: 0.67, 0.44, 0.24, 0.11 at steps 2-5)."""
    diffusion = dict(type='GaussianDiffusion', num_steps=10)
    with pytest.raises(ConfigError, match=(
            r'generation\.start_step must be None or an int in \[0, 9\], '
            r'got 10 \(0-based steps of model\.cls_head\.diffusion\.'
            r'num_steps=10.*\(alpha-bar 0\.24\).*start_step=4 here')):
        MODELS.build(head_cfg(text_bank_cache, diffusion=diffusion,
                              generation=dict(start_step=10)))
    for fits in (None, 0, 9):
        MODELS.build(head_cfg(text_bank_cache, diffusion=diffusion,
                              generation=dict(start_step=fits)))


def test_code_defaults_build_the_shipped_head():
    """DiffusionAugmentedHead's defaults are configs/_base_/cocodiff.py's:
    the same modules, parameters and generation options."""
    shipped = Config.fromfile('configs/_base_/cocodiff.py').cocodiff_head
    shipped = dict(shipped.to_dict(), num_classes=NUM_CLASSES,
                   in_channels=256)
    plain = dict(type='DiffusionAugmentedHead', num_classes=NUM_CLASSES,
                 in_channels=256, text_bank=shipped['text_bank'])
    heads = []
    for cfg in (shipped, plain):
        torch.manual_seed(0)
        heads.append(MODELS.build(cfg))
    assert str(heads[0]) == str(heads[1])
    assert heads[0].generation == heads[1].generation
    for name, option in vars(heads[0]).items():
        if not name.startswith('_') and not isinstance(option, torch.Tensor):
            assert option == getattr(heads[1], name), name
    state = heads[1].state_dict()
    for key, value in heads[0].state_dict().items():
        assert torch.equal(value, state[key]), key


def test_is_cocodiff_head(text_bank_cache):
    head = MODELS.build(head_cfg(text_bank_cache))

    class Subclass(DiffusionAugmentedHead):
        pass

    for yes in (head, DiffusionAugmentedHead, Subclass,
                'DiffusionAugmentedHead', 'mmaction.DiffusionAugmentedHead'):
        assert is_cocodiff_head(yes), yes
    for no in (GCNHead(NUM_CLASSES, C), GCNHead, 'GCNHead', 'NoSuchHead',
               None, dict(type='DiffusionAugmentedHead')):
        assert not is_cocodiff_head(no), no


def open_output_layer(head):
    """Replace the denoiser's zero output layer by random weights, so that
    gradients reach the layers before it."""
    net = head.denoiser
    layer = net.out_proj if hasattr(net, 'out_proj') else net.out_conv
    torch.nn.init.normal_(layer.weight, std=0.1)


def text_path(head):
    """Parameters that only the fine-text condition feeds."""
    net = head.denoiser
    mlp = net.cond_mlp if hasattr(net, 'cond_mlp') else \
        net.embedding.cond_mlp
    return list(mlp.parameters())


@pytest.mark.parametrize('denoiser', [
    dict(type='ConditionalUNet1D', base_channels=16),
    dict(type='ConditionalMLPUNet', widths=(C, )),
])
@pytest.mark.parametrize('grad_steps', [None, 1, 3])
def test_coarse_text_loss_alone_trains_the_denoiser(text_bank_cache, feats,
                                                    denoiser, grad_steps):
    """λ·L_con reaches the denoiser (its body and its text path) through the
    chain, with full and with truncated backpropagation."""
    head = MODELS.build(head_cfg(text_bank_cache, denoiser=denoiser,
                                 generation=dict(grad_steps=grad_steps)))
    head.train()
    open_output_layer(head)
    head.set_objective('diffusion')
    losses = head.loss(feats, samples([0, 0, 1, 1, 2, 2]))
    losses['loss_con'].backward()
    body = [p for name, p in head.denoiser.named_parameters()
            if 'cond_mlp' not in name and 'time_mlp' not in name
            and 'embedding' not in name]
    for params in (body, text_path(head)):
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in params)
    assert head.projection.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('trains_diffusion', [False, True])
def test_generated_ce_trains_the_denoiser_only_when_asked(
        text_bank_cache, feats, trains_diffusion):
    head = MODELS.build(head_cfg(
        text_bank_cache, gen_cls_trains_diffusion=trains_diffusion,
        denoiser=dict(type='ConditionalMLPUNet', widths=(C, ))))
    head.train()
    open_output_layer(head)
    losses = head.loss(feats, samples([0, 1, 2, 3, 4, 5]))
    losses['loss_gen_cls'].backward()
    assert head.fc.weight.grad.abs().sum() > 0
    reached = any(p.grad is not None and p.grad.abs().sum() > 0
                  for p in head.denoiser.parameters())
    assert reached == trains_diffusion


def test_text_bank_class_count_must_match_the_head(text_bank_cache):
    cfg = head_cfg(text_bank_cache)
    cfg['text_bank']['num_classes'] = 120
    with pytest.raises(ValueError, match='120.*60'):
        MODELS.build(cfg)
    # The bank gets the head's class count, so a text file with fewer
    # classes is refused when the bank reads it (UTD-MHAD has 27, the head
    # 60); tools/ call the same loader before training.
    cfg = head_cfg(text_bank_cache)
    cfg['text_bank']['texts'] = 'utd_mhad'
    head = MODELS.build(cfg)
    assert head.text_bank.num_classes == NUM_CLASSES
    with pytest.raises(ValueError, match='have only 27 classes; cannot take '
                       f'the first {NUM_CLASSES}'):
        head.text_bank.build()


def perturbed(module):
    """Add 1 to every parameter; return a copy of the new state."""
    with torch.no_grad():
        for param in module.parameters():
            param.add_(1.0)
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize('init_cfg, reaches_projection', [
    (dict(type='Constant', layer='Linear', val=0.5, bias=0.25), True),
    (dict(type='Normal', std=0.01,
          override=[dict(type='Constant', name='fc', val=0.5, bias=0.25),
                    dict(type='Constant', name='projection', val=2.0)]),
     'override'),
])
def test_init_cfg_is_honoured_and_reinit_touches_fc_only(
        tmp_path, init_cfg, reaches_projection):
    head = MODELS.build(head_cfg(
        tmp_path, text_mode='coarse', init_cfg=init_cfg,
        denoiser=dict(type='ConditionalMLPUNet', widths=(C, ))))
    head.init_weights()
    assert torch.all(head.fc.weight == 0.5) and torch.all(head.fc.bias == 0.25)
    if reaches_projection == 'override':
        assert torch.all(head.projection.weight == 2.0)
    else:  # layer='Linear' is the whole head's Linear layers
        assert torch.all(head.projection.weight == 0.5)

    # The loop's stage-2 reset: fc as at build time, the rest as trained.
    perturbed(head.fc)
    projection = perturbed(head.projection)
    denoiser = perturbed(head.denoiser)
    head.init_weights()
    assert torch.all(head.fc.weight == 0.5) and torch.all(head.fc.bias == 0.25)
    for part, state in ((head.projection, projection),
                        (head.denoiser, denoiser)):
        for key, value in part.state_dict().items():
            assert torch.equal(value, state[key]), key


def test_default_init_is_gcn_head_fc_and_keeps_the_denoiser(tmp_path):
    head = MODELS.build(head_cfg(
        tmp_path, denoiser=dict(type='ConditionalMLPUNet', widths=(C, ))))
    assert head.init_cfg is None
    built = {k: v.clone() for k, v in head.denoiser.state_dict().items()}
    for _ in range(2):  # build time, then the stage-2 reset
        perturbed(head.fc)
        torch.manual_seed(0)
        head.init_weights()
        assert 0.005 < head.fc.weight.std() < 0.015
        assert torch.all(head.fc.bias == 0)
        for key, value in head.denoiser.state_dict().items():
            assert torch.equal(value, built[key]), key
        # The denoiser's output layer starts at zero.
        assert torch.all(head.denoiser.out_proj.weight == 0)


def test_pretrained_init_cfg_loads_a_trained_head(tmp_path):
    source = MODELS.build(head_cfg(tmp_path, text_mode='coarse'))
    trained = perturbed(source)
    checkpoint = tmp_path / 'trained.pth'
    torch.save(dict(state_dict={f'cls_head.{k}': v
                                for k, v in trained.items()}), checkpoint)
    head = MODELS.build(head_cfg(
        tmp_path, text_mode='coarse',
        init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint),
                      prefix='cls_head.')))
    head.init_weights()
    for key, value in head.state_dict().items():
        assert torch.equal(value, trained[key]), key
    # Stage 2 reloads fc only.
    perturbed(head.fc)
    denoiser = perturbed(head.denoiser)
    head.init_weights()
    assert torch.equal(head.fc.weight, trained['fc.weight'])
    for key, value in head.denoiser.state_dict().items():
        assert torch.equal(value, denoiser[key]), key


def tiny_model_cfg(path):
    cfg = Config.fromfile(path)
    cfg.model.backbone.base_channels = 8
    cfg.model.cls_head.in_channels = C
    return cfg


def test_exported_checkpoint_is_the_stock_gcn(tmp_path, text_bank_cache):
    """Zero inference cost: strict load into the baseline, same logits,
    same parameters and FLOPs at inference."""
    cocodiff_cfg = tiny_model_cfg('configs/ctrgcn_cocodiff_ntu60_xsub.py')
    cocodiff_cfg.model.cls_head.text_bank.cache_dir = str(text_bank_cache)
    baseline_cfg = tiny_model_cfg('configs/ctrgcn_ntu60_xsub.py')
    cocodiff = MODELS.build(cocodiff_cfg.model)
    cocodiff.init_weights()
    baseline = MODELS.build(baseline_cfg.model)
    assert type(baseline.cls_head) is GCNHead

    src, dst = tmp_path / 'cocodiff.pth', tmp_path / 'inference.pth'
    torch.save(dict(meta=dict(epoch=3), state_dict=cocodiff.state_dict()),
               src)
    dropped = export_inference_checkpoint(str(src), str(dst))
    assert dropped and all(k.startswith('cls_head.') for k in dropped)
    assert not any(k.startswith('cls_head.fc.') for k in dropped)
    load_checkpoint(baseline, str(dst), map_location='cpu', strict=True)

    cocodiff.eval()
    baseline.eval()
    inputs = torch.randn(2, 1, 2, 16, 25, 3)
    with torch.no_grad():
        ours = cocodiff(inputs, mode='tensor')
        theirs = baseline(inputs, mode='tensor')
    assert torch.equal(ours, theirs)

    kept = torch.load(dst, weights_only=False)['state_dict']
    assert sum(v.numel() for k, v in kept.items()
               if not k.endswith('num_batches_tracked')) == sum(
                   p.numel() for p in baseline.parameters()) + sum(
                       b.numel() for k, b in baseline.named_buffers()
                       if not k.endswith('num_batches_tracked'))

    def flops(model):
        counter = FlopCounterMode(display=False)
        with counter:
            model(inputs, mode='tensor')
        return counter.get_total_flops()

    assert flops(cocodiff) == flops(baseline) > 0


def test_export_tool_checks_strict_load(tmp_path, text_bank_cache):
    from conftest import run_ok
    src = tmp_path / 'in.pth'
    full = MODELS.build(Config.fromfile(
        'configs/ctrgcn_cocodiff_ntu60_xsub.py').model)
    torch.save(dict(state_dict=full.state_dict()), src)
    result = run_ok('tools/export_inference_ckpt.py', str(src),
                    str(tmp_path / 'out.pth'), '--config',
                    'configs/ctrgcn_ntu60_xsub.py')
    assert 'loads strictly into configs/ctrgcn_ntu60_xsub.py' in result.stdout
    # A checkpoint that fails the check, or is missing or corrupt, is
    # refused with nothing written: tests/test_faults.py.


def test_generated_ce_is_scaled_and_smoothed_like_the_real_one(
        text_bank_cache, feats):
    # Frozen feature statistics, so that repeated calls see the same input.
    head = MODELS.build(head_cfg(text_bank_cache, text_mode='none',
                                 loss_gen_weight=0.5,
                                 feature_norm_momentum=0.0))
    head.train()
    data = samples([0, 1, 2, 3, 4, 5])
    head.gen_cls_scale = 0.0
    assert head.loss(feats, data)['loss_gen_cls'] == 0
    head.gen_cls_scale = 0.5
    torch.manual_seed(0)
    scaled = head.loss(feats, data)['loss_gen_cls']
    head.gen_cls_scale = 1.0
    torch.manual_seed(0)
    losses = head.loss(feats, data)
    full = losses['loss_gen_cls']
    torch.testing.assert_close(scaled * 2, full)
    # ce_generated is the CE before weight and ramp, and trains nothing.
    torch.testing.assert_close(losses['ce_generated'] * 0.5, full)
    assert not losses['ce_generated'].requires_grad
    # Label smoothing of the head applies to generated features too.
    head.label_smooth_eps = 0.5
    torch.manual_seed(0)
    smoothed = head.loss(feats, data)['loss_gen_cls']
    assert not torch.allclose(smoothed, full)


def test_stage1_logs_how_often_the_frozen_classifier_agrees(
        text_bank_cache, feats, monkeypatch):
    """acc_generated: the frozen fc's top-1 agreement with the conditioning
    label on the generated features, not on the real ones: the fc below
    puts every generated feature in its class and half the real ones in
    class 0."""
    head = MODELS.build(head_cfg(text_bank_cache, text_mode='none'))
    head.train()
    labels = [0, 0, 1, 2, 3, 4]
    with torch.no_grad():  # fc(x)[k] = x[k] for the first C classes
        head.fc.weight.zero_()
        head.fc.weight[:, :C] = 0.1 * torch.eye(NUM_CLASSES, C)
        head.fc.bias.zero_()
        head.fc.bias[0] = 1.0
    diffusion_losses = head.diffusion_losses

    def one_hot_generated(pooled, labels):
        losses, _ = diffusion_losses(pooled, labels)
        return losses, 100 * torch.nn.functional.one_hot(labels, C).to(
            pooled.dtype)

    monkeypatch.setattr(head, 'diffusion_losses', one_hot_generated)
    real = head.fc(head.pool_features(feats)).argmax(dim=1)
    assert real.tolist() == [0] * 6  # 2 of 6 right on the real features
    head.set_objective('diffusion')
    stage1 = head.loss(feats, samples(labels))
    assert float(stage1['acc_generated']) == 1
    # Stage 2 logs it too, also when the head's topk leaves top-1 out.
    for topk in ((1, 5), (5, )):
        head.topk = topk
        head.set_objective('joint')
        joint = head.loss(feats, samples(labels))
        assert float(joint['acc_generated']) == 1
