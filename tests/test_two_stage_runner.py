"""CoCoDiff end to end through tools/train.py and tools/test.py.

A real mmengine Runner trains configs/ctrgcn_cocodiff_ntu60_xsub.py (shrunk
to 8 base channels and 16 frames) on generated data in the exact NTU pickle
format: all three stages from scratch, resume into the middle of stage 0
and of stage 1, and a run that starts from a baseline checkpoint.
"""
import json
import math
import pickle
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from conftest import (read_log, run_dist_train, run_ok, run_tool,
                      tiny_options)

CONFIG = 'configs/ctrgcn_cocodiff_ntu60_xsub.py'
BASELINE = 'configs/ctrgcn_ntu60_xsub.py'
STAGES = ['train_cfg.stage0.epochs=2', 'train_cfg.stage1.epochs=2',
          'train_cfg.stage2.epochs=1']
LOSS_LINE = re.compile(r'Epoch\(train\)\s+\[(\d+)\]\[\s*\d+/\d+\].*')


def state(path: Path) -> dict:
    """The state dict of a checkpoint."""
    return torch.load(path, map_location='cpu', weights_only=False)[
        'state_dict']


def backbone_equal(a: dict, b: dict) -> bool:
    """Whether two state dicts hold the same backbone weights."""
    keys = [k for k in a if k.startswith('backbone.')]
    return bool(keys) and all(torch.equal(a[k], b[k]) for k in keys)


def announced_stages(log: str) -> list:
    """The stage announced at the start of each epoch, in order."""
    return [int(i) for i in re.findall(r'Stage (\d) \([^)]*\): epoch', log)]


def lr_by_epoch(log: str) -> dict:
    """Learning rates logged in each global epoch, in order."""
    found = {}
    for match in LOSS_LINE.finditer(log):
        # The GCN's lr (the diffusion's AdamW logs diffusion.lr).
        lr = re.search(r' gcn\.lr: (\S+)', match.group(0))
        found.setdefault(int(match.group(1)), []).append(float(lr.group(1)))
    return found


def losses_by_epoch(log: str) -> dict:
    """Loss names logged in each global epoch, and their values."""
    found = {}
    for match in LOSS_LINE.finditer(log):
        epoch = int(match.group(1))
        for name, value in re.findall(
                r'(loss\w*|acc_generated|ce_generated): (\S+)',
                match.group(0)):
            found.setdefault(epoch, {})[name] = float(value)
    return found


@pytest.fixture(scope='module')
def scratch_run(tmp_path_factory, ntu60_pickle, text_bank_cache):
    """All three stages from scratch: 2 + 2 + 1 epochs."""
    work = tmp_path_factory.mktemp('cocodiff_scratch')
    run_ok('tools/train.py', CONFIG, '--work-dir', str(work), '--seed', '0',
           '--cfg-options', *tiny_options(ntu60_pickle, text_bank_cache),
           *STAGES)
    return work


def test_scratch_runs_every_stage_in_order(scratch_run):
    log = read_log(scratch_run)
    assert announced_stages(log) == [0, 0, 1, 1, 2]
    assert 'Stage 1 (diffusion on the frozen GCN): epoch 2/2 ' \
        '(global epoch 4/5)' in log
    losses = losses_by_epoch(log)
    assert set(losses[1]) == {'loss', 'loss_cls'}
    assert set(losses[3]) == {'loss', 'loss_rec', 'loss_con', 'acc_generated'}
    assert {'loss_cls', 'loss_gen_cls', 'loss_rec', 'loss_con',
            'acc_generated', 'ce_generated'} <= set(losses[5])
    for epoch_losses in losses.values():
        assert all(math.isfinite(v) for v in epoch_losses.values())
    # Each stage restarts its warm-up from the base lr (not from the
    # previous stage's decayed or warmed-up value).
    lrs = lr_by_epoch(log)
    assert lrs[3][0] < 0.5 * lrs[2][-1]
    assert lrs[5][0] < 0.5 * lrs[4][-1]
    assert lrs[3][0] == pytest.approx(lrs[1][0], rel=1e-3)
    times = json.loads((scratch_run / 'stage_times.json').read_text())
    assert set(times) == {'stage0', 'stage1', 'stage2'}
    assert (scratch_run / 'stage0_final.pth').is_file()
    assert (scratch_run / 'stage1_final.pth').is_file()
    # Validation runs in stage 2 only, so the best checkpoint is stage 2's.
    best = sorted(scratch_run.glob('best_acc_top1_epoch_*.pth'))
    assert [p.name for p in best] == ['best_acc_top1_epoch_5.pth']
    assert 'Epoch(val) [5]' in log and 'Epoch(val) [2]' not in log


