"""Skeleton layouts: joint orders, graphs and conversions between orders.

Graph layouts use the dict format that mmaction2's
:class:`mmaction.models.utils.Graph` accepts in place of a layout name
(``dict(num_node=..., inward=[(i, j), ...], center=...)``, edges 0-based and
pointing from a joint ``i`` towards its neighbour ``j`` that is closer to the
centre), so a config can write::

    graph_cfg=dict(layout=UTD_MHAD_LAYOUT, mode='spatial')

mmaction2 1.2.0's ``JointToBone`` / ``GenSkeFeat`` only know the
``'nturgb+d'``, ``'openpose'`` and ``'coco'`` bone pairs; the UTD-MHAD pairs
are given here as :data:`UTD_MHAD_BONE_PAIRS` for a transform that accepts
custom pairs.
"""
from typing import Dict, List, Optional, Tuple

import numpy as np

# yapf: disable
#: UTD-MHAD (Kinect v1) joint names, in the dataset's own order
#: (``Skeleton_joint_order.txt``, 0-based here).
UTD_MHAD_JOINT_NAMES: Tuple[str, ...] = (
    'head', 'shoulder_center', 'spine', 'hip_center', 'left_shoulder',
    'left_elbow', 'left_wrist', 'left_hand', 'right_shoulder', 'right_elbow',
    'right_wrist', 'right_hand', 'left_hip', 'left_knee', 'left_ankle',
    'left_foot', 'right_hip', 'right_knee', 'right_ankle', 'right_foot')

#: UTD-MHAD skeleton graph for mmaction2's ``Graph(layout=...)``; the centre
#: is the spine (joint 2). Edges are ``(joint, neighbour towards the spine)``.
UTD_MHAD_LAYOUT: Dict = dict(
    num_node=20,
    inward=[
        (1, 2), (3, 2),  # shoulder centre / hip centre -> spine
        (0, 1),  # head -> shoulder centre
        (4, 1), (5, 4), (6, 5), (7, 6),  # left arm
        (8, 1), (9, 8), (10, 9), (11, 10),  # right arm
        (12, 3), (13, 12), (14, 13), (15, 14),  # left leg
        (16, 3), (17, 16), (18, 17), (19, 18),  # right leg
    ],
    center=2)

#: ``(joint, parent)`` pairs for bone features on UTD-MHAD, one per joint, in
#: the style of mmaction2's ``JointToBone`` pairs (the centre is its own
#: parent, so its bone is zero).
UTD_MHAD_BONE_PAIRS: Tuple[Tuple[int, int], ...] = tuple(
    sorted([(2, 2)] + [tuple(edge) for edge in UTD_MHAD_LAYOUT['inward']]))

#: COCO-17 keypoint names (the order of mmaction2's 2D pose pickles).
COCO_JOINT_NAMES: Tuple[str, ...] = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
    'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow',
    'left_wrist', 'right_wrist', 'left_hip', 'right_hip', 'left_knee',
    'right_knee', 'left_ankle', 'right_ankle')

#: OpenPose-18 (COCO-18) keypoint names, the order of Kinetics-Skeleton and of
#: mmaction2's ``'openpose'`` layout.
OPENPOSE_JOINT_NAMES: Tuple[str, ...] = (
    'nose', 'neck', 'right_shoulder', 'right_elbow', 'right_wrist',
    'left_shoulder', 'left_elbow', 'left_wrist', 'right_hip', 'right_knee',
    'right_ankle', 'left_hip', 'left_knee', 'left_ankle', 'right_eye',
    'left_eye', 'right_ear', 'left_ear')
# yapf: enable

#: For each OpenPose joint, its COCO index; ``None`` for the neck, which COCO
#: lacks and which is built from the two shoulders.
OPENPOSE_FROM_COCO: Tuple[Optional[int], ...] = tuple(
    None if name == 'neck' else COCO_JOINT_NAMES.index(name)
    for name in OPENPOSE_JOINT_NAMES)

