"""Record the run's stage plan and model in every checkpoint."""
from typing import Dict, Optional

from mmaction.registry import HOOKS
from mmengine.hooks import Hook

from ..run_record import META_KEY, run_record


@HOOKS.register_module()
class RunRecordHook(Hook):
    """Adds ``meta['cocodiff_run']`` to every checkpoint the run saves.

    The record (:func:`~cocodiff_mm.engine.run_record.run_record`: the
    resolved stage plan and the model's identity) is what
    ``tools/train.py --resume`` compares with the config before the Runner
    starts. mmengine lets hooks add to a checkpoint in
    ``before_save_checkpoint``; the loop itself has no such call.
    ``tools/train.py`` adds this hook to every config.
    """

    def __init__(self) -> None:
        self._record: Optional[Dict] = None

    def before_save_checkpoint(self, runner, checkpoint: Dict) -> None:
        if self._record is None:
            self._record = run_record(runner.cfg)
        checkpoint.setdefault('meta', {})[META_KEY] = self._record
