"""Warm-up of the cross-entropy on generated features in stage 2."""
from typing import Dict, Optional

from mmaction.registry import HOOKS
from mmengine.hooks import Hook

from ...utils.checks import check_number
from ..model_utils import unwrap_model
from .rank_mean import mean_over_ranks
from .stage_info import current_stage

#: Runtime-info key of the message hub (saved in every checkpoint): the
#: global epoch at which the ramp began, once ``start_acc`` was reached.
RAMP_START_INFO = 'gen_cls_ramp_start'


@HOOKS.register_module()
class GeneratedLossRampHook(Hook):
    """Ramps the weight of CE(generated) from 0 to 1 at the joint stage.

    At stage 2's start the GCN is fresh while the diffusion was trained on
    the old GCN's features; a ramp holds CE(generated) back while the
    diffusion adapts (by default it does not: see ``warmup_epochs``).
    Before every iteration the hook sets
    ``cls_head.gen_cls_scale`` (the factor on ``loss_gen_cls``) to the
    fraction of ``warmup_epochs`` done since the ramp began, and logs it as
    ``gen_cls_scale``. The ramp begins with the stage, or, with
    ``start_acc``, after the first stage-2 epoch in which the classifier
    recognised that share of the generated features it was shown (the
    mean ``acc_generated`` of the epoch's iterations): until then the
    classifier learns from real clips only, and is never trained on
    generated features it cannot yet tell apart. That epoch is kept in the
    message hub (and so in checkpoints) for ``--resume``. Under a plain
    epoch loop (no stages) the ramp starts at epoch 0.

    Args:
        warmup_epochs (float): Length of the ramp in epochs; 0 makes it a
            step (scale 1 once the ramp begins). Defaults to 0: on
            UTD-MHAD validation a 5-epoch ramp left the fresh classifier's
            CE on generated features at chance level in its first epoch
            and scored lower (``docs/results.md``).
        start_acc (float, optional): Begin the ramp after the first epoch
            whose mean ``acc_generated`` reaches it. Defaults to None (with
            the stage).
    """

    priority = 'NORMAL'

    def __init__(self,
                 warmup_epochs: float = 0,
                 start_acc: Optional[float] = None) -> None:
        check_number(warmup_epochs, 'GeneratedLossRampHook.warmup_epochs',
                     minimum=0)
        if start_acc is not None and not 0 < start_acc <= 1:
            raise ValueError('GeneratedLossRampHook.start_acc must be None '
                             f'or in (0, 1], got {start_acc}')
        self.warmup_epochs = warmup_epochs
        self.start_acc = start_acc
        # Sum and count of acc_generated over the epoch's iterations.
        self._acc_total, self._acc_count = 0.0, 0

    def _ramp_start(self, runner) -> Optional[int]:
        """Global epoch at which the ramp begins (None: not yet)."""
        if self.start_acc is None:
            stage = current_stage(runner)
            return stage.begin if stage else 0
        return runner.message_hub.get_info(RAMP_START_INFO)

    def before_train_epoch(self, runner) -> None:
        self._acc_total, self._acc_count = 0.0, 0

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        head = unwrap_model(runner.model).cls_head
        if getattr(head, 'objective', None) != 'joint':
            return
        start = self._ramp_start(runner)
        if start is None:
            scale = 0.0
        elif self.warmup_epochs > 0:
            per_epoch = len(runner.train_loop.dataloader)
            done = runner.iter - start * per_epoch
            scale = min(1.0, max(0.0,
                                 done / (self.warmup_epochs * per_epoch)))
        else:
            scale = 1.0
        head.gen_cls_scale = scale
        runner.message_hub.update_scalar('train/gen_cls_scale', scale)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[Dict] = None) -> None:
        if outputs and 'acc_generated' in outputs:
            self._acc_total += float(outputs['acc_generated'])
            self._acc_count += 1

    def after_train_epoch(self, runner) -> None:
        head = unwrap_model(runner.model).cls_head
        if (self.start_acc is None
                or getattr(head, 'objective', None) != 'joint'
                or self._ramp_start(runner) is not None
                or not self._acc_count):
            return
        acc = mean_over_ranks(self._acc_total / self._acc_count,
                              self._acc_count)
        if acc >= self.start_acc:
            runner.message_hub.update_info(RAMP_START_INFO, runner.epoch + 1)
            runner.logger.info(
                f'The classifier recognised {100 * acc:.1f}% of the '
                f'generated features in epoch {runner.epoch + 1} (start_acc '
                f'{100 * self.start_acc:.1f}%): CE on generated features '
                'ramps up from the next epoch')
