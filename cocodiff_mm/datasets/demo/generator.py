"""Procedural demo data set: 3D skeleton action clips in the NTU RGB+D layout.

Clips are animated with forward kinematics on a 25-joint skeleton with
constant bone lengths (:mod:`.skeleton`), scripted per action
(:mod:`.motions`) and varied per performer (:mod:`.performer`) and per
repetition: duration and speed, amplitude, idle frames, viewpoint, position,
camera height and tilt, and sensor noise. The result is an mmaction2
skeleton annotation file with a cross-subject split, so CoCoDiff can be
trained end to end without downloading anything::

    python tools/data/make_demo_data.py --out data/skeleton/demo_3d.pkl
"""
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np

from ..pickle_io import write_annotations
from .curves import time_warp
from .motions import ACTIONS, ActionSpec, MotionContext
from .performer import (CLIP_STREAM, STYLE_STREAM, Performer, performer_seed,
                        sample_performer)
from .skeleton import NUM_JOINTS, forward_kinematics, rot_x, rot_y

#: Class names of the demo data set, in label order.
DEMO_CLASSES: Tuple[str, ...] = tuple(action.name for action in ACTIONS)

#: Frame rate the clips are animated at.
FPS = 30

#: Shortest and longest clip, in frames.
MIN_FRAMES, MAX_FRAMES = 40, 90

#: Image size recorded in the annotations (Kinect v2 colour camera).
IMG_SHAPE = (1080, 1920)

# Per-joint sensor noise relative to the trunk: Kinect jitters most at the
# extremities (wrists, hands, hand tips, thumbs, ankles, feet).
_NOISE_WEIGHT = np.ones(NUM_JOINTS)
_NOISE_WEIGHT[[5, 9, 13, 17]] = 1.5
_NOISE_WEIGHT[[6, 7, 10, 11, 14, 15, 18, 19, 21, 22, 23, 24]] = 2.5


def clip_name(performer_id: int, label: int, repetition: int) -> str:
    """``frame_dir`` of a clip, in the spirit of NTU names (1-based ids).

    Args:
        performer_id (int): 1-based performer number.
        label (int): 0-based class label.
        repetition (int): 0-based repetition number.

    Returns:
        str: E.g. ``'demo_P001A001R001'``.
    """
    return f'demo_P{performer_id:03d}A{label + 1:03d}R{repetition + 1:03d}'


def _wander(rng: np.random.Generator, t: np.ndarray,
            amplitude: float) -> np.ndarray:
    """Slow random drift: two sinusoids of random frequency and phase."""
    hz = rng.uniform(0.1, 0.6, size=2)
    phase = rng.uniform(0, 2 * np.pi, size=2)
    waves = np.sin(2 * np.pi * hz[:, None] * t + phase[:, None]).sum(0)
    return amplitude * rng.uniform(0.3, 1.0) * waves / 2


