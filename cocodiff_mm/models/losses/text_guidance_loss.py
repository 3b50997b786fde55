"""Coarse-text guidance: the skeleton-text contrastive KL loss (Eq. 5/6)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmaction.models.losses.base import BaseWeightedLoss
from mmaction.registry import MODELS

from ...utils.checks import check_number


@MODELS.register_module()
class TextGuidanceLoss(BaseWeightedLoss):
    """Bidirectional KL contrastive loss with multi-positive soft targets.

    With ``s_ij = cos(skeleton_emb_i, text_emb_j) / tau``:

    * skeleton-to-text ``p^{s2t}_i(j) = softmax_j(s_ij)`` (over a row),
    * text-to-skeleton ``p^{t2s}_j(i) = softmax_i(s_ij)`` (over a column),
    * targets ``q_i(j) = 1[y_i == y_j] / #{k : y_k == y_i}`` (symmetric, so
      the same rows serve both directions), because a batch holds several
      samples of one class (ActionCLIP's KL formulation),
    * ``L = 1/2 (KL(q || p^{s2t}) + KL(q || p^{t2s}))``, each KL summed over
      a row and averaged over the ``N`` rows.

    ``1 / tau`` is ``exp(logit_scale)`` clamped at ``max_logit_scale``;
    ``logit_scale`` is a parameter when the temperature is learnable and a
    (non-persistent) buffer otherwise.

    Args:
        loss_weight (float): Factor on the loss (``lambda`` of Eq. 7).
            Defaults to ``1.0``.
        temperature (float): Initial (or fixed) temperature ``tau``.
            Defaults to ``0.07``.
        learnable_temperature (bool): Learn ``logit_scale = log(1 / tau)``.
            Defaults to ``True``.
        max_logit_scale (float): Upper bound of ``1 / tau``. Defaults to
            ``100.0``.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 temperature: float = 0.07,
                 learnable_temperature: bool = True,
                 max_logit_scale: float = 100.0) -> None:
        super().__init__(loss_weight=check_number(loss_weight, 'loss_weight',
                                                  minimum=0))
        check_number(temperature, 'temperature')
        check_number(max_logit_scale, 'max_logit_scale')
        if not temperature > 0:
            raise ValueError('TextGuidanceLoss: temperature must be > 0, got '
                             f'{temperature!r}.')
        if not max_logit_scale > 0:
            raise ValueError('TextGuidanceLoss: max_logit_scale must be > 0, '
                             f'got {max_logit_scale!r}.')
        self.max_logit_scale = float(max_logit_scale)
        self.learnable_temperature = learnable_temperature
        init = torch.tensor(math.log(1.0 / temperature), dtype=torch.float32)
        if learnable_temperature:
            self.logit_scale = nn.Parameter(init)
        else:
            self.register_buffer('logit_scale', init, persistent=False)

    @property
    def temperature(self) -> float:
        """Current effective temperature ``tau`` (after clamping)."""
        scale = self.logit_scale.detach().exp().clamp(
            max=self.max_logit_scale)
        return float(1.0 / scale)

    def _forward(self, skeleton_emb: torch.Tensor, text_emb: torch.Tensor,
                 labels: torch.Tensor) -> torch.Tensor:
        """Compute the unweighted loss.

        Args:
            skeleton_emb (torch.Tensor): ``(N, D)`` projected skeleton
                features ``g(x0_hat)``.
            text_emb (torch.Tensor): ``(N, D)`` coarse-text embeddings of
                each sample's class ``e_c(y_j)``.
            labels (torch.Tensor): ``(N,)`` class labels.

        Returns:
            torch.Tensor: Scalar loss.
        """
        if skeleton_emb.dim() != 2 or skeleton_emb.shape != text_emb.shape:
            raise ValueError(
                'TextGuidanceLoss: skeleton_emb and text_emb must both be '
                f'(N, D), got {tuple(skeleton_emb.shape)} and '
                f'{tuple(text_emb.shape)}.')
        labels = labels.reshape(-1)
        if labels.shape[0] != skeleton_emb.shape[0]:
            raise ValueError(
                f'TextGuidanceLoss: labels must have {skeleton_emb.shape[0]} '
                f'entries (one per sample), got {labels.shape[0]}.')
        skeleton = F.normalize(skeleton_emb.float(), dim=-1)
        text = F.normalize(text_emb.float(), dim=-1)
        scale = self.logit_scale.exp().clamp(max=self.max_logit_scale)
        logits = scale * skeleton @ text.t()
        same = (labels[:, None] == labels[None, :]).float()
        target = same / same.sum(dim=1, keepdim=True)
        log_target = torch.where(same > 0, target.log(),
                                 torch.zeros_like(target))
        log_p_s2t = F.log_softmax(logits, dim=1)
        # Column j of the column-softmax is the distribution of text j over
        # the skeletons; transpose so row j holds it.
        log_p_t2s = F.log_softmax(logits, dim=0).t()
        kl_s2t = (target * (log_target - log_p_s2t)).sum(dim=1).mean()
        kl_t2s = (target * (log_target - log_p_t2s)).sum(dim=1).mean()
        return 0.5 * (kl_s2t + kl_t2s)

    def extra_repr(self) -> str:
        """Summary shown by ``print(module)``."""
        return (f'loss_weight={self.loss_weight}, '
                f'temperature={self.temperature:.4g}, '
                f'learnable_temperature={self.learnable_temperature}')
