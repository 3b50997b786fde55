"""Hooks that CoCoDiff configs add through ``custom_hooks``."""
from .generation_diagnostics_hook import GenerationDiagnosticsHook

__all__ = ['GenerationDiagnosticsHook']
