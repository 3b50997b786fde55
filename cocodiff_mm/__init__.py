"""CoCoDiff for OpenMMLab: coarse-fine text-co-guided latent diffusion for
skeleton action recognition, as mmaction2 modules driven by configs.

Importing the package first applies the runtime fixes of :mod:`.compat`, then
registers its models, loops and hooks in mmaction2's registries.
"""
from . import compat

compat.apply_all()

from . import datasets, engine, models  # noqa: E402,F401  (registration)
from .version import __version__  # noqa: E402

__all__ = ['__version__']
