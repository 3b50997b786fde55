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
        check_condition(self.owner, cond, self.cond_dim, t.shape[0])
        return emb + self.cond_mlp(cond.to(emb.dtype))


def check_noisy_input(owner: str, x: torch.Tensor, t: torch.Tensor,
                      feat_dim: int) -> torch.Tensor:
    """Validate a denoiser's ``x`` (``(N, feat_dim)``) and ``t``.

    Returns:
        torch.Tensor: ``t`` as an ``(N,)`` tensor (a 0-d ``t`` is expanded).
    """
    if x.dim() != 2 or x.shape[1] != feat_dim:
        raise ValueError(f'{owner}: x must have shape (N, {feat_dim}) '
                         f'(feat_dim={feat_dim}), got {tuple(x.shape)}.')
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0], ):
        raise ValueError(f'{owner}: t must have shape ({x.shape[0]},), '
                         f'got {tuple(t.shape)}.')
    return t


def check_condition(owner: str, cond: Optional[torch.Tensor], cond_dim: int,
                    batch_size: int) -> None:
    """Validate the text condition of a conditional denoiser."""
    if cond is None:
        raise ValueError(
            f'{owner}: built with cond_dim={cond_dim}, so cond must be a '
            f'(N, {cond_dim}) tensor, got None (build it with cond_dim=None '
            'for the no-text variant).')
    if cond.dim() != 2 or cond.shape[1] != cond_dim:
        raise ValueError(
            f'{owner}: cond must have shape (N, {cond_dim}) (cond_dim='
            f'{cond_dim}), got {tuple(cond.shape)} with last dimension '
            f'{cond.shape[-1]}.')
    if cond.shape[0] != batch_size:
        raise ValueError(f'{owner}: cond has {cond.shape[0]} rows but the '
                         f'batch has {batch_size} samples.')
