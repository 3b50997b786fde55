"""Wall time of each training stage, kept across resumes."""
import os
import time
from typing import Dict, Optional

from mmaction.registry import HOOKS
from mmengine.hooks import Hook

from ...utils.atomic_write import atomic_write_json
from .stage_info import current_stage

#: Runtime-info key of the message hub (saved in every checkpoint).
INFO_KEY = 'stage_seconds'


@HOOKS.register_module()
class StageTimerHook(Hook):
    """Writes ``<work_dir>/stage_times.json``: seconds per stage.

    A stage's time runs from its first epoch's start to the start of the
    next stage's first epoch (or the end of training): training,
    validation and checkpoints. The running totals live in the message
    hub's runtime info, which mmengine saves in every checkpoint, so a
    resumed run adds to the time spent before the interruption (the
    interrupted epoch itself, which is retrained, is not counted). The file
    maps ``stage<k>`` to seconds, is rewritten atomically whenever a stage
    finishes, and is also logged.

    Args:
        file_name (str): File in the work dir. Defaults to
            ``'stage_times.json'``.
    """

    # Before CheckpointHook (VERY_LOW), so a checkpoint holds the epoch.
    priority = 'NORMAL'

    def __init__(self, file_name: str = 'stage_times.json') -> None:
        self.file_name = file_name
        self._started: Optional[float] = None
        self._stage_index: Optional[int] = None

    def _totals(self, runner) -> Dict[str, float]:
        return dict(runner.message_hub.get_info(INFO_KEY, {}))

    def _add_elapsed(self, runner) -> None:
        """Add the time since the last mark to the running stage."""
        if self._started is None or self._stage_index is None:
            return
        now = time.perf_counter()
        totals = self._totals(runner)
        key = f'stage{self._stage_index}'
        totals[key] = totals.get(key, 0.0) + now - self._started
        runner.message_hub.update_info(INFO_KEY, totals)
        self._started = now

    def _finish_stage(self, runner) -> None:
        totals = self._totals(runner)
        key = f'stage{self._stage_index}'
        runner.logger.info(f'Stage {self._stage_index} finished: '
                           f'{totals.get(key, 0.0):.1f} s in all')
        if runner.rank == 0:
            atomic_write_json(
                os.path.join(runner.work_dir, self.file_name),
                {name: round(seconds, 2)
                 for name, seconds in sorted(totals.items())})

    def before_train_epoch(self, runner) -> None:
        stage = current_stage(runner)
        if stage is None:
            return
        self._add_elapsed(runner)  # the previous epoch's validation
        if self._stage_index is not None and stage.index != self._stage_index:
            self._finish_stage(runner)
        self._stage_index = stage.index
        self._started = time.perf_counter()

    def after_train_epoch(self, runner) -> None:
        self._add_elapsed(runner)

    def after_train(self, runner) -> None:
        if self._stage_index is None:
            return
        self._add_elapsed(runner)
        self._finish_stage(runner)
