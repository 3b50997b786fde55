"""Give the diffusion parts their own optimizer (AdamW next to the GCN's SGD).

The denoiser, the projection ``g`` and the temperature learn badly with the
GCN's SGD: on UTD-MHAD's cached features their class faithfulness stayed
near 48 % with SGD at any learning rate we tried and reached 85 % with AdamW
(``docs/results.md``, "Stage-1 optimizer"). A torch optimizer has one update
rule for all its groups, so the two need two optimizers.

mmengine's :class:`~mmengine.optim.OptimWrapperDict` holds several optimizer
wrappers but leaves ``update_params`` unimplemented, because in its use case
(GANs) every wrapper steps on its own loss. Here one loss trains both, and
the stock ``train_step`` of every mmaction2 recognizer calls
``optim_wrapper.update_params(loss)``: :class:`JointOptimWrapperDict` adds
that call (one backward, then every wrapper steps), and
:class:`DiffusionOptimWrapperConstructor` builds it from a config that keeps
the baseline's ``optimizer`` as it is and adds a ``diffusion`` entry::

    optim_wrapper = dict(
        constructor='DiffusionOptimWrapperConstructor',
        optimizer=dict(type='SGD', lr=0.1, ...),          # the GCN's
        diffusion=dict(optimizer=dict(type='AdamW', lr=1e-3)))

The runner gives each wrapper the config's ``param_scheduler`` (so both
follow the same warm-up and cosine decay, each from its own base lr), saves
and resumes both, and logs ``gcn.lr`` and ``diffusion.lr``.
"""
import copy
from contextlib import ExitStack, contextmanager
from typing import Dict, Iterator, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.optim import (AmpOptimWrapper, DefaultOptimWrapperConstructor,
                            OptimWrapper, OptimWrapperDict)
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS

from ..models.heads import is_cocodiff_head
from ..utils.config_keys import ConfigError, refuse_unknown_keys
from .model_utils import unwrap_model

#: Keys of the ``diffusion`` entry (``clip_grad`` defaults to the GCN's);
#: the rest (``type``, accumulation, AMP settings) is shared with the GCN's
#: wrapper, since one backward feeds both.
DIFFUSION_KEYS = ('optimizer', 'paramwise_cfg', 'clip_grad')


