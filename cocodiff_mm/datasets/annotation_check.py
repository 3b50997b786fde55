"""Check skeleton annotation pickles before training on them.

:func:`check_annotations` walks a loaded ``dict(split=..., annotations=...)``
and reports every problem it finds (it never stops at the first) as an
:class:`AnnotationProblem` naming the sample (its ``frame_dir``), the field
and what was expected. Empty clips (all-zero or near-constant keypoints,
:func:`empty_clip_kind`) are valid data but nothing to learn from: a
warning by default, problems with ``fail_on_empty=True``.
"""
import os
import warnings
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import numpy as np

from .pickle_io import load_pickle

REQUIRED_FIELDS = ('frame_dir', 'label', 'total_frames', 'keypoint')
ROOT = '<root>'

#: A clip is *near-constant* when, for every coordinate channel ``c``, no
#: value of ``keypoint[..., c]`` (over all persons, frames and joints) lies
#: this far or farther from the clip's mean of that channel:
#: ``max |keypoint[..., c] - mean(keypoint[..., c])| < 1e-6`` for all ``c``,
#: in the data's units (metres for NTU 3D, pixels for 2D). Every joint then
#: sits at one point for the whole clip; NTU clips where no body was
#: detected are the all-zero case. A still pose (joints apart) is not.
NEAR_CONSTANT_TOLERANCE = 1e-6

#: How many sample names a summary lists per kind of empty clip.
_LISTED = 5


class EmptyClipWarning(UserWarning):
    """Clips with all-zero or near-constant keypoints in annotations."""


def empty_clip_kind(keypoint: np.ndarray) -> Optional[str]:
    """Whether a clip's keypoints hold no motion and no body.

    Args:
        keypoint (np.ndarray): Finite ``(M, T, V, C)`` keypoints, not empty.

    Returns:
        str | None: ``'all-zero'`` when every value is 0,
        ``'near-constant'`` when otherwise within
        :data:`NEAR_CONSTANT_TOLERANCE` of the clip's per-channel mean,
        else None.
    """
    if not keypoint.any():
        return 'all-zero'
    # Some value lies at least half a channel's range from its mean: most
    # clips are told apart here, without a float64 copy of the clip.
    for channel in range(keypoint.shape[-1]):
        values = keypoint[..., channel]
        if (float(values.max()) - float(values.min())) / 2 >= \
                NEAR_CONSTANT_TOLERANCE:
            return None
    values = keypoint.reshape(-1, keypoint.shape[-1]).astype(np.float64)
    deviation = np.abs(values - values.mean(axis=0)).max()
    return 'near-constant' if deviation < NEAR_CONSTANT_TOLERANCE else None


def _empty_clip_summary(source: str, empty: List[Tuple[str, str]],
                        total: int) -> str:
    """``<source>: <n> of <N> clips are empty: <k> all-zero (names), ...``
    """
    parts = []
    for kind in ('all-zero', 'near-constant'):
        names = [name for name, found in empty if found == kind]
        if names:
            more = ', ...' if len(names) > _LISTED else ''
            parts.append(f'{len(names)} {kind} '
                         f'({", ".join(names[:_LISTED])}{more})')
    return (f'{source}: {len(empty)} of {total} clips are empty: '
            f'{", ".join(parts)}; nothing moves in them (no body detected?)'
            '; drop them (python tools/data/check_annotations.py '
            '--fail-on-empty lists each)')


@dataclass
class AnnotationProblem:
    """One problem found in an annotation file.

    Args:
        sample (str): The sample's ``frame_dir`` (``annotations[i]`` when it
            has none, ``<root>`` for the top-level structure, ``split:<name>``
            for a split list).
        field (str): The offending field.
        message (str): What is wrong and what was expected.
    """

    sample: str
    field: str
    message: str

    def __str__(self) -> str:
        return f'[{self.sample}] {self.field}: {self.message}'


def _describe(value: Any) -> str:
    """Short description of a value for messages."""
    if isinstance(value, np.ndarray):
        return f'ndarray{value.shape} {value.dtype}'
    text = repr(value)
    return f'{type(value).__name__} {text[:60]}'


