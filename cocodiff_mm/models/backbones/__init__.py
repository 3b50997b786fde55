"""Skeleton backbones that mmaction2 does not install."""
# mmaction2 registers the 'ConvBranch' initializer that its AAGCN's
# init_cfg names in mmaction.engine, which only its Runner imports; tools
# that build and initialise a model without a Runner need it too.
import mmaction.engine.model  # noqa: F401

from .blockgcn import BlockGCN
from .ctrgcn import CTRGCN
from .hdgcn import HDGCN

__all__ = ['BlockGCN', 'CTRGCN', 'HDGCN']
