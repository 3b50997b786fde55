"""What a checkpoint records of its run, and the finiteness rule, without a
Runner: :mod:`cocodiff_mm.engine.run_record`, ``non_finite_keys`` and
``read_checkpoint``'s refusal, and the guard hooks the tools add.

The end-to-end cases (``tools/train.py --resume`` refusing another plan,
``--replan``, NaN losses, weights and scores) are in ``tests/test_faults.py``.
"""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import REPO

from cocodiff_mm.engine.checkpoint_match import (NonFiniteCheckpointError,
                                                 non_finite_keys,
                                                 read_checkpoint)
from cocodiff_mm.engine.launch import add_guard_hooks
from cocodiff_mm.engine.run_record import (META_KEY, ResumePlanError,
                                           check_resume_record,
                                           record_differences, run_record)

COCODIFF = str(REPO / 'configs' / 'ctrgcn_cocodiff_ntu60_xsub.py')
BASELINE = str(REPO / 'configs' / 'ctrgcn_ntu60_xsub.py')


@pytest.fixture(autouse=True)
def mmaction_scope():
    init_default_scope('mmaction')


def config(path: str, **options) -> Config:
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(options)
    return cfg


def test_the_record_holds_the_resolved_plan_and_model():
    record = run_record(config(COCODIFF, **{
        'train_cfg.pretrained': 'gcn.pth', 'train_cfg.stage1.epochs': 4,
        'train_cfg.stage1.faithfulness_target': 0.8}))
    plan = record['plan']
    # A pretrained GCN: no stage 0; stage 1 ends early at 80 %.
    assert plan == dict(
        loop='TwoStageLoop', stage1_source='pretrained',
        stage1=dict(begin=0, end=4, objective='diffusion',
                    faithfulness_target=0.8),
        stage2=dict(begin=4, end=94, objective='joint',
                    faithfulness_target=None))
    # Defaults the config leaves out are filled from the class.
    assert record['model']['backbone']['base_channels'] == 64
    assert record['model']['backbone']['graph_cfg']['layout'] == 'nturgb+d'
    assert record['model']['cls_head'] == dict(
        type='DiffusionAugmentedHead', num_classes=60, in_channels=256)


def test_a_baseline_records_its_loop_only():
    """max_epochs may grow on --resume (as in mmaction2): not recorded."""
    assert run_record(config(BASELINE))['plan'] == dict(
        loop='EpochBasedTrainLoop')


def test_differences_name_key_old_and_new():
    old = run_record(config(COCODIFF))
    new = run_record(config(COCODIFF, **{
        'train_cfg.stage0.epochs': 2, 'train_cfg.stage1.epochs': 29,
        'model.backbone.base_channels': 16}))
    assert record_differences(old, new) == [
        'plan.stage0.end: 90 (checkpoint) vs 2 (config)',
        'plan.stage1.begin: 90 (checkpoint) vs 2 (config)',
        'plan.stage1.end: 120 (checkpoint) vs 31 (config)',
        'plan.stage2.begin: 120 (checkpoint) vs 31 (config)',
        'plan.stage2.end: 210 (checkpoint) vs 121 (config)',
        'model.backbone.base_channels: 64 (checkpoint) vs 16 (config)']
    # A stage that only one side runs.
    none = run_record(config(COCODIFF, **{'train_cfg.stage1_source': 'none'}))
    assert 'plan.stage1: {begin=90, end=120, objective=diffusion, ' \
        'faithfulness_target=None} (checkpoint) vs absent (config)' in \
        record_differences(old, none)


def test_check_resume_record_refuses_warns_or_passes():
    cfg = config(COCODIFF)
    lines = []
    check_resume_record(dict(meta={META_KEY: run_record(cfg)}), 'a.pth',
                        cfg, lines.append)
    assert lines == []
    check_resume_record(dict(meta=dict(epoch=3)), 'old.pth', cfg,
                        lines.append)
    assert lines == ['warning: --resume old.pth records no plan or model '
                     '(written before they were recorded): not checked '
                     'against the config']
    other = config(COCODIFF, **{'train_cfg.stage2.epochs': 10})
    with pytest.raises(ResumePlanError) as info:
        check_resume_record(dict(meta={META_KEY: run_record(other)}),
                            'b.pth', cfg, lines.append)
    assert str(info.value).startswith(
        '--resume b.pth: the checkpoint was trained with another plan or '
        'model: plan.stage2.end: 130 (checkpoint) vs 210 (config). ')
    assert '--replan' in str(info.value)


def test_the_record_survives_a_safe_load(tmp_path):
    """Plain containers only: a weights_only load reads it back."""
    record = run_record(config(COCODIFF))
    torch.save(dict(meta={META_KEY: record}, state_dict={}),
               tmp_path / 'c.pth')
    assert torch.load(tmp_path / 'c.pth',
                      weights_only=True)['meta'][META_KEY] == record


def test_non_finite_keys_lists_nan_and_inf_tensors_in_order():
    state = {'a': torch.ones(2), 'b': torch.tensor([1.0, float('inf')]),
             'n': torch.tensor([3]), 'c': torch.tensor([float('nan')])}
    assert non_finite_keys(state) == ['b', 'c']


def test_read_checkpoint_refuses_non_finite_weights(tmp_path):
    path = tmp_path / 'nan.pth'
    torch.save(dict(state_dict={'module.w': torch.ones(2),
                                'module.v': torch.full((2, ), float('nan'))}),
               path)
    with pytest.raises(NonFiniteCheckpointError) as info:
        read_checkpoint(str(path))
    assert str(info.value) == (
        f'{path}: non-finite weights (NaN/inf) in 1 tensors (v): it comes '
        'from a run that diverged; use an earlier checkpoint of that run')


def test_add_guard_hooks_adds_each_once():
    cfg = config(COCODIFF)
    before = [hook['type'] for hook in cfg.custom_hooks]
    add_guard_hooks(cfg)
    add_guard_hooks(cfg)
    assert [hook['type'] for hook in cfg.custom_hooks] == [
        *before, 'NonFiniteHook', 'RunRecordHook']
    baseline = config(BASELINE)
    add_guard_hooks(baseline)
    assert [hook['type'] for hook in baseline.custom_hooks] == [
        'NonFiniteHook', 'RunRecordHook']
