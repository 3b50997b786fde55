"""Classification heads."""
from .diffusion_augmented_head import DiffusionAugmentedHead

__all__ = ['DiffusionAugmentedHead']
