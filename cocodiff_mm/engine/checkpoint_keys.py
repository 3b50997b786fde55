"""Rename state-dict keys the way mmengine's checkpoint loader does."""
import re
from typing import Dict, Sequence, Tuple

import torch

#: mmengine's default ``revise_keys`` (``load_checkpoint``,
#: ``Runner.load_checkpoint``): drop the ``module.`` prefix that a
#: DistributedDataParallel wrapper adds to every key.
DEFAULT_REVISE_KEYS: Tuple[Tuple[str, str], ...] = ((r'^module\.', ''), )


def revise_state_dict_keys(
    state_dict: Dict[str, torch.Tensor],
    revise_keys: Sequence[Tuple[str, str]] = DEFAULT_REVISE_KEYS
) -> Dict[str, torch.Tensor]:
    """Apply ``(pattern, replacement)`` regex pairs to every key, in order.

    The same rule as the ``revise_keys`` argument of
    :func:`mmengine.runner.load_checkpoint`.

    Args:
        state_dict (dict[str, torch.Tensor]): The state dict; not modified.
        revise_keys (Sequence[tuple[str, str]]): Pairs given to
            :func:`re.sub`. Defaults to :data:`DEFAULT_REVISE_KEYS`
            (``((r'^module\\.', ''), )``).

    Returns:
        dict[str, torch.Tensor]: A new dict with the revised keys, in the
        original order.
    """
    # mmengine applies revise_keys only inside _load_checkpoint_to_model,
    # which also loads the result into a model; our readers filter and check
    # the keys first (or never load them: the inference export).
    for pattern, replacement in revise_keys:
        state_dict = {
            re.sub(pattern, replacement, key): value
            for key, value in state_dict.items()
        }
    return dict(state_dict)
