"""Convert Kinetics-Skeleton JSON clips (ST-GCN release) to mmaction2 samples.

Each ``<youtube_id>.json`` holds::

    {"data": [{"frame_index": 1, "skeleton": [{"pose": [x0, y0, ..., x17,
               y17], "score": [s0, ..., s17]}, ...]}, ...],
     "label": "<class name>", "label_index": <int>}

with OpenPose-18 keypoints normalised by the 340x256 frame (``x / 340``,
``y / 256``) and people not tracked across frames. The class index is taken
from the ``label`` text through the official 400-name list, never from
``label_index`` (some copies of the release rewrote it).

Output keypoints are in pixels of ``img_shape = (256, 340)`` so that
mmaction2's ``PreNormalize2D`` maps them to ``[-1, 1]``. In each frame the
people are ranked by mean keypoint score and the best ``max_persons`` kept
(as ST-GCN's feeder does; there is no identity across frames). Joints with
score 0 and absent people are placed at the image centre with score 0, so
they become 0 after ``PreNormalize2D``, like the zero padding of
``FormatGCNInput``.
"""
import json
from pathlib import Path
from typing import (Callable, Dict, Iterable, Iterator, List, Optional,
                    Sequence, Tuple, Union)

import numpy as np

KINETICS_NUM_JOINTS = 18
#: ``(h, w)`` the ST-GCN release normalised its coordinates by.
KINETICS_IMG_SHAPE = (256, 340)


