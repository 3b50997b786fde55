"""The training-cost benchmark: its whole-run arithmetic and a real run."""
import json

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import run_ok
from cocodiff_mm.analysis.training_cost import (TrainingCostBenchmark,
                                                clip_len_of,
                                                whole_run_estimate)



def arms(**ratios):
    return {name: dict(seconds=ratio, ratio=ratio)
            for name, ratio in dict(baseline=1.0, **ratios).items()}


def test_whole_run_counts_stage1_epochs_extraction_and_stage2():
    measured = arms(stage1_cached=0.05, extract=0.3, stage2=1.02)
    cfg = dict(stage0=dict(epochs=90), stage1=dict(epochs=30),
               stage2=dict(epochs=90), stage1_source='pretrained')
    estimate = whole_run_estimate(measured, cfg)
    expected = (30 * 0.05 + 0.3 + 90 * 1.02) / 90
    assert estimate['whole_run'] == pytest.approx(expected)
    assert estimate['per_epoch_both_stages'] == pytest.approx(1.07)
    assert estimate['with_stage0'] == pytest.approx(expected + 1.0)
    # A pretrained GCN skips stage 0; no stage 1 skips the extraction too.
    cfg['pretrained'] = 'gcn.pth'
    assert whole_run_estimate(measured, cfg)['with_stage0'] == \
        pytest.approx(expected)
    none = whole_run_estimate(measured, dict(cfg, stage1_source='none'))
    assert none['whole_run'] == pytest.approx(1.02)


def small_demo_cfg(bank_dir):
    cfg = Config.fromfile('configs/ctrgcn_cocodiff_demo.py')
    cfg.merge_from_dict({
        'model.backbone.base_channels': 8,
        'model.cls_head.in_channels': 32,
        'model.cls_head.denoiser.widths': (32, ),
        'model.cls_head.text_bank.cache_dir': str(bank_dir),
    })
    return cfg


def test_benchmark_times_every_arm_on_the_same_batch(text_bank_cache):
    init_default_scope('mmaction')
    cfg = small_demo_cfg(text_bank_cache)
    assert clip_len_of(cfg) == 32  # the demo pipeline's clip_len
    literal = {'model.cls_head.denoiser': dict(
        _delete_=True, type='ConditionalUNet1D', base_channels=8),
        'model.cls_head.generation.grad_steps': None}
    benchmark = TrainingCostBenchmark(cfg, 'cpu', batch_size=4, frames=8,
                                      literal_options=literal)
    result = benchmark.run(rounds=2, warmup=0)
    assert list(result['arms']) == ['baseline', 'stage1_cached', 'extract',
                                    'stage2', 'stage2_literal']
    for arm in result['arms'].values():
        assert len(arm['all_seconds']) == 2 and arm['seconds'] > 0
    assert result['arms']['baseline']['ratio'] == 1.0
    memory = {name: arm['memory_bytes']
              for name, arm in result['arms'].items()}
    # Extraction keeps no graph; the literal chain keeps the largest one.
    assert memory['extract'] == 0
    assert memory['stage2'] > memory['baseline'] > memory['stage1_cached']
    assert memory['stage2_literal'] > memory['stage2']
    assert result['generation']['grad_steps'] == 3


def test_cli_prints_the_table_and_writes_json(text_bank_cache, tmp_path):
    out = tmp_path / 'cost.json'
    result = run_ok(
        'tools/benchmark_training.py', 'configs/ctrgcn_cocodiff_demo.py',
        '--batch-size', '2', '--frames', '8', '--rounds', '1', '--warmup',
        '0', '--no-literal', '--out', str(out), '--cfg-options',
        'model.backbone.base_channels=8', 'model.cls_head.in_channels=32',
        'model.cls_head.denoiser.widths=(32,)',
        'model.cls_head.text_bank.encoder=minilm',
        f'model.cls_head.text_bank.cache_dir={text_bank_cache}')
    assert 'stage 2 (full objective)' in result.stdout
    assert 'whole run: 8 stage-1 + 12 stage-2 epochs' in result.stdout
    figures = json.loads(out.read_text())
    assert set(figures['arms']) == {'baseline', 'stage1_cached', 'extract',
                                    'stage2'}
    assert figures['estimate']['whole_run'] > 0
