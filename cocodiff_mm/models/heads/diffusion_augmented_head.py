"""GCNHead with CoCoDiff's training-only latent diffusion augmentation."""
import copy
import inspect
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmaction.models.heads import GCNHead
from mmaction.registry import MODELS
from mmaction.utils import SampleList
from mmengine.model import PretrainedInit, initialize, normal_init

from ...utils.config_keys import ConfigError, refuse_unknown_keys
from ..diffusion.gaussian_diffusion import SAMPLERS
from ..text.text_bank import TextEmbeddingBank

#: Training objectives; :data:`~cocodiff_mm.engine.stage_plan.
#: STAGE_OBJECTIVES` says which stage of :class:`TwoStageLoop` trains which.
#: ``classify``: stock cross-entropy; ``diffusion``: L_rec + λ·L_con (the
#: classifier is not trained); ``joint``: CE(real) + CE(generated) + L_rec +
#: λ·L_con.
OBJECTIVES = ('classify', 'diffusion', 'joint')

#: alpha-bar of the shipped default start (step 10 of the linear T = 30
#: chain, ``configs/_base_/cocodiff.py``), for suggesting a start step.
DEFAULT_START_ALPHA_BAR = 0.24

#: Text guidance ablations of the paper's Table II.
TEXT_MODES = ('both', 'fine', 'coarse', 'none')

#: The ``generation`` options and their defaults (the paper's full DDPM
#: chain from T, gradients through every step).
GENERATION_DEFAULTS = dict(
    sampler='ddpm', start_step=None, ddim_steps=None, eta=0.0,
    grad_steps=None)


