"""Convert UTD-MHAD skeleton ``.mat`` files to mmaction2 samples.

Each ``aA_sS_tT_skeleton.mat`` (action ``A`` 1..27, subject ``S`` 1..8,
trial ``T``) holds ``d_skel``: float ``(20 joints, 3 coords, T frames)`` of
one Kinect v1 skeleton in metres, joints in the dataset's own order (see
:data:`cocodiff_mm.datasets.layouts.UTD_MHAD_JOINT_NAMES`, graph
:data:`~cocodiff_mm.datasets.layouts.UTD_MHAD_LAYOUT`). The standard
cross-subject protocol trains on subjects 1, 3, 5, 7 and tests on 2, 4, 6, 8.
"""
import re
from pathlib import Path
from typing import (Callable, Dict, Iterable, Iterator, List, Optional,
                    Sequence, Tuple, Union)

import numpy as np

UTD_NUM_CLASSES = 27
UTD_NUM_JOINTS = 20
#: Subjects of the cross-subject training split.
UTD_XSUB_TRAIN_SUBJECTS = frozenset((1, 3, 5, 7))
#: Subjects of the cross-subject test split.
UTD_XSUB_VAL_SUBJECTS = frozenset((2, 4, 6, 8))
#: The training subject held out for model selection: ``xsub_dev_val``.
#: Every study choice is made on it, never on the test subjects.
UTD_DEV_VAL_SUBJECT = 7
#: Smaller development training sets (the gain against data size): the
#: first one and two of the development training subjects 1, 3, 5.
UTD_DEV_TRAIN_SUBSETS = {
    'xsub_dev_train_s1': frozenset((1, )),
    'xsub_dev_train_s13': frozenset((1, 3)),
}

_NAME_PATTERN = re.compile(r'a(\d+)_s(\d+)_t(\d+)(?:_skeleton)?')


def parse_utd_name(name: Union[str, Path]) -> Tuple[int, int, int]:
    """Parse ``aA_sS_tT[_skeleton][.mat]``.

    Args:
        name (str | Path): File name or path, or a ``frame_dir``.

    Returns:
        tuple[int, int, int]: ``(action, subject, trial)``, 1-based.

    Raises:
        ValueError: If the name does not follow the pattern.
    """
    stem = Path(name).name
    if stem.endswith('.mat'):
        stem = stem[:-len('.mat')]
    match = _NAME_PATTERN.fullmatch(stem)
    if match is None:
        raise ValueError(f'{name}: not a UTD-MHAD skeleton name; expected '
                         f'aA_sS_tT_skeleton.mat (e.g. a1_s1_t1_skeleton.mat)')
    return tuple(int(group) for group in match.groups())


def load_utd_sample(
    path: Union[str, Path], img_shape: Tuple[int, int] = (480, 640)) -> dict:
    """Read one ``.mat`` file into an mmaction2 annotation dict.

    Args:
        path (str | Path): ``aA_sS_tT_skeleton.mat``.
        img_shape (tuple[int, int]): ``(h, w)`` stored as ``img_shape`` and
            ``original_shape``: the Kinect v1 colour resolution. The 3D
            keypoints are in metres and do not depend on it.
            Defaults to ``(480, 640)``.

    Returns:
        dict: ``frame_dir`` (``aA_sS_tT``), ``label`` (action - 1),
        ``total_frames``, ``keypoint`` float32 ``(1, T, 20, 3)``,
        ``img_shape`` and ``original_shape``.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the name is not a UTD-MHAD name, the file has no
            ``d_skel``, its shape is not ``(20, 3, T)`` with ``T >= 1``, or it
            holds non-finite values; the message names the file.
    """
    from scipy.io import loadmat  # heavy; only converters need it
    from scipy.io.matlab import MatReadError

    path = Path(path)
    action, subject, trial = parse_utd_name(path)
    if not path.is_file():
        raise FileNotFoundError(f'UTD-MHAD file not found: {path}')
    try:
        mat = loadmat(str(path))
    except (MatReadError, ValueError, TypeError, NotImplementedError,
            OSError) as err:
        raise ValueError(
            f'{path}: cannot be read as a .mat file ({err})') from err
    if 'd_skel' not in mat:
        keys = sorted(k for k in mat if not k.startswith('__'))
        raise ValueError(f'{path}: no key "d_skel" (found {keys})')
    skel = np.asarray(mat['d_skel'])
    if (skel.ndim != 3 or skel.shape[:2] != (UTD_NUM_JOINTS, 3)
            or skel.shape[2] == 0):
        raise ValueError(f'{path}: d_skel has shape {skel.shape}, expected '
                         f'({UTD_NUM_JOINTS}, 3, T) with T >= 1')
    if not np.isfinite(skel).all():
        raise ValueError(f'{path}: d_skel holds NaN or inf values')
    keypoint = skel.transpose(2, 0, 1)[None].astype(np.float32)
    return dict(frame_dir=f'a{action}_s{subject}_t{trial}',
                label=action - 1,
                total_frames=int(keypoint.shape[1]),
                keypoint=np.ascontiguousarray(keypoint),
                img_shape=tuple(img_shape),
                original_shape=tuple(img_shape))


