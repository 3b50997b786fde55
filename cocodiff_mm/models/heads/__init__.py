"""Classification heads."""
from .diffusion_augmented_head import DiffusionAugmentedHead, is_cocodiff_head

__all__ = ['DiffusionAugmentedHead', 'is_cocodiff_head']
