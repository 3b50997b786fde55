"""The loop's per-iteration and per-epoch jobs, as hooks, in a real Runner.

One in-process Runner trains the shrunk NTU CoCoDiff config through all
three stages (1 + 1 + 2 epochs) with a recording hook. Checked against
closed forms:

* ``GeneratedLossRampHook``: the CE(generated) factor is k / (iterations of
  the warm-up) at stage 2's k-th iteration, then 1;
* the stage schedulers the loop hands to the Runner are the ones it builds
  (each stage restarts the warm-up from the base lr);
* ``StageLogResetHook``: no stage starts with the previous stage's losses;
* ``train_cfg.stage1.faithfulness_target``: stage 1 ends after the epoch
  whose faithfulness (in the message hub) meets it, stage 2 keeps its
  epochs and learning rates, and a resume skips what the run skipped;
* ``GeneratedLossRampHook(start_acc=...)``: the ramp begins after the first
  stage-2 epoch whose acc_generated reaches it, also after a resume.

``StageTimerHook`` (``stage_times.json`` keeps the time spent before a
resume) is checked across two killed-and-resumed processes in
``tests/test_resume_equivalence.py``.
"""
import argparse
import json
import math
import shutil

import pytest
import torch
from mmaction.registry import HOOKS
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch.nn.modules.batchnorm import _BatchNorm

from cocodiff_mm.engine.hooks.generated_loss_ramp_hook import \
    RAMP_START_INFO
from cocodiff_mm.engine.hooks.generation_diagnostics_hook import \
    FAITHFULNESS_INFO
from cocodiff_mm.utils.config_keys import ConfigError
from conftest import tiny_options

CONFIG = 'configs/ctrgcn_cocodiff_ntu60_xsub.py'
BASE_LR = 0.1  # configs/_base_/ctrgcn_runtime.py
WARMUP_START = 0.1  # the LinearLR start_factor of the recipe
DIFFUSION_LR = 1e-3  # the AdamW of configs/_base_/cocodiff.py


@HOOKS.register_module(force=True)
class StageRecorderHook(Hook):
    """Records, before every iteration (after the ramp hook), what the
    model will train with."""

    priority = 'LOW'

    def __init__(self):
        self.records = []
        self.outputs = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = runner.model
        head = model.cls_head
        self.records.append(
            dict(iter=runner.iter, epoch=runner.epoch,
                 objective=head.objective, scale=head.gen_cls_scale,
                 lr=runner.optim_wrapper.get_lr()['gcn.lr'][0],
                 diffusion_lrs=runner.optim_wrapper.get_lr(),
                 logged=sorted(runner.message_hub.log_scalars),
                 fc=head.fc.weight.detach().clone(),
                 bn_batches=sum(
                     int(module.num_batches_tracked)
                     for module in model.backbone.modules()
                     if isinstance(module, _BatchNorm))))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.outputs.append(dict(epoch=runner.epoch + 1, **{
            key: float(value) for key, value in outputs.items()}))


def parse_options(options):
    namespace = argparse.Namespace()
    DictAction(option_strings=[], dest='options')(None, namespace, options)
    return namespace.options


def build_runner(work_dir, ntu60_pickle, bank_dir, **extra):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(parse_options(tiny_options(ntu60_pickle, bank_dir)))
    cfg.merge_from_dict({
        'train_cfg.stage0.epochs': 1,
        'train_cfg.stage1.epochs': 1,
        'train_cfg.stage2.epochs': 2,
        'custom_hooks.0.warmup_epochs': 1,
        'randomness': dict(seed=0),
        'work_dir': str(work_dir),
        **extra
    })
    cfg.custom_hooks.append(dict(type='StageRecorderHook'))
    return Runner.from_cfg(cfg)


def recorder(runner) -> StageRecorderHook:
    return next(h for h in runner.hooks if isinstance(h, StageRecorderHook))


@pytest.fixture(scope='module')
def full_run(tmp_path_factory, ntu60_pickle, text_bank_cache):
    work = tmp_path_factory.mktemp('stage_hooks')
    runner = build_runner(work, ntu60_pickle, text_bank_cache)
    runner.train()
    return runner, recorder(runner).records, work


def by_stage(records):
    stages = {}
    for record in records:
        stages.setdefault(record['objective'], []).append(record)
    return stages