def _idle_track(performer: Performer, num_frames: int,
                rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Rest posture with sway, breathing and fidgeting unrelated to the
    action, so that a classifier has to find the joints that matter."""
    pose = {
        name: np.full(num_frames, value)
        for name, value in performer.rest.items()
    }
    t = np.arange(num_frames) / FPS
    phase = 2 * np.pi * performer.sway_hz * t + rng.uniform(0, 2 * np.pi)
    pose['root_x'] += performer.sway * np.sin(phase) + _wander(rng, t, 0.03)
    pose['root_z'] += _wander(rng, t, 0.03)
    pose['lumbar_roll'] += 60 * performer.sway * np.sin(phase + 0.4)
    pose['chest_bend'] += 0.8 * np.sin(2 * np.pi * 0.25 * t +
                                       rng.uniform(0, 2 * np.pi))
    pose['body_yaw'] += rng.uniform(-10, 10) + _wander(rng, t, 8)
    pose['lumbar_twist'] += _wander(rng, t, 10)
    pose['lumbar_bend'] += _wander(rng, t, 4)
    pose['neck_bend'] += _wander(rng, t, 8)
    for side in ('r', 'l'):
        pose[f'{side}_sh_elev'] += _wander(rng, t, 14)
        pose[f'{side}_sh_azim'] += _wander(rng, t, 10)
        pose[f'{side}_elbow'] += _wander(rng, t, 18)
    return pose


def _timing(action: ActionSpec, performer: Performer,
            rng: np.random.Generator) -> Tuple[int, int, int, float, float]:
    """Idle frames before / after, action frames, ramp fraction, cycles."""
    low, high = action.cycles
    if float(low).is_integer() and float(high).is_integer():
        cycles = float(rng.integers(int(low), int(high) + 1))
    else:
        cycles = float(rng.uniform(low, high))
    speed = performer.speed * rng.uniform(0.85, 1.15)
    before, after = (int(n) for n in rng.integers(0, 21, size=2))
    frames = (2 * action.ramp_frames + cycles * action.cycle_frames) / speed
    frames = int(
        np.clip(round(frames), MIN_FRAMES - before - after,
                MAX_FRAMES - before - after))
    ramp = float(np.clip(action.ramp_frames / speed / frames, 0.02, 0.45))
    return before, frames, after, ramp, cycles


def _camera(points: np.ndarray, rng: np.random.Generator,
            max_view_angle: float) -> np.ndarray:
    """Body-frame points (metres, floor at ``y = 0``) to Kinect camera
    space: turned about the vertical axis, placed 2.5-3.5 m in front of a
    camera 0.7-1.1 m above the floor and tilted by -3 to 10 degrees. Like
    the body frame, camera space has ``y`` up, ``z`` away from the camera
    and ``x`` towards the right hand of a performer who faces the camera."""
    yaw = rng.uniform(-max_view_angle, max_view_angle)
    position = np.array([
        rng.uniform(-0.4, 0.4), -rng.uniform(0.7, 1.1),
        rng.uniform(2.5, 3.5)
    ])
    world = points @ rot_y(yaw).T + position
    return world @ rot_x(rng.uniform(-3, 10)).T


def generate_clip(performer: Performer,
                  label: int,
                  repetition: int,
                  seed: int = 0,
                  noise_scale: float = 1.0,
                  max_view_angle: float = 45.0) -> np.ndarray:
    """Animate one clip.

    Args:
        performer (Performer): Who performs it.
        label (int): 0-based class label, an index into
            :data:`DEMO_CLASSES`.
        repetition (int): 0-based repetition number.
        seed (int): Seed of the whole data set. Defaults to ``0``.
        noise_scale (float): Multiplier of the sensor noise; 0 gives exact
            forward kinematics. Defaults to ``1.0``.
        max_view_angle (float): Largest rotation of the performer about the
            vertical axis relative to the camera, in degrees. Defaults to
            ``45.0``.

    Returns:
        np.ndarray: Joint positions in metres, float32, shape ``(T, 25, 3)``.
    """
    if not 0 <= label < len(ACTIONS):
        raise ValueError(f'label must lie in [0, {len(ACTIONS)}), got {label}')
    if noise_scale < 0 or not 0 <= max_view_angle <= 90:
        raise ValueError('noise_scale must be >= 0 and max_view_angle in '
                         f'[0, 90] degrees, got {noise_scale} and '
                         f'{max_view_angle}')
    action = ACTIONS[label]
    rng = np.random.default_rng(
        performer_seed(seed, performer.performer_id, CLIP_STREAM, label,
                       repetition))
    style = np.random.default_rng(
        performer_seed(seed, performer.performer_id, STYLE_STREAM, label))
    before, frames, after, ramp, cycles = _timing(action, performer, rng)
    num_frames = before + frames + after
    clock = time_warp(frames, rng.uniform(-0.5, 0.5), int(rng.integers(1, 3)))
    u = np.concatenate([np.zeros(before), clock, np.ones(after)])
    pose = _idle_track(performer, num_frames, rng)
    amp = performer.amplitude * rng.uniform(0.8, 1.2)
    action.animate(
        MotionContext(pose, u, ramp, cycles, amp, performer.part_scale, style,
                      rng))
    points = forward_kinematics(pose, performer.part_scale, action.pinned)
    points = _camera(points, rng, max_view_angle)
    sigma = noise_scale * rng.uniform(0.004, 0.012) * _NOISE_WEIGHT
    noise = rng.normal(0.0, 1.0, points.shape) * sigma[:, None]
    return (points + noise).astype(np.float32)


def xsub_split(num_performers: int) -> Tuple[List[int], List[int]]:
    """Cross-subject split: odd performers train, even performers validate.

    Args:
        num_performers (int): Number of performers, at least 2.

    Returns:
        tuple[list[int], list[int]]: 1-based training and validation ids.
    """
    if num_performers < 2:
        raise ValueError('num_performers must be at least 2 so that both '
                         f'splits are non-empty, got {num_performers}')
    ids = range(1, num_performers + 1)
    return [i for i in ids if i % 2], [i for i in ids if not i % 2]


def generate_demo_annotations(num_performers: int = 20,
                              repeats: int = 3,
                              seed: int = 0,
                              noise_scale: float = 1.0,
                              max_view_angle: float = 45.0) -> dict:
    """Generate the demo data set as an mmaction2 skeleton annotation dict.

    Every performer does every action ``repeats`` times. The same arguments
    always give identical arrays.

    Args:
        num_performers (int): Number of performers, at least 2; odd ones
            form ``'xsub_train'``, even ones ``'xsub_val'``. Defaults to
            ``20``.
        repeats (int): Repetitions of each action per performer, at least
            1. Defaults to ``3``.
        seed (int): Seed of the whole data set. Defaults to ``0``.
        noise_scale (float): Multiplier of the sensor noise; 0 gives exact
            forward kinematics. Defaults to ``1.0``.
        max_view_angle (float): Largest rotation of the performer about the
            vertical axis relative to the camera, in degrees. Defaults to
            ``45.0``.

    Returns:
        dict: ``dict(split=dict(xsub_train=[...], xsub_val=[...]),
        annotations=[...])``; each annotation holds ``frame_dir``, ``label``,
        ``total_frames``, ``keypoint`` (float32, ``(1, T, 25, 3)``, metres),
        ``img_shape`` and ``original_shape``.
    """
    if repeats < 1:
        raise ValueError(f'repeats must be at least 1, got {repeats}')
    train_ids, val_ids = xsub_split(num_performers)
    annotations, split = [], dict(xsub_train=[], xsub_val=[])
    for performer_id in range(1, num_performers + 1):
        performer = sample_performer(seed, performer_id)
        part = 'xsub_train' if performer_id in train_ids else 'xsub_val'
        for label in range(len(DEMO_CLASSES)):
            for repetition in range(repeats):
                clip = generate_clip(performer, label, repetition, seed,
                                     noise_scale, max_view_angle)
                name = clip_name(performer_id, label, repetition)
                annotations.append(
                    dict(frame_dir=name,
                         label=label,
                         total_frames=clip.shape[0],
                         keypoint=clip[None],
                         img_shape=IMG_SHAPE,
                         original_shape=IMG_SHAPE))
                split[part].append(name)
    return dict(split=split, annotations=annotations)


def write_demo_dataset(out_file: Union[str, Path], **kwargs) -> Path:
    """Generate the demo data set and pickle it atomically.

    The pickle goes to a temporary file beside ``out_file`` that then
    replaces it (:func:`~cocodiff_mm.datasets.pickle_io.write_annotations`),
    so readers never see a half-written file.

    Args:
        out_file (str | Path): Destination ``.pkl`` file; missing parent
            folders are created.
        **kwargs: Arguments of :func:`generate_demo_annotations`
            (``num_performers``, ``repeats``, ``seed``, ``noise_scale``,
            ``max_view_angle``).

    Returns:
        Path: The written file.
    """
    data = generate_demo_annotations(**kwargs)
    return write_annotations(out_file, data['split'], data['annotations'])
