"""What the stage hooks need to know about the training loop."""
from typing import Optional

import torch.nn as nn
from mmengine.model import is_model_wrapper

from ..stage_plan import Stage


def current_stage(runner) -> Optional[Stage]:
    """The stage of the current epoch, or None outside ``TwoStageLoop``."""
    return getattr(runner.train_loop, 'stage', None)


def unwrapped_model(runner) -> nn.Module:
    """The runner's model without its DDP (or other) wrapper."""
    model = runner.model
    return model.module if is_model_wrapper(model) else model
