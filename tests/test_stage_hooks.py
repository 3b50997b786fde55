"""The loop's per-iteration and per-epoch jobs, as hooks, in a real Runner.

One in-process Runner trains the shrunk NTU CoCoDiff config through all
three stages (1 + 1 + 2 epochs) with a recording hook. Checked against
closed forms:

* ``GeneratedLossRampHook``: the CE(generated) factor is k / (iterations of
  the warm-up) at stage 2's k-th iteration, then 1;
* the stage schedulers the loop hands to the Runner are the ones it builds
  (each stage restarts the warm-up from the base lr);
* ``StageLogResetHook``: no stage starts with the previous stage's losses.

``StageTimerHook`` (``stage_times.json`` keeps the time spent before a
resume) is checked across two killed-and-resumed processes in
``tests/test_resume_equivalence.py``.
"""
import argparse

import pytest
from mmaction.registry import HOOKS
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.runner import Runner

from conftest import tiny_options

pytestmark = pytest.mark.usefixtures('single_thread')
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

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = runner.model
        head = model.cls_head
        self.records.append(
            dict(iter=runner.iter, epoch=runner.epoch,
                 objective=head.objective, scale=head.gen_cls_scale,
                 lr=runner.optim_wrapper.get_lr()['gcn.lr'][0],
                 diffusion_lrs=runner.optim_wrapper.get_lr(),
                 logged=sorted(runner.message_hub.log_scalars)))


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
