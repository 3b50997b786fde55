"""Read one skeleton clip, in any supported format, as an mmaction2 sample.

The result is the dict a ``PoseDataset`` hands to its test pipeline
(``keypoint`` ``(M, T, V, C)``, ``total_frames``, ``label``, ...), so a clip
goes through the config's test pipeline exactly like a sample of the
annotation file. Supported inputs:

* a raw NTU RGB+D ``.skeleton`` file (:mod:`~cocodiff_mm.datasets.ntu_raw`);
* a Kinetics-Skeleton ``.json`` clip of the ST-GCN release
  (:mod:`~cocodiff_mm.datasets.kinetics_json`);
* a ``.npy`` array ``(M, T, V, C)`` or ``(T, V, C)`` (one person), with
  ``C`` the channels the model reads: ``x y z`` for 3D configs,
  ``x y score`` for 2D ones (pixels of the ``img_shape`` of the pipeline's
  ``PreNormalize2D``);
* one sample of an annotation pickle (``.pkl``), chosen by its
  ``frame_dir``.

Each failure (missing or unreadable file, malformed content, empty clip, a
clip whose joints or channels the config's model cannot read) is a
:class:`ClipInputError` with a one-line message naming the file.
"""
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np

from ..utils.config_keys import ConfigError

#: File suffixes and the format each is read as.
SUFFIXES = {
    '.skeleton': 'NTU RGB+D raw skeleton',
    '.json': 'Kinetics-Skeleton JSON',
    '.npy': 'numpy array (M, T, V, C) or (T, V, C)',
    '.pkl': 'annotation pickle (with a sample name)',
    '.pickle': 'annotation pickle (with a sample name)',
}

#: Label of a clip whose class is not known.
UNKNOWN_LABEL = -1

PathLike = Union[str, Path]


class ClipInputError(ConfigError):
    """An input clip that cannot be read, or that the model cannot take."""


class _LabelIndex(dict):
    """Class name to index, where a name not in the list maps to
    :data:`UNKNOWN_LABEL`: an inference clip may come from any class."""

    def __contains__(self, name: object) -> bool:
        return True

    def __missing__(self, name: str) -> int:
        return UNKNOWN_LABEL


def supported_formats() -> str:
    """One line listing the supported suffixes."""
    return ', '.join(f'{suffix} ({kind})' for suffix, kind in
                     SUFFIXES.items() if suffix != '.pickle')