def test_stage1_freezes_the_gcn_and_stage2_starts_fresh(scratch_run):
    stage0 = state(scratch_run / 'stage0_final.pth')
    stage1 = state(scratch_run / 'stage1_final.pth')
    final = state(scratch_run / 'epoch_5.pth')
    assert backbone_equal(stage0, stage1), 'stage 1 changed the frozen GCN'
    assert torch.equal(stage0['cls_head.fc.weight'],
                       stage1['cls_head.fc.weight'])
    # Stage 1 trained the diffusion part.
    assert any(not torch.equal(stage0[k], stage1[k]) for k in stage0
               if k.startswith('cls_head.denoiser.'))
    # Stage 2 re-initialised the backbone: its batch-norm layers have seen
    # the batches of stage 2's one epoch only, half of stage 0's two (an
    # epoch of training alone would change the weights anyway). The
    # classifier's re-initialisation is checked before stage 2's first step
    # in tests/test_stage_hooks.py.
    tracked = [k for k in final if k.startswith('backbone.')
               and k.endswith('num_batches_tracked')]
    assert tracked and all(int(stage0[k]) > 0 for k in tracked)
    assert all(2 * int(final[k]) == int(stage0[k]) for k in tracked)


def test_tools_test_evaluates_the_result(scratch_run, ntu60_pickle, tmp_path):
    metrics = tmp_path / 'metrics.json'
    run_ok('tools/test.py', CONFIG, str(scratch_run / 'epoch_5.pth'),
           '--work-dir', str(tmp_path), '--metrics-out', str(metrics),
           '--dump', str(tmp_path / 'preds.pkl'), '--cfg-options',
           *tiny_options(ntu60_pickle))
    values = json.loads(metrics.read_text())
    # The reported top-1 is the one the dumped predictions give.
    with open(tmp_path / 'preds.pkl', 'rb') as file:
        preds = pickle.load(file)
    assert len(preds) == 60  # the generated val split
    correct = [int(torch.as_tensor(p['pred_score']).argmax()) ==
               int(torch.as_tensor(p['gt_label']).reshape(-1)[0])
               for p in preds]
    assert values['acc/top1'] == pytest.approx(sum(correct) / len(preds))


def test_resume_in_the_middle_of_stage1(scratch_run, ntu60_pickle,
                                        text_bank_cache, tmp_path):
    # epoch_3.pth: end of the first stage-1 epoch (global epochs 1-2 are
    # stage 0, 3-4 stage 1, 5 stage 2).
    run_ok('tools/train.py', CONFIG, '--work-dir', str(tmp_path), '--resume',
           str(scratch_run / 'epoch_3.pth'), '--cfg-options',
           *tiny_options(ntu60_pickle, text_bank_cache), *STAGES)
    log = read_log(tmp_path)
    assert announced_stages(log) == [1, 2]
    assert 'Stage 1 (diffusion on the frozen GCN): epoch 2/2' in log
    assert 'Stage 0 (baseline GCN): epoch' not in log
    # Still frozen after the resume: same GCN as stage 0 left it.
    assert backbone_equal(
        state(scratch_run / 'stage0_final.pth'),
        state(tmp_path / 'stage1_final.pth'))
    assert (tmp_path / 'epoch_5.pth').is_file()


def test_resume_in_the_middle_of_stage0(scratch_run, ntu60_pickle,
                                        text_bank_cache, tmp_path):
    run_ok('tools/train.py', CONFIG, '--work-dir', str(tmp_path), '--resume',
           str(scratch_run / 'epoch_1.pth'), '--cfg-options',
           *tiny_options(ntu60_pickle, text_bank_cache), *STAGES)
    log = read_log(tmp_path)
    assert 'Stage 0 (baseline GCN): epoch 2/2 (global epoch 2/5)' in log
    assert 'Stage 0 (baseline GCN): epoch 1/2' not in log
    assert 'Stage 2 (fresh GCN + fine-tuned diffusion): epoch 1/1' in log
    assert (tmp_path / 'epoch_5.pth').is_file()


