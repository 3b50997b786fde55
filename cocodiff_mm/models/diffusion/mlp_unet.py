"""A lean U-shaped MLP that predicts the diffusion noise of a pooled feature.

The pooled GCN feature is a vector, not a signal: its ``C`` entries are
channels with their own meaning, and no neighbourhood among them is worth a
convolution. :class:`ConditionalMLPUNet` keeps the UNet's shape (an encoder
of narrowing widths, a middle, a mirrored decoder with skip connections and
FiLM conditioning in every block) but builds it from a few wide linear
layers: a small fraction of the FLOPs and ops of the 1-D convolutional UNet
of :mod:`.unet1d`, so that the reverse chain stays cheap next to the GCN
(measured costs: ``docs/results.md``, ``tools/benchmark_training.py``).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmaction.registry import MODELS
from ...utils.checks import is_int
from .embedding import (check_condition, check_noisy_input,
                        timestep_embedding)


class FiLMResMLPBlock(nn.Module):
    """Residual MLP block whose normalised activations are scaled and shifted.

    ``h = W1 SiLU(LN(x))``, then ``h = LN(h) * gain + shift``, then
    ``W2 dropout(SiLU(h))`` plus a (linearly projected) skip. The FiLM
    ``(gain, shift)`` comes from outside: :class:`ConditionalMLPUNet`
    projects it for all blocks at once (``gain`` starts near 1).

    Args:
        in_features (int): Input width.
        out_features (int): Output width.
        dropout (float): Dropout before the second layer. Defaults to
            ``0.0``.
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.out_features = out_features
        self.norm1 = nn.LayerNorm(in_features)
        self.fc1 = nn.Linear(in_features, out_features)
        self.norm2 = nn.LayerNorm(out_features)
        self.dropout_p = dropout
        self.fc2 = nn.Linear(out_features, out_features)
        self.skip = (None if in_features == out_features else nn.Linear(
            in_features, out_features, bias=False))

    def forward(self, x: torch.Tensor, film: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x (torch.Tensor): ``(N, in_features)``.
            film (torch.Tensor): ``(N, 2 * out_features)``: gain, shift.

        Returns:
            torch.Tensor: ``(N, out_features)``.
        """
        gain, shift = film.chunk(2, dim=1)
        h = self.fc1(F.silu(self.norm1(x)))
        h = torch.addcmul(shift, self.norm2(h), gain)
        h = F.silu(h)
        if self.training and self.dropout_p > 0:
            h = F.dropout(h, self.dropout_p)
        h = self.fc2(h)
        if self.skip is None:
            return h + x
        # addmm, not ``h + self.skip(x)``: that sum rounds differently, and
        # runs must reproduce earlier ones bit for bit.
        return torch.addmm(h, x, self.skip.weight.t())


class _ConditionedMLPUNet:
    """:class:`ConditionalMLPUNet` with one chain's conditioning precomputed.

    The text part of every block's FiLM input, and the time part for every
    step, are computed once; each call of the chain gathers and adds them
    and calls the network with them. Same outputs as ``net(x, t, cond)``.
    """

    def __init__(self, net: 'ConditionalMLPUNet',
                 cond: Optional[torch.Tensor]) -> None:
        self.net = net
        self.cond = cond
        steps = torch.arange(net.num_steps, device=net.in_proj.weight.device)
        self.time_film = net.time_film(steps)
        self.text_film = net.text_film(
            cond, cond.shape[0] if cond is not None else 0)

    def __call__(self, x: torch.Tensor, t: torch.Tensor,
                 cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        if cond is not self.cond:
            raise ValueError('ConditionalMLPUNet.conditioned_on: called with '
                             'another cond than it was prepared for')
        film = self.time_film.index_select(0, t)
        if self.text_film is not None:
            film = film + self.text_film
        return self.net(x, t, cond, film=film)


@MODELS.register_module()
class ConditionalMLPUNet(nn.Module):
    """Noise predictor ``eps_theta(x_t, t, e_f(y))`` built from wide linears.

    ``x_t`` (``(N, C)``) is projected to ``widths[0]``; the encoder applies
    one :class:`FiLMResMLPBlock` per width (keeping each output as a skip),
    a middle block follows, and the decoder mirrors the encoder, each block
    taking the previous output concatenated with its skip. The output layer
    is zero-initialised, so the initial prediction is exactly 0.

    Every block is modulated (FiLM) by a gain and shift that is the sum of
    a projection of the timestep embedding and a projection of the text
    embedding, so the text reaches every level and every denoising step.
    Keeping the two projections apart (rather than projecting their sum
    through a non-linearity) lets :meth:`conditioned_on` compute the text
    part once per chain and the time part once per step value.

    Args:
        feat_dim (int): Feature size ``C``. Defaults to ``256``.
        cond_dim (int, optional): Text-embedding size ``D``; ``None`` builds
            the no-text network, which ignores ``cond``. Defaults to ``512``.
        widths (Sequence[int]): Width of each encoder level. Defaults to
            ``(256, )``.
        time_embed_dim (int): Size of the time / text embedding. Defaults
            to ``128``.
        num_steps (int): Largest timestep + 1 that :meth:`conditioned_on`
            prepares; filled in by the head from the diffusion's ``T``.
            Defaults to ``1000``.
        dropout (float): Dropout inside the blocks. Defaults to ``0.0``.
    """

    def __init__(self,
                 feat_dim: int = 256,
                 cond_dim: Optional[int] = 512,
                 widths: Sequence[int] = (256, ),
                 time_embed_dim: int = 128,
                 num_steps: int = 1000,
                 dropout: float = 0.0) -> None:
        super().__init__()
        name = type(self).__name__
        widths = tuple(widths)
        if not widths or any(not is_int(w) or w < 1 for w in widths):
            raise ValueError(f'{name}: widths must be a non-empty sequence '
                             f'of ints >= 1, got {widths}.')
        if feat_dim < 1:
            raise ValueError(f'{name}: feat_dim must be >= 1, got '
                             f'{feat_dim}.')
        if cond_dim is not None and cond_dim < 1:
            raise ValueError(
                f'{name}: cond_dim must be None or >= 1, got {cond_dim}.')
        self.feat_dim = feat_dim
        self.cond_dim = cond_dim
        self.time_embed_dim = time_embed_dim
        self.num_steps = num_steps

        self.in_proj = nn.Linear(feat_dim, widths[0])
        blocks: List[FiLMResMLPBlock] = []
        d_in = widths[0]
        for width in widths:
            blocks.append(FiLMResMLPBlock(d_in, width, dropout))
            d_in = width
        self.num_down = len(widths)
        blocks.append(FiLMResMLPBlock(d_in, d_in, dropout))
        for width in reversed(widths):
            blocks.append(FiLMResMLPBlock(d_in + width, width, dropout))
            d_in = width
        self.blocks = nn.ModuleList(blocks)
        self.out_norm = nn.LayerNorm(d_in)
        self.out_proj = nn.Linear(d_in, feat_dim)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

        film_dim = sum(2 * blk.out_features for blk in self.blocks)
        self.time_mlp = nn.Sequential(
            nn.Linear(time_embed_dim, time_embed_dim), nn.SiLU(),
            nn.Linear(time_embed_dim, time_embed_dim), nn.SiLU(),
            nn.Linear(time_embed_dim, film_dim))
        # The time projection's bias starts every gain at 1 and every shift
        # at 0, so the blocks start as plain residual MLPs.
        with torch.no_grad():
            nn.init.zeros_(self.time_mlp[-1].bias)
            offset = 0
            for blk in self.blocks:
                self.time_mlp[-1].bias[offset:offset + blk.out_features] = 1
                offset += 2 * blk.out_features
        self.cond_mlp = None
        if cond_dim is not None:
            self.cond_mlp = nn.Sequential(
                nn.Linear(cond_dim, time_embed_dim), nn.SiLU(),
                nn.Linear(time_embed_dim, film_dim, bias=False))

    # ------------------------------------------------------------------
    # conditioning
    # ------------------------------------------------------------------
    def time_film(self, t: torch.Tensor) -> torch.Tensor:
        """Time part of every block's FiLM input, ``(N, sum 2 w)``."""
        return self.time_mlp(timestep_embedding(t, self.time_embed_dim))

    def text_film(self, cond: Optional[torch.Tensor],
                  batch_size: int) -> Optional[torch.Tensor]:
        """Text part of every block's FiLM input (``None`` without text)."""
        if self.cond_mlp is None:
            return None
        check_condition(type(self).__name__, cond, self.cond_dim, batch_size)
        return self.cond_mlp(cond.to(self.in_proj.weight.dtype))

    def conditioned_on(self, cond: Optional[torch.Tensor]
                       ) -> _ConditionedMLPUNet:
        """This network with ``cond`` fixed, for one whole reverse chain.

        Args:
            cond (torch.Tensor, optional): ``(N, D)`` text embeddings.

        Returns:
            Callable: ``f(x_t, t, cond) -> eps`` equal to ``self(x_t, t,
            cond)`` for the same ``cond``, with the text projections and
            the time projections of all ``num_steps`` steps computed once.
        """
        return _ConditionedMLPUNet(self, cond)

    # ------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------
    def forward(self,
                x: torch.Tensor,
                t: torch.Tensor,
                cond: Optional[torch.Tensor] = None,
                film: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Predict the noise in ``x``.

        Args:
            x (torch.Tensor): ``(N, C)`` noisy features, ``C == feat_dim``.
            t (torch.Tensor): ``(N,)`` long timesteps (0-based).
            cond (torch.Tensor, optional): ``(N, D)`` text embeddings;
                ignored when ``cond_dim`` is ``None``. Defaults to ``None``.
            film (torch.Tensor, optional): ``(N, sum 2 w)`` FiLM input of
                every block, already computed from ``t`` and ``cond`` (see
                :meth:`conditioned_on`); ``cond`` is then not read. Defaults
                to ``None`` (computed here).

        Returns:
            torch.Tensor: ``(N, C)`` predicted noise.
        """
        t = check_noisy_input(type(self).__name__, x, t, self.feat_dim)
        if film is None:
            film = self.time_film(t)
            text = self.text_film(cond, x.shape[0])
            if text is not None:
                film = film + text
        films: Tuple[torch.Tensor, ...] = film.to(x.dtype).split(
            [2 * blk.out_features for blk in self.blocks], dim=1)
        h = self.in_proj(x)
        skips: List[torch.Tensor] = []
        for index, blk in enumerate(self.blocks):
            if index > self.num_down:
                h = torch.cat([h, skips.pop()], dim=1)
            h = blk(h, films[index])
            if index < self.num_down:
                skips.append(h)
        return self.out_proj(F.silu(self.out_norm(h)))


@MODELS.register_module()
class MLPUNet(ConditionalMLPUNet):
    """No-text :class:`ConditionalMLPUNet`: the "diffusion without text" arm.

    It accepts ``cond`` in :meth:`forward` so it can replace the conditional
    network anywhere, but its output never depends on it.

    Args:
        feat_dim (int): Feature size ``C``. Defaults to ``256``.
        cond_dim (int, optional): Only ``None`` is accepted (code that fills
            in ``cond_dim`` for any denoiser gets a clear error). Defaults to
            ``None``.
        widths (Sequence[int]): Width of each encoder level. Defaults to
            ``(256, )``.
        time_embed_dim (int): Size of the time embedding. Defaults to
            ``128``.
        num_steps (int): Steps :meth:`conditioned_on` prepares. Defaults to
            ``1000``.
        dropout (float): Dropout inside the blocks. Defaults to ``0.0``.
    """

    def __init__(self,
                 feat_dim: int = 256,
                 cond_dim: Optional[int] = None,
                 widths: Sequence[int] = (256, ),
                 time_embed_dim: int = 128,
                 num_steps: int = 1000,
                 dropout: float = 0.0) -> None:
        if cond_dim is not None:
            raise ValueError(
                f'MLPUNet is the no-text denoiser: cond_dim must be None, '
                f'got {cond_dim}; use ConditionalMLPUNet for text '
                'conditioning.')
        super().__init__(
            feat_dim=feat_dim,
            cond_dim=None,
            widths=widths,
            time_embed_dim=time_embed_dim,
            num_steps=num_steps,
            dropout=dropout)
