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
        'loss_cls', 'loss_gen_cls', 'top1_acc', 'top5_acc', 'acc_generated'
    }
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    # Generated-feature CE and L_con train the denoiser through the chain.
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in head.denoiser.parameters())
    assert head.fc.weight.grad.abs().sum() > 0
    # The fine text conditions the denoiser only where the ablation says so.
    assert (head.denoiser.cond_dim is not None) == (text_mode in ('both',
                                                                  'fine'))
    assert (head.projection is not None) == (text_mode in ('both', 'coarse'))
    # text_mode='none' never needs the texts.
    assert head.text_bank.is_built == (text_mode != 'none')


def test_generation_options(text_bank_cache, feats):
    head = MODELS.build(
        head_cfg(text_bank_cache,
                 generation=dict(sampler='ddim', ddim_steps=2, start_step=3)))
    head.train()
    losses = head.loss(feats, samples([0, 1, 2, 3, 4, 5]))
    assert torch.isfinite(losses['loss_gen_cls'])
    with pytest.raises(ValueError, match='ddim_steps'):
        MODELS.build(head_cfg(text_bank_cache,
                              generation=dict(sampler='ddim')))
    with pytest.raises(ValueError, match='sampler'):
        MODELS.build(head_cfg(text_bank_cache,
                              generation=dict(sampler='euler')))
    with pytest.raises(ValueError, match='text_mode'):
        MODELS.build(head_cfg(text_bank_cache, text_mode='medium'))


def test_text_bank_class_count_must_match_the_head(text_bank_cache):
    cfg = head_cfg(text_bank_cache)
    cfg['text_bank']['num_classes'] = 120
    with pytest.raises(ValueError, match='120.*60'):
        MODELS.build(cfg)
    cfg = head_cfg(text_bank_cache, num_classes=27)
    cfg['text_bank']['texts'] = 'utd_mhad'
    cfg['text_bank']['num_classes'] = 27
    head = MODELS.build(cfg)
    head.text_bank.build()
    head.text_bank.check_num_classes(27, 'model.cls_head')


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
    from conftest import run_ok, run_tool
    src = tmp_path / 'in.pth'
    full = MODELS.build(Config.fromfile(
        'configs/ctrgcn_cocodiff_ntu60_xsub.py').model)
    torch.save(dict(state_dict=full.state_dict()), src)
    result = run_ok('tools/export_inference_ckpt.py', str(src),
                    str(tmp_path / 'out.pth'), '--config',
                    'configs/ctrgcn_ntu60_xsub.py')
    assert 'loads strictly into configs/ctrgcn_ntu60_xsub.py' in result.stdout
    missing = run_tool('tools/export_inference_ckpt.py',
                       str(tmp_path / 'nope.pth'), str(tmp_path / 'x.pth'))
    assert missing.returncode == 2 and 'nope.pth' in missing.stderr


def test_generated_ce_is_scaled_and_trains_only_the_classifier(
        text_bank_cache, feats):
    head = MODELS.build(head_cfg(text_bank_cache, text_mode='none'))
    head.train()
    data = samples([0, 1, 2, 3, 4, 5])
    head.gen_cls_scale = 0.0
    assert head.loss(feats, data)['loss_gen_cls'] == 0
    head.gen_cls_scale = 1.0
    losses = head.loss(feats, data)
    losses['loss_gen_cls'].backward()
    assert head.fc.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in head.denoiser.parameters())
    # Stage-1 objective logs how class-faithful the generated features are.
    head.set_objective('diffusion')
    stage1 = head.loss(feats, data)
    assert 0.0 <= float(stage1['acc_generated']) <= 1.0