@pytest.fixture(scope='module')
def baseline_checkpoint(ntu_baseline_run):
    """A checkpoint of the baseline config, as a user would have it."""
    return ntu_baseline_run / 'epoch_1.pth'


def test_baseline_checkpoint_skips_stage0(baseline_checkpoint, ntu60_pickle,
                                          text_bank_cache, tmp_path):
    run_ok('tools/train.py', CONFIG, '--work-dir', str(tmp_path),
           '--cfg-options', *tiny_options(ntu60_pickle, text_bank_cache),
           *STAGES, f'train_cfg.pretrained={baseline_checkpoint}')
    log = read_log(tmp_path)
    assert 'Stage 0' not in log
    assert f'Stage 1 uses the pretrained GCN {baseline_checkpoint}' in log
    assert 'Stage 1 (diffusion on the frozen GCN): epoch 1/2 ' \
        '(global epoch 1/3)' in log
    # The frozen stage-1 GCN is exactly the baseline checkpoint's.
    assert backbone_equal(
        state(baseline_checkpoint), state(tmp_path / 'stage1_final.pth'))
    assert not (tmp_path / 'stage0_final.pth').exists()


def test_clip_without_weights_fails_before_training(ntu60_pickle, tmp_path):
    """The shipped default (CLIP, 'openai' weights) offline: a clear error
    with the two ways out, before any epoch runs."""
    result = run_tool('tools/train.py', CONFIG, '--work-dir', str(tmp_path),
                      '--cfg-options', *tiny_options(ntu60_pickle),
                      f'model.cls_head.text_bank.cache_dir={tmp_path}/banks')
    assert result.returncode != 0
    assert 'model.cls_head.text_bank.encoder=minilm' in result.stderr
    assert 'encoder=random' in result.stderr
    assert 'model.cls_head.text_bank.pretrained=' in result.stderr
    assert 'Stage 0 (baseline GCN): epoch' not in read_log(tmp_path)
    assert not list(tmp_path.glob('epoch_*.pth'))


def test_dist_train_two_processes_runs_both_stages(baseline_checkpoint,
                                                   ntu60_pickle,
                                                   text_bank_cache, tmp_path,
                                                   monkeypatch):
    """Two gloo processes: stage 1 on cached features averages the diffusion
    gradients across ranks (each rank sees other batches, so without the
    averaging their denoisers drift apart); stage 2 goes through DDP with
    unused parameters."""
    monkeypatch.setenv('PYTHONPATH', str(Path(__file__).parent / 'helpers'))
    config = tmp_path / 'with_rank_weights.py'
    # The config's own hooks (a list is replaced, not merged), plus ours.
    hooks = [*Config.fromfile(CONFIG).custom_hooks,
             dict(type='RankWeightsHook')]
    config.write_text(
        f"_base_ = [{str(Path(CONFIG).resolve())!r}]\n"
        "custom_imports = dict(imports=['cocodiff_mm', 'rank_weights_hook'],"
        " allow_failed_imports=False)\n"
        f"custom_hooks = {[dict(h) for h in hooks]!r}\n")
    run_dist_train(str(config), 2, '--work-dir', str(tmp_path),
                   '--cfg-options',
                   *tiny_options(ntu60_pickle, text_bank_cache),
                   'train_cfg.stage1.epochs=1', 'train_cfg.stage2.epochs=1',
                   f'train_cfg.pretrained={baseline_checkpoint}')
    ranks = [torch.load(tmp_path / f'rank{rank}_stage1.pth')
             for rank in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for key in ranks[0]:
        torch.testing.assert_close(ranks[0][key], ranks[1][key], msg=key)
    log = read_log(tmp_path)
    assert announced_stages(log) == [1, 2]
    # 60 clips, 8 per process and step, 2 processes: 4 steps per epoch.
    assert 'Epoch(train) [2][4/4]' in log
    losses = losses_by_epoch(log)
    assert all(math.isfinite(v) for v in losses[2].values())
    # Stage 1 stayed frozen on both ranks: the saved GCN is the baseline's.
    assert backbone_equal(state(baseline_checkpoint),
                          state(tmp_path / 'stage1_final.pth'))
