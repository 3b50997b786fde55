"""Every checkpoint mmengine writes to a local path, written atomically.

``Runner.save_checkpoint`` and ``CheckpointHook`` (``epoch_N.pth``,
``best_*.pth``, ``last_checkpoint``; our ``stage*_final.pth``) write through
the file backend of the path, for a local path mmengine's ``LocalBackend``,
whose ``put`` opens the real file and writes into it: a full disk leaves a
half-written checkpoint under the real name. :class:`AtomicLocalBackend`
is a ``LocalBackend`` whose writes go through
:func:`~cocodiff_mm.utils.atomic_write.atomic_path` instead (temporary file
in the same folder, flushed, renamed), so mmengine's own save path is kept
and nothing of ``CheckpointHook`` is copied.
:func:`cocodiff_mm.runtime.setup` registers it for local paths.
"""
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend

from ..utils.atomic_write import atomic_write_bytes, atomic_write_text


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, with atomic ``put`` and ``put_text``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        if encoding.lower().replace('-', '') != 'utf8':
            atomic_write_bytes(filepath, obj.encode(encoding))
        else:
            atomic_write_text(filepath, obj)
