"""Synthetic performers: body proportions, rest posture and habits.

A performer is drawn once per ``(seed, performer id)`` and stays the same
in every clip, like a subject of a real recording campaign, so a split by
performer (X-Sub) separates bodies and habits that the model has never seen.
"""
from dataclasses import dataclass
from typing import Dict

import numpy as np

from .skeleton import BODY_PARTS, POSE_CHANNELS


@dataclass(frozen=True)
class Performer:
    """Body and habits of one synthetic performer.

    Args:
        performer_id (int): 1-based performer number.
        part_scale (dict[str, float]): Length scale per body part (see
            :data:`~cocodiff_mm.datasets.demo.skeleton.BODY_PARTS`).
        rest (dict[str, float]): Rest value of every pose channel.
        speed (float): Habitual speed factor (1.0 is typical).
        amplitude (float): Habitual movement amplitude factor.
        sway (float): Amplitude of idle side-to-side sway, in metres.
        sway_hz (float): Frequency of the sway, in Hz.
    """

    performer_id: int
    part_scale: Dict[str, float]
    rest: Dict[str, float]
    speed: float
    amplitude: float
    sway: float
    sway_hz: float


#: Stream tags that keep the random streams of a performer apart.
BODY_STREAM, CLIP_STREAM, STYLE_STREAM = 1, 2, 3


def performer_seed(seed: int, performer_id: int, stream: int, *ids:
                   int) -> np.random.SeedSequence:
    """Seed sequence of one random stream of a performer.

    Seeds are built from identifiers, not drawn in sequence, so a clip does
    not change when more performers or repetitions are generated. The stream
    tag comes before the free identifiers because seed sequences that differ
    only by trailing zeros coincide.

    Args:
        seed (int): Seed of the whole data set, non-negative.
        performer_id (int): 1-based performer number.
        stream (int): One of :data:`BODY_STREAM`, :data:`CLIP_STREAM`,
            :data:`STYLE_STREAM`.
        *ids (int): Further identifiers (label, repetition).

    Returns:
        np.random.SeedSequence: The seed sequence.
    """
    if seed < 0:
        raise ValueError(f'seed must be non-negative, got {seed}')
    return np.random.SeedSequence([seed, performer_id, stream, *ids])


def sample_performer(seed: int, performer_id: int) -> Performer:
    """Draw the body and habits of one performer.

    Args:
        seed (int): Seed of the whole data set.
        performer_id (int): 1-based performer number.

    Returns:
        Performer: The performer.
    """
    rng = np.random.default_rng(performer_seed(seed, performer_id,
                                               BODY_STREAM))
    height = rng.uniform(0.8, 1.12)
    spread = dict(torso=0.05, shoulder=0.10, arm=0.06, hip=0.10, leg=0.06)
    part_scale = {
        part: float(height * rng.uniform(1 - spread[part], 1 + spread[part]))
        for part in BODY_PARTS
    }
    rest = {name: 0.0 for name in POSE_CHANNELS}
    rest.update(lumbar_bend=rng.uniform(-3, 5),
                lumbar_roll=rng.uniform(-2, 2),
                chest_bend=rng.uniform(0, 6),
                neck_bend=rng.uniform(0, 10))
    for side in ('r', 'l'):
        azim = rng.uniform(60, 90)
        rest.update({
            f'{side}_sh_elev': rng.uniform(5, 13),
            f'{side}_sh_azim': azim,
            f'{side}_sh_twist': rng.uniform(-10, 10),
            f'{side}_elbow': rng.uniform(6, 22),
            f'{side}_wrist': rng.uniform(-5, 10),
            f'{side}_hip_elev': rng.uniform(2, 6),
            f'{side}_hip_azim': 90.0,
            f'{side}_knee': rng.uniform(1, 6),
        })
    return Performer(performer_id=performer_id,
                     part_scale=part_scale,
                     rest={
                         key: float(value)
                         for key, value in rest.items()
                     },
                     speed=float(rng.uniform(0.85, 1.15)),
                     amplitude=float(rng.uniform(0.85, 1.15)),
                     sway=float(rng.uniform(0.0, 0.02)),
                     sway_hz=float(rng.uniform(0.2, 0.5)))
