"""Unpickle data files (test dumps, annotation pickles) without running code.

A pickle can call any importable function while it loads, so a shared
``--dump`` or annotation file could run code before anything says it is
not what it claims to be. :func:`safe_pickle_load` uses a
:class:`pickle.Unpickler` whose ``find_class`` returns only what these
files hold (:data:`ALLOWED_GLOBALS`): numpy arrays, dtypes and scalars,
torch tensors as mmengine's ``DumpResults`` pickles them, and builtin
containers. Anything else is refused, by name, before it is called.

A torch tensor pickles its storage as bytes that ``torch.storage.
_load_from_bytes`` reads with the full unpickler; here they are read with
``torch.load(weights_only=True)`` instead. The ``_codecs.encode`` with which
protocol 2 pickles ``bytes`` may only encode latin-1.
"""
import _compat_pickle
import io
import os
import pickle
from typing import Any, Callable, Tuple, Union

from .config_keys import ConfigError

#: ``(module, name)`` of every global a data pickle may use. numpy's
#: ``numpy.dtypes.*DType`` classes (numpy >= 1.25) are allowed as well.
ALLOWED_GLOBALS = frozenset([
    # numpy arrays, dtypes and scalars (numpy 1 and numpy 2 module names)
    ('numpy', 'ndarray'),
    ('numpy', 'dtype'),
    ('numpy.core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'),
    ('numpy.core.numeric', '_frombuffer'),
    ('numpy._core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', 'scalar'),
    ('numpy._core.numeric', '_frombuffer'),
    # torch tensors (pickle protocols 2 to 5)
    ('torch._utils', '_rebuild_tensor'),
    ('torch._utils', '_rebuild_tensor_v2'),
    ('torch.storage', '_load_from_bytes'),
    # builtin containers and values
    ('collections', 'OrderedDict'),
    ('builtins', 'set'),
    ('builtins', 'frozenset'),
    ('builtins', 'bytearray'),
    ('builtins', 'complex'),
    ('builtins', 'slice'),
    ('builtins', 'range'),
    ('_codecs', 'encode'),
])

PathLike = Union[str, os.PathLike]


class UnreadablePickleError(ConfigError):
    """A file that is not a readable pickle; the message names it."""


class UnsafePickleError(UnreadablePickleError):
    """A pickle that asks for a global outside :data:`ALLOWED_GLOBALS`."""


def _is_numpy_dtype_class(module: str, name: str) -> bool:
    """Whether ``module.name`` is one of numpy's ``numpy.dtypes`` classes."""
    if module != 'numpy.dtypes':
        return False
    import numpy as np
    dtypes = getattr(np, 'dtypes', None)
    cls = getattr(dtypes, name, None)
    return isinstance(cls, type) and issubclass(cls, np.dtype)


def _python3_name(module: str, name: str) -> Tuple[str, str]:
    """The Python 3 name of a protocol 0-2 global (``__builtin__.set``)."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name),
                                                   (module, name))
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that loads only :data:`ALLOWED_GLOBALS`.

    Args:
        file: A binary file open for reading.
        source (str): The file's name, for the message.
        what (str): What the file should be, e.g. ``'an annotation
            pickle'``, for the message.
    """

    def __init__(self, file, source: str, what: str) -> None:
        super().__init__(file)
        self.source = source
        self.what = what

    def refuse(self, thing: str) -> UnsafePickleError:
        """The error for a refused ``thing``."""
        return UnsafePickleError(
            f'{self.source}: refusing to unpickle {thing}: only numpy, torch '
            f'tensors and builtin containers are allowed in {self.what}')

    def find_class(self, module: str, name: str) -> Callable:
        """The allowed global ``module.name``, or :class:`UnsafePickleError`.
        """
        key = _python3_name(module, name)
        if key not in ALLOWED_GLOBALS and not _is_numpy_dtype_class(*key):
            raise self.refuse('.'.join(key))
        if key == ('torch.storage', '_load_from_bytes'):
            return self.load_storage
        if key == ('_codecs', 'encode'):
            return self.latin1_encode
        return super().find_class(module, name)

    def load_storage(self, data: bytes) -> Any:
        """``torch.storage._load_from_bytes`` with
        ``torch.load(weights_only=True)`` in place of the full unpickler."""
        import torch
        try:
            return torch.load(io.BytesIO(data), weights_only=True)
        except pickle.UnpicklingError as error:
            raise self.refuse('a tensor storage holding more than tensor '
                              'data') from error

    def latin1_encode(self, text: str, encoding: str = 'utf-8') -> bytes:
        """``_codecs.encode`` as protocol 2 uses it for ``bytes``."""
        if encoding != 'latin1':
            raise self.refuse(f'_codecs.encode with {encoding!r}')
        return text.encode('latin1')


def safe_pickle_load(path: PathLike, what: str = 'a data pickle') -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`.

    Args:
        path (str | os.PathLike): The file; it must exist.
        what (str): What it should be, for messages. Defaults to ``'a data
            pickle'``.

    Returns:
        Any: The unpickled object.

    Raises:
        UnsafePickleError: ``<path>: refusing to unpickle <module>.<name>:
            ...`` for a global outside the allow-list (nothing is called).
        UnreadablePickleError: ``<path>: not a readable pickle (...)`` for
            a truncated or non-pickle file.
    """
    try:
        with open(path, 'rb') as file:
            return RestrictedUnpickler(file, str(path), what).load()
    except UnsafePickleError:
        raise
    except Exception as error:  # any unpickling failure is a file problem
        raise UnreadablePickleError(
            f'{path}: not a readable pickle ({type(error).__name__}: '
            f'{str(error).splitlines()[0] if str(error) else ""})'
        ) from error