def test_stage2_starts_from_a_fresh_gcn(full_run):
    """Before stage 2's first step the backbone is re-initialised (no
    batch-norm layer has seen a batch) and so is the classifier (not the
    one stage 1 kept frozen)."""
    _, records, _ = full_run
    stages = by_stage(records)
    frozen, fresh = stages['diffusion'][-1], stages['joint'][0]
    assert frozen['bn_batches'] > 0 and fresh['bn_batches'] == 0
    assert torch.equal(stages['diffusion'][0]['fc'], frozen['fc'])
    assert not torch.equal(frozen['fc'], fresh['fc'])


def test_generated_loss_ramps_over_the_first_stage2_epoch(full_run):
    _, records, _ = full_run
    joint = by_stage(records)['joint']
    per_epoch = len(joint) // 2
    assert per_epoch > 1
    expected = [k / per_epoch for k in range(per_epoch)] + [1.0] * per_epoch
    assert [r['scale'] for r in joint] == pytest.approx(expected)
    # The ramp value reaches the logs.
    assert 'train/gen_cls_scale' in joint[1]['logged']


def test_stage_schedulers_are_the_loops(full_run):
    runner, records, _ = full_run
    stages = by_stage(records)
    for objective in ('classify', 'diffusion', 'joint'):
        # Every stage restarts its warm-up from the base lr.
        assert stages[objective][0]['lr'] == pytest.approx(
            BASE_LR * WARMUP_START)
        # The diffusion's AdamW too, and the base lr mmengine tracks (and
        # logs) beside its parameter groups.
        lrs = stages[objective][0]['diffusion_lrs']
        for key in ('diffusion.lr', 'diffusion.base_lr'):
            assert lrs[key][0] == pytest.approx(
                DIFFUSION_LR * WARMUP_START), key
    # mmengine built the schedulers from the loop's shifted configs (the
    # config's own end at its max_epochs, 90): each stage's schedulers lie
    # inside the stage, on the global axis: the LinearLR warm-up in
    # iterations (convert_to_iter_based), the MultiStepLR in epochs.
    per_epoch = len(stages['joint']) // 2
    # Both optimizers (the GCN's and the diffusion's) get the same ones.
    assert set(runner.param_schedulers) == {'gcn', 'diffusion'}
    for schedulers in runner.param_schedulers.values():
        bounds = [(type(s).__name__, s.begin, s.end) for s in schedulers]
        assert bounds == [
            ('LinearLR', 0, per_epoch), ('MultiStepLR', 0, 1),
            ('LinearLR', per_epoch, 2 * per_epoch), ('MultiStepLR', 1, 2),
            ('LinearLR', 2 * per_epoch, 4 * per_epoch), ('MultiStepLR', 2, 4)
        ]


def test_each_stage_starts_with_its_own_logs(full_run):
    _, records, _ = full_run
    stages = by_stage(records)
    assert 'train/loss_cls' in stages['classify'][-1]['logged']
    assert 'train/loss_cls' not in stages['diffusion'][0]['logged']
    assert 'train/loss_rec' in stages['diffusion'][-1]['logged']
    assert 'train/loss_rec' not in stages['joint'][0]['logged']


def test_diagnostics_record_the_epoch_means_of_training_outputs(full_run):
    """Stage 1 is epoch 2, stage 2 epochs 3-4: each diagnostics line holds
    the mean of its epoch's training outputs, as mmengine's log does not
    (it shows the last batch of acc_generated and ce_generated)."""
    runner, _, work = full_run
    outputs = recorder(runner).outputs
    lines = {line['epoch']: line for line in map(
        json.loads, (work / 'generation_diagnostics.jsonl').read_text()
        .splitlines())}
    assert sorted(lines) == [2, 3, 4]
    for epoch, line in lines.items():
        epoch_outputs = [o for o in outputs if o['epoch'] == epoch]
        keys = ['loss_con', 'acc_generated']
        if epoch > 2:  # no classifier training in stage 1
            keys += ['ce_generated', 'top1_acc']
        else:
            assert 'train_ce_generated' not in line
            assert 'train_top1_acc' not in line
        for key in keys:
            values = [o[key] for o in epoch_outputs]
            assert line[f'train_{key}'] == pytest.approx(
                sum(values) / len(values)), (epoch, key)
    # Averaged over the epoch, not the last batch only.
    values = [o['ce_generated'] for o in outputs if o['epoch'] == 3]
    assert lines[3]['train_ce_generated'] != pytest.approx(values[-1])