@MODELS.register_module()
class DiffusionAugmentedHead(GCNHead):
    """GCN head trained on real plus diffusion-generated features (CoCoDiff).

    ``predict`` (and ``forward``) is the stock :class:`GCNHead` path:
    inference costs nothing extra, and the classifier ``fc`` is the only
    part a test-time checkpoint needs (``tools/export_inference_ckpt.py``).

    ``loss`` pools the backbone feature ``x0`` exactly as ``GCNHead`` does,
    then, depending on :attr:`objective`:

    * trains the denoiser ``ε_θ(x_t, t, e_f(y))`` with ``L_rec`` (fine-text
      conditioning, method.md Eq. 4);
    * generates same-class features by noising the real ``x0`` with the
      forward process and running the reverse chain conditioned on the
      fine text (``generation``);
    * aligns the generated features, through a learned projection ``g``,
      with the coarse texts by the bidirectional KL contrastive loss
      ``λ·L_con`` (Eq. 5-6);
    * and adds the cross-entropy on the generated features (Eq. 8).

    Returned keys: ``loss_cls`` (CE on real, with ``top1_acc``/``top5_acc``),
    ``loss_gen_cls`` (CE on generated), ``loss_rec``, ``loss_con`` (already
    weighted by λ), and the logged ``acc_generated`` and ``ce_generated``
    (the cross-entropy on generated features before its weight and ramp:
    the classifier's view of the generated labels, comparable with chance
    level ``ln(num_classes)``).

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels ``C`` of the pooled backbone feature.
        text_bank (dict): Arguments of :class:`TextEmbeddingBank`
            (``texts``, ``encoder``, ``pretrained``, ``sample_mode``, ...).
            ``num_classes`` defaults to the head's.
        diffusion (dict, optional): Config of the diffusion process.
            Defaults to ``dict(type='GaussianDiffusion', num_steps=30)``
            (T = 30, the paper's best for CTR-GCN).
        denoiser (dict, optional): Config of the noise predictor; its
            ``feat_dim``, ``cond_dim`` and (when it takes one)
            ``num_steps`` are filled in. Defaults to
            ``dict(type='ConditionalUNet1D')``.
        loss_text (dict, optional): Config of the coarse-text loss; its
            ``loss_weight`` is λ. Defaults to
            ``dict(type='TextGuidanceLoss', loss_weight=1.0)``.
        text_mode (str): ``'both'`` (fine conditioning and coarse loss),
            ``'fine'``, ``'coarse'`` or ``'none'`` (Table II ablations).
            Defaults to ``'both'``.
        generation (dict, optional): How features are generated:
            ``sampler`` (``'ddpm'`` full chain or ``'ddim'``), ``start_step``
            (``None``: forward to the last step T, the paper's choice; or an
            intermediate 0-based step), ``ddim_steps`` and ``eta`` for DDIM,
            and ``grad_steps``: ``None`` backpropagates through every step
            of the chain (the paper, read literally); ``K`` keeps the graph
            of the last ``K`` denoiser calls only. The generated features
            are the same; the losses on them then train the denoiser
            through its last ``K`` calls only, and no longer reach the real
            features through the chain (see
            :meth:`GaussianDiffusion.generate`). Defaults to
            ``dict(sampler='ddpm', start_step=None, grad_steps=None)``.
        loss_rec_weight (float): Weight of ``L_rec``. Defaults to 1.0.
        loss_gen_weight (float): Weight of CE on generated features.
            Defaults to 1.0.
        detach_real (bool): Stop diffusion losses from changing the GCN
            through ``x0`` (the GCN learns from CE only). Defaults to True.
        gen_cls_trains_diffusion (bool): Whether the cross-entropy on
            generated features also trains the denoiser through the reverse
            chain. By default it trains the classifier only; the denoiser
            learns from ``L_rec`` and, through the chain, ``λ·L_con``. With a
            freshly initialised GCN in stage 2, the classifier's large early
            gradients through the 30-step chain made training diverge in our
            runs. Defaults to False.
        feature_norm_momentum (float): Momentum of the running mean and
            variance that standardise ``x0`` before diffusion (the chain
            assumes unit-scale data, as in latent diffusion); generated
            features are mapped back. Defaults to 0.1.
        objective (str): Initial objective, one of :data:`OBJECTIVES`; the
            multi-stage loop sets it per stage. Defaults to ``'joint'`` (so a
            plain epoch loop trains the stage-2 objective: "no stage 1").
        init_cfg (dict | list[dict], optional): mmengine initialisation of
            the head, applied by :meth:`init_weights` to the whole head
            (``layer='Linear'`` also reaches the denoiser and ``g``; use
            ``override=dict(name='fc', ...)`` for the classifier alone;
            ``Pretrained`` with ``prefix='cls_head.'`` loads a trained head).
            ``None`` gives ``fc`` GCNHead's N(0, 0.01) and leaves the other
            parts as built. Defaults to ``None``.
        **kwargs: Arguments of :class:`GCNHead` (``loss_cls``, ``dropout``,
            ``average_clips``).
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
        if text_mode not in TEXT_MODES:
            raise ValueError(f'text_mode must be one of {TEXT_MODES}, got '
                             f'{text_mode!r}')
        self.text_mode = text_mode
        self.loss_rec_weight = loss_rec_weight
        self.loss_gen_weight = loss_gen_weight
        self.detach_real = detach_real
        self.gen_cls_trains_diffusion = gen_cls_trains_diffusion
        self.feature_norm_momentum = feature_norm_momentum
        self.register_buffer('feature_mean', torch.zeros(in_channels))
        self.register_buffer('feature_var', torch.ones(in_channels))
        self.generation = self._check_generation(generation)

        bank_cfg = dict(text_bank)
        bank_cfg.setdefault('num_classes', num_classes)
        if bank_cfg['num_classes'] != num_classes:
            raise ValueError(
                f'model.cls_head.text_bank.num_classes='
                f'{bank_cfg["num_classes"]} but the head has num_classes='
                f'{num_classes}')
        self.text_bank = TextEmbeddingBank(**bank_cfg)

        self.diffusion = MODELS.build(
            diffusion or dict(type='GaussianDiffusion', num_steps=30))
        self._check_start_step()
        denoiser_cfg = copy.deepcopy(
            denoiser or dict(type='ConditionalUNet1D'))
        denoiser_cfg['feat_dim'] = in_channels
        denoiser_cfg['cond_dim'] = (
            self.text_bank.dim if self.uses_fine_text else None)
        if _accepts(denoiser_cfg['type'], 'num_steps'):
            denoiser_cfg['num_steps'] = self.diffusion.num_steps
        self.denoiser = MODELS.build(denoiser_cfg)
        if self.uses_coarse_text:
            self.projection = nn.Linear(in_channels, self.text_bank.dim)
            self.loss_text = MODELS.build(
                loss_text or dict(type='TextGuidanceLoss', loss_weight=1.0))
        else:
            self.projection = None
            self.loss_text = None
        #: Factor on ``loss_gen_cls``, ramped up at stage 2's start by
        #: ``GeneratedLossRampHook`` while the diffusion adapts to the GCN.
        self.gen_cls_scale = 1.0
        self.objective = 'joint'
        self.set_objective(objective)

    @staticmethod
    def _check_generation(generation: Optional[Dict]) -> Dict:
        """Validate the generation options and fill in defaults."""
        options = dict(GENERATION_DEFAULTS)
        refuse_unknown_keys(generation, options, 'model.cls_head.generation')
        options.update(generation or {})
        if options['sampler'] not in SAMPLERS:
            raise ValueError(f'generation.sampler must be one of {SAMPLERS}, '
                             f'got {options["sampler"]!r}')
        if options['sampler'] == 'ddim' and not options['ddim_steps']:
            raise ValueError('generation.sampler=ddim needs '
                             'generation.ddim_steps (e.g. 5)')
        grad_steps = options['grad_steps']
        if grad_steps is not None and (isinstance(grad_steps, bool)
                                       or not isinstance(grad_steps, int)
                                       or grad_steps < 1):
            raise ValueError('generation.grad_steps must be None (gradients '
                             'through every step) or an int >= 1, got '
                             f'{grad_steps!r}')
        return options

    def _check_start_step(self) -> None:
        """Refuse a ``start_step`` past the chain when the head is built
        (changing T alone must not fail hours later, in the first stage-1
        step), and suggest the step of the shipped default's noise level."""
        step = self.generation['start_step']
        num_steps = self.diffusion.num_steps
        if step is None or (isinstance(step, int) and 0 <= step < num_steps):
            return
        alpha_bar = self.diffusion.alphas_cumprod
        nearest = int((alpha_bar - DEFAULT_START_ALPHA_BAR).abs().argmin())
        raise ConfigError(
            f'model.cls_head.generation.start_step={step!r} does not fit '
            f'model.cls_head.diffusion.num_steps={num_steps} (0-based steps '
            f'0..{num_steps - 1}); the noise level of the default (step 10 '
            f'of 30, alpha-bar {DEFAULT_START_ALPHA_BAR}) is start_step='
            f'{nearest} here, and None runs the full chain from T')

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
        if objective not in OBJECTIVES:
            raise ValueError(f'objective must be one of {OBJECTIVES}, got '
                             f'{objective!r}')
        self.objective = objective

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
                # torch.where keeps the check on the device (no sync).
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
        denoiser = self.denoiser
        if hasattr(denoiser, 'conditioned_on'):
            # The text and time projections, once for the whole chain.
            denoiser = denoiser.conditioned_on(cond)
        return self._unstandardize(self.diffusion.generate(
            denoiser,
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
        losses['acc_generated'] = gen_terms.get(
            'top1_acc', self._accuracy(gen_scores, labels))
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


def _accepts(type_name, argument: str) -> bool:
    """Whether the registered class ``type_name`` takes ``argument``."""
    cls = MODELS.get(type_name) if isinstance(type_name, str) else type_name
    return cls is not None and argument in inspect.signature(cls).parameters
