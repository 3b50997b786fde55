"""Strip CoCoDiff's training-only weights from a checkpoint.

Inference is the stock GCN: backbone and classifier. The denoiser, the
projection ``g`` and the temperature live under ``cls_head`` next to
``cls_head.fc`` and are dropped, so the result loads with ``strict=True``
into the baseline config (a plain ``GCNHead``).
"""
import os
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

from ..utils.atomic_write import atomic_path
from .checkpoint_match import (CheckpointMismatchError, compare_state,
                               is_training_only, mismatch_message,
                               read_checkpoint, state_dict_of)


def split_inference_state(state_dict: Dict[str, torch.Tensor]
                          ) -> Tuple[Dict[str, torch.Tensor], Tuple[str, ...]]:
    """Separate the inference weights from the training-only ones.

    Args:
        state_dict (dict): A recognizer's state dict; a ``module.`` prefix
            (DistributedDataParallel) is removed from its keys.

    Returns:
        tuple: The state dict to keep, and the names of the dropped keys.
    """
    kept, dropped = {}, []
    for name, value in state_dict_of(state_dict).items():
        if is_training_only(name):
            dropped.append(name)
        else:
            kept[name] = value
    return kept, tuple(dropped)


def export_inference_checkpoint(src: str, dst: str,
                                model: Optional[nn.Module] = None
                                ) -> Tuple[str, ...]:
    """Write ``dst`` with only the inference weights of checkpoint ``src``.

    Args:
        src (str): A checkpoint from ``tools/train.py`` (any stage).
        dst (str): Output path; written atomically (a failed write leaves
            an existing ``dst`` as it was and no temporary file behind).
        model (nn.Module, optional): The baseline model the result must
            load into strictly; checked *before* anything is written.
            Defaults to None (no check).

    Returns:
        tuple[str]: The dropped keys.

    Raises:
        FileNotFoundError: If ``src`` does not exist.
        CorruptCheckpointError: If ``src`` cannot be read.
        CheckpointMismatchError: If the kept weights do not fit ``model``.
    """
    if not os.path.isfile(src):
        raise FileNotFoundError(f'checkpoint {src} does not exist')
    checkpoint = read_checkpoint(src)
    kept, dropped = split_inference_state(checkpoint.get('state_dict',
                                                         checkpoint))
    if model is not None:
        found = compare_state(model.state_dict(), kept)
        # A baseline model has no training-only keys; any other miss counts.
        if any(found):
            raise CheckpointMismatchError(
                mismatch_message(src, *found, target='the given config') +
                f'; nothing was written to {dst}')
    meta = dict(checkpoint.get('meta') or {})
    meta['exported_from'] = os.path.abspath(src)
    meta['dropped_training_only_keys'] = len(dropped)
    with atomic_path(dst) as tmp_name:
        torch.save(dict(meta=meta, state_dict=kept), tmp_name)
    return dropped


def load_inference_weights(model: nn.Module,
                           checkpoint: str) -> Tuple[str, ...]:
    """Load the inference weights of ``checkpoint`` into ``model``, strictly.

    Shared by ``tools/infer.py`` and the ONNX export.

    Args:
        model (nn.Module): A recognizer with a plain ``GCNHead``.
        checkpoint (str): A checkpoint of ``tools/train.py`` (plain or
            CoCoDiff, any stage) or of ``tools/export_inference_ckpt.py``.

    Returns:
        tuple[str]: The training-only keys left out.

    Raises:
        FileNotFoundError: If ``checkpoint`` does not exist.
        CorruptCheckpointError: If it cannot be read.
        CheckpointMismatchError: If its inference weights do not fit the
            model: the path, the counts, the first keys of each kind and
            the likely cause.
    """
    loaded = read_checkpoint(checkpoint)
    kept, dropped = split_inference_state(loaded.get('state_dict', loaded))
    missing, unexpected, shapes = compare_state(model.state_dict(), kept)
    if missing or unexpected or shapes:
        raise CheckpointMismatchError(
            mismatch_message(checkpoint, missing, unexpected, shapes,
                             target='the config\'s model'))
    model.load_state_dict(kept, strict=True)
    return dropped