def list_utd_files(root: Union[str, Path]) -> List[Path]:
    """UTD-MHAD skeleton files in ``root`` (or its ``skeleton/`` folder).

    Args:
        root (str | Path): Folder with ``a*_s*_t*_skeleton.mat`` files, or
            the dataset folder holding them in ``skeleton/``.

    Returns:
        list[Path]: Matching files sorted by (action, subject, trial).

    Raises:
        FileNotFoundError: If the folder does not exist or holds no file.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f'UTD-MHAD folder not found: {root}')
    folder = root / 'skeleton' if (root / 'skeleton').is_dir() else root
    paths = []
    for path in folder.glob('*.mat'):
        try:
            paths.append((parse_utd_name(path), path))
        except ValueError:
            continue
    if not paths:
        raise FileNotFoundError(f'{folder}: no aA_sS_tT_skeleton.mat file')
    return [path for _, path in sorted(paths)]


def build_utd_splits(frame_dirs: Iterable[str]) -> Dict[str, List[str]]:
    """Cross-subject splits, and a validation carve-out of the training ones.

    * ``xsub_train`` (subjects 1, 3, 5, 7) and ``xsub_val`` (subjects 2, 4,
      6, 8): the standard protocol (``xsub_val`` is the test split);
    * ``xsub_dev_train`` (subjects 1, 3, 5) and ``xsub_dev_val`` (subject 7):
      the training subjects split for model selection, so that no choice
      is made on the test subjects (``tools/study.py``);
    * ``xsub_dev_train_s1`` (subject 1) and ``xsub_dev_train_s13``
      (subjects 1, 3): smaller training sets of the same protocol
      (:data:`UTD_DEV_TRAIN_SUBSETS`).

    Args:
        frame_dirs (Iterable[str]): Sample names ``aA_sS_tT``.

    Returns:
        dict[str, list[str]]: The six splits.

    Raises:
        ValueError: If a subject is outside 1..8.
    """
    splits = dict(
        xsub_train=[], xsub_val=[], xsub_dev_train=[], xsub_dev_val=[],
        **{name: [] for name in UTD_DEV_TRAIN_SUBSETS})
    for frame_dir in frame_dirs:
        _, subject, _ = parse_utd_name(frame_dir)
        if subject in UTD_XSUB_TRAIN_SUBJECTS:
            splits['xsub_train'].append(frame_dir)
            dev = ('xsub_dev_val'
                   if subject == UTD_DEV_VAL_SUBJECT else 'xsub_dev_train')
            splits[dev].append(frame_dir)
            for name, subjects in UTD_DEV_TRAIN_SUBSETS.items():
                if subject in subjects:
                    splits[name].append(frame_dir)
        elif subject in UTD_XSUB_VAL_SUBJECTS:
            splits['xsub_val'].append(frame_dir)
        else:
            raise ValueError(f'{frame_dir}: subject {subject} is in neither '
                             f'split (expected 1..8)')
    return splits


def convert_utd_files(
    paths: Sequence[Union[str, Path]],
    progress: Optional[Callable[[Iterator], Iterable]] = None
) -> Tuple[List[dict], List[str]]:
    """Load many files, collecting failures instead of stopping.

    Args:
        paths (Sequence[str | Path]): ``.mat`` files.
        progress (Callable, optional): Wraps the iterator over paths, e.g.
            ``functools.partial(tqdm, total=len(paths))``. Defaults to
            ``None``.

    Returns:
        tuple[list[dict], list[str]]: Annotations of the files that loaded
        (input order) and one message per failed file.
    """
    annotations, errors = [], []
    iterator = iter(paths)
    for path in (progress(iterator) if progress else iterator):
        try:
            annotations.append(load_utd_sample(path))
        except (ValueError, OSError) as err:
            errors.append(str(err))
    return annotations, errors
