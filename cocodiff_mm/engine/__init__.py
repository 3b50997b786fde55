"""Training engine: the multi-stage loop, its hooks and the pre-run checks."""
from .diffusion_optim_wrapper import (DiffusionOptimWrapperConstructor,
                                      JointOptimWrapperDict)
from .hooks import (GeneratedLossRampHook, GenerationDiagnosticsHook,
                    StageLogResetHook, StageTimerHook)
from .two_stage_loop import TwoStageLoop

__all__ = [
    'TwoStageLoop', 'GeneratedLossRampHook', 'GenerationDiagnosticsHook',
    'StageLogResetHook', 'StageTimerHook', 'DiffusionOptimWrapperConstructor',
    'JointOptimWrapperDict'
]