def load_clip(path: PathLike,
              sample: Optional[str] = None,
              class_names: Sequence[str] = (),
              max_persons: int = 2) -> Dict:
    """Read one clip into the annotation dict of an mmaction2 sample.

    Args:
        path (str | Path): The clip; its suffix picks the format (see
            :data:`SUFFIXES`).
        sample (str, optional): The ``frame_dir`` of the sample to take
            from an annotation pickle; required for ``.pkl`` and refused for
            the other formats. Defaults to ``None``.
        class_names (Sequence[str]): Class names in class order, used to
            find the label of a Kinetics clip from its ``label`` text.
            Defaults to ``()`` (label unknown).
        max_persons (int): Most persons kept from NTU and Kinetics files.
            Defaults to ``2``.

    Returns:
        dict: ``frame_dir``, ``label`` (:data:`UNKNOWN_LABEL` when the
        input does not tell), ``total_frames``, ``keypoint`` float32
        ``(M, T, V, C)``, optionally ``keypoint_score`` and ``img_shape``,
        and the ``modality`` and ``start_index`` a ``PoseDataset`` adds.

    Raises:
        ClipInputError: If the file is missing, of an unknown format, or
            cannot be read; the message names the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ClipInputError(
            f'{path}: unknown input format {suffix or "(no suffix)"!r}; '
            f'supported: {supported_formats()}')
    if not path.is_file():
        raise ClipInputError(f'{path}: no such file')
    is_pickle = suffix in ('.pkl', '.pickle')
    if sample is not None and not is_pickle:
        raise ClipInputError(
            f'{path}: --sample picks a sample of an annotation pickle (.pkl);'
            f' a {SUFFIXES[suffix]} file holds one clip')
    try:
        if suffix == '.skeleton':
            clip = _load_ntu_raw(path, max_persons)
        elif suffix == '.json':
            clip = _load_kinetics(path, class_names, max_persons)
        elif suffix == '.npy':
            clip = _load_array(path)
        else:
            clip = _load_pickle_sample(path, sample)
    except (OSError, ValueError) as error:
        if isinstance(error, ClipInputError):
            raise
        message = str(error).splitlines()[0] if str(error) else ''
        text = message if str(path) in message else f'{path}: {message}'
        raise ClipInputError(text) from error
    clip.setdefault('modality', 'Pose')
    clip.setdefault('start_index', 0)
    return clip


def _load_ntu_raw(path: Path, max_persons: int) -> Dict:
    """A raw ``.skeleton`` file; the label comes from an NTU file name."""
    from ..datasets.ntu_raw import (EmptySkeletonError, parse_sample_name,
                                    read_skeleton_file, select_bodies)
    num_frames, bodies = read_skeleton_file(path)
    if not bodies:
        raise EmptySkeletonError(
            f'{path}: empty clip, no body in any of its {num_frames} frames')
    try:
        label = parse_sample_name(path).action - 1
    except ValueError:  # a renamed file: the class is not known
        label = UNKNOWN_LABEL
    return dict(frame_dir=path.stem,
                label=label,
                total_frames=num_frames,
                keypoint=select_bodies(bodies, num_frames,
                                       max_bodies=max_persons))


def _load_kinetics(path: Path, class_names: Sequence[str],
                   max_persons: int) -> Dict:
    """A Kinetics-Skeleton clip; its ``label`` text gives the label when
    ``class_names`` holds it."""
    from ..datasets.kinetics_json import load_kinetics_json
    index = _LabelIndex((name, i) for i, name in enumerate(class_names))
    return load_kinetics_json(path, index, max_persons=max_persons)


def _load_array(path: Path) -> Dict:
    """A ``.npy`` array ``(M, T, V, C)`` or ``(T, V, C)``."""
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:  # an object array, or not a .npy file
        raise ValueError(f'{path}: not a numeric .npy array ({error})'
                         ) from None
    if not np.issubdtype(array.dtype, np.number) or \
            np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f'{path}: dtype {array.dtype} (expected real '
                         'numbers)')
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f'{path}: shape {array.shape} (expected (M, T, V, '
                         'C) or (T, V, C))')
    return dict(frame_dir=path.stem,
                label=UNKNOWN_LABEL,
                total_frames=int(array.shape[1]),
                keypoint=np.ascontiguousarray(array, dtype=np.float32))


def _load_pickle_sample(path: Path, sample: Optional[str]) -> Dict:
    """The sample ``frame_dir == sample`` of an annotation pickle."""
    from ..datasets.pickle_io import read_annotations
    data = read_annotations(path)
    annotations = [a for a in data['annotations'] if isinstance(a, dict)]
    names = [a.get('frame_dir') for a in annotations]
    if sample is None:
        first = ', '.join(map(str, names[:3]))
        raise ClipInputError(
            f'{path}: an annotation pickle holds {len(names)} samples; name '
            f'one with --sample FRAME_DIR (e.g. {first})')
    for annotation in annotations:
        if annotation.get('frame_dir') == sample:
            clip = dict(annotation)
            if isinstance(clip.get('keypoint'), np.ndarray):
                clip['keypoint'] = clip['keypoint'].copy()  # pipeline edits
            clip.setdefault('label', UNKNOWN_LABEL)
            return clip
    raise ClipInputError(
        f'{path}: no sample with frame_dir {sample!r} (it holds '
        f'{len(names)} samples, e.g. {", ".join(map(str, names[:3]))})')


def describe_clip(clip: Dict) -> str:
    """``T frames, M person(s), V joints, C channels`` of a loaded clip."""
    shape = getattr(clip.get('keypoint'), 'shape', ())
    if len(shape) != 4:
        return f'keypoint of shape {tuple(shape)}'
    persons, frames, joints, channels = shape
    if 'keypoint_score' in clip:
        channels = f'{channels} + score'
    return (f'{frames} frames, {persons} person(s), {joints} joints, '
            f'{channels} channels')
