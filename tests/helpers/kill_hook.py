"""Test helper: the training process kills itself with SIGKILL.

Stands in for a crash, a pre-empted job or an out-of-memory kill: nothing
runs after the signal (no ``finally``, no hook, no flush), so whatever the
run left on disk is what a resume finds. Loaded through ``custom_imports``
by ``tests/test_resume_equivalence.py``.
"""
import os
import signal
from typing import Any, Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner


@HOOKS.register_module()
class KillHook(Hook):
    """SIGKILL this process before one training iteration.

    Args:
        epoch (int, optional): Global epoch, 1-based as in ``epoch_N.pth``,
            in which to die; ``None`` never kills. Defaults to None.
        iteration (int): Iteration of that epoch, 0-based, before which to
            die, so the epoch is left half-trained. Defaults to 1.
    """

    def __init__(self, epoch: Optional[int] = None,
                 iteration: int = 1) -> None:
        if iteration < 0:
            raise ValueError(f'iteration must be >= 0, got {iteration}')
        self.epoch = epoch
        self.iteration = iteration

    def before_train_iter(self, runner: Runner, batch_idx: int,
                          data_batch: Optional[Any] = None) -> None:
        """Die when the run reaches the chosen epoch and iteration."""
        if runner.epoch + 1 == self.epoch and batch_idx == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)
