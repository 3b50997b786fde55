"""The paper-literal setting trains end to end through tools/train.py.

``configs/ctrgcn_cocodiff_utd_mhad_paper_literal.py`` (the 1-D conv UNet,
gradients through every step of the 30-step chain) runs all three stages on
generated clips in the UTD-MHAD layout (27 classes, 20 joints, 1 person).
"""
import math
import re

import pytest
import torch

from conftest import (make_skeleton_annotations, read_log, run_ok,
                      tiny_utd_options, write_pickle)

CONFIG = 'configs/ctrgcn_cocodiff_utd_mhad_paper_literal.py'


@pytest.fixture(scope='module')
def utd_layout_pickle(tmp_path_factory):
    path = tmp_path_factory.mktemp('utd_layout') / 'utd_mhad_3d.pkl'
    return write_pickle(
        path, make_skeleton_annotations(27, per_class=2, num_joints=20,
                                        num_persons=1, frames=24))


def literal_options(ann_file, bank_dir):
    return tiny_utd_options(ann_file, batch_size=16) + [
        'model.cls_head.denoiser.base_channels=8',
        'model.cls_head.text_bank.encoder=minilm',
        f'model.cls_head.text_bank.cache_dir={bank_dir}',
        'train_cfg.stage0.epochs=1', 'train_cfg.stage1.epochs=1',
        'train_cfg.stage2.epochs=1', 'default_hooks.logger.interval=1'
    ]


def test_paper_literal_config_trains_every_stage(utd_layout_pickle,
                                                 text_bank_cache, tmp_path):
    run_ok('tools/train.py', CONFIG, '--work-dir', str(tmp_path), '--seed',
           '0', '--cfg-options',
           *literal_options(utd_layout_pickle, text_bank_cache))
    log = read_log(tmp_path)
    assert [int(s) for s in re.findall(r'Stage (\d) \([^)]*\): epoch',
                                       log)] == [0, 1, 2]
    for name in ('loss_rec', 'loss_con', 'loss_gen_cls'):
        values = [float(v) for v in re.findall(rf'{name}: (\S+)', log)]
        assert values and all(math.isfinite(v) for v in values), name
    stage0 = torch.load(tmp_path / 'stage0_final.pth', weights_only=False)
    stage1 = torch.load(tmp_path / 'stage1_final.pth', weights_only=False)
    # The denoiser is the conv UNet, and stage 1 trained it.
    key = 'cls_head.denoiser.out_conv.weight'
    assert not torch.equal(stage0['state_dict'][key],
                           stage1['state_dict'][key])
    cfg = stage1['meta']['cfg']
    assert "'grad_steps': None" in cfg or 'grad_steps=None' in cfg
    assert list(tmp_path.glob('best_acc_top1_epoch_3.pth'))