# ----------------------------------------------------------------------
# Stage 1 ending early on class faithfulness (faithfulness_target)
# ----------------------------------------------------------------------
@HOOKS.register_module(force=True)
class PlannedFaithfulnessHook(Hook):
    """Overrides the measured stage-1 faithfulness with planned values
    (after GenerationDiagnosticsHook, before CheckpointHook saves it)."""

    priority = 80  # LOW is 70, VERY_LOW 90

    def __init__(self, values):
        self.values = values

    def after_train_epoch(self, runner):
        stage = runner.train_loop.stage
        if stage.index == 1:
            runner.message_hub.update_info(
                FAITHFULNESS_INFO, self.values[runner.epoch - stage.begin])


def early_stage1_runner(work_dir, ntu60_pickle, bank_dir, target):
    """Stage 0: 1 epoch, stage 1: at most 3, stage 2: 1; the planned
    faithfulness is 0.2 after stage 1's first epoch, 0.9 after its second."""
    extra = {'train_cfg.stage1.epochs': 3, 'train_cfg.stage2.epochs': 1}
    if target is not None:
        extra['train_cfg.stage1.faithfulness_target'] = target
    runner = build_runner(work_dir, ntu60_pickle, bank_dir, **extra)
    runner.register_hook(
        PlannedFaithfulnessHook([0.2, 0.9, 0.95]), priority=80)
    return runner


def diffusion_state(path):
    state = torch.load(path, map_location='cpu',
                       weights_only=False)['state_dict']
    return {k: v for k, v in state.items()
            if k.startswith(('cls_head.denoiser', 'cls_head.loss_text'))}


@pytest.fixture(scope='module')
def early_runs(tmp_path_factory, ntu60_pickle, text_bank_cache):
    runs = {}
    for name, target in (('fixed', None), ('early', 0.8)):
        work = tmp_path_factory.mktemp(f'stage1_{name}')
        runner = early_stage1_runner(work, ntu60_pickle, text_bank_cache,
                                     target)
        runner.train()
        runs[name] = runner, recorder(runner).records, work
    return runs


def test_stage1_ends_when_faithful_and_stage2_keeps_its_schedule(
        early_runs):
    _, fixed, fixed_dir = early_runs['fixed']
    _, early, early_dir = early_runs['early']
    # Stage 1 trained its 3 epochs without a target, 2 with one (0.9 >=
    # 0.8 after the second); stage 2 starts at global epoch 4 either way.
    assert sorted({r['epoch'] for r in by_stage(fixed)['diffusion']}) == [
        1, 2, 3]
    assert sorted({r['epoch'] for r in by_stage(early)['diffusion']}) == [
        1, 2]
    for records in (fixed, early):
        assert {r['epoch'] for r in by_stage(records)['joint']} == {4}
    # The schedulers stepped through the skipped epoch: stage 2 sees the
    # same learning rates, iteration by iteration, and the same counter.
    assert [(r['iter'], r['lr'], r['diffusion_lrs'])
            for r in by_stage(early)['joint']] == [
                (r['iter'], r['lr'], r['diffusion_lrs'])
                for r in by_stage(fixed)['joint']]
    # stage1_final.pth holds the diffusion as the target met it, and
    # resumes into stage 2.
    final = diffusion_state(early_dir / 'stage1_final.pth')
    after_epoch2 = diffusion_state(early_dir / 'epoch_3.pth')
    assert final and all(torch.equal(final[k], after_epoch2[k])
                         for k in final)
    fixed_final = diffusion_state(fixed_dir / 'stage1_final.pth')
    assert not all(torch.equal(final[k], fixed_final[k]) for k in final)
    meta = torch.load(early_dir / 'stage1_final.pth', map_location='cpu',
                      weights_only=False)['meta']
    assert meta['epoch'] == 4
    log = next(early_dir.rglob('*.log')).read_text()
    assert 'recognises 90.0% of the generated validation features ' \
        '(target 80.0%); skipping its epochs 3-3' in log


def diagnostics_lines(work, objective):
    lines = [json.loads(line) for line in
             (work / 'generation_diagnostics.jsonl').read_text().splitlines()]
    return [line for line in lines if line['objective'] == objective]


def test_measured_faithfulness_reaches_the_message_hub(early_runs, full_run):
    _, _, work = early_runs['fixed']
    stage1 = diagnostics_lines(work, 'diffusion')
    assert len(stage1) == 3 and all(
        0 <= line['gen_acc'] <= 1 and line['num_samples'] > 0
        for line in stage1)
    # Hardness: a classifier that recognises every feature of a set has a
    # positive mean margin on it, one that recognises none a negative one.
    for line in stage1:
        for kind, acc in (('gen', line['gen_acc']),
                          ('real', line['real_acc'])):
            value = line[f'margin_{kind}']
            assert math.isfinite(value)
            assert value > 0 if acc == 1 else value < 0 if acc == 0 else True
    # Without a planned hook the message hub holds what the real hook
    # measured after the last stage-1 epoch (single process: the all-rank
    # mean is the rank's own); stage 2 leaves it alone.
    runner, _, work = full_run
    (stage1, ) = diagnostics_lines(work, 'diffusion')
    assert runner.message_hub.get_info(FAITHFULNESS_INFO) == pytest.approx(
        stage1['gen_acc'], abs=1e-12)


