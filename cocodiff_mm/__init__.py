"""CoCoDiff for OpenMMLab: coarse-fine text-co-guided latent diffusion for
skeleton action recognition, as mmaction2 modules driven by configs.

Importing the package first applies the import-time fixes of
:mod:`.runtime` (those that make ``import mmaction.models`` work: configs
load the package through ``custom_imports``), then registers its models,
loops and hooks in mmaction2's registries. The patches that change how the
process runs wait for :func:`cocodiff_mm.runtime.setup`.
"""
from . import runtime

runtime.import_fixes()

from . import datasets, engine, models  # noqa: E402,F401  (registration)
from .version import __version__  # noqa: E402

__all__ = ['__version__']
