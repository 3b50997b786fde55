"""Re-initialise a module as if freshly built (stage 2's new GCN)."""
import torch.nn as nn
from mmengine.model import BaseModule


def reinitialize(module: nn.Module) -> None:
    """Reset every parameter of ``module`` to a fresh initialisation.

    Layers first get PyTorch's own ``reset_parameters``; then mmengine's
    ``init_weights`` runs again (its ``_is_init`` flags are cleared first),
    so ``init_cfg`` and custom ``init_weights`` methods (e.g. CTR-GCN's)
    apply exactly as at build time. Batch-norm running statistics are reset
    too.

    Args:
        module (nn.Module): The module to re-initialise in place.
    """
    for child in module.modules():
        if hasattr(child, 'reset_running_stats'):
            child.reset_running_stats()
        if hasattr(child, 'reset_parameters'):
            child.reset_parameters()
        if isinstance(child, BaseModule):
            child._is_init = False
    if hasattr(module, 'init_weights'):
        module.init_weights()