def test_resume_after_the_early_end_skips_what_the_run_skipped(
        early_runs, tmp_path, ntu60_pickle, text_bank_cache):
    early_runner, _, early_dir = early_runs['early']
    work = tmp_path / 'resumed'
    work.mkdir()
    shutil.copy(early_dir / 'epoch_3.pth', work / 'epoch_3.pth')
    runner = early_stage1_runner(work, ntu60_pickle, text_bank_cache, 0.8)
    runner._resume = True
    runner._load_from = str(work / 'epoch_3.pth')
    runner.train()
    records = recorder(runner).records
    assert 'diffusion' not in by_stage(records)
    resumed = runner.model.state_dict()
    uninterrupted = early_runner.model.state_dict()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)


def test_the_loop_refuses_a_target_without_the_hook(tmp_path, ntu60_pickle,
                                                    text_bank_cache):
    """Also for a Runner built outside tools/ (where the config check
    runs first)."""
    runner = build_runner(
        tmp_path, ntu60_pickle, text_bank_cache,
        **{'train_cfg.stage1.faithfulness_target': 0.8,
           'custom_hooks': [dict(type='StageTimerHook')]})
    with pytest.raises(ConfigError, match='needs dict.type=.Generation'
                       'DiagnosticsHook.. in custom_hooks'):
        runner.train()
    assert not list(tmp_path.glob('*.pth'))


# ----------------------------------------------------------------------
# CE on generated features once the classifier recognises them (start_acc)
# ----------------------------------------------------------------------
@HOOKS.register_module(force=True)
class PlannedGeneratedAccuracyHook(Hook):
    """Replaces each stage-2 iteration's acc_generated with the planned
    value of its stage-2 epoch (before GeneratedLossRampHook reads it)."""

    priority = 'ABOVE_NORMAL'

    def __init__(self, values):
        self.values = values

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        stage = runner.train_loop.stage
        if stage.index == 2:
            outputs['acc_generated'] = torch.tensor(
                self.values[runner.epoch - stage.begin])


def gated_ramp_runner(work_dir, ntu60_pickle, bank_dir):
    """Stage 2 of 3 epochs; the classifier 'recognises' 20 %, 60 % and 90 %
    of the generated features in them; the ramp waits for 50 %."""
    runner = build_runner(
        work_dir, ntu60_pickle, bank_dir,
        **{'train_cfg.stage2.epochs': 3,
           'custom_hooks.0.start_acc': 0.5})
    runner.register_hook(PlannedGeneratedAccuracyHook([0.2, 0.6, 0.9]))
    return runner


def test_ramp_waits_until_the_classifier_recognises_generated_features(
        tmp_path, ntu60_pickle, text_bank_cache):
    runner = gated_ramp_runner(tmp_path, ntu60_pickle, text_bank_cache)
    runner.train()
    joint = by_stage(recorder(runner).records)['joint']
    per_epoch = len(joint) // 3
    # No CE on generated features in stage 2's first two epochs: the first
    # (20 %) is below 50 %, the second (60 %) reaches it; the one-epoch
    # ramp runs in the third.
    expected = [0.0] * (2 * per_epoch) + [k / per_epoch
                                          for k in range(per_epoch)]
    assert [r['scale'] for r in joint] == pytest.approx(expected)
    assert runner.message_hub.get_info(RAMP_START_INFO) == 4
    log = next(tmp_path.rglob('*.log')).read_text()
    assert 'recognised 60.0% of the generated features in epoch 4 ' \
        '(start_acc 50.0%)' in log

    # A run resumed after that epoch keeps the ramp where it was.
    resumed_dir = tmp_path / 'resumed'
    resumed_dir.mkdir()
    shutil.copy(tmp_path / 'epoch_4.pth', resumed_dir / 'epoch_4.pth')
    resumed = gated_ramp_runner(resumed_dir, ntu60_pickle, text_bank_cache)
    resumed._resume = True
    resumed._load_from = str(resumed_dir / 'epoch_4.pth')
    resumed.train()
    again = by_stage(recorder(resumed).records)['joint']
    assert [r['scale'] for r in again] == pytest.approx(
        expected[2 * per_epoch:])
