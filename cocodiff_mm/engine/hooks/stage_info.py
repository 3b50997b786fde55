"""What the stage hooks need to know about the training loop."""
from typing import Optional

from ..stage_plan import Stage


def current_stage(runner) -> Optional[Stage]:
    """The stage of the current epoch, or None outside ``TwoStageLoop``."""
    return getattr(runner.train_loop, 'stage', None)
