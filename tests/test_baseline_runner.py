"""The stock CTR-GCN baseline through our tools: train, test, distribute."""
import gc
import json
import shutil
import sys

import pytest

from conftest import (load_tool, read_log, run_dist_train, run_ok,
                      tiny_options)

BASELINE = 'configs/ctrgcn_ntu60_xsub.py'


def test_train_checkpoint_and_test(ntu60_pickle, tmp_path):
    work = tmp_path / 'work'
    run_ok('tools/train.py', BASELINE, '--work-dir', str(work), '--seed',
           '0', '--cfg-options', *tiny_options(ntu60_pickle),
           'train_cfg.max_epochs=1')
    checkpoint = work / 'epoch_1.pth'
    assert checkpoint.is_file()
    log = read_log(work)
    assert 'Epoch(train) [1][8/8]' in log and 'acc/top1' in log
    # tools/test.py loads it through torch.load (mmengine's loader).
    metrics = tmp_path / 'metrics.json'
    result = run_ok('tools/test.py', BASELINE, str(checkpoint), '--work-dir',
                    str(tmp_path / 'test'), '--metrics-out', str(metrics),
                    '--cfg-options', *tiny_options(ntu60_pickle))
    values = json.loads(metrics.read_text())
    assert set(values) >= {'acc/top1', 'acc/top5', 'acc/mean1'}
    assert 'Load checkpoint from' in result.stdout + result.stderr


def test_resume_continues_from_the_checkpoint(ntu60_pickle, tmp_path):
    work = tmp_path / 'work'
    options = [*tiny_options(ntu60_pickle), 'train_cfg.max_epochs=2',
               'train_cfg.val_interval=2']
    run_ok('tools/train.py', BASELINE, '--work-dir', str(work),
           '--cfg-options', *options, 'train_cfg.max_epochs=1')
    run_ok('tools/train.py', BASELINE, '--work-dir', str(work), '--resume',
           '--cfg-options', *options)
    log = read_log(work)
    assert 'resumed epoch: 1' in log
    assert (work / 'epoch_2.pth').is_file()


@pytest.mark.skipif(shutil.which('bash') is None, reason='needs bash')
def test_dist_train_two_cpu_processes(ntu60_pickle, tmp_path):
    work = tmp_path / 'work'
    run_dist_train(BASELINE, 2, '--work-dir', str(work), '--cfg-options',
                   *tiny_options(ntu60_pickle), 'train_cfg.max_epochs=1')
    log = read_log(work)
    assert 'Distributed launcher: pytorch' in log or \
        "launcher='pytorch'" in log
    assert "'backend': 'gloo'" in log or 'gloo' in log
    # 60 training clips, 8 per process and step, 2 processes: 4 steps.
    assert 'Epoch(train) [1][4/4]' in log
    assert (work / 'epoch_1.pth').is_file()


def live_ddp_wrappers() -> int:
    """DDP wrappers alive in this process (each holds a process group)."""
    from torch.nn.parallel import DistributedDataParallel
    return sum(isinstance(o, DistributedDataParallel)
               for o in gc.get_objects())


def test_a_rank_leaves_its_process_group_before_exit(ntu60_pickle, tmp_path,
                                                     monkeypatch):
    """A gloo group left to interpreter teardown can abort a rank whose run
    succeeded (SIGABRT, torchrun then fails the run): train and test destroy
    it themselves. One rank in this process (world size 1)."""
    import socket

    import torch.distributed as dist
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    for key, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1',
                           MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(port)).items():
        monkeypatch.setenv(key, value)
    # mmengine's distributed set-up exports MKL_NUM_THREADS=1 when it is
    # unset (OMP_NUM_THREADS is conftest's): set here, so that it is undone.
    monkeypatch.setenv('MKL_NUM_THREADS', '1')
    work = tmp_path / 'work'
    monkeypatch.setattr(sys, 'argv', [
        'train.py', BASELINE, '--launcher', 'pytorch', '--work-dir',
        str(work), '--cfg-options', *tiny_options(ntu60_pickle),
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=2'])
    gc.collect()
    assert live_ddp_wrappers() == 0
    assert load_tool('tools/train.py').main() == 0
    # Destroyed, and released: the DDP wrapper (which holds the group) went
    # with the Runner's reference cycles before the tool returned.
    assert not dist.is_initialized() and live_ddp_wrappers() == 0
    monkeypatch.setattr(sys, 'argv', [
        'test.py', BASELINE, str(work / 'epoch_1.pth'), '--launcher',
        'pytorch', '--work-dir', str(tmp_path / 'test'), '--cfg-options',
        *tiny_options(ntu60_pickle)])
    assert load_tool('tools/test.py').main() == 0
    assert not dist.is_initialized() and live_ddp_wrappers() == 0
