"""A kinematic model of the 25-joint NTU RGB+D (Kinect v2) skeleton.

The body frame used here has ``x`` pointing to the performer's right, ``y``
up and ``z`` backwards, so a performer facing the camera moves towards it
along ``-z``, as in Kinect camera space. Right-side joints therefore sit at
larger ``x`` than left-side ones, as in the NTU recordings.

Bones are fixed offsets expressed in the frame of the body segment that
carries them; forward kinematics rotates those offsets, so every bone keeps
its length in every frame. Joint angles come as per-frame arrays in degrees
(see :data:`POSE_CHANNELS`); the left limbs use the same conventions as the
right ones and are mirrored through the sagittal plane.
"""
from typing import Dict, Mapping, Tuple

import numpy as np

#: Number of joints of the NTU RGB+D layout.
NUM_JOINTS = 25

#: Joint names in NTU RGB+D order (mmaction2's ``'nturgb+d'`` layout).
JOINT_NAMES: Tuple[str,
                   ...] = ('base of spine', 'middle of spine', 'neck', 'head',
                           'left shoulder', 'left elbow', 'left wrist',
                           'left hand', 'right shoulder', 'right elbow',
                           'right wrist', 'right hand', 'left hip',
                           'left knee', 'left ankle', 'left foot', 'right hip',
                           'right knee', 'right ankle', 'right foot', 'spine',
                           'left hand tip', 'left thumb', 'right hand tip',
                           'right thumb')

#: Joint angle channels of a pose track. Angles are in degrees:
#: ``*_bend`` flexes the spine forwards, ``*_roll`` leans it to the
#: performer's right, ``*_twist`` turns it to the performer's left;
#: ``*_sh_elev`` / ``*_hip_elev`` lift a limb from hanging straight down
#: (0) through horizontal (90) to straight up (180) in the vertical plane
#: at azimuth ``*_azim`` (0 in front, 90 to the side of the body);
#: ``*_sh_twist`` rotates the upper arm about its own axis (negative turns
#: the elbow crease upwards when the arm is raised sideways);
#: ``*_elbow``, ``*_knee`` and ``*_wrist`` flex those joints; ``*_ankle``
#: lifts the toes. ``root_x`` / ``root_z`` shift the body (metres, body
#: frame) and ``lift`` raises it off the floor (metres, used for jumps).
POSE_CHANNELS: Tuple[str, ...] = (
    'root_x', 'root_z', 'lift', 'body_yaw',
    'lumbar_bend', 'lumbar_roll', 'lumbar_twist',
    'chest_bend', 'chest_twist', 'neck_bend',
    'r_sh_elev', 'r_sh_azim', 'r_sh_twist', 'r_elbow', 'r_wrist',
    'l_sh_elev', 'l_sh_azim', 'l_sh_twist', 'l_elbow', 'l_wrist',
    'r_hip_elev', 'r_hip_azim', 'r_knee', 'r_ankle',
    'l_hip_elev', 'l_hip_azim', 'l_knee', 'l_ankle',
)  # yapf: disable

# (joint, parent joint, segment whose rotation carries the bone, body part
# whose length scale applies, rest offset of a 1.75 m adult in metres).
# Left-side offsets are mirrored from the right-side ones in ``_BONES``.
_RIGHT_BONES = (
    (8, 20, 'chest', 'shoulder', (0.17, -0.04, 0.01)),
    (9, 8, 'r_upper_arm', 'arm', (0.0, -0.28, 0.0)),
    (10, 9, 'r_forearm', 'arm', (0.0, -0.25, 0.0)),
    (11, 10, 'r_hand', 'arm', (0.0, -0.07, 0.0)),
    (23, 11, 'r_hand', 'arm', (0.0, -0.06, 0.0)),
    (24, 10, 'r_hand', 'arm', (-0.015, -0.045, -0.035)),
    (16, 0, 'pelvis', 'hip', (0.08, -0.06, 0.0)),
    (17, 16, 'r_thigh', 'leg', (0.0, -0.42, 0.0)),
    (18, 17, 'r_shin', 'leg', (0.0, -0.40, 0.0)),
    (19, 18, 'r_foot', 'leg', (0.0, -0.04, -0.11)),
)
# Left-side counterpart of every joint a right-side bone touches.
_LEFT_OF = dict(
    zip((0, 20, 8, 9, 10, 11, 23, 24, 16, 17, 18, 19),
        (0, 20, 4, 5, 6, 7, 21, 22, 12, 13, 14, 15)))


