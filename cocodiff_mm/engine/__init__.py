"""Training engine: the multi-stage loop and the checks run before it."""
from .two_stage_loop import TwoStageLoop

__all__ = ['TwoStageLoop']
