"""Load and check the pretrained GCN that stage 1 of CoCoDiff freezes."""
import os
from typing import Dict, List, Tuple

import torch
import torch.nn as nn

from ..utils.config_keys import ConfigError
from .checkpoint_keys import revise_state_dict_keys
from .checkpoint_match import (CorruptCheckpointError,
                               NonFiniteCheckpointError, read_checkpoint)

#: Parameters of a recognizer that make up "the GCN": backbone and classifier.
GCN_PREFIXES = ('backbone.', 'cls_head.fc.')


#: Checkpoints read with ``keep=True``, by file (path, mtime, size), until
#: the next read of the same file takes them: ``tools/train.py`` reads
#: ``train_cfg.pretrained`` before the Runner exists, and the loop that
#: ``Runner.train()`` builds later gets those tensors instead of a second
#: read of the file.
_KEPT: Dict[Tuple[str, int, int], Dict[str, torch.Tensor]] = {}


class PretrainedCheckpointError(ConfigError):
    """The pretrained GCN checkpoint is missing or does not fit the model."""


def gcn_state_dict(module: nn.Module) -> Dict[str, torch.Tensor]:
    """The backbone and classifier entries of a recognizer's state dict."""
    return {
        key: value
        for key, value in module.state_dict().items()
        if key.startswith(GCN_PREFIXES)
    }


def read_gcn_checkpoint(path: str, model: nn.Module,
                        keep: bool = False) -> Dict[str, torch.Tensor]:
    """Read a GCN checkpoint and check that it fits ``model`` exactly.

    Accepts a checkpoint written by ``tools/train.py`` for the baseline
    config (``configs/ctrgcn_*.py``), by any stage of a CoCoDiff run, or by
    ``tools/export_inference_ckpt.py``: only ``backbone.*`` and
    ``cls_head.fc.*`` are read.

    Args:
        path (str): Checkpoint file.
        model (nn.Module): The (unwrapped) recognizer to load into.
        keep (bool): Keep the tensors for the next call on the same,
            unchanged file, which takes them instead of reading it again.
            Defaults to ``False``.

    Returns:
        dict: The checkpoint's backbone and classifier tensors.

    Raises:
        PretrainedCheckpointError: If the file is missing, corrupt or
            truncated, holds non-finite weights, or its GCN keys or shapes differ from the model's; the
            message names the path and the keys.
    """
    if not os.path.isfile(path):
        raise PretrainedCheckpointError(
            f'pretrained GCN checkpoint {path} (train_cfg.pretrained) does '
            'not exist. Train one with tools/train.py and a baseline config '
            '(e.g. configs/ctrgcn_ntu60_xsub.py), or set '
            'train_cfg.pretrained=None to train it as stage 0.')
    stat = os.stat(path)
    file_key = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
    state = _KEPT.pop(file_key, None)
    if state is None:
        state = _read_gcn_tensors(path)
    expected = gcn_state_dict(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f'{key}: checkpoint {tuple(state[key].shape)} vs model '
        f'{tuple(expected[key].shape)}' for key in set(state) & set(expected)
        if state[key].shape != expected[key].shape)
    problems: List[str] = []
    for title, keys in (('missing keys', missing),
                        ('unexpected keys', unexpected),
                        ('shape mismatches', shapes)):
        if keys:
            listed = ', '.join(keys[:8])
            more = f' (+{len(keys) - 8} more)' if len(keys) > 8 else ''
            problems.append(f'{title}: {listed}{more}')
    if problems:
        raise PretrainedCheckpointError(
            f'pretrained GCN checkpoint {path} (train_cfg.pretrained) does '
            'not match the model\'s backbone/classifier:\n  ' +
            '\n  '.join(problems))
    if keep:
        _KEPT[file_key] = state
    return state


def _read_gcn_tensors(path: str) -> Dict[str, torch.Tensor]:
    """The backbone and classifier tensors of a checkpoint file."""
    try:
        checkpoint = read_checkpoint(path)
    except (CorruptCheckpointError, NonFiniteCheckpointError) as error:
        raise PretrainedCheckpointError(
            f'{error} (train_cfg.pretrained)') from None
    state = revise_state_dict_keys(checkpoint.get('state_dict', checkpoint))
    return {k: v for k, v in state.items() if k.startswith(GCN_PREFIXES)}


def load_gcn_weights(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Copy checked GCN tensors (from :func:`read_gcn_checkpoint`) in place."""
    own = model.state_dict()
    with torch.no_grad():
        for key, value in state.items():
            own[key].copy_(value.to(own[key].device, own[key].dtype))
