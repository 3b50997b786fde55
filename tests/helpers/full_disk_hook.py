"""Test helper: the disk fills up while training runs.

From a chosen epoch's end on, every ``os.fsync`` fails with ``ENOSPC``, the
way a full disk fails a write that has to reach it; checkpoints are flushed
with ``fsync`` before they get their real name, so the checkpoint of that
epoch is the first casualty. Loaded through ``custom_imports`` by
``tests/test_faults.py``.
"""
import errno
import os
from typing import NoReturn

from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner


def _disk_full(fd: int) -> NoReturn:
    """``os.fsync`` of a full disk."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@HOOKS.register_module()
class FullDiskHook(Hook):
    """Make the disk full after one epoch, before its checkpoint is saved.

    Args:
        epoch (int): Global epoch, 1-based as in ``epoch_N.pth``, whose
            checkpoint is the first that cannot be written. Defaults to 2.
    """

    priority = 'HIGH'  # before CheckpointHook (VERY_LOW) saves

    def __init__(self, epoch: int = 2) -> None:
        if epoch < 1:
            raise ValueError(f'epoch must be >= 1, got {epoch}')
        self.epoch = epoch

    def after_train_epoch(self, runner: Runner) -> None:
        """From the chosen epoch's end on, ``fsync`` raises ``ENOSPC``."""
        if runner.epoch + 1 == self.epoch:
            os.fsync = _disk_full
