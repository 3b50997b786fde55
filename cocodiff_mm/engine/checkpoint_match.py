"""Reading a checkpoint for evaluation: intact, and made for this model.

mmengine loads checkpoints non-strictly: a checkpoint of another width gave
``tools/test.py`` exit 0 and an accuracy of a half-random model, with the
only trace 699 "size mismatch" lines in the log. :func:`check_checkpoint_
matches` compares keys and shapes first and refuses with the path, the
first mismatched keys and the likely cause; :func:`read_checkpoint` turns a
truncated or corrupt file into one line that says so, and refuses weights
that are NaN or infinite (a run that diverged), for every reader: tools/
test.py, tools/infer.py, the export, ``train_cfg.pretrained``, ``load_from``
and ``--resume``.
"""
import pickle
import re
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..utils.config_keys import ConfigError
from .checkpoint_keys import revise_state_dict_keys
from .checkpoint_safety import mmengine_checkpoint_types_allowed

#: Keys under ``cls_head`` that a stock ``GCNHead`` (and inference) uses;
#: every other ``cls_head`` key is CoCoDiff's training-only diffusion part.
INFERENCE_HEAD_PREFIXES = ('cls_head.fc.', )

#: How many keys of each kind a message lists.
LISTED = 5


class CorruptCheckpointError(ConfigError):
    """A checkpoint file that cannot be read (truncated, corrupt)."""


class UnsafeCheckpointError(ConfigError):
    """A checkpoint that holds pickled objects outside the allow-list."""


class CheckpointMismatchError(ConfigError):
    """A checkpoint whose keys or shapes do not fit the model."""


class NonFiniteCheckpointError(ConfigError):
    """A checkpoint whose weights hold NaN or infinite values."""


def is_training_only(key: str) -> bool:
    """Whether a recognizer key belongs to CoCoDiff's training-only part."""
    return key.startswith('cls_head.') and \
        not key.startswith(INFERENCE_HEAD_PREFIXES)


def read_checkpoint(path: str) -> Dict:
    """Load ``path`` on the CPU (safely: see :mod:`.checkpoint_safety`).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        UnsafeCheckpointError: If it holds objects the safe loader refuses.
        CorruptCheckpointError: ``<path>: corrupt or truncated checkpoint``
            for a file torch cannot read.
        NonFiniteCheckpointError: For weights with NaN or infinite values,
            naming the first tensors.
    """
    from mmengine.runner.checkpoint import _load_checkpoint
    try:
        with mmengine_checkpoint_types_allowed():
            checkpoint = _load_checkpoint(path, map_location='cpu')
    except pickle.UnpicklingError as error:
        # The safe unpickler says "GLOBAL <name>" for an object it refuses;
        # any other failure is a byte stream that is not a checkpoint.
        refused = re.search(r'GLOBAL ([\w.]+)', str(error))
        if refused:
            raise UnsafeCheckpointError(
                f'{path}: refused, it holds a pickled object outside the '
                f'allow-list ({refused.group(1)}); set '
                'COCODIFF_TRUST_CHECKPOINTS=1 only for a file you trust'
            ) from None
        raise CorruptCheckpointError(
            f'{path}: corrupt or truncated checkpoint (not a torch '
            'checkpoint file)') from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError) as error:
        raise CorruptCheckpointError(
            f'{path}: corrupt or truncated checkpoint '
            f'({type(error).__name__}: {str(error).splitlines()[0]})'
        ) from None
    bad = non_finite_keys(state_dict_of(checkpoint)) if isinstance(
        checkpoint, dict) else []
    if bad:
        raise NonFiniteCheckpointError(
            f'{path}: non-finite weights (NaN/inf) in {len(bad)} tensors '
            f'({listed_keys(bad)}): it comes from a run that diverged; use an '
            'earlier checkpoint of that run')
    return checkpoint


def non_finite_keys(state: Dict[str, torch.Tensor]) -> List[str]:
    """Keys of the floating-point tensors of ``state`` that hold a NaN or
    an infinity, in order (the one finiteness rule for every checkpoint
    read or saved)."""
    return [key for key, value in state.items()
            if isinstance(value, torch.Tensor) and value.is_floating_point()
            and not bool(torch.isfinite(value).all())]


def state_dict_of(checkpoint: Dict) -> Dict[str, torch.Tensor]:
    """The state dict of a loaded checkpoint, ``module.`` prefixes removed."""
    state = checkpoint.get('state_dict', checkpoint)
    return revise_state_dict_keys(state)


