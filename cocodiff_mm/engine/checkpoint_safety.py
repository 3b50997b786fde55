"""Load mmengine checkpoints with ``torch.load(weights_only=True)``.

torch 2.6 made ``weights_only=True`` the default of ``torch.load``: a
checkpoint can then hold tensors and plain containers only, not arbitrary
code. mmengine 0.10.7 checkpoints also hold a few other objects (the message
hub's ``HistoryBuffer`` with numpy arrays and scalars, and references to the
buffer's statistics methods through ``getattr``), so ``--resume`` and
``load_from`` fail (open-mmlab/mmengine#1655).

:func:`mmengine_checkpoint_globals` lists exactly those types. The
``getattr`` a checkpoint may call is replaced by one that only returns
``HistoryBuffer``'s registered statistics methods, so no other attribute of
any object can be reached. :func:`cocodiff_mm.runtime.setup` allow-lists
them for the process (the tools call it before building the Runner;
importing :mod:`cocodiff_mm` does not), and
:func:`mmengine_checkpoint_types_allowed` inside one ``with`` block. The
only way to the full unpickler is an explicit opt-in for checkpoints you
trust:
``COCODIFF_TRUST_CHECKPOINTS=1`` (see :func:`trust_checkpoints_requested`),
read by :func:`cocodiff_mm.runtime.setup`.
"""
import contextlib
import os
import pickle
from typing import Any, Iterator, List

import torch

from ..utils.config_keys import ConfigError

#: Environment variable that opts in to ``weights_only=False`` loading.
TRUST_ENV = 'COCODIFF_TRUST_CHECKPOINTS'

#: Values of ``TRUST_ENV`` that turn the full unpickler on, and off.
TRUST_ON = ('1', 'true', 'yes')
TRUST_OFF = ('', '0', 'false', 'no', 'off')

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


def mmengine_checkpoint_globals() -> List[Any]:
    """What an mmengine checkpoint needs beyond tensors, for
    ``torch.serialization.add_safe_globals``."""
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer, *_numpy_globals(),
            (history_buffer_method, 'builtins.getattr')]


@contextlib.contextmanager
def mmengine_checkpoint_types_allowed() -> Iterator[None]:
    """Allow mmengine's checkpoint types for ``weights_only`` loads inside
    the block; what was allowed before (e.g. by
    :func:`cocodiff_mm.runtime.setup`) stays allowed after it."""
    if not hasattr(torch.serialization, 'safe_globals'):
        yield  # torch < 2.5: nothing to allow per block
        return
    allowed = torch.serialization.get_safe_globals()
    # safe_globals removes on exit what it added: only add what is missing.
    missing = [item for item in mmengine_checkpoint_globals()
               if item not in allowed]
    with torch.serialization.safe_globals(missing):
        yield


def trust_checkpoints_requested() -> bool:
    """Whether the user opted in to the full unpickler.

    ``TRUST_ENV`` takes :data:`TRUST_ON` or :data:`TRUST_OFF` (any case,
    surrounding spaces ignored); unset is off.

    Raises:
        ConfigError: For any other value (``false`` must not mean on).
    """
    value = os.environ.get(TRUST_ENV, '')
    choice = value.strip().lower()
    if choice not in TRUST_ON + TRUST_OFF:
        raise ConfigError(
            f'{TRUST_ENV}={value!r} must be one of {TRUST_ON} (load '
            f'checkpoints with the full unpickler) or {TRUST_OFF} (off, the '
            'default)')
    return choice in TRUST_ON


def load_trusted(filename: str, map_location=None):
    """mmengine local loader with ``weights_only=False`` (opt-in only)."""
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)