def _mirror_bone(bone: tuple) -> tuple:
    """The left-side twin of a right-side bone."""
    joint, parent, segment, part, (x, y, z) = bone
    segment = 'l_' + segment[2:] if segment.startswith('r_') else segment
    return _LEFT_OF[joint], _LEFT_OF[parent], segment, part, (-x, y, z)


#: Bones in an order where every parent precedes its children.
_BONES = (
    (1, 0, 'lumbar', 'torso', (0.0, 0.28, 0.0)),
    (20, 1, 'chest', 'torso', (0.0, 0.22, 0.0)),
    (2, 20, 'neck', 'torso', (0.0, 0.08, 0.0)),
    (3, 2, 'neck', 'torso', (0.0, 0.13, -0.01)),
) + _RIGHT_BONES + tuple(_mirror_bone(bone) for bone in _RIGHT_BONES)

#: (child, parent) pairs of the kinematic tree; each keeps a constant length.
BONE_PAIRS: Tuple[Tuple[int, int], ...] = tuple(
    (child, parent) for child, parent, *_ in _BONES)

#: Body parts whose bone lengths a performer may scale independently.
BODY_PARTS: Tuple[str, ...] = ('torso', 'shoulder', 'arm', 'hip', 'leg')

_FOOT_JOINTS = (14, 15, 18, 19)


