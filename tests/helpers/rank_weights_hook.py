"""Test helper: every rank saves its diffusion weights when stage 1 ends.

mmengine writes checkpoints on rank 0 only, so a test of cross-rank
gradient averaging needs each rank's own copy. Loaded by the distributed
test through ``custom_imports``.
"""
import os

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankWeightsHook(Hook):
    """Save ``cls_head.denoiser`` of this rank after the last stage-1 epoch."""

    def after_train_epoch(self, runner) -> None:
        loop = runner.train_loop
        if loop.stage.index != 1 or runner.epoch + 1 != loop.stage.end:
            return
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        path = os.path.join(runner.work_dir, f'rank{get_rank()}_stage1.pth')
        torch.save(model.cls_head.denoiser.state_dict(), path)
