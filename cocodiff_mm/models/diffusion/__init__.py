"""Latent diffusion core of CoCoDiff: beta schedules, the Gaussian diffusion
maths (DDPM / DDIM) and the 1-D UNet noise predictor."""
from .gaussian_diffusion import GaussianDiffusion, ModelPrediction
from .schedules import (cosine_beta_schedule, linear_beta_schedule,
                        make_beta_schedule)
from .unet1d import ConditionalUNet1D, UNet1D

__all__ = [
    'GaussianDiffusion', 'ModelPrediction', 'ConditionalUNet1D', 'UNet1D',
    'linear_beta_schedule', 'cosine_beta_schedule', 'make_beta_schedule'
]
