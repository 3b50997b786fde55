"""Variance (beta) schedules of the forward diffusion process.

Every helper returns a 1-D ``torch.float64`` tensor ``betas`` of length
``num_steps``; index ``t`` (0-based) holds the variance added by the ``t``-th
noising step. :class:`~.gaussian_diffusion.GaussianDiffusion` derives all of
its other schedule tensors from it, in float64, before storing float32
buffers.
"""
import math
from typing import Callable, Dict, Optional

import torch

from ...utils.checks import check_int

#: Upper bound used by the linear schedule's *default* end point: DDPM's
#: scaled values exceed 1 for chains shorter than 20 steps.
DEFAULT_MAX_BETA = 0.999


def linear_beta_schedule(num_steps: int,
                         beta_start: Optional[float] = None,
                         beta_end: Optional[float] = None,
                         max_beta: float = DEFAULT_MAX_BETA) -> torch.Tensor:
    """Betas spaced linearly from ``beta_start`` to ``beta_end``.

    The defaults are DDPM's ``1e-4 .. 0.02`` for 1000 steps, scaled by
    ``1000 / num_steps`` so that a short chain (CoCoDiff uses ``T = 30``)
    still ends close to pure noise (``alpha_bar_T < 0.01``). For chains
    shorter than 20 steps the scaled defaults would pass 1, so each default
    is capped at ``max_beta``; explicit values are used as given.

    Args:
        num_steps (int): Number of diffusion steps ``T``.
        beta_start (float, optional): Variance of the first step. Defaults to
            ``None`` (``1e-4 * 1000 / num_steps``, capped at ``max_beta``).
        beta_end (float, optional): Variance of the last step. Defaults to
            ``None`` (``0.02 * 1000 / num_steps``, capped at ``max_beta``).
        max_beta (float): Cap applied to the default end points only.
            Defaults to ``0.999``.

    Returns:
        torch.Tensor: ``(num_steps,)`` float64 betas.
    """
    check_int(num_steps, 'linear_beta_schedule: num_steps', minimum=1)
    scale = 1000.0 / num_steps
    if beta_start is None:
        beta_start = min(1e-4 * scale, max_beta)
    if beta_end is None:
        beta_end = min(0.02 * scale, max_beta)
    if not 0.0 < beta_start <= beta_end < 1.0:
        raise ValueError(
            'linear_beta_schedule: need 0 < beta_start <= beta_end < 1, got '
            f'beta_start={beta_start!r}, beta_end={beta_end!r} '
            f'(num_steps={num_steps}).')
    return torch.linspace(
        beta_start, beta_end, num_steps, dtype=torch.float64)


def cosine_beta_schedule(num_steps: int,
                         s: float = 0.008,
                         max_beta: float = 0.999) -> torch.Tensor:
    """Betas of the cosine schedule (Nichol & Dhariwal, 2021).

    ``alpha_bar(u) = cos^2(((u / T) + s) / (1 + s) * pi / 2)`` for
    ``u = 0 .. T`` and ``beta_t = 1 - alpha_bar(t + 1) / alpha_bar(t)``,
    clipped at ``max_beta`` to avoid a singular last step.

    Args:
        num_steps (int): Number of diffusion steps ``T``.
        s (float): Small offset that keeps the first betas away from 0.
            Defaults to ``0.008``.
        max_beta (float): Largest allowed beta. Defaults to ``0.999``.

    Returns:
        torch.Tensor: ``(num_steps,)`` float64 betas.
    """
    check_int(num_steps, 'cosine_beta_schedule: num_steps', minimum=1)
    if not 0.0 < max_beta < 1.0:
        raise ValueError('cosine_beta_schedule: max_beta must lie in (0, 1), '
                         f'got {max_beta!r}.')
    u = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    alpha_bar = torch.cos((u + s) / (1 + s) * math.pi / 2)**2
    betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(min=0.0, max=max_beta)


#: Schedules selectable by name in configs.
BETA_SCHEDULES: Dict[str, Callable[..., torch.Tensor]] = {
    'linear': linear_beta_schedule,
    'cosine': cosine_beta_schedule,
}


def make_beta_schedule(name: str, num_steps: int, **kwargs) -> torch.Tensor:
    """Build a named beta schedule.

    Args:
        name (str): ``'linear'`` or ``'cosine'``.
        num_steps (int): Number of diffusion steps ``T``.
        **kwargs: Keyword arguments of the chosen schedule function
            (for example ``beta_start`` / ``beta_end`` for ``'linear'``).

    Returns:
        torch.Tensor: ``(num_steps,)`` float64 betas.

    Raises:
        ValueError: If ``name`` is not a known schedule.
    """
    if name not in BETA_SCHEDULES:
        raise ValueError(
            f'make_beta_schedule: unknown beta_schedule {name!r}; expected '
            f'one of {sorted(BETA_SCHEDULES)}.')
    return BETA_SCHEDULES[name](num_steps, **kwargs)
