"""Convert raw NTU RGB+D 60/120 ``.skeleton`` files to mmaction2 samples.

Raw format (text, one value group per line)::

    <number of frames>
    per frame:
        <number of bodies>
        per body:
            <10 values: bodyID clippedEdges handLeftConfidence handLeftState
             handRightConfidence handRightState isRestricted leanX leanY
             trackingState>
            <number of joints>
            per joint: <12 values: x y z depthX depthY colorX colorY
                        orientationW orientationX orientationY orientationZ
                        trackingState>

Only the camera-space ``x y z`` (metres) are kept. File names are
``SsssCcccPpppRrrrAaaa`` (setup, camera, performer, replication, action).

Kinect often reports extra "bodies" (furniture, reflections, a person split
into several short-lived IDs). :func:`select_bodies` keeps at most two actors:
it drops bodies seen in too few frames and bodies whose joints are spread
wider than tall in most frames, ranks the rest by motion (total variance of
their joint positions over time), and merges a body into an actor's track
when the two never appear in the same frame.
"""
import re
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import (Callable, Dict, Iterable, Iterator, List, Optional,
                    Sequence, Set, Tuple, Union)

import numpy as np

NUM_JOINTS = 25
_BODY_INFO_VALUES = 10
_JOINT_VALUES = 12

#: Performers of the cross-subject training split of NTU RGB+D 60.
NTU60_XSUB_TRAIN_PERFORMERS = frozenset(
    (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38))
#: Performers of the cross-subject training split of NTU RGB+D 120.
NTU120_XSUB_TRAIN_PERFORMERS = NTU60_XSUB_TRAIN_PERFORMERS | frozenset(
    (45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81,
     82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103))
#: Cameras of the cross-view training split of NTU RGB+D 60.
NTU60_XVIEW_TRAIN_CAMERAS = frozenset((2, 3))


@dataclass(frozen=True)
class NTUDatasetSpec:
    """What distinguishes NTU RGB+D 60 from 120.

    Args:
        num_classes (int): Number of actions (labels ``0..num_classes-1``).
        max_setup (int): Last setup id that belongs to the dataset.
        benchmarks (tuple[str, ...]): The two official benchmarks; split
            names are ``<benchmark>_train`` and ``<benchmark>_val``.
    """

    num_classes: int
    max_setup: int
    benchmarks: Tuple[str, ...]


NTU_DATASETS: Dict[str, NTUDatasetSpec] = {
    'ntu60': NTUDatasetSpec(60, 17, ('xsub', 'xview')),
    'ntu120': NTUDatasetSpec(120, 32, ('xsub', 'xset')),
}

_NAME_PATTERN = re.compile(r'S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})')


