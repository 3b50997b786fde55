"""Check that a tool can write its outputs before it starts its work.

A report written after minutes of work should not fail then because its
path names a folder, lies under a file or in a read-only place.
:func:`check_writable` tries, without leaving anything behind, what the
writer (:func:`~cocodiff_mm.utils.atomic_write.atomic_path`, which creates
missing parent folders) will need.
"""
import os
import tempfile
from pathlib import Path
from typing import Union

from .config_keys import ConfigError


class OutputPathError(ConfigError):
    """An output path the tool could not write; names the option and the
    path the user gave."""


def check_writable(path: Union[str, os.PathLike], option: str,
                   folder: bool = False) -> None:
    """Refuse an output path that cannot be written.

    The nearest existing folder of ``path`` (``path`` itself for an
    existing output folder) must take a new file; missing folders below it
    are left to the writer, which creates them. Nothing is left on disk.

    Args:
        path (str | os.PathLike): The path as the user gave it.
        option (str): Its command-line option (e.g. ``'--out'``), for the
            message.
        folder (bool): Whether ``path`` is an output folder rather than a
            file. Defaults to False.

    Raises:
        OutputPathError: ``<option> <path>: <why>``.
    """
    target = Path(path)
    if folder and target.exists() and not target.is_dir():
        raise OutputPathError(f'{option} {path}: is a file, not a folder')
    if not folder and target.is_dir():
        raise OutputPathError(f'{option} {path}: is a folder; give a file '
                              'name')
    base = target if folder and target.is_dir() else target.parent
    base = Path(os.path.abspath(base))
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise OutputPathError(f'{option} {path}: {base} is a file, not a '
                              'folder')
    try:
        fd, probe = tempfile.mkstemp(prefix='.write-check-', dir=base)
    except OSError as error:
        raise OutputPathError(f'{option} {path}: cannot write in {base} '
                              f'({error.strerror or error})') from error
    os.close(fd)
    os.unlink(probe)
