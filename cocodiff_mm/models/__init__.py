"""Models: backbones, heads, losses, the diffusion core and text encoders."""
from . import backbones, diffusion, heads, losses, text  # noqa: F401
