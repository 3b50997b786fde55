"""GCNHead with CoCoDiff's training-only latent diffusion augmentation."""
import copy
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmaction.models.heads import GCNHead
from mmaction.registry import MODELS
from mmaction.utils import SampleList
from mmengine.model import PretrainedInit, initialize, normal_init

from ...utils.checks import check_choice, check_int, check_number, is_int
from ...utils.config_keys import ConfigError, refuse_unknown_keys
from ..diffusion.gaussian_diffusion import SAMPLERS, GaussianDiffusion
from ..text.text_bank import TextEmbeddingBank

#: Training objectives; :data:`~cocodiff_mm.engine.stage_plan.
#: STAGE_OBJECTIVES` says which stage of :class:`TwoStageLoop` trains which.
#: ``classify``: stock cross-entropy; ``diffusion``: L_rec + λ·L_con (the
#: classifier is not trained); ``joint``: CE(real) + CE(generated) + L_rec +
#: λ·L_con.
OBJECTIVES = ('classify', 'diffusion', 'joint')

#: Text guidance ablations of the paper's Table II.
TEXT_MODES = ('both', 'fine', 'coarse', 'none')

# The defaults below are those of ``configs/_base_/cocodiff.py``, so that
# the Python API and the shipped configs build the same head.

#: The ``generation`` options and their defaults.
GENERATION_DEFAULTS = dict(
    sampler='ddpm', start_step=10, ddim_steps=None, eta=0.0, grad_steps=3)

#: Default ``diffusion`` config.
DIFFUSION_DEFAULT = dict(
    type='GaussianDiffusion', num_steps=30, beta_schedule='linear',
    clip_denoised=5.0)

#: Default ``denoiser`` config (its sizes are filled in by the head).
DENOISER_DEFAULT = dict(type='ConditionalMLPUNet', widths=(256, ))

#: Default ``loss_text`` config.
LOSS_TEXT_DEFAULT = dict(
    type='TextGuidanceLoss', loss_weight=1.0, temperature=0.07,
    learnable_temperature=True)


