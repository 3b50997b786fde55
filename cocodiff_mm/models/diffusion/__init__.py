"""Latent diffusion core of CoCoDiff: beta schedules, the Gaussian diffusion
maths (DDPM / DDIM) and the noise predictors (MLP and 1-D conv UNets)."""
from .gaussian_diffusion import GaussianDiffusion, ModelPrediction
from .schedules import (cosine_beta_schedule, linear_beta_schedule,
                        make_beta_schedule)
from .embedding import TimeTextEmbedding, timestep_embedding
from .mlp_unet import ConditionalMLPUNet, MLPUNet
from .unet1d import ConditionalUNet1D, UNet1D

__all__ = [
    'GaussianDiffusion', 'ModelPrediction', 'ConditionalUNet1D', 'UNet1D',
    'ConditionalMLPUNet', 'MLPUNet', 'TimeTextEmbedding', 'timestep_embedding',
    'linear_beta_schedule', 'cosine_beta_schedule', 'make_beta_schedule'
]
