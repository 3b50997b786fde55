"""Load mmengine checkpoints with ``torch.load(weights_only=True)``.

torch 2.6 made ``weights_only=True`` the default of ``torch.load``: a
checkpoint can then hold tensors and plain containers only, not arbitrary
code. mmengine 0.10.7 checkpoints also hold a few other objects (the message
hub's ``HistoryBuffer`` with numpy arrays and scalars, and references to the
buffer's statistics methods through ``getattr``), so ``--resume`` and
``load_from`` fail (open-mmlab/mmengine#1655).

:func:`allow_mmengine_checkpoint_types` allow-lists exactly those types. The
``getattr`` a checkpoint may call is replaced by one that only returns
``HistoryBuffer``'s registered statistics methods, so no other attribute of
any object can be reached. The tools call it before building the Runner;
importing :mod:`cocodiff_mm` does not. The only way to the full unpickler is
an explicit opt-in for checkpoints you trust:
``COCODIFF_TRUST_CHECKPOINTS=1`` (see :func:`trust_checkpoints_requested`).
"""
import os
import pickle
from typing import Any

import torch

#: Environment variable that opts in to ``weights_only=False`` loading.
TRUST_ENV = 'COCODIFF_TRUST_CHECKPOINTS'

#: Statistics methods every mmengine ``HistoryBuffer`` registers.
BUILTIN_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_method(owner: Any, name: str) -> Any:
    """The ``getattr`` a checkpoint may call: statistics methods only.

    Raises:
        pickle.UnpicklingError: For anything but
            ``HistoryBuffer.<registered statistics method>``.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    # The built-in methods are registered by the first HistoryBuffer();
    # a fresh process that loads a checkpoint may not have built one yet.
    allowed = set(BUILTIN_STATISTICS) | set(HistoryBuffer._statistics_methods)
    if owner is not HistoryBuffer or name not in allowed:
        raise pickle.UnpicklingError(
            f'checkpoint asks for getattr({owner!r}, {name!r}); only '
            "mmengine's HistoryBuffer statistics methods are allowed (set "
            f'{TRUST_ENV}=1 to load a checkpoint you trust with the full '
            'unpickler)')
    return getattr(owner, name)


def _numpy_globals() -> list:
    import numpy as np
    multiarray = np.core.multiarray
    return [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
            *{type(np.dtype(name)) for name in (
                'float16', 'float32', 'float64', 'int32', 'int64', 'bool',
                'uint8')}]


def allow_mmengine_checkpoint_types() -> None:
    """Allow-list the types of mmengine checkpoints for ``weights_only``."""
    if not hasattr(torch.serialization, 'add_safe_globals'):
        return  # torch < 2.4 loads with the full unpickler by default
    from mmengine.logging.history_buffer import HistoryBuffer
    torch.serialization.add_safe_globals([
        HistoryBuffer, *_numpy_globals(),
        (history_buffer_method, 'builtins.getattr')
    ])


def trust_checkpoints_requested() -> bool:
    """Whether the user opted in to the full unpickler (``TRUST_ENV=1``)."""
    return os.environ.get(TRUST_ENV, '') not in ('', '0')


def load_trusted(filename: str, map_location=None):
    """mmengine local loader with ``weights_only=False`` (opt-in only)."""
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def configure_checkpoint_loading() -> str:
    """Set how this process loads checkpoints; return a one-line summary.

    By default: ``weights_only=True`` with the mmengine types allowed. With
    ``COCODIFF_TRUST_CHECKPOINTS=1``: mmengine's local loader is replaced by
    one with the full unpickler.
    """
    allow_mmengine_checkpoint_types()
    if not trust_checkpoints_requested():
        return 'checkpoints load with torch.load(weights_only=True)'
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_trusted, force=True)
    return (f'{TRUST_ENV} is set: local checkpoints load with the full '
            'unpickler (only load files you trust)')