def _is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or numpy), but not a bool."""
    return isinstance(value,
                      Integral) and not isinstance(value, (bool, np.bool_))


class _Checker:
    """Collects problems while checking one annotation dict."""

    def __init__(self, source: str, num_joints: Optional[int],
                 num_coords: Optional[int], num_classes: Optional[int],
                 fail_on_empty: bool = False) -> None:
        self.source = source
        self.num_joints = num_joints
        self.num_coords = num_coords
        self.num_classes = num_classes
        self.fail_on_empty = fail_on_empty
        self.problems: List[AnnotationProblem] = []
        self.empty: List[Tuple[str, str]] = []

    def add(self, sample: str, field: str, message: str) -> None:
        """Record one problem."""
        self.problems.append(AnnotationProblem(sample, field, message))

    def check(self, data: Any) -> List[AnnotationProblem]:
        """Check the whole structure."""
        if not isinstance(data, dict):
            self.add(
                ROOT, 'type', f'{self.source}: expected a dict with '
                f'keys "split" and "annotations", got '
                f'{type(data).__name__}')
            return self.problems
        annotations = data.get('annotations')
        if 'annotations' not in data:
            self.add(
                ROOT, 'annotations', f'{self.source}: missing key '
                f'"annotations" (expected a list of dicts)')
        elif not isinstance(annotations, list):
            self.add(
                ROOT, 'annotations', f'{self.source}: expected a list '
                f'of dicts, got {type(annotations).__name__}')
            annotations = None
        elif not annotations:
            self.add(
                ROOT, 'annotations', f'{self.source}: empty list '
                f'(expected at least one sample)')
        names = self.check_samples(annotations or [])
        if self.empty and not self.fail_on_empty:
            warnings.warn(_empty_clip_summary(self.source, self.empty,
                                              len(annotations)),
                          EmptyClipWarning, stacklevel=3)
        if 'split' not in data:
            self.add(
                ROOT, 'split', f'{self.source}: missing key "split" '
                f'(expected a dict of split name to a list of '
                f'frame_dir)')
        else:
            self.check_split(data['split'], names)
        return self.problems

    def check_samples(self, annotations: List[Any]) -> set:
        """Check every sample; return the set of ``frame_dir`` seen."""
        seen = set()
        for index, sample in enumerate(annotations):
            if not isinstance(sample, dict):
                self.add(f'annotations[{index}]', '<sample>',
                         f'expected a dict, got {type(sample).__name__}')
                continue
            frame_dir = sample.get('frame_dir')
            if isinstance(frame_dir, str) and frame_dir:
                name = frame_dir
                if name in seen:
                    self.add(
                        name, 'frame_dir', 'duplicate frame_dir '
                        '(expected each sample name once)')
                seen.add(name)
            else:
                name = f'annotations[{index}]'
                if 'frame_dir' in sample:
                    self.add(
                        name, 'frame_dir', 'expected a non-empty str, '
                        f'got {_describe(frame_dir)}')
            for field in REQUIRED_FIELDS:
                if field not in sample:
                    self.add(
                        name, field, 'missing field (required: '
                        f'{", ".join(REQUIRED_FIELDS)})')
            self.check_label(name, sample)
            num_frames = self.check_keypoint(name, sample)
            self.check_total_frames(name, sample, num_frames)
        return seen

    def check_label(self, name: str, sample: dict) -> None:
        """``label`` is an int in ``[0, num_classes)``."""
        if 'label' not in sample:
            return
        label = sample['label']
        if not _is_int(label):
            self.add(name, 'label', f'expected an int, got '
                     f'{_describe(label)}')
            return
        upper = self.num_classes
        if label < 0 or (upper is not None and label >= upper):
            bound = f'[0, {upper})' if upper is not None else '>= 0'
            self.add(name, 'label', f'{label} out of range (expected '
                     f'{bound})')

    def check_keypoint(self, name: str, sample: dict) -> Optional[int]:
        """``keypoint`` shape, dtype and values; returns its ``T``."""
        if 'keypoint' not in sample:
            return None
        keypoint = sample['keypoint']
        if not isinstance(keypoint, np.ndarray):
            self.add(
                name, 'keypoint', 'expected an np.ndarray (M, T, V, '
                f'C), got {_describe(keypoint)}')
            return None
        if keypoint.ndim != 4:
            self.add(
                name, 'keypoint', f'expected 4 dims (M, T, V, C), got '
                f'shape {keypoint.shape}')
            return None
        persons, frames, joints, coords = keypoint.shape
        if persons == 0:
            self.add(
                name, 'keypoint', f'no person: M = 0 in shape '
                f'{keypoint.shape} (expected M >= 1)')
        if frames == 0:
            self.add(
                name, 'keypoint', f'empty sequence: T = 0 in shape '
                f'{keypoint.shape} (expected T >= 1)')
        if self.num_joints is not None and joints != self.num_joints:
            self.add(
                name, 'keypoint', f'V = {joints} joints in shape '
                f'{keypoint.shape} (expected {self.num_joints})')
        if self.num_coords is not None and coords != self.num_coords:
            self.add(
                name, 'keypoint', f'C = {coords} coordinates in shape '
                f'{keypoint.shape} (expected {self.num_coords})')
        if self.check_values(name, 'keypoint', keypoint) and keypoint.size:
            self.check_motion(name, keypoint)
        if 'keypoint_score' in sample:
            score = sample['keypoint_score']
            if not isinstance(score, np.ndarray):
                self.add(
                    name, 'keypoint_score', 'expected an np.ndarray '
                    f'(M, T, V), got {_describe(score)}')
            else:
                if score.shape != keypoint.shape[:3]:
                    self.add(
                        name, 'keypoint_score', f'shape {score.shape} '
                        f'(expected {keypoint.shape[:3]}, the (M, T, V) '
                        f'of keypoint)')
                self.check_values(name, 'keypoint_score', score)
        return frames

    def check_values(self, name: str, field: str, array: np.ndarray) -> bool:
        """A floating dtype without NaN or inf; returns whether it is."""
        if not np.issubdtype(array.dtype, np.floating):
            self.add(
                name, field, f'dtype {array.dtype} (expected a '
                f'floating dtype, e.g. float32)')
            return False
        bad = ~np.isfinite(array)
        if bad.any():
            self.add(
                name, field, f'{int(bad.sum())} non-finite value(s) '
                f'(NaN/inf; expected finite numbers)')
            return False
        return True

    def check_motion(self, name: str, keypoint: np.ndarray) -> None:
        """Record an empty clip (:func:`empty_clip_kind`): a problem with
        ``fail_on_empty``, else part of one warning."""
        kind = empty_clip_kind(keypoint)
        if kind is None:
            return
        self.empty.append((name, kind))
        if self.fail_on_empty:
            what = ('every coordinate is 0' if kind == 'all-zero' else
                    'no coordinate moves as far as '
                    f'{NEAR_CONSTANT_TOLERANCE:g} from the clip mean')
            self.add(name, 'keypoint', f'{kind} clip: {what} (no body '
                     'detected?; expected a moving skeleton)')

    def check_total_frames(self, name: str, sample: dict,
                           num_frames: Optional[int]) -> None:
        """``total_frames`` is a positive int equal to keypoint's ``T``."""
        if 'total_frames' not in sample:
            return
        total = sample['total_frames']
        if not _is_int(total):
            self.add(name, 'total_frames', f'expected an int, got '
                     f'{_describe(total)}')
            return
        if total <= 0:
            self.add(name, 'total_frames', f'empty sequence: {total} '
                     f'(expected >= 1)')
        elif num_frames is not None and total != num_frames:
            self.add(
                name, 'total_frames', f'{total} does not match the '
                f'keypoint length T = {num_frames} (expected equal)')

    def check_split(self, split: Any, names: set) -> None:
        """Every split is a list of existing ``frame_dir``."""
        if not isinstance(split, dict):
            self.add(
                ROOT, 'split', f'{self.source}: expected a dict of '
                f'split name to a list of frame_dir, got '
                f'{type(split).__name__}')
            return
        for split_name, members in split.items():
            label = f'split:{split_name}'
            if not isinstance(members, (list, tuple)):
                self.add(
                    label, 'split', f'expected a list of frame_dir, '
                    f'got {type(members).__name__}')
                continue
            seen = set()
            for member in members:
                if not isinstance(member, str):
                    self.add(
                        label, 'split', f'entry {_describe(member)} '
                        f'(expected a frame_dir str)')
                    continue
                if member in seen:
                    self.add(member, f'split[{split_name!r}]',
                             'listed twice in this split (expected once)')
                seen.add(member)
                if member not in names:
                    self.add(
                        member, f'split[{split_name!r}]',
                        'no sample with this frame_dir in annotations '
                        '(expected every split entry to exist)')


