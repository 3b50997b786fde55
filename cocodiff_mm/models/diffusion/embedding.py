"""Timestep and text embedding shared by CoCoDiff's noise predictors."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t: torch.Tensor, dim: int,
                       max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (Vaswani et al., 2017).

    Args:
        t (torch.Tensor): ``(N,)`` timesteps.
        dim (int): Embedding size.
        max_period (float): Longest wavelength. Defaults to ``10000.0``.

    Returns:
        torch.Tensor: ``(N, dim)`` float32 embedding ``[cos | sin]``.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) *
                      torch.arange(half, dtype=torch.float32, device=t.device)
                      / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimeTextEmbedding(nn.Module):
    """``MLP(sin(t)) + MLP(e_f(y))``: the vector that drives every FiLM layer.

    Args:
        embed_dim (int): Size of the embedding.
        cond_dim (int, optional): Text-embedding size ``D``; ``None`` embeds
            the timestep only and ignores ``cond``.
        owner (str): Name of the network, for error messages.
    """

    def __init__(self, embed_dim: int, cond_dim: Optional[int],
                 owner: str) -> None:
        super().__init__()
        if cond_dim is not None and cond_dim < 1:
            raise ValueError(
                f'{owner}: cond_dim must be None or >= 1, got {cond_dim}.')
        self.embed_dim = embed_dim
        self.cond_dim = cond_dim
        self.owner = owner
        self.time_mlp = nn.Sequential(
            nn.Linear(embed_dim, embed_dim), nn.SiLU(),
            nn.Linear(embed_dim, embed_dim))
        self.cond_mlp = None
        if cond_dim is not None:
            self.cond_mlp = nn.Sequential(
                nn.Linear(cond_dim, embed_dim), nn.SiLU(),
                nn.Linear(embed_dim, embed_dim))

    def forward(self, t: torch.Tensor,
                cond: Optional[torch.Tensor]) -> torch.Tensor:
        """Embed ``t`` (``(N,)``) and, if conditional, ``cond`` (``(N, D)``)."""
        emb = self.time_mlp(timestep_embedding(t, self.embed_dim))
        if self.cond_mlp is None:
            return emb
        if cond is None:
            raise ValueError(
                f'{self.owner}: built with cond_dim={self.cond_dim}, so cond '
                f'must be a (N, {self.cond_dim}) tensor, got None (build it '
                'with cond_dim=None for the no-text variant).')
        if cond.dim() != 2 or cond.shape[1] != self.cond_dim:
            raise ValueError(
                f'{self.owner}: cond must have shape (N, {self.cond_dim}) '
                f'(cond_dim={self.cond_dim}), got {tuple(cond.shape)} with '
                f'last dimension {cond.shape[-1]}.')
        if cond.shape[0] != t.shape[0]:
            raise ValueError(f'{self.owner}: cond has {cond.shape[0]} rows '
                             f'but the batch has {t.shape[0]} samples.')
        return emb + self.cond_mlp(cond.to(emb.dtype))