@MODELS.register_module()
class DiffusionAugmentedHead(GCNHead):
    """GCN head trained on real plus diffusion-generated features (CoCoDiff).

    ``predict`` is the stock :class:`GCNHead` path, so inference costs
    nothing extra. ``loss`` pools the backbone feature as ``GCNHead`` does
    and, per :attr:`objective`, trains the text-conditioned denoiser
    (``loss_rec``), generates same-class features through the diffusion
    chain, aligns them with the coarse texts (``loss_con``) and classifies
    them (``loss_gen_cls``; logged ``acc_generated``, ``ce_generated``).
    See ``docs/method.md`` (The head in detail).

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels ``C`` of the pooled backbone feature.
        text_bank (dict): Arguments of :class:`TextEmbeddingBank`;
            ``num_classes`` defaults to the head's.
        diffusion (dict, optional): Config of the diffusion process.
            Defaults to ``None`` (:data:`DIFFUSION_DEFAULT`).
        denoiser (dict, optional): Config of the noise predictor; the head
            fills in ``feat_dim``, ``cond_dim`` and ``num_steps``. Defaults
            to ``None`` (:data:`DENOISER_DEFAULT`).
        loss_text (dict, optional): Config of the coarse-text loss (its
            ``loss_weight`` is λ). Defaults to ``None``
            (:data:`LOSS_TEXT_DEFAULT`).
        text_mode (str): One of :data:`TEXT_MODES`. Defaults to ``'both'``.
        generation (dict, optional): ``sampler``, ``start_step``,
            ``ddim_steps``, ``eta`` and ``grad_steps`` of
            :meth:`GaussianDiffusion.generate`. Defaults to ``None``
            (:data:`GENERATION_DEFAULTS`, per key).
        loss_rec_weight (float): Weight of ``L_rec``. Defaults to ``1.0``.
        loss_gen_weight (float): Weight of the CE on generated features.
            Defaults to ``1.0``.
        detach_real (bool): Keep the diffusion losses from reaching the GCN
            through ``x0``. Defaults to ``True``.
        gen_cls_trains_diffusion (bool): Let the CE on generated features
            train the denoiser through the chain. Defaults to ``False``.
        feature_norm_momentum (float): Momentum of the running statistics
            that standardise ``x0`` for the diffusion. Defaults to ``0.1``.
        objective (str): Initial objective, one of :data:`OBJECTIVES`.
            Defaults to ``'joint'``.
        init_cfg (dict | list[dict], optional): Initialisation config; a
            later :meth:`init_weights` re-initialises ``fc`` only. Defaults
            to ``None``.
        **kwargs: Arguments of :class:`GCNHead`.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 text_bank: Dict,
                 diffusion: Optional[Dict] = None,
                 denoiser: Optional[Dict] = None,
                 loss_text: Optional[Dict] = None,
                 text_mode: str = 'both',
                 generation: Optional[Dict] = None,
                 loss_rec_weight: float = 1.0,
                 loss_gen_weight: float = 1.0,
                 detach_real: bool = True,
                 gen_cls_trains_diffusion: bool = False,
                 feature_norm_momentum: float = 0.1,
                 objective: str = 'joint',
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None,
                 **kwargs) -> None:
        super().__init__(num_classes, in_channels, init_cfg=init_cfg,
                         **kwargs)
        self.text_mode = check_choice(text_mode, TEXT_MODES,
                                      'model.cls_head.text_mode')
        field = 'model.cls_head'
        self.loss_rec_weight = check_number(
            loss_rec_weight, f'{field}.loss_rec_weight', minimum=0)
        self.loss_gen_weight = check_number(
            loss_gen_weight, f'{field}.loss_gen_weight', minimum=0)
        self.detach_real = check_choice(detach_real, (True, False),
                                        f'{field}.detach_real')
        self.gen_cls_trains_diffusion = check_choice(
            gen_cls_trains_diffusion, (True, False),
            f'{field}.gen_cls_trains_diffusion')
        self.feature_norm_momentum = check_number(
            feature_norm_momentum, f'{field}.feature_norm_momentum',
            minimum=0, maximum=1)
        self.register_buffer('feature_mean', torch.zeros(in_channels))
        self.register_buffer('feature_var', torch.ones(in_channels))

        bank_cfg = dict(text_bank)
        bank_cfg.setdefault('num_classes', num_classes)
        if bank_cfg['num_classes'] != num_classes:
            raise ValueError(
                f'model.cls_head.text_bank.num_classes='
                f'{bank_cfg["num_classes"]} but the head has num_classes='
                f'{num_classes}')
        self.text_bank = TextEmbeddingBank(**bank_cfg)

        self.diffusion = MODELS.build(diffusion or DIFFUSION_DEFAULT)
        self.generation = check_generation(generation, self.diffusion)
        denoiser_cfg = copy.deepcopy(denoiser or DENOISER_DEFAULT)
        denoiser_cfg['feat_dim'] = in_channels
        denoiser_cfg['cond_dim'] = (
            self.text_bank.dim if self.uses_fine_text else None)
        denoiser_cfg['num_steps'] = self.diffusion.num_steps
        self.denoiser = MODELS.build(denoiser_cfg)
        if self.uses_coarse_text:
            self.projection = nn.Linear(in_channels, self.text_bank.dim)
            self.loss_text = MODELS.build(loss_text or LOSS_TEXT_DEFAULT)
        else:
            self.projection = None
            self.loss_text = None
        #: Factor on ``loss_gen_cls``, ramped up at stage 2's start by
        #: ``GeneratedLossRampHook`` while the diffusion adapts to the GCN.
        self.gen_cls_scale = 1.0
        self.objective = 'joint'
        self.set_objective(objective)

    @property
    def uses_fine_text(self) -> bool:
        """bool: Whether the denoiser is conditioned on fine texts."""
        return self.text_mode in ('both', 'fine')

    @property
    def uses_coarse_text(self) -> bool:
        """bool: Whether generated features are aligned with coarse texts."""
        return self.text_mode in ('both', 'coarse')

    def set_objective(self, objective: str) -> None:
        """Switch the training objective (see :data:`OBJECTIVES`)."""
        self.objective = check_choice(objective, OBJECTIVES,
                                      'model.cls_head.objective')

    def diffusion_modules(self) -> Tuple[nn.Module, ...]:
        """The trainable parts used only in training (denoiser, g, τ)."""
        return tuple(module for module in (self.denoiser, self.projection,
                                           self.loss_text)
                     if module is not None)

    def init_weights(self) -> None:
        """Initialise the head; every later call re-initialises ``fc`` only.

        The first call (at build time) follows ``init_cfg`` as mmengine's
        :meth:`~mmengine.model.BaseModule.init_weights` does (``Pretrained``
        last); without ``init_cfg`` it gives the classifier ``fc`` GCNHead's
        N(0, 0.01) weights and zero bias, and the denoiser, ``g`` and the
        temperature keep the initialisation they were built with (e.g. the
        denoiser's zero output layer).

        A later call (the multi-stage loop starts stage 2 with a fresh
        classifier but the trained denoiser) applies the same rule to ``fc``
        alone: N(0, 0.01), or the ``init_cfg`` entries that reach ``fc``.
        """
        if self._is_init:
            self._init_classifier()
        elif self.init_cfg:
            super().init_weights()
        else:
            self._init_classifier()
            self._is_init = True

    def _init_classifier(self) -> None:
        """Initialise ``fc`` (only) by ``init_cfg`` or N(0, 0.01)."""
        if not self.init_cfg:
            normal_init(self.fc, std=0.01)
            return
        # mmengine's initialize() walks the whole module it is given; given a
        # holder of fc alone, init_cfg's Linear layers, overrides named 'fc'
        # and Pretrained (prefix 'cls_head.') reach fc and nothing else.
        holder = nn.Module()
        holder.fc = self.fc
        cfgs = [self.init_cfg] if isinstance(self.init_cfg, dict) else list(
            self.init_cfg)
        cfgs = [_fc_override_only(cfg) for cfg in cfgs]
        # Pretrained last, as BaseModule.init_weights orders them.
        cfgs.sort(
            key=lambda cfg: cfg['type'] in ('Pretrained', PretrainedInit))
        initialize(holder, cfgs)

    def pool_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Pool (N, M, C, T, V) backbone features to (N, C) like GCNHead."""
        N, M, C, T, V = feats.shape
        return feats.reshape(N, M, C, T * V).mean(dim=-1).mean(dim=1)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Class scores of pooled features (dropout, then ``fc``)."""
        if self.dropout is not None:
            pooled = self.dropout(pooled)
        return self.fc(pooled)

    def _standardize(self, x0: torch.Tensor) -> torch.Tensor:
        """Map features to the diffusion space (updating running stats).

        Statistics are kept in float32 also under mixed precision.
        """
        if self.training and x0.size(0) > 1:
            with torch.no_grad():
                stats = x0.detach().float()
                # A non-finite batch must not poison the running statistics;
                # a momentum multiplied by the finiteness flag keeps the check
                # on the device (no sync).
                momentum = torch.isfinite(stats).all() * \
                    self.feature_norm_momentum
                self.feature_mean.lerp_(stats.mean(0), momentum)
                self.feature_var.lerp_(stats.var(0, unbiased=False),
                                       momentum)
        return (x0 - self.feature_mean) * torch.rsqrt(self.feature_var + 1e-5)

    def _unstandardize(self, z: torch.Tensor) -> torch.Tensor:
        """Map diffusion-space features back to the GCN's feature space."""
        return z * torch.sqrt(self.feature_var + 1e-5) + self.feature_mean

    def _fine_condition(self, labels: torch.Tensor) -> Optional[torch.Tensor]:
        """Fine-text embeddings ``e_f(y)`` or ``None`` without fine text."""
        if not self.uses_fine_text:
            return None
        return self.text_bank.embed(labels, 'fine')

    def generate(self, z0: torch.Tensor,
                 labels: torch.Tensor) -> torch.Tensor:
        """Same-class features through the forward and reverse process.

        Args:
            z0 (Tensor): Standardised real pooled features (N, C).
            labels (Tensor): Their labels (N,).

        Returns:
            Tensor: Generated features (N, C) in the GCN's feature space;
            differentiable with respect to the denoiser.
        """
        options = self.generation
        cond = self._fine_condition(labels)
        return self._unstandardize(self.diffusion.generate(
            self.denoiser.conditioned_on(cond),
            z0,
            cond,
            start_step=options['start_step'],
            sampler=options['sampler'],
            ddim_steps=options['ddim_steps'],
            eta=options['eta'],
            grad_steps=options['grad_steps']))

    def generate_from_pooled(self, pooled: torch.Tensor,
                             labels: torch.Tensor) -> torch.Tensor:
        """Generated features for real pooled features, as training makes
        them (in eval mode the running statistics stay as they are).

        Args:
            pooled (Tensor): Real pooled features (N, C).
            labels (Tensor): Their labels (N,).

        Returns:
            Tensor: Generated features (N, C).
        """
        return self.generate(self._standardize(pooled), labels)

    def diffusion_losses(self, x0: torch.Tensor, labels: torch.Tensor
                         ) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        """``L_rec`` and ``λ·L_con`` of real features, and the generated ones.

        Args:
            x0 (Tensor): Real pooled features (N, C).
            labels (Tensor): Their labels (N,).

        Returns:
            tuple: The loss dict (``loss_rec`` and, with coarse text,
            ``loss_con``) and the generated features (N, C).
        """
        if self.detach_real:
            x0 = x0.detach()
        z0 = self._standardize(x0)
        cond = self._fine_condition(labels)
        terms = self.diffusion.training_losses(self.denoiser, z0, cond)
        losses = dict(loss_rec=self.loss_rec_weight * terms['loss'].mean())
        generated = self.generate(z0, labels)
        if self.uses_coarse_text:
            coarse = self.text_bank.embed(labels, 'coarse')
            losses['loss_con'] = self.loss_text(
                self.projection(generated), coarse.to(generated.dtype),
                labels)
        return losses, generated

    @staticmethod
    def labels_of(data_samples: SampleList,
                  device: torch.device) -> torch.Tensor:
        """Hard labels of a batch as a (N,) long tensor."""
        labels = torch.stack([sample.gt_label for sample in data_samples])
        labels = labels.to(device).reshape(len(data_samples), -1)
        if labels.size(1) != 1:
            raise ValueError('DiffusionAugmentedHead needs one hard label '
                             f'per sample, got labels of shape '
                             f'{tuple(labels.shape)}')
        return labels[:, 0].long()

    def loss(self, feats: Union[torch.Tensor, Tuple[torch.Tensor]],
             data_samples: SampleList, **kwargs) -> Dict:
        """Training losses of the current objective.

        Args:
            feats (Tensor): Backbone features (N, M, C, T, V).
            data_samples (list[ActionDataSample]): The batch's samples.

        Returns:
            dict: Loss terms (``loss_*``) and logged accuracies.
        """
        if self.objective == 'classify':
            return super().loss(feats, data_samples, **kwargs)
        pooled = self.pool_features(feats)
        labels = self.labels_of(data_samples, pooled.device)
        if self.objective == 'diffusion':
            return self.loss_from_pooled(pooled, labels)
        losses = self.loss_by_feat(self.classify(pooled), data_samples)
        diffusion_terms, generated = self.diffusion_losses(pooled, labels)
        losses.update(diffusion_terms)
        if not self.gen_cls_trains_diffusion:
            generated = generated.detach()
        # The head's own loss path, so label smoothing and the loss config
        # apply to generated features as to real ones.
        gen_scores = self.classify(generated)
        gen_terms = self.loss_by_feat(gen_scores, data_samples)
        losses['loss_gen_cls'] = (self.loss_gen_weight * self.gen_cls_scale *
                                  gen_terms['loss_cls'])
        if 'top1_acc' in gen_terms:
            losses['acc_generated'] = gen_terms['top1_acc']
        else:  # the head's topk leaves top-1 out
            losses['acc_generated'] = self._accuracy(gen_scores, labels)
        # Logged, not optimised: mmengine sums only the keys with "loss".
        losses['ce_generated'] = gen_terms['loss_cls'].detach()
        return losses

    @staticmethod
    def _accuracy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Top-1 accuracy (a logged value, not a loss)."""
        with torch.no_grad():
            return (scores.argmax(dim=1) == labels).float().mean()

    def loss_from_pooled(self, pooled: torch.Tensor,
                         labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Stage-1 losses on cached pooled features (no backbone pass).

        Args:
            pooled (Tensor): Pooled features of a frozen GCN (N, C).
            labels (Tensor): Their labels (N,).

        Returns:
            dict: ``loss_rec`` and, with coarse text, ``loss_con``; logged
            ``acc_generated``: how often the frozen classifier assigns a
            generated feature to its conditioning class.
        """
        losses, generated = self.diffusion_losses(pooled, labels)
        losses['acc_generated'] = self._accuracy(
            self.fc(generated.detach()), labels)
        return losses


def is_cocodiff_head(obj: Any) -> bool:
    """Whether ``obj`` is a CoCoDiff head.

    Args:
        obj: A head instance, a class, or a type name registered in
            mmaction's ``MODELS`` (as a config's ``cls_head.type`` holds).

    Returns:
        bool: True for :class:`DiffusionAugmentedHead` and its subclasses.
    """
    if isinstance(obj, str):
        obj = MODELS.get(obj)
    if isinstance(obj, type):
        return issubclass(obj, DiffusionAugmentedHead)
    return isinstance(obj, DiffusionAugmentedHead)


def _fc_override_only(init_cfg: Dict) -> Dict:
    """A copy of an ``init_cfg`` entry whose ``override`` keeps ``fc`` only."""
    cfg = dict(init_cfg)
    override = cfg.pop('override', None)
    if override is not None:
        kept = [entry for entry in (
            [override] if isinstance(override, dict) else override)
                if entry.get('name') == 'fc']
        if kept:
            cfg['override'] = kept
    return cfg


def check_generation(generation: Optional[Dict],
                     diffusion: GaussianDiffusion) -> Dict:
    """The head's ``generation`` options, checked against its diffusion.

    The one place they are checked: the diffusion runs them unchecked on
    every training step.

    Args:
        generation (dict, optional): The options; missing keys take
            :data:`GENERATION_DEFAULTS`.
        diffusion (GaussianDiffusion): The head's diffusion.

    Returns:
        dict: Every option.

    Raises:
        ConfigError: For an unknown key or a value that cannot run, named
            by its key (``model.cls_head.generation.<name>``).
    """
    field = 'model.cls_head.generation'
    options = dict(GENERATION_DEFAULTS)
    refuse_unknown_keys(generation, options, field)
    options.update(generation or {})
    check_choice(options['sampler'], SAMPLERS, f'{field}.sampler')
    num_steps = diffusion.num_steps
    start_step = options['start_step']
    try:
        check_int(start_step, f'{field}.start_step', 0, num_steps - 1,
                  allow_none=True)
    except ConfigError as error:
        raise ConfigError(
            f'{error} (0-based steps of model.cls_head.diffusion.num_steps='
            f'{num_steps}; None runs the full chain from T)'
            f'{_same_noise_hint(start_step, diffusion)}') from None
    last = num_steps - 1 if start_step is None else start_step
    check_int(options['ddim_steps'], f'{field}.ddim_steps', 1, last + 1,
              allow_none=options['sampler'] != 'ddim')
    eta = options['eta']
    if not ((is_int(eta) or isinstance(eta, float)) and eta >= 0):
        raise ConfigError(f'{field}.eta must be a number >= 0, got {eta!r}')
    check_int(options['grad_steps'], f'{field}.grad_steps', 1,
              allow_none=True)
    return options


def _same_noise_hint(start_step: Any, diffusion: GaussianDiffusion) -> str:
    """For a ``start_step`` meant for a chain of the default length: the
    step of ``diffusion`` with the nearest alpha-bar (the same noise)."""
    reference = GaussianDiffusion(beta_schedule=diffusion.beta_schedule)
    if not is_int(start_step) or not 0 <= start_step < reference.num_steps:
        return ''
    alpha_bar = float(reference.alphas_cumprod[start_step])
    nearest = int((diffusion.alphas_cumprod - alpha_bar).abs().argmin())
    return (f'; step {start_step} of a T={reference.num_steps} chain '
            f'(alpha-bar {alpha_bar:.2f}) has the noise level of '
            f'start_step={nearest} here')
