"""Which checkpoint ``tools/train.py --resume`` continues from.

mmengine's auto-resume takes the file named in ``last_checkpoint`` and fails
with a raw unpickling traceback when that file is truncated (a crash or a
full disk while it was written by an older run). Here every candidate is
read first, newest first, and a corrupt one, or one of non-finite weights
(written before checkpoints were checked when saved), is skipped with a
warning.
"""
import glob
import os.path as osp
import re
from typing import Callable, List, Optional

from .checkpoint_match import (CorruptCheckpointError,
                               NonFiniteCheckpointError, read_checkpoint)


def checkpoint_candidates(work_dir: str) -> List[str]:
    """Checkpoints of ``work_dir`` to resume from, newest first: the one
    ``last_checkpoint`` names, then ``epoch_N``/``iter_N`` by ``N``."""
    numbered = []
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        match = re.fullmatch(r'(?:epoch|iter)_(\d+)\.pth', osp.basename(path))
        if match:
            numbered.append((int(match.group(1)), path))
    found = [path for _, path in sorted(numbered, reverse=True)]
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as file:
            named = file.read().strip()
        if osp.isfile(named):
            found = [named] + [p for p in found
                               if osp.abspath(p) != osp.abspath(named)]
    return found


def newest_intact_checkpoint(
        work_dir: str,
        warn: Callable[[str], None] = print) -> Optional[str]:
    """The newest checkpoint of ``work_dir`` that loads.

    Args:
        work_dir (str): The run's work dir.
        warn (callable): Gets one line per skipped checkpoint. Defaults to
            ``print``.

    Returns:
        str | None: Its path, or None when the work dir has no checkpoint
        (a fresh start).

    Raises:
        CorruptCheckpointError: If there are checkpoints and none loads
            (or every one that loads has non-finite weights).
    """
    candidates = checkpoint_candidates(work_dir)
    what = 'corrupt or truncated'
    for path in candidates:
        try:
            read_checkpoint(path)
        except (CorruptCheckpointError, NonFiniteCheckpointError) as error:
            if isinstance(error, NonFiniteCheckpointError):
                what = 'corrupt, truncated or of non-finite weights'
            warn(f'warning: --resume skips {error}')
            continue
        return path
    if candidates:
        raise CorruptCheckpointError(
            f'{work_dir}: every checkpoint is {what} '
            f'({", ".join(osp.basename(p) for p in candidates)}); remove '
            'them to start afresh')
    return None
