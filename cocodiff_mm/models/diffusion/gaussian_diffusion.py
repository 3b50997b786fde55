"""Gaussian diffusion over pooled 1-D features (DDPM / DDIM maths).

The network is not part of this object: every sampling or loss method takes
``denoiser``, a callable ``denoiser(x_t, t, cond) -> eps`` predicting the noise
that was added to ``x0``. Timesteps are 0-based: ``t`` lies in
``[0, num_steps)`` and ``t = 0`` is the first noising step, so
``alphas_cumprod[t]`` is the paper's ``alpha_bar_{t+1}``.

Equations (``a_t = alphas_cumprod[t]``, ``a_prev = alphas_cumprod_prev[t]``
with ``a_prev = 1`` at ``t = 0``):

* forward: ``q(x_t | x0) = N(sqrt(a_t) x0, (1 - a_t) I)``;
* ``x0 = sqrt(1 / a_t) x_t - sqrt(1 / a_t - 1) eps``;
* posterior ``q(x_{t-1} | x_t, x0) = N(c1 x0 + c2 x_t, beta_t (1 - a_prev) /
  (1 - a_t))`` with ``c1 = beta_t sqrt(a_prev) / (1 - a_t)`` and
  ``c2 = (1 - a_prev) sqrt(alpha_t) / (1 - a_t)``;
* DDIM: ``x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps +
  sigma z`` with ``sigma = eta sqrt((1 - a_t / a_prev) (1 - a_prev) /
  (1 - a_t))``.

By default no method wraps its work in ``torch.no_grad``: CoCoDiff trains
the denoiser with losses on generated features, so gradients flow through the
chains. ``grad_steps`` keeps the graph of the last few steps only (see
:meth:`GaussianDiffusion.generate`).
Randomness comes from ``torch`` with an optional ``torch.Generator`` (which
must live on the tensors' device); nothing draws from Python's ``random``.
"""
import math
from typing import Callable, Dict, List, NamedTuple, Optional

import torch
import torch.nn as nn

from mmaction.registry import MODELS
from .schedules import make_beta_schedule

#: ``denoiser(x_t, t, cond) -> eps``; ``cond`` may be ``None``.
Denoiser = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]],
                    torch.Tensor]

#: Names accepted by :meth:`GaussianDiffusion.generate`'s ``sampler``.
SAMPLERS = ('ddpm', 'ddim')


class ModelPrediction(NamedTuple):
    """Output of :meth:`GaussianDiffusion.model_predictions`.

    Attributes:
        pred_noise (torch.Tensor): The denoiser's noise prediction ``eps``.
        pred_x_start (torch.Tensor): The ``x0`` it implies (clamped when
            ``clip_denoised`` is set).
    """
    pred_noise: torch.Tensor
    pred_x_start: torch.Tensor


def _tracked(position: int, num_calls: int,
             grad_steps: Optional[int]) -> torch.set_grad_enabled:
    """Grad mode of denoiser call ``position`` of a ``num_calls`` chain."""
    keep = grad_steps is None or position >= num_calls - grad_steps
    return torch.set_grad_enabled(keep and torch.is_grad_enabled())


