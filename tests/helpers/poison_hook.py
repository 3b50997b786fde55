"""Test helper: one parameter of the model turns NaN while training runs.

``at='start'``: before the chosen epoch's first iteration, so that
iteration's loss is NaN (a run that diverges). ``at='end'``: after its last
iteration, before any checkpoint of the epoch is saved, so the weights are
NaN while no loss has been (weights can go NaN without a NaN loss, e.g. in a
part the current stage does not use). Loaded through ``custom_imports`` by
``tests/test_faults.py``.
"""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class PoisonHook(Hook):
    """Fill one parameter with NaN at a chosen epoch.

    Args:
        param (str): Name of the parameter in the (unwrapped) model's
            ``named_parameters``.
        epoch (int): Global epoch, 1-based as in ``epoch_N.pth``. Defaults
            to 0 (off).
        at (str): ``'start'`` or ``'end'`` of that epoch. Defaults to
            ``'start'``.
    """

    priority = 'HIGH'  # before CheckpointHook (VERY_LOW) saves

    def __init__(self, param: str, epoch: int = 0, at: str = 'start') -> None:
        if at not in ('start', 'end'):
            raise ValueError(f"at must be 'start' or 'end', got {at!r}")
        self.param, self.epoch, self.at = param, epoch, at

    def _poison(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        with torch.no_grad():
            dict(model.named_parameters())[self.param].fill_(float('nan'))

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self.at == 'start' and batch_idx == 0 and \
                runner.epoch + 1 == self.epoch:
            self._poison(runner)

    def after_train_epoch(self, runner) -> None:
        if self.at == 'end' and runner.epoch + 1 == self.epoch:
            self._poison(runner)
