"""A small 1-D UNet that predicts the diffusion noise of a pooled feature.

The ``C``-dimensional pooled GCN feature is treated as a length-``C`` signal
with one channel. Timestep and (optional) text embedding are summed into one
vector that scales and shifts (FiLM) every residual block of every
resolution.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmaction.registry import MODELS
from .embedding import TimeTextEmbedding, check_noisy_input


class FiLMResBlock1D(nn.Module):
    """Residual block whose normalised activations are scaled and shifted.

    ``h = conv(SiLU(GN(x)))``, then ``h = GN(h) * (1 + scale) + shift`` with
    ``(scale, shift)`` projected from the embedding, then
    ``conv(dropout(SiLU(h)))`` plus a (1x1-projected) skip.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        embed_dim (int): Size of the time(+text) embedding.
        dropout (float): Dropout before the second conv. Defaults to ``0.0``.
        norm_groups (int): GroupNorm groups. Defaults to ``8``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 embed_dim: int,
                 dropout: float = 0.0,
                 norm_groups: int = 8) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(norm_groups, in_channels)
        self.conv1 = nn.Conv1d(in_channels, out_channels, 3, padding=1)
        self.film = nn.Sequential(
            nn.SiLU(), nn.Linear(embed_dim, 2 * out_channels))
        self.norm2 = nn.GroupNorm(norm_groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(out_channels, out_channels, 3, padding=1)
        self.skip = (
            nn.Identity() if in_channels == out_channels else nn.Conv1d(
                in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x (torch.Tensor): ``(N, in_channels, L)``.
            emb (torch.Tensor): ``(N, embed_dim)``.

        Returns:
            torch.Tensor: ``(N, out_channels, L)``.
        """
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[..., None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


@MODELS.register_module()
class ConditionalUNet1D(nn.Module):
    """Noise predictor ``eps_theta(x_t, t, e_f(y))`` of CoCoDiff (Eq. 3/4).

    The pooled feature ``(N, C)`` is a one-channel signal of length ``C``.
    The encoder has ``len(channel_mults)`` resolutions (halving the length
    between them), a two-block middle, and a decoder mirroring the encoder
    with skip connections. A sinusoidal timestep embedding passes through an
    MLP; the text embedding passes through its own MLP and is added to it.
    The sum drives a FiLM scale and shift in every residual block, so the
    text reaches every resolution and every denoising step.

    Why FiLM rather than cross-attention: the condition is one vector per
    sample. Cross-attention over a single key/value token has softmax weight
    1, so it collapses to a projection of that token added to (or gating) the
    activations - FiLM computes the same kind of feature-wise affine
    modulation directly, at lower cost and without attention layers.

    Convolutions are translation-equivariant and the FiLM scale / shift is
    the same at every position, but the positions of a pooled feature are
    distinct channels with their own meaning. A learned positional embedding
    (one vector per feature position, added after the input convolution)
    lets the network place class-specific patterns at the right channels even
    when ``x_t`` is almost pure noise; without it only the zero padding at the
    borders tells positions apart.

    The output convolution is zero-initialised, so the initial prediction is
    exactly 0 (a neutral start for the noise regression).

    Args:
        feat_dim (int): Feature size ``C``; divisible by
            ``2 ** (len(channel_mults) - 1)``. Defaults to ``256``.
        cond_dim (int, optional): Text-embedding size ``D``; ``None`` builds
            the unconditional (no-text) network, which ignores ``cond``.
            Defaults to ``512``.
        base_channels (int): Channels of the first resolution. Defaults to
            ``32``.
        channel_mults (Sequence[int]): Channel multiplier per resolution.
            Defaults to ``(1, 2, 2)``.
        num_res_blocks (int): Residual blocks per resolution. Defaults to
            ``1``.
        time_embed_dim (int): Size of the time / text embedding. Defaults
            to ``128``.
        dropout (float): Dropout inside residual blocks. Defaults to ``0.0``.
        norm_groups (int): GroupNorm groups; must divide every channel count.
            Defaults to ``8``.
        pos_embed (bool): Add a learned positional embedding over the ``C``
            feature positions. Defaults to ``True``.
        num_steps (int): Largest timestep + 1, filled in by the head from
            the diffusion's ``T`` as for every denoiser; this network embeds
            any timestep and precomputes nothing. Defaults to ``1000``.
    """

    def __init__(self,
                 feat_dim: int = 256,
                 cond_dim: Optional[int] = 512,
                 base_channels: int = 32,
                 channel_mults: Sequence[int] = (1, 2, 2),
                 num_res_blocks: int = 1,
                 time_embed_dim: int = 128,
                 dropout: float = 0.0,
                 norm_groups: int = 8,
                 pos_embed: bool = True,
                 num_steps: int = 1000) -> None:
        super().__init__()
        name = type(self).__name__
        channel_mults = tuple(channel_mults)
        if not channel_mults or any(m < 1 for m in channel_mults):
            raise ValueError(f'{name}: channel_mults must be a non-empty '
                             f'sequence of ints >= 1, got {channel_mults}.')
        factor = 2**(len(channel_mults) - 1)
        if feat_dim < 1 or feat_dim % factor:
            raise ValueError(
                f'{name}: feat_dim={feat_dim} must be divisible by '
                f'2 ** (len(channel_mults) - 1) = {factor} '
                f'(channel_mults={channel_mults}).')
        if num_res_blocks < 1:
            raise ValueError(f'{name}: num_res_blocks must be >= 1, got '
                             f'{num_res_blocks}.')
        channels = [base_channels * m for m in channel_mults]
        bad = [c for c in channels if c % norm_groups]
        if bad:
            raise ValueError(
                f'{name}: norm_groups={norm_groups} must divide every channel '
                f'count base_channels * channel_mults = {channels}.')
        self.feat_dim = feat_dim
        self.cond_dim = cond_dim
        self.time_embed_dim = time_embed_dim
        self.num_steps = num_steps
        self.embedding = TimeTextEmbedding(time_embed_dim, cond_dim, name)

        def block(c_in: int, c_out: int) -> FiLMResBlock1D:
            return FiLMResBlock1D(c_in, c_out, time_embed_dim, dropout,
                                  norm_groups)

        self.init_conv = nn.Conv1d(1, base_channels, 3, padding=1)
        self.pos_embed = None
        if pos_embed:
            self.pos_embed = nn.Parameter(
                0.02 * torch.randn(1, base_channels, feat_dim))
        last = len(channels) - 1
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        c_in = base_channels
        for level, c in enumerate(channels):
            self.down_blocks.append(
                nn.ModuleList([
                    block(c_in if i == 0 else c, c)
                    for i in range(num_res_blocks)
                ]))
            self.downsamples.append(
                nn.Conv1d(c, c, 3, stride=2, padding=1)
                if level < last else nn.Identity())
            c_in = c
        self.mid_blocks = nn.ModuleList([block(c_in, c_in), block(c_in, c_in)])
        self.up_blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for level in range(last, -1, -1):
            c = channels[level]
            self.up_blocks.append(
                nn.ModuleList([
                    block(c_in + c if i == 0 else c, c)
                    for i in range(num_res_blocks)
                ]))
            self.upsamples.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode='nearest'),
                    nn.Conv1d(c, c, 3, padding=1))
                if level > 0 else nn.Identity())
            c_in = c
        self.out_norm = nn.GroupNorm(norm_groups, c_in)
        self.out_conv = nn.Conv1d(c_in, 1, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def conditioned_on(self, cond: Optional[torch.Tensor]) -> nn.Module:
        """This network for one reverse chain conditioned on ``cond``.

        Nothing is computed once per chain here: the network itself.

        Args:
            cond (torch.Tensor, optional): ``(N, D)`` text embeddings.

        Returns:
            nn.Module: ``self``.
        """
        return self

    def forward(self,
                x: torch.Tensor,
                t: torch.Tensor,
                cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Predict the noise in ``x``.

        Args:
            x (torch.Tensor): ``(N, C)`` noisy features, ``C == feat_dim``.
            t (torch.Tensor): ``(N,)`` long timesteps (0-based).
            cond (torch.Tensor, optional): ``(N, D)`` text embeddings;
                ignored when ``cond_dim`` is ``None``. Defaults to ``None``.

        Returns:
            torch.Tensor: ``(N, C)`` predicted noise.
        """
        t = check_noisy_input(type(self).__name__, x, t, self.feat_dim)
        emb = self.embedding(t, cond).to(x.dtype)
        h = self.init_conv(x[:, None, :])
        if self.pos_embed is not None:
            h = h + self.pos_embed.to(h.dtype)
        skips: List[torch.Tensor] = []
        for blocks, down in zip(self.down_blocks, self.downsamples):
            for blk in blocks:
                h = blk(h, emb)
            skips.append(h)
            h = down(h)
        for blk in self.mid_blocks:
            h = blk(h, emb)
        for blocks, up in zip(self.up_blocks, self.upsamples):
            h = torch.cat([h, skips.pop()], dim=1)
            for blk in blocks:
                h = blk(h, emb)
            h = up(h)
        return self.out_conv(F.silu(self.out_norm(h)))[:, 0, :]


@MODELS.register_module()
class UNet1D(ConditionalUNet1D):
    """Unconditional noise predictor: the "diffusion without text" ablation.

    Same network as :class:`ConditionalUNet1D` with ``cond_dim=None``. It
    accepts a ``cond`` argument in :meth:`forward` so it can replace the
    conditional network anywhere, but ignores it: the output never depends
    on ``cond``.

    Args:
        feat_dim (int): Feature size ``C``. Defaults to ``256``.
        cond_dim (int, optional): Only ``None`` is accepted; the argument
            exists so that code filling in ``cond_dim`` for any denoiser
            config gets a clear error when it asks this no-text network for
            text conditioning. Defaults to ``None``.
        base_channels (int): Channels of the first resolution. Defaults to
            ``32``.
        channel_mults (Sequence[int]): Channel multiplier per resolution.
            Defaults to ``(1, 2, 2)``.
        num_res_blocks (int): Residual blocks per resolution. Defaults to
            ``1``.
        time_embed_dim (int): Size of the time embedding. Defaults to
            ``128``.
        dropout (float): Dropout inside residual blocks. Defaults to ``0.0``.
        norm_groups (int): GroupNorm groups. Defaults to ``8``.
        pos_embed (bool): Add a learned positional embedding over the ``C``
            feature positions. Defaults to ``True``.
        num_steps (int): Largest timestep + 1 (see
            :class:`ConditionalUNet1D`). Defaults to ``1000``.
    """

    def __init__(self,
                 feat_dim: int = 256,
                 cond_dim: Optional[int] = None,
                 base_channels: int = 32,
                 channel_mults: Sequence[int] = (1, 2, 2),
                 num_res_blocks: int = 1,
                 time_embed_dim: int = 128,
                 dropout: float = 0.0,
                 norm_groups: int = 8,
                 pos_embed: bool = True,
                 num_steps: int = 1000) -> None:
        if cond_dim is not None:
            raise ValueError(
                f'UNet1D is the no-text denoiser: cond_dim must be None, got '
                f'{cond_dim}; use ConditionalUNet1D for text conditioning.')
        super().__init__(
            feat_dim=feat_dim,
            cond_dim=None,
            base_channels=base_channels,
            channel_mults=channel_mults,
            num_res_blocks=num_res_blocks,
            time_embed_dim=time_embed_dim,
            dropout=dropout,
            norm_groups=norm_groups,
            pos_embed=pos_embed,
            num_steps=num_steps)
