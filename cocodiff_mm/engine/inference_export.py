"""Strip CoCoDiff's training-only weights from a checkpoint.

Inference is the stock GCN: backbone and classifier. The denoiser, the
projection ``g`` and the temperature live under ``cls_head`` next to
``cls_head.fc`` and are dropped, so the result loads with ``strict=True``
into the baseline config (a plain ``GCNHead``).
"""
import os
from typing import Dict, Tuple

import torch
from mmengine.runner.checkpoint import _load_checkpoint

from .checkpoint_safety import allow_mmengine_checkpoint_types

#: Keys under ``cls_head`` that a stock ``GCNHead`` has.
INFERENCE_HEAD_PREFIXES = ('cls_head.fc.', )


def split_inference_state(state_dict: Dict[str, torch.Tensor]
                          ) -> Tuple[Dict[str, torch.Tensor], Tuple[str, ...]]:
    """Separate the inference weights from the training-only ones.

    Args:
        state_dict (dict): A recognizer's state dict.

    Returns:
        tuple: The state dict to keep, and the names of the dropped keys.
    """
    kept, dropped = {}, []
    for key, value in state_dict.items():
        name = key[len('module.'):] if key.startswith('module.') else key
        if name.startswith('cls_head.') and \
                not name.startswith(INFERENCE_HEAD_PREFIXES):
            dropped.append(name)
        else:
            kept[name] = value
    return kept, tuple(dropped)


def export_inference_checkpoint(src: str, dst: str) -> Tuple[str, ...]:
    """Write ``dst`` with only the inference weights of checkpoint ``src``.

    Args:
        src (str): A checkpoint from ``tools/train.py`` (any stage).
        dst (str): Output path; written atomically.

    Returns:
        tuple[str]: The dropped keys.
    """
    if not os.path.isfile(src):
        raise FileNotFoundError(f'checkpoint {src} does not exist')
    allow_mmengine_checkpoint_types()
    checkpoint = _load_checkpoint(src, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint)
    kept, dropped = split_inference_state(state)
    meta = dict(checkpoint.get('meta') or {})
    meta['exported_from'] = os.path.abspath(src)
    meta['dropped_training_only_keys'] = len(dropped)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    tmp = f'{dst}.tmp'
    torch.save(dict(meta=meta, state_dict=kept), tmp)
    os.replace(tmp, dst)
    return dropped