class SkeletonFormatError(ValueError):
    """A raw ``.skeleton`` file is truncated or malformed.

    Args:
        path (str | Path): The file.
        line (int): 1-based line number of the offending (or, at end of
            file, the missing) line.
        message (str): What was expected and what was found.
    """

    def __init__(self, path: Union[str, Path], line: int,
                 message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        super().__init__(f'{self.path}:{line}: {message}')


class EmptySkeletonError(ValueError):
    """A well-formed ``.skeleton`` file holds no body in any frame."""


@dataclass(frozen=True)
class NTUSampleName:
    """The fields of an NTU sample name ``SsssCcccPpppRrrrAaaa``.

    Args:
        setup (int): Setup id ``sss``.
        camera (int): Camera id ``ccc`` (1..3).
        performer (int): Performer (subject) id ``ppp``.
        replication (int): Replication id ``rrr``.
        action (int): 1-based action id ``aaa``.
    """

    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @property
    def name(self) -> str:
        """str: The canonical sample name, e.g. ``S001C001P001R001A001``."""
        return (f'S{self.setup:03d}C{self.camera:03d}P{self.performer:03d}'
                f'R{self.replication:03d}A{self.action:03d}')


@dataclass
class RawBody:
    """One tracked body of a raw file.

    Args:
        body_id (str): Kinect body id (first value of the body info line).
        frames (np.ndarray): Frame indices (0-based) where it appears, int64
            ``(n,)``.
        joints (np.ndarray): Its ``x y z`` joints in those frames, float32
            ``(n, 25, 3)``.
    """

    body_id: str
    frames: np.ndarray
    joints: np.ndarray


def parse_sample_name(name: Union[str, Path]) -> NTUSampleName:
    """Parse ``SsssCcccPpppRrrrAaaa`` from a sample name or file path.

    Args:
        name (str | Path): Sample name, with or without folder and
            ``.skeleton`` suffix.

    Returns:
        NTUSampleName: The parsed ids.

    Raises:
        ValueError: If the name does not follow the pattern.
    """
    stem = Path(name).name.split('.')[0]
    match = _NAME_PATTERN.fullmatch(stem)
    if match is None:
        raise ValueError(f'{name}: not an NTU sample name; expected '
                         f'SsssCcccPpppRrrrAaaa (e.g. S001C001P001R001A001)')
    return NTUSampleName(*map(int, match.groups()))


class _LineReader:
    """Reads the lines of a raw file, tracking line numbers for errors."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.pos = 0  # index of the next line

    def error(self, message: str, line: Optional[int] = None) -> None:
        """Raise :class:`SkeletonFormatError` at ``line`` (default: last)."""
        raise SkeletonFormatError(self.path, line or self.pos, message)

    def values(self, what: str, count: int) -> List[str]:
        """Next line split into exactly ``count`` values."""
        if self.pos >= len(self.lines):
            raise SkeletonFormatError(
                self.path, self.pos + 1,
                f'unexpected end of file: expected {what} '
                f'({count} value{"s" if count > 1 else ""})')
        parts = self.lines[self.pos].split()
        self.pos += 1
        if len(parts) != count:
            self.error(f'expected {what} ({count} values), found '
                       f'{len(parts)}: {self.lines[self.pos - 1][:80]!r}')
        return parts

    def count(self, what: str) -> int:
        """Next line as a single non-negative integer."""
        (value, ) = self.values(what, 1)
        try:
            number = int(value)
        except ValueError:
            number = -1
        if number < 0:
            self.error(f'expected {what} (a non-negative integer), found '
                       f'{value!r}')
        return number

    def floats(self, what: str, count: int) -> List[float]:
        """Next line as exactly ``count`` floats."""
        parts = self.values(what, count)
        try:
            return [float(v) for v in parts]
        except ValueError:
            self.error(f'expected {what} ({count} numbers), found '
                       f'{self.lines[self.pos - 1][:80]!r}')

    def check_end(self) -> None:
        """Only blank lines may follow the last frame."""
        for index in range(self.pos, len(self.lines)):
            if self.lines[index].strip():
                self.error(
                    'unexpected content after the last frame (the frame '
                    'count in line 1 is too small or the file is corrupt)',
                    line=index + 1)


def read_skeleton_file(path: Union[str, Path]) -> Tuple[int, List[RawBody]]:
    """Parse a raw NTU ``.skeleton`` file.

    Args:
        path (str | Path): The file.

    Returns:
        tuple[int, list[RawBody]]: The number of frames and every body
        (grouped by body id, in order of first appearance).

    Raises:
        SkeletonFormatError: If the file is truncated or malformed; the
            message names the file and the line.
        OSError: If the file cannot be read.
    """
    path = Path(path)
    reader = _LineReader(path,
                         path.read_text(encoding='ascii', errors='replace'))
    num_frames = reader.count('the number of frames')
    frames: Dict[str, List[int]] = {}
    joints: Dict[str, List[List[List[float]]]] = {}
    for frame in range(num_frames):
        num_bodies = reader.count(f'the number of bodies of frame {frame}')
        for _ in range(num_bodies):
            body_id = reader.values('a body info line', _BODY_INFO_VALUES)[0]
            num_joints = reader.count('the number of joints')
            if num_joints != NUM_JOINTS:
                reader.error(f'expected {NUM_JOINTS} joints per body, '
                             f'found {num_joints}')
            body_joints = [
                reader.floats(
                    f'joint {j} (x y z depthX depthY colorX '
                    f'colorY orientation*4 trackingState)', _JOINT_VALUES)[:3]
                for j in range(NUM_JOINTS)
            ]
            # A body id repeated within one frame is kept as another body.
            while frames.get(body_id, [-1])[-1] == frame:
                body_id += "'"
            frames.setdefault(body_id, []).append(frame)
            joints.setdefault(body_id, []).append(body_joints)
    reader.check_end()
    bodies = [
        RawBody(body_id, np.asarray(frames[body_id], dtype=np.int64),
                np.asarray(joints[body_id], dtype=np.float32))
        for body_id in frames
    ]
    return num_frames, bodies


def _spread_is_implausible(body: RawBody, ratio: float,
                           max_noisy_fraction: float) -> bool:
    """Whether the body is wider (x) than ``ratio`` x its height (y) in more
    than ``max_noisy_fraction`` of its frames (a person is taller than
    wide; furniture and reflections often are not)."""
    x_spread = np.ptp(body.joints[..., 0], axis=1)
    y_spread = np.ptp(body.joints[..., 1], axis=1)
    noisy = x_spread > ratio * y_spread
    return float(noisy.mean()) > max_noisy_fraction


def body_motion(body: RawBody) -> float:
    """Total variance of a body's joint positions over time.

    Args:
        body (RawBody): The body.

    Returns:
        float: ``sum over joints and coordinates of var over frames``.
    """
    if len(body.frames) < 2:
        return 0.0
    return float(body.joints.astype(np.float64).var(axis=0).sum())


def select_bodies(bodies: Sequence[RawBody],
                  num_frames: int,
                  max_bodies: int = 2,
                  min_frames: int = 11,
                  spread_ratio: float = 0.8,
                  max_noisy_fraction: float = 0.69) -> np.ndarray:
    """Keep up to ``max_bodies`` actors and stack them as ``(M, T, 25, 3)``.

    1. Bodies seen in fewer than ``min_frames`` frames are dropped.
    2. Bodies whose x spread exceeds ``spread_ratio`` times their y spread in
       more than ``max_noisy_fraction`` of their frames are dropped.
       Either filter is skipped when it would drop every body.
    3. The rest are ranked by :func:`body_motion`, most active first. Each
       goes into the first actor track it shares no frame with, or opens a
       new track while fewer than ``max_bodies`` exist; otherwise it is
       dropped.

    Args:
        bodies (Sequence[RawBody]): Bodies from :func:`read_skeleton_file`.
        num_frames (int): ``T``, the frame count of the file.
        max_bodies (int): Most actors kept. Defaults to ``2``.
        min_frames (int): Shortest life of a kept body, in frames.
            Defaults to ``11``.
        spread_ratio (float): x/y spread ratio above which a frame looks
            like noise. Defaults to ``0.8``.
        max_noisy_fraction (float): Largest fraction of noisy-looking frames
            a kept body may have. Defaults to ``0.69``.

    Returns:
        np.ndarray: float32 ``(M, T, 25, 3)`` with ``1 <= M <= max_bodies``,
        the most active actor first; frames where an actor is absent are
        zero.

    Raises:
        ValueError: If ``bodies`` is empty.
    """
    if not bodies:
        raise ValueError('no body to select from')
    candidates = list(bodies)
    for keep in (lambda b: len(b.frames) >= min_frames,
                 lambda b: not _spread_is_implausible(b, spread_ratio,
                                                      max_noisy_fraction)):
        kept = [body for body in candidates if keep(body)]
        candidates = kept or candidates
    candidates.sort(key=body_motion, reverse=True)

    tracks: List[List[RawBody]] = []
    track_frames: List[Set[int]] = []
    for body in candidates:
        body_frames = set(body.frames.tolist())
        for track, used in zip(tracks, track_frames):
            if used.isdisjoint(body_frames):
                track.append(body)
                used.update(body_frames)
                break
        else:
            if len(tracks) < max_bodies:
                tracks.append([body])
                track_frames.append(body_frames)

    keypoint = np.zeros((len(tracks), num_frames, NUM_JOINTS, 3),
                        dtype=np.float32)
    for index, track in enumerate(tracks):
        for body in track:
            keypoint[index, body.frames] = body.joints
    return keypoint


def load_ntu_sample(
    path: Union[str, Path],
    max_bodies: int = 2,
    img_shape: Tuple[int, int] = (1080, 1920)) -> dict:
    """Read one raw file into an mmaction2 annotation dict.

    Args:
        path (str | Path): ``SsssCcccPpppRrrrAaaa.skeleton``.
        max_bodies (int): Most actors kept (see :func:`select_bodies`).
            Defaults to ``2``.
        img_shape (tuple[int, int]): ``(h, w)`` stored as ``img_shape`` and
            ``original_shape``: the Kinect v2 colour resolution. The 3D
            keypoints are in metres and do not depend on it.
            Defaults to ``(1080, 1920)``.

    Returns:
        dict: ``frame_dir``, ``label`` (action - 1), ``total_frames``,
        ``keypoint`` float32 ``(M, T, 25, 3)``, ``img_shape`` and
        ``original_shape``.

    Raises:
        ValueError: If the file name is not an NTU sample name.
        SkeletonFormatError: If the file is truncated or malformed.
        EmptySkeletonError: If no frame holds a body.
    """
    path = Path(path)
    sample = parse_sample_name(path)
    num_frames, bodies = read_skeleton_file(path)
    if not bodies:
        raise EmptySkeletonError(
            f'{path}: no body in any of its {num_frames} frames (is it on '
            f'the official missing-skeleton list?)')
    keypoint = select_bodies(bodies, num_frames, max_bodies=max_bodies)
    return dict(frame_dir=sample.name,
                label=sample.action - 1,
                total_frames=num_frames,
                keypoint=keypoint,
                img_shape=tuple(img_shape),
                original_shape=tuple(img_shape))


def read_missing_list(path: Union[str, Path]) -> Set[str]:
    """Read an official list of samples with missing skeletons.

    Args:
        path (str | Path): Text file, one sample name per line.

    Returns:
        set[str]: Sample names (blank lines and ``#`` comments ignored).

    Raises:
        FileNotFoundError: If the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'missing-skeleton list not found: {path}')
    names = set()
    for line in path.read_text().splitlines():
        line = line.split('#')[0].strip()
        if line:
            names.add(Path(line).name.split('.')[0])
    return names


def belongs_to(sample: NTUSampleName, dataset: str) -> bool:
    """Whether a sample is part of ``dataset``.

    NTU RGB+D 60 is setups 1..17 with actions 1..60; NTU RGB+D 120 is setups
    1..32 with actions 1..120.

    Args:
        sample (NTUSampleName): The sample.
        dataset (str): ``'ntu60'`` or ``'ntu120'``.

    Returns:
        bool: Membership.
    """
    spec = _spec(dataset)
    return (1 <= sample.setup <= spec.max_setup
            and 1 <= sample.action <= spec.num_classes)


def split_names(sample: NTUSampleName, dataset: str) -> Tuple[str, str]:
    """The two official split names a sample belongs to.

    Args:
        sample (NTUSampleName): The sample.
        dataset (str): ``'ntu60'`` (``xsub``, ``xview``) or ``'ntu120'``
            (``xsub``, ``xset``).

    Returns:
        tuple[str, str]: e.g. ``('xsub_train', 'xview_val')``.
    """
    spec = _spec(dataset)
    if dataset == 'ntu60':
        xsub = sample.performer in NTU60_XSUB_TRAIN_PERFORMERS
        second = sample.camera in NTU60_XVIEW_TRAIN_CAMERAS
    else:
        xsub = sample.performer in NTU120_XSUB_TRAIN_PERFORMERS
        second = sample.setup % 2 == 0
    return tuple(f'{benchmark}_{"train" if train else "val"}'
                 for benchmark, train in zip(spec.benchmarks, (xsub, second)))


def build_splits(frame_dirs: Iterable[str],
                 dataset: str) -> Dict[str, List[str]]:
    """Official splits of the given samples, in mmaction2's names.

    Args:
        frame_dirs (Iterable[str]): Sample names.
        dataset (str): ``'ntu60'`` or ``'ntu120'``.

    Returns:
        dict[str, list[str]]: ``{benchmark}_train`` / ``{benchmark}_val`` for
        both benchmarks of the dataset (all four keys always present).
    """
    spec = _spec(dataset)
    splits = {
        f'{benchmark}_{part}': []
        for benchmark in spec.benchmarks
        for part in ('train', 'val')
    }
    for frame_dir in frame_dirs:
        for name in split_names(parse_sample_name(frame_dir), dataset):
            splits[name].append(frame_dir)
    return splits


def list_ntu_files(
        raw_dirs: Sequence[Union[str, Path]],
        dataset: str,
        missing: Optional[Set[str]] = None) -> Tuple[List[Path], int]:
    """Raw files of ``dataset`` in ``raw_dirs``, minus the missing ones.

    Files whose name is not an NTU sample name, or which belong to another
    dataset (e.g. actions 61..120 for ``ntu60``), are left out.

    Args:
        raw_dirs (Sequence[str | Path]): Folders holding ``*.skeleton``.
        dataset (str): ``'ntu60'`` or ``'ntu120'``.
        missing (set[str], optional): Sample names to skip.
            Defaults to ``None`` (skip none).

    Returns:
        tuple[list[Path], int]: The files sorted by sample name, and how many
        were skipped because they are on the missing list.

    Raises:
        FileNotFoundError: If a folder does not exist.
        ValueError: If a sample name occurs in two folders.
    """
    _spec(dataset)
    missing = missing or set()
    found: Dict[str, Path] = {}
    num_missing = 0
    for raw_dir in raw_dirs:
        raw_dir = Path(raw_dir)
        if not raw_dir.is_dir():
            raise FileNotFoundError(f'raw skeleton folder not found: '
                                    f'{raw_dir}')
        for path in raw_dir.glob('*.skeleton'):
            try:
                sample = parse_sample_name(path)
            except ValueError:
                continue
            if not belongs_to(sample, dataset):
                continue
            if sample.name in missing:
                num_missing += 1
                continue
            if sample.name in found:
                raise ValueError(f'sample {sample.name} found twice: '
                                 f'{found[sample.name]} and {path}')
            found[sample.name] = path
    return [found[name] for name in sorted(found)], num_missing


def _load_or_error(path: Path) -> Tuple[Optional[dict], Optional[str]]:
    """Worker: the annotation of ``path``, or the error message."""
    try:
        return load_ntu_sample(path), None
    except (SkeletonFormatError, EmptySkeletonError, ValueError,
            OSError) as err:
        return None, str(err)


def convert_ntu_files(
    paths: Sequence[Union[str, Path]],
    num_workers: int = 0,
    progress: Optional[Callable[[Iterator], Iterable]] = None
) -> Tuple[List[dict], List[str]]:
    """Load many raw files, collecting failures instead of stopping.

    Args:
        paths (Sequence[str | Path]): Raw files.
        num_workers (int): Worker processes; ``0`` loads in this process.
            Defaults to ``0``.
        progress (Callable, optional): Wraps the iterator of results, e.g.
            ``functools.partial(tqdm, total=len(paths))``. Defaults to
            ``None``.

    Returns:
        tuple[list[dict], list[str]]: Annotations of the files that loaded
        (input order) and one message per failed file (naming the file and,
        for format errors, the line).
    """
    paths = [Path(p) for p in paths]
    annotations, errors = [], []
    pool = Pool(num_workers) if num_workers > 0 else None
    try:
        results = (pool.imap(_load_or_error, paths, chunksize=16)
                   if pool else map(_load_or_error, paths))
        if progress is not None:
            results = progress(results)
        for annotation, error in results:
            if error is None:
                annotations.append(annotation)
            else:
                errors.append(error)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return annotations, errors


def _spec(dataset: str) -> NTUDatasetSpec:
    """The :class:`NTUDatasetSpec` of ``dataset`` or a clear error."""
    if dataset not in NTU_DATASETS:
        raise ValueError(f'unknown NTU dataset {dataset!r}; expected one of '
                         f'{sorted(NTU_DATASETS)}')
    return NTU_DATASETS[dataset]
