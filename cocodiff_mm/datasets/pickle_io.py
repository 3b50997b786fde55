"""Read and write mmaction2 skeleton annotation pickles.

The format is the one :class:`mmaction.datasets.PoseDataset` loads::

    dict(split=dict(<split_name>=[frame_dir, ...], ...),
         annotations=[dict(frame_dir=..., label=..., total_frames=...,
                           keypoint=..., ...), ...])

Writes are atomic (:func:`cocodiff_mm.utils.atomic_write.atomic_path`): a
reader never sees a half-written file. Reads never run code a file may hold
(:func:`cocodiff_mm.utils.safe_pickle.safe_pickle_load`).
"""
import os
import pickle
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

from ..utils.atomic_write import atomic_path
from ..utils.safe_pickle import safe_pickle_load

PathLike = Union[str, os.PathLike]


def write_annotations(path: PathLike, split: Dict[str, Sequence[str]],
                      annotations: List[dict]) -> Path:
    """Atomically write ``dict(split=..., annotations=...)`` as a pickle.

    Args:
        path (str | os.PathLike): Destination ``.pkl`` file. Its parent
            folder is created when missing.
        split (dict[str, Sequence[str]]): Split name to the ``frame_dir`` of
            its samples.
        annotations (list[dict]): One dict per sample.

    Returns:
        Path: The written path.

    Raises:
        TypeError: If ``split`` is not a dict or ``annotations`` not a list.
    """
    if not isinstance(split, dict):
        raise TypeError(f'{path}: split must be a dict of split name to a '
                        f'list of frame_dir, got {type(split).__name__}')
    if not isinstance(annotations, list):
        raise TypeError(f'{path}: annotations must be a list of dicts, got '
                        f'{type(annotations).__name__}')
    path = Path(path)
    data = dict(split={name: list(names) for name, names in split.items()},
                annotations=annotations)
    with atomic_path(path) as tmp_name, open(tmp_name, 'wb') as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def load_pickle(path: Union[str, os.PathLike]) -> Any:
    """Unpickle an annotation file without running code in it.

    Only numpy arrays and scalars and builtin containers (and torch
    tensors) are loaded (:func:`~cocodiff_mm.utils.safe_pickle.
    safe_pickle_load`); whether they form annotations is checked elsewhere.

    Args:
        path (str | os.PathLike): The ``.pkl`` file.

    Returns:
        Any: The unpickled object.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it cannot be unpickled or asks for any other object
            (an :class:`~cocodiff_mm.utils.safe_pickle.UnreadablePickleError`
            naming the path and the reason).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'annotation file not found: {path}')
    return safe_pickle_load(path, 'an annotation pickle')


def read_annotations(path: PathLike) -> dict:
    """Load an annotation pickle and check its top-level structure.

    Only the outer structure is checked here; use
    :func:`cocodiff_mm.datasets.annotation_check.check_annotations` for a
    full per-sample check.

    Args:
        path (str | os.PathLike): The ``.pkl`` file.

    Returns:
        dict: The loaded dict with keys ``split`` and ``annotations``.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file cannot be unpickled, or does not hold a dict
            with a dict ``split`` and a list ``annotations``.
    """
    path = Path(path)
    data = load_pickle(path)
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a dict with keys "split" and '
                         f'"annotations", got {type(data).__name__}')
    missing = [key for key in ('split', 'annotations') if key not in data]
    if missing:
        raise ValueError(f'{path}: missing top-level key(s) {missing}; '
                         f'expected a dict with keys "split" and '
                         f'"annotations", found {sorted(map(str, data))}')
    if not isinstance(data['split'], dict):
        raise ValueError(f'{path}: "split" must be a dict of split name to '
                         f'a list of frame_dir, got '
                         f'{type(data["split"]).__name__}')
    if not isinstance(data['annotations'], list):
        raise ValueError(f'{path}: "annotations" must be a list of dicts, '
                         f'got {type(data["annotations"]).__name__}')
    return data


def merge_annotations(data: dict, split: Dict[str, Sequence[str]],
                      annotations: List[dict]) -> dict:
    """Add new splits and samples to loaded annotation data.

    Used to build one pickle with several splits from separate conversions
    (e.g. ``train`` then ``val``). The inputs are not modified.

    Args:
        data (dict): Existing ``dict(split=..., annotations=...)``, e.g. from
            :func:`read_annotations`.
        split (dict[str, Sequence[str]]): New split name to frame_dir.
        annotations (list[dict]): New samples.

    Returns:
        dict: A new ``dict(split=..., annotations=...)`` holding both.

    Raises:
        ValueError: If a split name already exists or a new ``frame_dir``
            is already among the existing samples.
    """
    clash = sorted(set(split) & set(data['split']))
    if clash:
        raise ValueError(f'split(s) {clash} already exist (existing: '
                         f'{sorted(data["split"])})')
    existing = {sample.get('frame_dir') for sample in data['annotations']}
    duplicate = [
        sample['frame_dir'] for sample in annotations
        if sample.get('frame_dir') in existing
    ]
    if duplicate:
        raise ValueError(f'{len(duplicate)} frame_dir already present, e.g. '
                         f'{duplicate[:3]}')
    merged_split = {name: list(names) for name, names in data['split'].items()}
    merged_split.update({name: list(names) for name, names in split.items()})
    return dict(split=merged_split,
                annotations=list(data['annotations']) + list(annotations))
