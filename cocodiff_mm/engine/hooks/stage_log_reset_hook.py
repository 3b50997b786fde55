"""A fresh set of smoothed training logs at every stage's start."""
from typing import Optional

from mmaction.registry import HOOKS
from mmengine.hooks import Hook

from .stage_info import current_stage

#: Logged values that mean the same in every stage.
KEPT_SCALARS = ('train/lr', 'train/time', 'train/data_time')


@HOOKS.register_module()
class StageLogResetHook(Hook):
    """Drops the previous stage's loss values from the smoothed logs.

    ``LoggerHook`` averages each logged key over a window of iterations, and
    the message hub keeps every key it has seen: without this hook stage 1
    would keep printing stage 0's ``loss_cls``, and stage 2's averages would
    start with stage 1's values.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self) -> None:
        self._stage_index: Optional[int] = None

    def before_train_epoch(self, runner) -> None:
        stage = current_stage(runner)
        if stage is None or stage.index == self._stage_index:
            return
        self._stage_index = stage.index
        scalars = runner.message_hub.log_scalars
        for key in [k for k in scalars if k.startswith('train/')]:
            if key not in KEPT_SCALARS:
                scalars.pop(key)
