"""Timing curves for procedural motions: envelopes, key frames, time warps.

Every function maps a normalised time array (values in ``[0, 1]``) to a
profile of the same shape, so motions can be written once and played at any
duration.
"""
from typing import Sequence

import numpy as np


def smoothstep(x: np.ndarray) -> np.ndarray:
    """Cubic ease-in / ease-out from 0 to 1, clipped outside ``[0, 1]``.

    Args:
        x (np.ndarray): Input values.

    Returns:
        np.ndarray: ``3 x^2 - 2 x^3`` of ``x`` clipped to ``[0, 1]``.
    """
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def envelope(u: np.ndarray, ramp: float) -> np.ndarray:
    """Smooth gate that rises over ``[0, ramp]`` and falls over
    ``[1 - ramp, 1]``.

    Args:
        u (np.ndarray): Normalised time in ``[0, 1]``.
        ramp (float): Fraction of the time spent rising (and falling), in
            ``(0, 0.5]``.

    Returns:
        np.ndarray: Gate values in ``[0, 1]``.
    """
    if not 0.0 < ramp <= 0.5:
        raise ValueError(f'envelope ramp must lie in (0, 0.5], got {ramp}')
    return smoothstep(u / ramp) * smoothstep((1.0 - u) / ramp)


def cycle_phase(u: np.ndarray, ramp: float, cycles: float) -> np.ndarray:
    """Number of completed cycles at each time of the gated middle part.

    Args:
        u (np.ndarray): Normalised time in ``[0, 1]``.
        ramp (float): Fraction of the time taken by each ramp of the
            envelope; the cycles run between the ramps.
        cycles (float): Number of cycles between the ramps.

    Returns:
        np.ndarray: Cycle counter rising from 0 to ``cycles``.
    """
    return np.clip((u - ramp) / (1.0 - 2.0 * ramp), 0.0, 1.0) * cycles


def keyframes(t: np.ndarray, times: Sequence[float],
              values: Sequence[float]) -> np.ndarray:
    """Interpolate key values with ease-in / ease-out between keys.

    Args:
        t (np.ndarray): Query times.
        times (Sequence[float]): Increasing key times.
        values (Sequence[float]): Value at each key; held before the first
            and after the last key.

    Returns:
        np.ndarray: Interpolated values, shape of ``t``.
    """
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if times.shape != values.shape or np.any(np.diff(times) <= 0):
        raise ValueError('keyframes needs as many values as strictly '
                         f'increasing times, got times={times.tolist()} and '
                         f'values={values.tolist()}')
    index = np.clip(
        np.searchsorted(times, t, side='right') - 1, 0,
        len(times) - 2)
    start, stop = times[index], times[index + 1]
    weight = smoothstep((t - start) / (stop - start))
    return values[index] + weight * (values[index + 1] - values[index])


def repeated_keyframes(count: np.ndarray, times: Sequence[float],
                       values: Sequence[float]) -> np.ndarray:
    """Play the same key-frame profile once per cycle.

    Args:
        count (np.ndarray): Cycle counter, e.g. from :func:`cycle_phase`;
            the profile restarts at every integer. Profiles should end
            where they start, so that cycles join smoothly.
        times (Sequence[float]): Key times within one cycle, in ``[0, 1]``.
        values (Sequence[float]): Value at each key.

    Returns:
        np.ndarray: Profile values, shape of ``count``.
    """
    whole = np.floor(count)
    # At an integer counter a cycle has just ended: report its last key.
    within = np.where((count > 0) & (count == whole), 1.0, count - whole)
    return keyframes(within, times, values)


def time_warp(num_frames: int, strength: float, waves: int) -> np.ndarray:
    """Monotonic, uneven clock from 0 to 1 (a performer speeding up and
    slowing down).

    Args:
        num_frames (int): Number of frames.
        strength (float): Speed modulation, in ``(-1, 1)``; 0 is a uniform
            clock.
        waves (int): Number of speed-up / slow-down waves, at least 1.

    Returns:
        np.ndarray: Clock values of shape ``(num_frames,)`` from 0 to 1.
    """
    if not -1.0 < strength < 1.0 or waves < 1:
        raise ValueError('time_warp needs -1 < strength < 1 and waves >= 1, '
                         f'got strength={strength}, waves={waves}')
    tau = np.linspace(0.0, 1.0, num_frames)
    return tau + strength / (2 * np.pi * waves) * np.sin(
        2 * np.pi * waves * tau)
