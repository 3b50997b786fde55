"""Skeleton backbones that mmaction2 does not install."""
from .ctrgcn import CTRGCN

__all__ = ['CTRGCN']
