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
from cocodiff_mm.utils.config_keys import ConfigError

init_default_scope('mmaction')
NUM_CLASSES = 60
C = 32


def head_cfg(bank_dir, **overrides):
    cfg = dict(
        type='DiffusionAugmentedHead',
        num_classes=NUM_CLASSES,
        in_channels=C,
        text_bank=dict(texts='ntu120', encoder='minilm',
                       cache_dir=str(bank_dir)),
        diffusion=dict(type='GaussianDiffusion', num_steps=5),
        denoiser=dict(type='ConditionalUNet1D', base_channels=16))
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
    """Record (step, grad enabled) of every denoiser call of ``head``."""
    calls = []
    net = head.denoiser
    original = net.check_inputs if hasattr(net, 'check_inputs') else None

    def hook(module, args):
        calls.append((int(args[1][0]), torch.is_grad_enabled()))

    if original is None:  # the conv UNet: a plain forward per call
        net.register_forward_pre_hook(hook)
    else:  # the MLP UNet validates every call, bound or not

        def check_inputs(x, t):
            calls.append((int(t[0]), torch.is_grad_enabled()))
            return original(x, t)

        net.check_inputs = check_inputs
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


def test_bad_generation_options_are_refused(text_bank_cache):
    for generation, message in [(dict(sampler='ddim'), 'ddim_steps'),
                                (dict(sampler='euler'), 'sampler'),
                                (dict(grad_steps=0), 'grad_steps'),
                                (dict(grad_step=1), 'grad_step')]:
        with pytest.raises(ValueError, match=message):
            MODELS.build(head_cfg(text_bank_cache, generation=generation))
    with pytest.raises(ValueError, match='text_mode'):
        MODELS.build(head_cfg(text_bank_cache, text_mode='medium'))


def test_start_step_past_the_chain_is_refused_at_build(text_bank_cache):
    """The default start (step 10 of 30) with T = 10 alone: refused when
    the head is built, with the step of the same noise level (alpha-bar of
    the T = 10 chain: 0.67, 0.44, 0.24, 0.11 at steps 2-5)."""
    diffusion = dict(type='GaussianDiffusion', num_steps=10)
    with pytest.raises(ConfigError, match=(
            r'generation\.start_step=10 does not fit model\.cls_head\.'
            r'diffusion\.num_steps=10 \(0-based steps 0\.\.9\).*'
            r'is start_step=4 here')):
        MODELS.build(head_cfg(text_bank_cache, diffusion=diffusion,
                              generation=dict(start_step=10)))
    for fits in (None, 0, 9):
        MODELS.build(head_cfg(text_bank_cache, diffusion=diffusion,
                              generation=dict(start_step=fits)))


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
    # A text file with fewer classes than the head is refused when the bank
    # is built, before training (UTD-MHAD has 27 classes, the head 60).
    cfg = head_cfg(text_bank_cache)
    cfg['text_bank']['texts'] = 'utd_mhad'
    head = MODELS.build(cfg)
    with pytest.raises(ValueError, match='27'):
        head.text_bank.build()
        head.text_bank.check_num_classes(NUM_CLASSES, 'model.cls_head')


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
        text_bank_cache, feats):
    """acc_generated: the frozen fc's top-1 agreement with the conditioning
    label on generated features; a classifier that maps every feature to
    class 0 agrees exactly on the label-0 samples."""
    head = MODELS.build(head_cfg(text_bank_cache, text_mode='none'))
    head.train()
    with torch.no_grad():
        head.fc.weight.zero_()
        head.fc.bias.zero_()
        head.fc.bias[0] = 1.0
    head.set_objective('diffusion')
    stage1 = head.loss(feats, samples([0, 0, 1, 2, 3, 4]))
    assert float(stage1['acc_generated']) == pytest.approx(2 / 6)