def check_annotations(
        data: dict,
        source: str = '<memory>',
        num_joints: Optional[int] = None,
        num_coords: Optional[int] = None,
        num_classes: Optional[int] = None,
        fail_on_empty: bool = False) -> List[AnnotationProblem]:
    """Report every problem of a loaded annotation dict.

    Checked: the top-level structure (a dict with a dict ``split`` and a
    non-empty list ``annotations``); per sample the required fields
    (``frame_dir``, ``label``, ``total_frames``, ``keypoint``), the keypoint
    shape ``(M, T, V, C)`` with ``V == num_joints`` and ``C == num_coords``,
    a floating dtype, finite values, a non-empty sequence with
    ``total_frames == T``, ``keypoint_score`` of shape ``(M, T, V)``, an int
    ``label`` in ``[0, num_classes)``; unique ``frame_dir``; and that split
    lists name existing samples. Empty clips (:func:`empty_clip_kind`) give
    one :class:`EmptyClipWarning` with their count and names, or one
    problem each with ``fail_on_empty``.

    Args:
        data (dict): The loaded pickle.
        source (str): Where it came from, used in top-level messages.
            Defaults to ``'<memory>'``.
        num_joints (int, optional): Expected ``V``. Defaults to ``None``
            (not checked).
        num_coords (int, optional): Expected ``C``. Defaults to ``None``
            (not checked).
        num_classes (int, optional): Labels must be below it. Defaults to
            ``None`` (only ``label >= 0`` is checked).
        fail_on_empty (bool): Report empty clips as problems instead of a
            warning. Defaults to ``False``.

    Returns:
        list[AnnotationProblem]: Every problem found; empty when the data is
        valid.
    """
    checker = _Checker(source, num_joints, num_coords, num_classes,
                       fail_on_empty)
    return checker.check(data)


def check_annotation_file(
        path: Union[str, os.PathLike],
        num_joints: Optional[int] = None,
        num_coords: Optional[int] = None,
        num_classes: Optional[int] = None,
        fail_on_empty: bool = False) -> List[AnnotationProblem]:
    """Load a pickle (nothing in it runs) and :func:`check_annotations` it.

    Args:
        path (str | os.PathLike): The ``.pkl`` file.
        num_joints (int, optional): Expected ``V``. Defaults to ``None``.
        num_coords (int, optional): Expected ``C``. Defaults to ``None``.
        num_classes (int, optional): Number of classes. Defaults to
            ``None``.
        fail_on_empty (bool): See :func:`check_annotations`. Defaults to
            ``False``.

    Returns:
        list[AnnotationProblem]: Every problem found (a single ``<root>``
        problem when the file cannot be unpickled or asks for anything but
        numpy, torch tensors and builtin containers).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
    """
    path = Path(path)
    try:
        data = load_pickle(path)
    except ValueError as err:
        return [AnnotationProblem(ROOT, 'file', str(err))]
    return check_annotations(data,
                             source=str(path),
                             num_joints=num_joints,
                             num_coords=num_coords,
                             num_classes=num_classes,
                             fail_on_empty=fail_on_empty)