def _randn_like(x: torch.Tensor,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, from ``generator`` if given."""
    return torch.randn(
        x.shape, generator=generator, device=x.device, dtype=x.dtype)


@MODELS.register_module()
class GaussianDiffusion(nn.Module):
    """DDPM forward process, DDPM / DDIM reverse chains and the eps loss.

    Schedule tensors are computed in float64 and kept as float32,
    non-persistent buffers: they follow ``.to(device / dtype)`` but are not
    written to checkpoints (they are rebuilt from the config). A reverse
    step takes one ``step`` (an int) for its whole batch, as the chains of
    :meth:`generate` do.

    Args:
        num_steps (int): Number of diffusion steps ``T``. Defaults to ``30``
            (CoCoDiff's best value for CTR-GCN).
        beta_schedule (str): ``'linear'`` or ``'cosine'``. Defaults to
            ``'linear'``.
        beta_start (float, optional): First beta of the linear schedule.
            Defaults to ``None`` (DDPM's value scaled by ``1000 / T``).
        beta_end (float, optional): Last beta of the linear schedule.
            Defaults to ``None`` (DDPM's value scaled by ``1000 / T``).
        clip_denoised (float, optional): If set, predicted ``x0`` is clamped
            to ``[-clip_denoised, clip_denoised]`` during sampling and the
            noise prediction is made consistent with it. Pooled GCN features
            are not bounded, so the default leaves them alone. Defaults to
            ``None``.
    """

    def __init__(self,
                 num_steps: int = 30,
                 beta_schedule: str = 'linear',
                 beta_start: Optional[float] = None,
                 beta_end: Optional[float] = None,
                 clip_denoised: Optional[float] = None) -> None:
        super().__init__()
        schedule_kwargs = {}
        if beta_schedule == 'linear':
            schedule_kwargs = dict(beta_start=beta_start, beta_end=beta_end)
        elif beta_start is not None or beta_end is not None:
            raise ValueError(
                'GaussianDiffusion: beta_start / beta_end apply to '
                f"beta_schedule='linear' only, got beta_schedule="
                f'{beta_schedule!r} with beta_start={beta_start!r}, '
                f'beta_end={beta_end!r}.')
        if clip_denoised is not None and not clip_denoised > 0:
            raise ValueError('GaussianDiffusion: clip_denoised must be None '
                             f'or > 0, got {clip_denoised!r}.')
        betas = make_beta_schedule(beta_schedule, num_steps,
                                   **schedule_kwargs)
        self.num_steps = num_steps
        self.beta_schedule = beta_schedule
        self.clip_denoised = clip_denoised
        self._register_schedule(betas)

    # ------------------------------------------------------------------
    # schedule
    # ------------------------------------------------------------------
    def _register_schedule(self, betas: torch.Tensor) -> None:
        """Derive every schedule tensor from float64 ``betas``."""
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        alphas_cumprod_prev = torch.cat(
            [alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
        posterior_variance = (
            betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod))
        # The variance is 0 at t = 0 (x0 is returned as is); its log is
        # clipped by reusing the t = 1 value, never used at t = 0 anyway.
        if len(betas) > 1:
            log_var = torch.log(
                torch.cat([posterior_variance[1:2], posterior_variance[1:]]))
        else:
            log_var = torch.log(posterior_variance.clamp(min=1e-20))
        tensors = dict(
            betas=betas,
            alphas_cumprod=alphas_cumprod,
            alphas_cumprod_prev=alphas_cumprod_prev,
            sqrt_alphas_cumprod=alphas_cumprod.sqrt(),
            sqrt_one_minus_alphas_cumprod=(1.0 - alphas_cumprod).sqrt(),
            sqrt_recip_alphas_cumprod=(1.0 / alphas_cumprod).sqrt(),
            sqrt_recipm1_alphas_cumprod=(1.0 / alphas_cumprod - 1.0).sqrt(),
            posterior_variance=posterior_variance,
            posterior_log_variance_clipped=log_var,
            posterior_mean_coef1=(betas * alphas_cumprod_prev.sqrt() /
                                  (1.0 - alphas_cumprod)),
            posterior_mean_coef2=((1.0 - alphas_cumprod_prev) *
                                  alphas.sqrt() / (1.0 - alphas_cumprod)),
        )
        for name, value in tensors.items():
            self.register_buffer(
                name, value.to(torch.float32), persistent=False)
        # The same values as Python floats for the reverse steps, whose
        # batch shares one step: no gather or device sync per step, and the
        # posterior std is exp() of the float64 log-variance.
        self._coefs = {name: value.tolist() for name, value in tensors.items()}
        self._coefs['posterior_std'] = [
            math.exp(0.5 * value) for value in log_var.tolist()]

    @staticmethod
    def _extract(buffer: torch.Tensor, t: torch.Tensor,
                 like: torch.Tensor) -> torch.Tensor:
        """Gather ``buffer[t]`` and shape it to broadcast against ``like``."""
        out = buffer.gather(0, t.to(buffer.device).long())
        return out.to(like.dtype).reshape(
            (like.shape[0], ) + (1, ) * (like.dim() - 1))

    def _full_t(self, step: int, x: torch.Tensor) -> torch.Tensor:
        """``(N,)`` long tensor filled with ``step``."""
        return torch.full((x.shape[0], ),
                          step,
                          dtype=torch.long,
                          device=x.device)

    def sample_timesteps(
            self,
            batch_size: int,
            device: Optional[torch.device] = None,
            generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Timesteps drawn uniformly from ``[0, num_steps)``.

        Args:
            batch_size (int): Number of timesteps.
            device (torch.device, optional): Device of the result. Defaults
                to ``None`` (CPU).
            generator (torch.Generator, optional): Random source. Defaults to
                ``None`` (the global torch generator).

        Returns:
            torch.Tensor: ``(batch_size,)`` long tensor.
        """
        return torch.randint(
            0,
            self.num_steps, (batch_size, ),
            generator=generator,
            device=device)

    # ------------------------------------------------------------------
    # forward process and identities
    # ------------------------------------------------------------------
    def q_sample(self,
                 x0: torch.Tensor,
                 t: torch.Tensor,
                 noise: Optional[torch.Tensor] = None,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Draw ``x_t ~ q(x_t | x0)`` (Eq. 1), one step per sample.

        Args:
            x0 (torch.Tensor): ``(N, C)`` clean features.
            t (torch.Tensor): ``(N,)`` long timesteps.
            noise (torch.Tensor, optional): Standard normal noise shaped like
                ``x0``. Defaults to ``None`` (drawn here).
            generator (torch.Generator, optional): Random source used when
                ``noise`` is ``None``. Defaults to ``None``.

        Returns:
            torch.Tensor: ``sqrt(a_t) x0 + sqrt(1 - a_t) noise``.
        """
        if noise is None:
            noise = _randn_like(x0, generator)
        return (self._extract(self.sqrt_alphas_cumprod, t, x0) * x0 +
                self._extract(self.sqrt_one_minus_alphas_cumprod, t, x0) *
                noise)

    def predict_start_from_noise(self, x_t: torch.Tensor, step: int,
                                 noise: torch.Tensor) -> torch.Tensor:
        """``x0 = sqrt(1 / a_t) x_t - sqrt(1 / a_t - 1) eps``.

        Args:
            x_t (torch.Tensor): ``(N, C)`` noisy features at ``step``.
            step (int): 0-based step of the whole batch.
            noise (torch.Tensor): ``(N, C)`` noise ``eps``.

        Returns:
            torch.Tensor: ``(N, C)`` clean features implied by ``eps``.
        """
        coefs = self._coefs
        return (coefs['sqrt_recip_alphas_cumprod'][step] * x_t -
                coefs['sqrt_recipm1_alphas_cumprod'][step] * noise)

    def predict_noise_from_start(self, x_t: torch.Tensor, step: int,
                                 x0: torch.Tensor) -> torch.Tensor:
        """``eps = (sqrt(1 / a_t) x_t - x0) / sqrt(1 / a_t - 1)``.

        Args:
            x_t (torch.Tensor): ``(N, C)`` noisy features at ``step``.
            step (int): 0-based step of the whole batch.
            x0 (torch.Tensor): ``(N, C)`` clean features.

        Returns:
            torch.Tensor: ``(N, C)`` noise implied by ``x0``.
        """
        coefs = self._coefs
        return ((coefs['sqrt_recip_alphas_cumprod'][step] * x_t - x0) /
                coefs['sqrt_recipm1_alphas_cumprod'][step])

    def q_posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor,
                         step: int) -> torch.Tensor:
        """Mean ``c1 x0 + c2 x_t`` of ``q(x_{t-1} | x_t, x0)``.

        Its standard deviation is ``posterior_std(step)``.

        Args:
            x0 (torch.Tensor): ``(N, C)`` clean (or predicted) features.
            x_t (torch.Tensor): ``(N, C)`` noisy features at ``step``.
            step (int): 0-based step of the whole batch.

        Returns:
            torch.Tensor: ``(N, C)`` posterior mean.
        """
        coefs = self._coefs
        return torch.add(
            coefs['posterior_mean_coef2'][step] * x_t,
            x0,
            alpha=coefs['posterior_mean_coef1'][step])

    def posterior_std(self, step: int) -> float:
        """Standard deviation of ``q(x_{t-1} | x_t, x0)`` at ``step >= 1``
        (at ``step = 0`` the reverse step adds no noise)."""
        return self._coefs['posterior_std'][step]

    # ------------------------------------------------------------------
    # reverse process
    # ------------------------------------------------------------------
    def model_predictions(self, denoiser: Denoiser, x_t: torch.Tensor,
                          step: int,
                          cond: Optional[torch.Tensor]) -> ModelPrediction:
        """Run the denoiser once; the prediction DDPM and DDIM share.

        Args:
            denoiser (Callable): ``denoiser(x_t, t, cond) -> eps``.
            x_t (torch.Tensor): ``(N, C)`` noisy features at ``step``.
            step (int): 0-based step of the whole batch.
            cond (torch.Tensor, optional): ``(N, D)`` condition or ``None``.

        Returns:
            ModelPrediction: ``(pred_noise, pred_x_start)``; with
            ``clip_denoised`` set, ``x0`` is clamped.
        """
        pred_noise = denoiser(x_t, self._full_t(step, x_t), cond)
        pred_x_start = self.predict_start_from_noise(x_t, step, pred_noise)
        if self.clip_denoised is not None:
            pred_x_start = pred_x_start.clamp(-self.clip_denoised,
                                              self.clip_denoised)
        return ModelPrediction(pred_noise, pred_x_start)

    def p_sample(self,
                 denoiser: Denoiser,
                 x_t: torch.Tensor,
                 step: int,
                 cond: Optional[torch.Tensor],
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One DDPM step: draw ``x_{t-1} ~ p(x_{t-1} | x_t)``.

        Args:
            denoiser (Callable): ``denoiser(x_t, t, cond) -> eps``.
            x_t (torch.Tensor): ``(N, C)`` noisy features at ``step``.
            step (int): 0-based step of the whole batch, in
                ``[0, num_steps)``.
            cond (torch.Tensor, optional): ``(N, D)`` condition or ``None``.
            generator (torch.Generator, optional): Random source. Defaults to
                ``None``.

        Returns:
            torch.Tensor: ``(N, C)`` sample at ``step - 1``; at ``step = 0``
            no noise is drawn and the result is the posterior mean, i.e. the
            predicted ``x0``.
        """
        pred = self.model_predictions(denoiser, x_t, step, cond)
        mean = self.q_posterior_mean(pred.pred_x_start, x_t, step)
        if step == 0:
            return mean
        return mean.add(
            _randn_like(x_t, generator), alpha=self.posterior_std(step))

    def p_sample_loop(self,
                      denoiser: Denoiser,
                      x_start: torch.Tensor,
                      cond: Optional[torch.Tensor],
                      start_step: Optional[int] = None,
                      generator: Optional[torch.Generator] = None,
                      grad_steps: Optional[int] = None) -> torch.Tensor:
        """Ancestral DDPM chain from step ``start_step`` down to ``0``.

        Args:
            denoiser (Callable): ``denoiser(x_t, t, cond) -> eps``.
            x_start (torch.Tensor): ``(N, C)`` sample at step ``start_step``.
            cond (torch.Tensor, optional): ``(N, D)`` condition or ``None``.
            start_step (int, optional): 0-based step of ``x_start``, in
                ``[0, num_steps)``. Defaults to ``None`` (``num_steps - 1``,
                the full chain).
            generator (torch.Generator, optional): Random source. Defaults to
                ``None``.
            grad_steps (int, optional): Keep the autograd graph of the last
                ``grad_steps`` (>= 1) steps only (see :meth:`generate`).
                Defaults to ``None`` (every step).

        Returns:
            torch.Tensor: ``(N, C)`` generated ``x0``, differentiable w.r.t.
            the denoiser's parameters.
        """
        if start_step is None:
            start_step = self.num_steps - 1
        x = x_start
        for position, step in enumerate(range(start_step, -1, -1)):
            with _tracked(position, start_step + 1, grad_steps):
                x = self.p_sample(denoiser, x, step, cond, generator)
        return x

    def ddim_timesteps(self, num_sampling_steps: int,
                       start_step: Optional[int] = None) -> List[int]:
        """Descending DDIM timesteps, ending with ``-1`` (meaning ``x0``).

        ``num_sampling_steps + 1`` points are spaced evenly over
        ``[-1, start_step]`` and rounded, so ``num_sampling_steps ==
        start_step + 1`` visits every step.

        Args:
            num_sampling_steps (int): Number of denoiser calls, in
                ``[1, start_step + 1]``.
            start_step (int, optional): First (largest) step. Defaults to
                ``None`` (``num_steps - 1``).

        Returns:
            list[int]: ``[start_step, ..., -1]``.
        """
        if start_step is None:
            start_step = self.num_steps - 1
        points = torch.linspace(
            -1, start_step, num_sampling_steps + 1, dtype=torch.float64)
        steps = torch.floor(points + 0.5).long().unique_consecutive()
        return steps.flip(0).tolist()

    def ddim_step(self,
                  denoiser: Denoiser,
                  x_t: torch.Tensor,
                  step: int,
                  prev_step: int,
                  cond: Optional[torch.Tensor],
                  eta: float = 0.0,
                  generator: Optional[torch.Generator] = None
                  ) -> torch.Tensor:
        """One DDIM update (Song et al., 2021) from ``step`` to ``prev_step``.

        Args:
            denoiser (Callable): ``denoiser(x_t, t, cond) -> eps``.
            x_t (torch.Tensor): ``(N, C)`` noisy features at ``step``.
            step (int): 0-based step of the whole batch.
            prev_step (int): Step to go to, below ``step``; ``-1`` returns
                the predicted ``x0``.
            cond (torch.Tensor, optional): ``(N, D)`` condition or ``None``.
            eta (float): ``0`` is deterministic DDIM, ``1`` matches DDPM's
                variance. Defaults to ``0.0``.
            generator (torch.Generator, optional): Random source for
                ``eta > 0``. Defaults to ``None``.

        Returns:
            torch.Tensor: ``(N, C)`` sample at ``prev_step``.
        """
        pred = self.model_predictions(denoiser, x_t, step, cond)
        if prev_step < 0:
            return pred.pred_x_start
        pred_noise = pred.pred_noise
        if self.clip_denoised is not None:
            pred_noise = self.predict_noise_from_start(x_t, step,
                                                       pred.pred_x_start)
        a_t = self.alphas_cumprod[step].to(x_t.dtype)
        a_prev = self.alphas_cumprod[prev_step].to(x_t.dtype)
        sigma = eta * ((1 - a_t / a_prev) * (1 - a_prev) / (1 - a_t)).sqrt()
        direction = (1 - a_prev - sigma**2).clamp(min=0).sqrt()
        x = a_prev.sqrt() * pred.pred_x_start + direction * pred_noise
        if eta > 0:
            x = x + sigma * _randn_like(x, generator)
        return x

    def ddim_sample_loop(self,
                         denoiser: Denoiser,
                         x_start: torch.Tensor,
                         cond: Optional[torch.Tensor],
                         num_sampling_steps: int,
                         start_step: Optional[int] = None,
                         eta: float = 0.0,
                         generator: Optional[torch.Generator] = None,
                         grad_steps: Optional[int] = None) -> torch.Tensor:
        """DDIM chain from ``start_step`` down to ``x0``.

        Args:
            denoiser (Callable): ``denoiser(x_t, t, cond) -> eps``.
            x_start (torch.Tensor): ``(N, C)`` sample at step ``start_step``.
            cond (torch.Tensor, optional): ``(N, D)`` condition or ``None``.
            num_sampling_steps (int): Number of denoiser calls, in
                ``[1, start_step + 1]``.
            start_step (int, optional): 0-based step of ``x_start``. Defaults
                to ``None`` (``num_steps - 1``).
            eta (float): DDIM stochasticity, ``>= 0``. Defaults to ``0.0``.
            generator (torch.Generator, optional): Random source for
                ``eta > 0``. Defaults to ``None``.
            grad_steps (int, optional): Keep the autograd graph of the last
                ``grad_steps`` denoiser calls only (see :meth:`generate`).
                Defaults to ``None`` (every call).

        Returns:
            torch.Tensor: ``(N, C)`` generated ``x0``, differentiable w.r.t.
            the denoiser's parameters.
        """
        steps = self.ddim_timesteps(num_sampling_steps, start_step)
        x = x_start
        pairs = list(zip(steps[:-1], steps[1:]))
        for position, (step, prev_step) in enumerate(pairs):
            with _tracked(position, len(pairs), grad_steps):
                x = self.ddim_step(denoiser, x, step, prev_step, cond, eta,
                                   generator)
        return x

    # ------------------------------------------------------------------
    # training and CoCoDiff generation
    # ------------------------------------------------------------------
    def training_losses(
            self,
            denoiser: Denoiser,
            x0: torch.Tensor,
            cond: Optional[torch.Tensor],
            t: Optional[torch.Tensor] = None,
            noise: Optional[torch.Tensor] = None,
            generator: Optional[torch.Generator] = None
    ) -> Dict[str, torch.Tensor]:
        """Noise-prediction loss ``||eps - eps_theta(x_t, t, cond)||^2``.

        Eq. 4 of the paper (``L_rec``), per sample.

        Args:
            denoiser (Callable): ``denoiser(x_t, t, cond) -> eps``.
            x0 (torch.Tensor): ``(N, C)`` clean features.
            cond (torch.Tensor, optional): ``(N, D)`` condition or ``None``.
            t (torch.Tensor, optional): ``(N,)`` long timesteps. Defaults to
                ``None`` (uniform over ``[0, num_steps)``).
            noise (torch.Tensor, optional): Noise shaped like ``x0``.
                Defaults to ``None`` (standard normal).
            generator (torch.Generator, optional): Random source for ``t``
                and ``noise``. Defaults to ``None``.

        Returns:
            dict[str, torch.Tensor]: ``loss`` (``(N,)`` per-sample mean
            squared error), ``t``, ``x_t``, ``noise`` and ``pred_noise``.
        """
        if t is None:
            t = self.sample_timesteps(
                x0.shape[0], device=x0.device, generator=generator)
        if noise is None:
            noise = _randn_like(x0, generator)
        x_t = self.q_sample(x0, t, noise=noise)
        pred_noise = denoiser(x_t, t, cond)
        loss = (noise - pred_noise).pow(2).flatten(1).mean(dim=1)
        return dict(
            loss=loss, t=t, x_t=x_t, noise=noise, pred_noise=pred_noise)

    def generate(self,
                 denoiser: Denoiser,
                 x0: torch.Tensor,
                 cond: Optional[torch.Tensor],
                 start_step: Optional[int] = None,
                 sampler: str = 'ddpm',
                 ddim_steps: Optional[int] = None,
                 eta: float = 0.0,
                 generator: Optional[torch.Generator] = None,
                 grad_steps: Optional[int] = None) -> torch.Tensor:
        """CoCoDiff generation through the forward and reverse process.

        The real features ``x0`` are noised to step ``start_step`` with
        :meth:`q_sample`, then the reverse chain conditioned on ``cond`` runs
        down to a new ``x0``. With ``grad_steps=None`` (the paper, read
        literally) gradients flow through the whole chain, and to ``x0``
        unless the caller detaches it.

        ``grad_steps=K`` is *truncated backpropagation*: the first calls of
        the chain run without a graph and only the last ``K`` keep one. The
        generated features are exactly the same (same noise, same
        arithmetic); what changes is the gradient of a loss on them. It
        reaches the denoiser only through its last ``K`` calls (the
        low-noise end of the chain, where the output takes its final form),
        and it no longer reaches ``x0`` through the chain. The cost of the
        backward pass and the memory of the graph then no longer grow with
        the chain's length.

        The options are not checked here (this runs every training step):
        :class:`~cocodiff_mm.models.heads.DiffusionAugmentedHead` checks
        them once, when it is built.

        Args:
            denoiser (Callable): ``denoiser(x_t, t, cond) -> eps``.
            x0 (torch.Tensor): ``(N, C)`` real features.
            cond (torch.Tensor, optional): ``(N, D)`` condition (fine-text
                embeddings) or ``None``.
            start_step (int, optional): 0-based step the real features are
                noised to, in ``[0, num_steps)``. Defaults to ``None``
                (``num_steps - 1``: the full chain, as in the paper).
            sampler (str): ``'ddpm'`` (ancestral, every step) or ``'ddim'``.
                Defaults to ``'ddpm'``.
            ddim_steps (int, optional): Denoiser calls of the DDIM chain, in
                ``[1, start_step + 1]``. Defaults to ``None``
                (``start_step + 1``, every step).
            eta (float): DDIM stochasticity, ``>= 0``. Defaults to ``0.0``.
            generator (torch.Generator, optional): Random source. Defaults to
                ``None``.
            grad_steps (int, optional): Denoiser calls (>= 1) at the end of
                the chain that keep their autograd graph. Defaults to
                ``None`` (every call: exact gradients).

        Returns:
            torch.Tensor: ``(N, C)`` generated features.
        """
        if start_step is None:
            start_step = self.num_steps - 1
        x_t = self.q_sample(
            x0, self._full_t(start_step, x0), generator=generator)
        if sampler == 'ddpm':
            return self.p_sample_loop(
                denoiser, x_t, cond, start_step=start_step,
                generator=generator, grad_steps=grad_steps)
        if sampler == 'ddim':
            return self.ddim_sample_loop(
                denoiser,
                x_t,
                cond,
                num_sampling_steps=(start_step + 1 if ddim_steps is None
                                    else ddim_steps),
                start_step=start_step,
                eta=eta,
                generator=generator,
                grad_steps=grad_steps)
        raise ValueError(f'GaussianDiffusion.generate: unknown sampler '
                         f'{sampler!r}; expected one of {SAMPLERS}.')

    def extra_repr(self) -> str:
        """Summary shown by ``print(module)``."""
        return (f'num_steps={self.num_steps}, '
                f'beta_schedule={self.beta_schedule!r}, '
                f'clip_denoised={self.clip_denoised}')