_COCO_LEFT_SHOULDER = COCO_JOINT_NAMES.index('left_shoulder')
_COCO_RIGHT_SHOULDER = COCO_JOINT_NAMES.index('right_shoulder')


def coco_to_openpose(
    keypoint: np.ndarray,
    keypoint_score: Optional[np.ndarray] = None
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Reorder COCO-17 keypoints into the OpenPose-18 order.

    The neck, which COCO lacks, is the mid-point of the two shoulders and
    its score is the smaller of the two shoulder scores.

    Args:
        keypoint (np.ndarray): Keypoints of shape ``(..., 17, C)``.
        keypoint_score (np.ndarray, optional): Scores of shape ``(..., 17)``.
            Defaults to ``None``.

    Returns:
        tuple[np.ndarray, np.ndarray | None]: Keypoints ``(..., 18, C)`` and
        scores ``(..., 18)`` (``None`` when no scores were given), with the
        input dtypes.

    Raises:
        ValueError: If the joint axis does not have 17 entries or the score
            shape does not match the keypoint shape.
    """
    keypoint = np.asarray(keypoint)
    if keypoint.ndim < 2 or keypoint.shape[-2] != len(COCO_JOINT_NAMES):
        raise ValueError('keypoint must have shape (..., 17, C) in COCO-17 '
                         f'order, got {keypoint.shape}')
    index = [
        _COCO_LEFT_SHOULDER if i is None else i for i in OPENPOSE_FROM_COCO
    ]
    neck = OPENPOSE_JOINT_NAMES.index('neck')
    out_kp = keypoint[..., index, :].copy()
    out_kp[..., neck, :] = (keypoint[..., _COCO_LEFT_SHOULDER, :] +
                            keypoint[..., _COCO_RIGHT_SHOULDER, :]) / 2
    if keypoint_score is None:
        return out_kp, None
    keypoint_score = np.asarray(keypoint_score)
    if keypoint_score.shape != keypoint.shape[:-1]:
        raise ValueError(f'keypoint_score must have shape '
                         f'{keypoint.shape[:-1]} to match keypoint, got '
                         f'{keypoint_score.shape}')
    out_score = keypoint_score[..., index].copy()
    out_score[...,
              neck] = np.minimum(keypoint_score[..., _COCO_LEFT_SHOULDER],
                                 keypoint_score[..., _COCO_RIGHT_SHOULDER])
    return out_kp, out_score


def annotations_coco_to_openpose(annotations: List[dict]) -> List[dict]:
    """Convert mmaction2 2D annotations from COCO-17 to OpenPose-18 joints.

    Each sample's ``keypoint`` ``(M, T, 17, 2)`` and, when present,
    ``keypoint_score`` ``(M, T, 17)`` are reordered with
    :func:`coco_to_openpose`; every other field is copied unchanged. The
    input list and its dicts are not modified.

    Args:
        annotations (list[dict]): Samples of an mmaction2 2D pose pickle.

    Returns:
        list[dict]: New sample dicts with 18 joints in OpenPose order.

    Raises:
        ValueError: If a sample has no ``keypoint`` or its joint axis is not
            17 long; the message names the sample's ``frame_dir``.
    """
    converted = []
    for index, sample in enumerate(annotations):
        name = sample.get('frame_dir', f'annotations[{index}]')
        if 'keypoint' not in sample:
            raise ValueError(f'sample {name!r}: missing field "keypoint"')
        try:
            keypoint, score = coco_to_openpose(sample['keypoint'],
                                               sample.get('keypoint_score'))
        except ValueError as err:
            raise ValueError(f'sample {name!r}: {err}') from err
        new_sample = dict(sample)
        new_sample['keypoint'] = keypoint
        if score is not None:
            new_sample['keypoint_score'] = score
        converted.append(new_sample)
    return converted
