"""Training engine: the multi-stage loop, its hooks and the pre-run checks."""
from .hooks import GenerationDiagnosticsHook
from .two_stage_loop import TwoStageLoop

__all__ = ['TwoStageLoop', 'GenerationDiagnosticsHook']
