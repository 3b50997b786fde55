"""Stop at the first NaN or infinity: no silently wrong result."""
import math
from typing import Dict, Optional, Sequence

import torch
from mmaction.registry import HOOKS
from mmengine.dist import all_reduce
from mmengine.hooks import Hook, RuntimeInfoHook
from mmengine.runner import BaseLoop

from ..checkpoint_match import listed_keys, non_finite_keys
from ..resume import checkpoint_candidates
from ..stage_plan import stage_at


class NonFiniteError(RuntimeError):
    """Training or evaluation met NaN or infinity; the run stops.

    ``tools/train.py`` and ``tools/test.py`` print it as one line and exit
    2 (the traceback only with ``--debug``).
    """


@HOOKS.register_module()
class NonFiniteHook(Hook):
    """Stop the run at the first non-finite loss, weight or score.

    Without it a diverged run trains on, saves ``best_*.pth`` and
    ``stage*_final.pth`` of NaN weights and exits 0, and ``tools/test.py``
    reports an accuracy of NaN scores (argmax counts them as class 0).

    * **Loss**, after every training iteration: the terms mmengine logs,
      which :class:`RuntimeInfoHook` (priority ``VERY_HIGH``) has already
      turned into Python floats for the message hub, so the check costs no
      device sync. mmdet's ``CheckInvalidLossHook`` checks only every
      ``interval`` iterations, with a sync, and by ``assert``.
    * **Weights**, before every checkpoint is saved (``CheckpointHook``'s
      ``epoch_N``/``best_*``, :class:`TwoStageLoop`'s ``stage*_final``),
      on the CPU copy mmengine has just made: weights can turn NaN without
      a NaN loss (e.g. a part the current stage does not use).
    * **Scores**, in validation and test: counted per batch on the device,
      read once after the last batch (all ranks summed), before the
      metrics, a ``DumpResults`` file or a best checkpoint are made of them.

    ``tools/train.py`` and ``tools/test.py`` add it to every config.
    """

    # After RuntimeInfoHook (VERY_HIGH) has logged the iteration's loss;
    # before LoggerHook, ParamSchedulerHook and CheckpointHook.
    priority = 'HIGH'

    def __init__(self) -> None:
        self._floats_in_hub = False
        self._bad: Optional[torch.Tensor] = None
        self._seen = 0

    # ------------------------------------------------------------------
    # Loss
    # ------------------------------------------------------------------
    def before_train(self, runner) -> None:
        hooks = list(runner.hooks)
        earlier = hooks[:hooks.index(self)] if self in hooks else []
        self._floats_in_hub = any(
            isinstance(hook, RuntimeInfoHook) for hook in earlier)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[Dict] = None) -> None:
        """Raise :class:`NonFiniteError` for a non-finite loss term."""
        values = self._losses(runner, outputs or {})
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if not bad:
            return
        terms = {k: v for k, v in bad.items() if k != 'loss'} or bad
        iters = len(runner.train_loop.dataloader)
        raise NonFiniteError(
            f'non-finite loss in {_when(runner, runner.epoch + 1)}, '
            f'iteration {batch_idx + 1}/{iters}: ' +
            ', '.join(f'{k} = {v}' for k, v in terms.items()) +
            '; training stopped; ' + _way_on(runner))

    def _losses(self, runner, outputs: Dict) -> Dict[str, float]:
        """The logged loss terms (keys with ``loss``) as floats."""
        hub = runner.message_hub
        return {
            key: hub.get_scalar(f'train/{key}').current()
            if self._floats_in_hub else float(value)
            for key, value in outputs.items() if 'loss' in key
        }

    # ------------------------------------------------------------------
    # Weights
    # ------------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: Dict) -> None:
        """Refuse to save weights with NaN or infinity."""
        bad = non_finite_keys(checkpoint.get('state_dict', {}))
        if bad:
            epoch = (checkpoint.get('meta') or {}).get('epoch', runner.epoch)
            raise NonFiniteError(
                f'non-finite weights after {_when(runner, epoch)}: '
                f'{listed_keys(bad)}; refusing to save a checkpoint of '
                'them; ' + _way_on(runner))

    # ------------------------------------------------------------------
    # Scores
    # ------------------------------------------------------------------
    def before_val_epoch(self, runner) -> None:
        self._bad, self._seen = None, 0

    def before_test_epoch(self, runner) -> None:
        self._bad, self._seen = None, 0

    def after_val_iter(self, runner, batch_idx: int, data_batch=None,
                       outputs: Optional[Sequence] = None) -> None:
        self._count(outputs)
        if batch_idx + 1 == len(runner.val_loop.dataloader):
            self._refuse_scores(runner, 'validation')

    def after_test_iter(self, runner, batch_idx: int, data_batch=None,
                        outputs: Optional[Sequence] = None) -> None:
        self._count(outputs)
        if batch_idx + 1 == len(runner.test_loop.dataloader):
            self._refuse_scores(runner, 'test')

    def _count(self, outputs: Optional[Sequence]) -> None:
        """Add the batch's samples with a non-finite score, on the device
        (no sync)."""
        scores = [sample.get('pred_score') for sample in outputs or ()
                  if hasattr(sample, 'get')]
        scores = [s.reshape(-1) for s in scores
                  if isinstance(s, torch.Tensor)]
        if not scores:
            return
        bad = (~torch.isfinite(torch.stack(scores))).any(dim=1).sum()
        self._bad = bad if self._bad is None else self._bad + bad
        self._seen += len(scores)

    def _refuse_scores(self, runner, split: str) -> None:
        """After the last batch: raise if any sample of any rank had a
        non-finite score."""
        if self._bad is None:
            return
        counts = torch.stack([self._bad.to(torch.int64),
                              torch.tensor(self._seen,
                                           device=self._bad.device)])
        all_reduce(counts)
        bad, seen = (int(n) for n in counts.tolist())
        self._bad, self._seen = None, 0
        if not bad:
            return
        if split == 'test':
            source = runner.cfg.get('load_from') or 'the model'
            raise NonFiniteError(
                f'{source}: {bad} of {seen} test samples have non-finite '
                'scores (NaN/inf); refusing to report metrics of them '
                "(mmaction2's AccMetric counts a NaN score as class 0)")
        raise NonFiniteError(
            f'non-finite scores for {bad} of {seen} validation samples '
            f'after {_when(runner, runner.epoch)}; no checkpoint is chosen '
            'on them; ' + _way_on(runner))


def _when(runner, epoch: int) -> str:
    """``epoch N``, with its stage in a :class:`TwoStageLoop` run (``epoch``
    is 1-based, as in ``epoch_N.pth``)."""
    loop = getattr(runner, '_train_loop', None)
    stages = getattr(loop, 'stages', None) if isinstance(loop,
                                                         BaseLoop) else None
    if not stages:
        return f'epoch {epoch}'
    stage = stage_at(stages, epoch - 1)
    return (f'stage {stage.index} ({stage.name}), epoch {epoch} (epoch '
            f'{epoch - stage.begin}/{stage.epochs} of the stage)')


def _way_on(runner) -> str:
    """How to go on: fix the cause, resume from the newest checkpoint."""
    found = checkpoint_candidates(runner.work_dir)
    fix = 'fix the cause (e.g. a lower learning rate or loss weight)'
    if not found:
        return f'no checkpoint was saved yet: {fix} and start again'
    return f'{fix} and resume from the last good checkpoint: --resume ' \
        f'{found[0]}'