@OPTIM_WRAPPERS.register_module()
class JointOptimWrapperDict(OptimWrapperDict):
    """Optimizer wrappers that step together on one loss.

    The first wrapper (``gcn``) owns the backward pass: its loss scaling for
    gradient accumulation and, under AMP, its ``GradScaler``, which every
    wrapper shares (the constructor arranges that). All wrappers must be of
    one type with the same ``accumulative_counts``.

    Args:
        **optim_wrappers (OptimWrapper): The wrappers by name, the one that
            owns the backward pass first.
    """

    @property
    def _lead(self) -> OptimWrapper:
        return next(iter(self.optim_wrappers.values()))

    def update_params(self,
                      loss: torch.Tensor,
                      step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        """One backward of ``loss``; every wrapper steps when it is due."""
        lead = self._lead
        loss = lead.scale_loss(loss)
        self.backward(loss)
        if lead.should_update():
            self.step(**(step_kwargs or {}))
            self.zero_grad(**(zero_kwargs or {}))

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Backward through the lead wrapper; the others count the pass."""
        self._lead.backward(loss, **kwargs)
        for wrapper in list(self.optim_wrappers.values())[1:]:
            wrapper._inner_count += 1

    def step(self, **kwargs) -> None:
        """Step every optimizer; under AMP, update the shared scale once.

        ``AmpOptimWrapper.step`` updates the scale after its optimizer, so
        a second wrapper would unscale its gradients by a changed scale.
        """
        wrappers = list(self.optim_wrappers.values())
        if not isinstance(self._lead, AmpOptimWrapper):
            for wrapper in wrappers:
                wrapper.step(**kwargs)
            return
        scaler = self._lead.loss_scaler
        for wrapper in wrappers:
            if wrapper.clip_grad_kwargs:
                scaler.unscale_(wrapper.optimizer)
                wrapper._clip_grad()
            scaler.step(wrapper.optimizer, **kwargs)
        scaler.update(self._lead._scale_update_param)

    def zero_grad(self, **kwargs) -> None:
        """Zero the gradients of every optimizer."""
        for wrapper in self.optim_wrappers.values():
            wrapper.zero_grad(**kwargs)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Every wrapper's context (AMP autocast, no gradient sync while
        accumulating)."""
        with ExitStack() as stack:
            for wrapper in self.optim_wrappers.values():
                stack.enter_context(wrapper.optim_context(model))
            yield

    def initialize_count_status(self, model: nn.Module, cur_iter: int,
                                max_iters: int) -> None:
        """Set up every wrapper's accumulation counters (the parent skips
        this: its wrappers need not share a model)."""
        for wrapper in self.optim_wrappers.values():
            wrapper.initialize_count_status(model, cur_iter, max_iters)

    def should_update(self) -> bool:
        """Whether the next ``step`` updates the parameters."""
        return self._lead.should_update()

    def should_sync(self) -> bool:
        """Whether the next backward synchronises gradients across ranks."""
        return self._lead.should_sync()


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DiffusionOptimWrapperConstructor:
    """The GCN's optimizer for the GCN and the classifier, another for the
    head's diffusion parts (:meth:`DiffusionAugmentedHead.
    diffusion_modules`: the denoiser, ``g`` and the temperature).

    Each optimizer is built by :class:`DefaultOptimWrapperConstructor`, so
    ``paramwise_cfg`` works for both as usual; parameter names of the
    diffusion optimizer are those under the head (``denoiser.``,
    ``projection.``, ``loss_text.``).

    Args:
        optim_wrapper_cfg (dict): The ``optim_wrapper`` config without
            ``constructor`` and ``paramwise_cfg``: the GCN's wrapper, plus
            ``diffusion=dict(optimizer=..., paramwise_cfg=None,
            clip_grad=<the GCN's>)``, or ``diffusion=None``: the GCN's
            optimizer for every parameter (one :class:`OptimWrapper`, as
            without this constructor).
        paramwise_cfg (dict, optional): The GCN optimizer's parameter-wise
            settings. Defaults to None.
    """

    def __init__(self, optim_wrapper_cfg: Dict,
                 paramwise_cfg: Optional[Dict] = None) -> None:
        cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        diffusion = cfg.pop('diffusion', None)
        self.gcn = DefaultOptimWrapperConstructor(cfg, paramwise_cfg)
        if diffusion is None:  # one optimizer for everything
            self.diffusion = None
            return
        if not isinstance(diffusion, dict) or 'optimizer' not in diffusion:
            raise ConfigError(
                'optim_wrapper.diffusion must be None (the GCN\'s optimizer '
                'for all parameters) or a dict with an optimizer, e.g. '
                'dict(optimizer=dict(type=\'AdamW\', lr=1e-3)); got '
                f'{diffusion!r}')
        refuse_unknown_keys(diffusion, DIFFUSION_KEYS,
                            'optim_wrapper.diffusion')
        diffusion = dict(diffusion)
        diffusion_paramwise = diffusion.pop('paramwise_cfg', None)
        diffusion_cfg = dict(cfg)
        diffusion_cfg.update(diffusion)
        self.diffusion = DefaultOptimWrapperConstructor(
            diffusion_cfg, diffusion_paramwise)

    def __call__(self, model: nn.Module
                 ) -> Union[JointOptimWrapperDict, OptimWrapper]:
        if self.diffusion is None:
            return self.gcn(model)
        model = unwrap_model(model)
        head = getattr(model, 'cls_head', None)
        if not is_cocodiff_head(head):
            raise ConfigError(
                'optim_wrapper.constructor=DiffusionOptimWrapperConstructor '
                'needs a model whose cls_head is a DiffusionAugmentedHead; '
                f'got cls_head {type(head).__name__}')
        parts = nn.Module()
        for module in head.diffusion_modules():
            name = next(name for name, child in head.named_children()
                        if child is module)
            parts.add_module(name, module)
        diffusion = self.diffusion(parts)
        gcn = self.gcn(model)
        owned = {id(param) for param in parts.parameters()}
        _drop_params(gcn.optimizer, owned)
        if isinstance(gcn, AmpOptimWrapper):
            diffusion.loss_scaler = gcn.loss_scaler
        return JointOptimWrapperDict(gcn=gcn, diffusion=diffusion)


def _drop_params(optimizer: torch.optim.Optimizer, owned: set) -> None:
    """Remove the parameters in ``owned`` (ids) from ``optimizer``'s groups.

    DefaultOptimWrapperConstructor has no way to leave parameters out (its
    ``paramwise_cfg`` only rescales them), so the GCN's optimizer is built
    over the whole model and the diffusion parameters are taken out of it
    before any step (the optimizer has no state yet).
    """
    groups: List[Dict] = []
    for group in optimizer.param_groups:
        group['params'] = [p for p in group['params'] if id(p) not in owned]
        if group['params']:
            groups.append(group)
    optimizer.param_groups = groups
