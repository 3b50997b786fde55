"""Hooks of the training engine: those CoCoDiff configs add through
``custom_hooks``, and the guards ``tools/`` add to every run."""
from .generated_loss_ramp_hook import GeneratedLossRampHook
from .generation_diagnostics_hook import GenerationDiagnosticsHook
from .non_finite_hook import NonFiniteError, NonFiniteHook
from .run_record_hook import RunRecordHook
from .stage_log_reset_hook import StageLogResetHook
from .stage_timer_hook import StageTimerHook

__all__ = [
    'GeneratedLossRampHook', 'GenerationDiagnosticsHook', 'NonFiniteError',
    'NonFiniteHook', 'RunRecordHook', 'StageLogResetHook', 'StageTimerHook'
]
