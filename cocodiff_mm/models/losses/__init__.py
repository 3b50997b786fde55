"""Losses of CoCoDiff."""
from .text_guidance_loss import TextGuidanceLoss

__all__ = ['TextGuidanceLoss']
