"""Warm-up of the cross-entropy on generated features in stage 2."""
from mmaction.registry import HOOKS
from mmengine.hooks import Hook

from .stage_info import current_stage, unwrapped_model


@HOOKS.register_module()
class GeneratedLossRampHook(Hook):
    """Ramps the weight of CE(generated) from 0 to 1 at the joint stage.

    At stage 2's start the GCN is fresh while the diffusion was trained on
    the old GCN's features; the generated features only become useful once
    the diffusion has adapted. Before every iteration the hook sets
    ``cls_head.gen_cls_scale`` (the factor on ``loss_gen_cls``) to the
    fraction of ``warmup_epochs`` done since the stage began, and logs it as
    ``gen_cls_scale``. Under a plain epoch loop (no stages) the ramp starts
    at epoch 0.

    Args:
        warmup_epochs (float): Length of the ramp in epochs; 0 disables it
            (scale 1 throughout). Defaults to 5 (the recipe's lr warm-up).
    """

    priority = 'NORMAL'

    def __init__(self, warmup_epochs: float = 5) -> None:
        if warmup_epochs < 0:
            raise ValueError('GeneratedLossRampHook.warmup_epochs must be '
                             f'>= 0, got {warmup_epochs}')
        self.warmup_epochs = warmup_epochs

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        head = unwrapped_model(runner).cls_head
        if getattr(head, 'objective', None) != 'joint':
            return
        scale = 1.0
        if self.warmup_epochs > 0:
            stage = current_stage(runner)
            per_epoch = len(runner.train_loop.dataloader)
            done = runner.iter - (stage.begin if stage else 0) * per_epoch
            scale = min(1.0, max(0.0,
                                 done / (self.warmup_epochs * per_epoch)))
        head.gen_cls_scale = scale
        runner.message_hub.update_scalar('train/gen_cls_scale', scale)
