"""The project's one way to write a file so no reader sees half of it.

Everything that writes a file users load later (annotation pickles, text
banks, text JSON, inference checkpoints, study results) goes through
:func:`atomic_path`: the content goes to a temporary file in the
destination folder, is flushed to disk, and then replaces the destination
with :func:`os.replace`. A crash or a full disk leaves the previous file (or
none) under the real name, and no temporary file behind.
"""
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Union

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(path: PathLike, mode: int = 0o644) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it becomes ``path``.

    The caller writes the temporary file in the ``with`` block (by name, so
    writers that take a path, such as ``torch.save`` or safetensors, work).
    It is then fsync-ed, given ``mode`` and renamed over ``path``. On any
    exception it is removed and ``path`` is left untouched.

    Args:
        path (str | os.PathLike): Destination; its folder is created.
        mode (int): Permission bits of the result (``mkstemp`` makes files
            private). Defaults to ``0o644``.

    Yields:
        str: The temporary file's path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    os.close(fd)
    try:
        yield tmp_name
        with open(tmp_name, 'rb+') as written:
            os.fsync(written.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``; return the path."""
    with atomic_path(path) as tmp_name, open(tmp_name, 'wb') as file:
        file.write(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path``; return the path."""
    return atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_json(path: PathLike, document: Any) -> Path:
    """Atomically write ``document`` as indented UTF-8 JSON (one trailing
    newline); return the path."""
    return atomic_write_text(
        path, json.dumps(document, indent=1, ensure_ascii=False) + '\n')
