"""Hooks that CoCoDiff configs add through ``custom_hooks``."""
from .generated_loss_ramp_hook import GeneratedLossRampHook
from .generation_diagnostics_hook import GenerationDiagnosticsHook
from .stage_log_reset_hook import StageLogResetHook
from .stage_timer_hook import StageTimerHook

__all__ = [
    'GeneratedLossRampHook', 'GenerationDiagnosticsHook', 'StageLogResetHook',
    'StageTimerHook'
]
