"""Small helpers on the runner's model."""
import torch.nn as nn
from mmengine.model import is_model_wrapper


def unwrap_model(model: nn.Module) -> nn.Module:
    """``model`` without its DDP (or other mmengine) wrapper.

    mmengine has ``is_model_wrapper`` but no function that unwraps (its
    Runner and hooks write ``model.module`` inline each time).
    """
    return model.module if is_model_wrapper(model) else model