def rot_x(deg: np.ndarray) -> np.ndarray:
    """Rotations about the x axis.

    Args:
        deg (np.ndarray): Angles in degrees, any shape ``S``.

    Returns:
        np.ndarray: Rotation matrices of shape ``S + (3, 3)``.
    """
    a = np.deg2rad(np.asarray(deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(a.shape + (3, 3))


def rot_y(deg: np.ndarray) -> np.ndarray:
    """Rotations about the y (vertical) axis.

    Args:
        deg (np.ndarray): Angles in degrees, any shape ``S``.

    Returns:
        np.ndarray: Rotation matrices of shape ``S + (3, 3)``.
    """
    a = np.deg2rad(np.asarray(deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(a.shape + (3, 3))


def rot_z(deg: np.ndarray) -> np.ndarray:
    """Rotations about the z axis.

    Args:
        deg (np.ndarray): Angles in degrees, any shape ``S``.

    Returns:
        np.ndarray: Rotation matrices of shape ``S + (3, 3)``.
    """
    a = np.deg2rad(np.asarray(deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(a.shape + (3, 3))


def limb_rotation(elev: np.ndarray, azim: np.ndarray,
                  twist: np.ndarray) -> np.ndarray:
    """Rotation of a right limb segment relative to the trunk.

    The limb swings by ``elev`` about the horizontal axis perpendicular to
    the vertical plane at azimuth ``azim``, after turning about its own
    axis by ``twist``. With ``twist = 0`` the elbow or knee keeps flexing
    in the plane it flexes in at rest.

    Args:
        elev (np.ndarray): Elevation in degrees, shape ``(T,)``.
        azim (np.ndarray): Azimuth in degrees, shape ``(T,)``.
        twist (np.ndarray): Axial rotation in degrees, shape ``(T,)``.

    Returns:
        np.ndarray: Rotation matrices of shape ``(T, 3, 3)``.
    """
    return rot_y(-azim) @ rot_x(elev) @ rot_y(azim + twist)


def _mirror(rotation: np.ndarray) -> np.ndarray:
    """Reflect right-limb rotations through the sagittal plane."""
    flip = np.array([-1.0, 1.0, 1.0])
    return rotation * flip[:, None] * flip[None, :]


def segment_rotations(pose: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Global rotation of every body segment, in the body frame.

    Args:
        pose (Mapping[str, np.ndarray]): One ``(T,)`` array per channel of
            :data:`POSE_CHANNELS`.

    Returns:
        dict[str, np.ndarray]: ``(T, 3, 3)`` rotations keyed by segment.
    """
    pelvis = rot_y(pose['body_yaw'])
    lumbar = pelvis @ (rot_y(pose['lumbar_twist']) @ rot_x(
        -pose['lumbar_bend']) @ rot_z(-pose['lumbar_roll']))
    chest = lumbar @ rot_y(pose['chest_twist']) @ rot_x(-pose['chest_bend'])
    seg = dict(pelvis=pelvis,
               lumbar=lumbar,
               chest=chest,
               neck=chest @ rot_x(-pose['neck_bend']))
    for side in ('r', 'l'):
        mirror = _mirror if side == 'l' else (lambda rot: rot)
        upper = mirror(
            limb_rotation(pose[f'{side}_sh_elev'], pose[f'{side}_sh_azim'],
                          pose[f'{side}_sh_twist']))
        seg[f'{side}_upper_arm'] = chest @ upper
        seg[f'{side}_forearm'] = seg[f'{side}_upper_arm'] @ rot_x(
            pose[f'{side}_elbow'])
        seg[f'{side}_hand'] = seg[f'{side}_forearm'] @ rot_x(
            pose[f'{side}_wrist'])
        zero = np.zeros_like(pose[f'{side}_hip_elev'])
        thigh = mirror(
            limb_rotation(pose[f'{side}_hip_elev'], pose[f'{side}_hip_azim'],
                          zero))
        seg[f'{side}_thigh'] = pelvis @ thigh
        seg[f'{side}_shin'] = seg[f'{side}_thigh'] @ rot_x(
            -pose[f'{side}_knee'])
        seg[f'{side}_foot'] = seg[f'{side}_shin'] @ rot_x(
            pose[f'{side}_ankle'])
    return seg


def forward_kinematics(
    pose: Mapping[str, np.ndarray],
    part_scale: Mapping[str, float],
    pinned: Tuple[int, ...] = (14, 18)
) -> np.ndarray:
    """Joint positions of a pose track in the body frame.

    The lowest foot joint rests on the floor (``y = 0``) unless ``lift``
    raises the body, and the horizontal mean of the ``pinned`` joints stays
    where it is in the first frame, so bending the knees lowers the body and
    flexing the hips moves it backwards instead of sliding the feet.

    Args:
        pose (Mapping[str, np.ndarray]): One ``(T,)`` array per channel of
            :data:`POSE_CHANNELS`.
        part_scale (Mapping[str, float]): Length scale of every body part in
            :data:`BODY_PARTS` (1.0 is a 1.75 m adult).
        pinned (tuple[int]): Joints that must not slide horizontally.
            Defaults to ``(14, 18)`` (both ankles).

    Returns:
        np.ndarray: Positions of shape ``(T, 25, 3)``, float64.
    """
    missing = [name for name in POSE_CHANNELS if name not in pose]
    if missing:
        raise KeyError(f'pose track lacks the channels {missing}; expected '
                       f'every name of POSE_CHANNELS')
    seg = segment_rotations(pose)
    num_frames = len(pose['body_yaw'])
    joints = np.zeros((num_frames, NUM_JOINTS, 3))
    for child, parent, segment, part, offset in _BONES:
        bone = np.asarray(offset) * part_scale[part]
        joints[:, child] = joints[:, parent] + seg[segment] @ bone
    floor = joints[:, _FOOT_JOINTS, 1].min(axis=1)
    slide = joints[:, list(pinned)][:, :, [0, 2]].mean(axis=1)
    shift = np.zeros((num_frames, 3))
    shift[:, [0, 2]] = slide[:1] - slide
    shift[:, 0] += pose['root_x']
    shift[:, 2] += pose['root_z']
    shift[:, 1] = pose['lift'] - floor
    return joints + shift[:, None, :]
