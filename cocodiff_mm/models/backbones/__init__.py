"""Skeleton backbones that mmaction2 does not install."""
from .blockgcn import BlockGCN
from .ctrgcn import CTRGCN
from .hdgcn import HDGCN

__all__ = ['BlockGCN', 'CTRGCN', 'HDGCN']
