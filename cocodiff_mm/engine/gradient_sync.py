"""Cross-rank gradient averaging for steps that bypass DDP's forward."""
from typing import Iterable, List

import torch
from mmengine.dist import all_reduce_params, get_world_size


class CrossRankGradientMean:
    """Average the gradients of some parameters over ranks during backward.

    Stage 1 on cached features calls the head directly, not through the
    DDP-wrapped model, so DDP's reducer never fires. DDP itself does not
    fit: it averages only what its module's forward reaches. This attaches a
    post-accumulate hook to every parameter that averages its ``.grad`` with
    :func:`mmengine.dist.all_reduce_params` as soon as backward has added to
    it. Averaging an accumulated gradient again is exact (the part already
    averaged is the same on every rank), so ``optim_wrapper.update_params``
    with ``accumulative_counts``, ``clip_grad`` and AMP loss scaling sees the
    gradients DDP would have produced. With one process nothing is attached.

    Args:
        params (Iterable[Tensor]): The parameters to keep in sync.
    """

    def __init__(self, params: Iterable[torch.Tensor]) -> None:
        self.params: List[torch.Tensor] = [
            param for param in params if param.requires_grad
        ]
        self._handles: list = []

    def attach(self) -> 'CrossRankGradientMean':
        """Attach the hooks (a no-op with one process)."""
        if get_world_size() > 1 and not self._handles:
            self._handles = [
                param.register_post_accumulate_grad_hook(self._average)
                for param in self.params
            ]
        return self

    def detach(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @staticmethod
    def _average(param: torch.Tensor) -> None:
        all_reduce_params([param.grad], coalesce=False, op='mean')