def read_label_names(path: Union[str, Path]) -> Dict[str, int]:
    """Read the class-name list (one name per line, line order = index).

    Args:
        path (str | Path): e.g. ``kinetics400_label_names.txt``.

    Returns:
        dict[str, int]: Class name to 0-based index.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is empty or a name occurs twice.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'label-name file not found: {path}')
    names = [line.strip() for line in path.read_text().splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise ValueError(f'{path}: no class name')
    mapping: Dict[str, int] = {}
    for index, name in enumerate(names):
        if not name:
            raise ValueError(f'{path}:{index + 1}: empty class name')
        if name in mapping:
            raise ValueError(f'{path}:{index + 1}: class name {name!r} '
                             f'already on line {mapping[name] + 1}')
        mapping[name] = index
    return mapping


def _frame_people(frame: dict,
                  where: str) -> List[Tuple[float, np.ndarray, np.ndarray]]:
    """``(mean score, pose (18, 2), score (18,))`` of each person."""
    people = []
    for k, person in enumerate(frame.get('skeleton', [])):
        try:
            pose = np.asarray(person['pose'], dtype=np.float64)
            score = np.asarray(person['score'], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f'{where}, person {k}: expected "pose" and '
                             f'"score" number lists ({err})') from err
        if pose.shape != (2 * KINETICS_NUM_JOINTS, ) or score.shape != (
                KINETICS_NUM_JOINTS, ):
            raise ValueError(
                f'{where}, person {k}: expected {2 * KINETICS_NUM_JOINTS} '
                f'pose values and {KINETICS_NUM_JOINTS} scores, got '
                f'{pose.shape[0] if pose.ndim else 0} and '
                f'{score.shape[0] if score.ndim else 0}')
        people.append((float(score.mean()), pose.reshape(-1, 2), score))
    return people


def load_kinetics_json(
        path: Union[str, Path],
        label_to_index: Dict[str, int],
        max_persons: int = 2,
        img_shape: Tuple[int, int] = KINETICS_IMG_SHAPE) -> dict:
    """Read one clip into an mmaction2 2D annotation dict.

    Args:
        path (str | Path): ``<youtube_id>.json``.
        label_to_index (dict[str, int]): From :func:`read_label_names`.
        max_persons (int): People kept per frame. Defaults to ``2``.
        img_shape (tuple[int, int]): ``(h, w)`` the release normalised by;
            coordinates are scaled back to it. Defaults to ``(256, 340)``.

    Returns:
        dict: ``frame_dir`` (file stem), ``label``, ``total_frames`` (the
        largest ``frame_index``), ``keypoint`` float32 ``(M, T, 18, 2)``,
        ``keypoint_score`` float32 ``(M, T, 18)``, ``img_shape`` and
        ``original_shape``, with ``M = min(max_persons, most people in a
        frame)`` (at least 1).

    Raises:
        ValueError: If the JSON is malformed, has no frame, or its ``label``
            is not in ``label_to_index``; the message names the file.
    """
    path = Path(path)
    try:
        clip = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f'{path}: invalid JSON ({err})') from err
    if not isinstance(clip, dict) or not isinstance(clip.get('data'), list):
        raise ValueError(f'{path}: expected an object with a "data" list of '
                         f'frames')
    if 'label' not in clip:
        raise ValueError(f'{path}: no "label" field (expected the class '
                         f'name)')
    label = clip['label']
    if label not in label_to_index:
        raise ValueError(f'{path}: label {label!r} is not in the class-name '
                         f'list ({len(label_to_index)} names)')
    frames = {}
    for position, frame in enumerate(clip['data']):
        index = frame.get('frame_index') if isinstance(frame, dict) else None
        if not isinstance(index, int) or index < 1:
            raise ValueError(f'{path}: data[{position}] has frame_index '
                             f'{index!r} (expected an int >= 1)')
        if index in frames:
            raise ValueError(f'{path}: frame_index {index} appears twice')
        frames[index] = _frame_people(frame, f'{path}: frame_index {index}')
    if not frames:
        raise ValueError(f'{path}: no frame in "data"')

    num_frames = max(frames)
    most = max(len(people) for people in frames.values())
    num_persons = max(1, min(max_persons, most))
    h, w = img_shape
    keypoint = np.empty((num_persons, num_frames, KINETICS_NUM_JOINTS, 2),
                        dtype=np.float32)
    keypoint[...] = (w / 2, h / 2)
    score = np.zeros(keypoint.shape[:3], dtype=np.float32)
    scale = np.array([w, h], dtype=np.float64)
    for index, people in frames.items():
        people = sorted(people, key=lambda p: p[0], reverse=True)
        for m, (_, pose, joint_score) in enumerate(people[:num_persons]):
            seen = joint_score > 0
            keypoint[m, index - 1, seen] = pose[seen] * scale
            score[m, index - 1] = joint_score
    return dict(frame_dir=path.stem,
                label=label_to_index[label],
                total_frames=num_frames,
                keypoint=keypoint,
                keypoint_score=score,
                img_shape=tuple(img_shape),
                original_shape=tuple(img_shape))


def list_json_files(json_dir: Union[str, Path]) -> List[Path]:
    """The ``*.json`` clips of a folder, sorted by name.

    Args:
        json_dir (str | Path): Folder of the release, e.g. ``kinetics_val``.

    Returns:
        list[Path]: The clips.

    Raises:
        FileNotFoundError: If the folder does not exist or holds no clip.
    """
    json_dir = Path(json_dir)
    if not json_dir.is_dir():
        raise FileNotFoundError(f'JSON folder not found: {json_dir}')
    paths = sorted(json_dir.glob('*.json'))
    if not paths:
        raise FileNotFoundError(f'{json_dir}: no .json clip')
    return paths


def convert_kinetics_files(
    paths: Sequence[Union[str, Path]],
    label_to_index: Dict[str, int],
    max_persons: int = 2,
    skip_empty: bool = True,
    progress: Optional[Callable[[Iterator], Iterable]] = None
) -> Tuple[List[dict], List[str], List[str]]:
    """Load many clips, collecting failures instead of stopping.

    Args:
        paths (Sequence[str | Path]): JSON clips.
        label_to_index (dict[str, int]): From :func:`read_label_names`.
        max_persons (int): People kept per frame. Defaults to ``2``.
        skip_empty (bool): Leave out clips with no detected person in any
            frame (ST-GCN's ``has_skeleton == False``). Defaults to ``True``.
        progress (Callable, optional): Wraps the iterator over paths, e.g.
            ``functools.partial(tqdm, total=len(paths))``. Defaults to
            ``None``.

    Returns:
        tuple[list[dict], list[str], list[str]]: Annotations (input order),
        one message per failed file, and the ``frame_dir`` of the skipped
        empty clips.
    """
    annotations, errors, skipped = [], [], []
    iterator = iter(paths)
    for path in (progress(iterator) if progress else iterator):
        try:
            sample = load_kinetics_json(path, label_to_index, max_persons)
        except (ValueError, OSError) as err:
            errors.append(str(err))
            continue
        if skip_empty and not sample['keypoint_score'].any():
            skipped.append(sample['frame_dir'])
            continue
        annotations.append(sample)
    return annotations, errors, skipped
