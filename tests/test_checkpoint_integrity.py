"""Nothing half-written, nothing silently corrupt: checkpoints are written
atomically through mmengine's own save path, and tools/train.py reports or
skips corrupt ones in one line."""
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import read_log, run_ok, run_tool, tiny_options

BASELINE = 'configs/ctrgcn_ntu60_xsub.py'
COCODIFF = 'configs/ctrgcn_cocodiff_ntu60_xsub.py'
BASELINE_PATH = Path(__file__).resolve().parents[1] / BASELINE

FULL_DISK_HOOK = '''
import errno
import os

from mmaction.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class FullDiskHook(Hook):
    """From the second epoch's end on, the disk is full: fsync fails."""

    priority = 'HIGH'  # before CheckpointHook saves

    def after_train_epoch(self, runner):
        if runner.epoch == 1:
            def full(fd):
                raise OSError(errno.ENOSPC, 'No space left on device')
            os.fsync = full
'''


def test_a_full_disk_keeps_the_previous_checkpoint(ntu60_pickle, tmp_path):
    (tmp_path / 'full_disk_hook.py').write_text(FULL_DISK_HOOK)
    config = tmp_path / 'full_disk.py'
    config.write_text(textwrap.dedent(f"""
        _base_ = [{str(BASELINE_PATH)!r}]
        custom_imports = dict(imports=['cocodiff_mm', 'full_disk_hook'],
                              allow_failed_imports=False)
        custom_hooks = [dict(type='FullDiskHook')]
        """))
    work = tmp_path / 'work'
    result = run_tool('tools/train.py', str(config), '--work-dir', str(work),
                      '--cfg-options', *tiny_options(ntu60_pickle),
                      'train_cfg.max_epochs=2',
                      env=dict(PYTHONPATH=str(tmp_path)))
    assert result.returncode != 0
    assert 'No space left on device' in result.stderr
    # The first epoch's checkpoint is whole and loads; the second never got
    # its real name, and no temporary file is left.
    state = torch.load(work / 'epoch_1.pth', weights_only=False)
    assert state['meta']['epoch'] == 1
    assert not (work / 'epoch_2.pth').exists()
    assert sorted(p.name for p in work.glob('*.pth')) == [
        'best_acc_top1_epoch_1.pth', 'epoch_1.pth']
    assert not [p for p in work.rglob('*') if p.name.endswith('.tmp')]



@pytest.fixture
def two_epochs(ntu_baseline_run):
    return ntu_baseline_run


def truncated_copy(source, target):
    data = source.read_bytes()
    target.write_bytes(data[:len(data) // 2])
    return target


def test_auto_resume_skips_a_truncated_latest_checkpoint(
        two_epochs, ntu60_pickle, tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        (work / name).write_bytes((two_epochs / name).read_bytes())
    truncated_copy(two_epochs / 'epoch_2.pth', work / 'epoch_2.pth')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    result = run_ok('tools/train.py', BASELINE, '--work-dir', str(work),
                    '--resume', '--cfg-options', *tiny_options(ntu60_pickle),
                    'train_cfg.max_epochs=3')
    assert (f'warning: --resume skips {work / "epoch_2.pth"}: corrupt or '
            'truncated checkpoint') in result.stderr
    log = read_log(work)
    assert f'Load checkpoint from {work / "epoch_1.pth"}' in log
    # Resumed after epoch 1: epochs 2 and 3 run again.
    assert 'Epoch(train) [2]' in log and 'Epoch(train) [3]' in log
    assert torch.load(work / 'epoch_3.pth',
                      weights_only=False)['meta']['epoch'] == 3


def test_resume_from_a_corrupt_file_is_one_line(two_epochs, ntu60_pickle,
                                                tmp_path):
    bad = truncated_copy(two_epochs / 'epoch_2.pth', tmp_path / 'bad.pth')
    result = run_tool('tools/train.py', BASELINE, '--work-dir',
                      str(tmp_path / 'work'), '--resume', str(bad),
                      '--cfg-options', *tiny_options(ntu60_pickle))
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert f'error: {bad}: corrupt or truncated checkpoint' in result.stderr
    assert not (tmp_path / 'work').exists()


def test_a_corrupt_pretrained_gcn_is_one_line(ntu60_pickle, text_bank_cache,
                                              tmp_path):
    bad = tmp_path / 'random.pth'
    bad.write_bytes(bytes(range(256)) * 64)
    result = run_tool('tools/train.py', COCODIFF, '--work-dir',
                      str(tmp_path / 'work'), '--cfg-options',
                      *tiny_options(ntu60_pickle, text_bank_cache),
                      f'train_cfg.pretrained={bad}')
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('error: ')]
    assert len(errors) == 1
    assert f'{bad}: corrupt or truncated checkpoint' in errors[0]
    assert 'train_cfg.pretrained' in errors[0]