def compare_state(model_state: Dict[str, torch.Tensor],
                  state: Dict[str, torch.Tensor],
                  training: bool = False
                  ) -> Tuple[List[str], List[str], List[str]]:
    """Missing, unexpected and shape-mismatched keys of ``state``.

    For evaluation, training-only keys are never missing or mis-shaped:
    evaluation does not use them, so an exported inference checkpoint, or
    one trained with other diffusion options, evaluates with the CoCoDiff
    config too. They are unexpected in a baseline model (a CoCoDiff
    checkpoint given to a baseline config). To train from a checkpoint
    (``training=True``) every key counts.
    """
    def counts(key: str) -> bool:
        return training or not is_training_only(key)

    missing = [k for k in model_state if k not in state and counts(k)]
    unexpected = [k for k in state if k not in model_state]
    shapes = [
        f'{k}: checkpoint {tuple(state[k].shape)} vs model '
        f'{tuple(model_state[k].shape)}' for k in model_state
        if k in state and hasattr(state[k], 'shape') and counts(k) and
        tuple(state[k].shape) != tuple(model_state[k].shape)
    ]
    return missing, unexpected, shapes


def listed_keys(keys: Sequence[str]) -> str:
    """The first :data:`LISTED` keys, and how many there are in all."""
    more = f', ... ({len(keys)} in all)' if len(keys) > LISTED else ''
    return ', '.join(keys[:LISTED]) + more


def likely_cause(missing: Sequence[str], unexpected: Sequence[str],
                 shapes: Sequence[str]) -> str:
    """A one-sentence guess at why a checkpoint does not fit."""
    if unexpected and all(is_training_only(k) for k in unexpected) \
            and not missing and not shapes:
        return ('a CoCoDiff checkpoint given to a baseline config: test it '
                'with its CoCoDiff config, or export it first with '
                'tools/export_inference_ckpt.py')
    if shapes:
        return ('the checkpoint was trained with another config (other '
                'widths, classes or joints): use the config it was trained '
                'with')
    return 'the config does not build the model this checkpoint was ' \
        'trained with'


def mismatch_message(path: str, missing: Sequence[str],
                     unexpected: Sequence[str], shapes: Sequence[str],
                     target: str = 'the model') -> str:
    """The one sentence every tool gives for a checkpoint that does not fit.

    Args:
        path (str): The checkpoint.
        missing, unexpected, shapes (sequence[str]): As
            :func:`compare_state` returns them.
        target (str): What it was compared with. Defaults to
            ``'the model'``.

    Returns:
        str: The path, the count and first keys of each kind, and the
        likely cause.
    """
    parts = [
        f'{len(found)} {kind} ({listed_keys(found)})'
        for kind, found in (('missing keys', missing),
                            ('unexpected keys', unexpected),
                            ('shape mismatches', shapes)) if found
    ]
    return (f'{path} does not match {target}: ' + '; '.join(parts) +
            f'. Likely cause: {likely_cause(missing, unexpected, shapes)}')


def check_checkpoint_matches(model: nn.Module, path: str,
                             training: bool = False,
                             checkpoint: Optional[Dict] = None) -> Dict:
    """Refuse ``path`` unless its keys and shapes fit ``model``.

    Args:
        model (nn.Module): The model built from the config.
        path (str): The checkpoint.
        training (bool): Training continues from it (``load_from``,
            ``--resume``): training-only keys count too (see
            :func:`compare_state`). Defaults to ``False``.
        checkpoint (dict, optional): ``path`` as :func:`read_checkpoint`
            has read it already. Defaults to None (read here).

    Returns:
        dict: The loaded checkpoint.

    Raises:
        CorruptCheckpointError: If the file cannot be read.
        NonFiniteCheckpointError: If its weights hold NaN or infinity.
        CheckpointMismatchError: Naming the path, the first missing,
            unexpected and mis-shaped keys, and the likely cause.
    """
    if checkpoint is None:
        checkpoint = read_checkpoint(path)
    missing, unexpected, shapes = compare_state(
        model.state_dict(), state_dict_of(checkpoint), training)
    if missing or unexpected or shapes:
        raise CheckpointMismatchError(
            mismatch_message(path, missing, unexpected, shapes) +
            '. (--non-strict loads it anyway)')
    return checkpoint
