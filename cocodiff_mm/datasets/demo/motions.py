"""Joint-angle scripts of the eight demo actions.

Each action edits a pose track (see
:data:`~cocodiff_mm.datasets.demo.skeleton.POSE_CHANNELS`) that already
holds the performer's rest posture, idle sway included. Parameters come from
:meth:`MotionContext.pick`: a performer-and-action "style" value that is the
same in every repetition, plus a small per-repetition jitter. Angles are in
degrees, lengths in metres.
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from .curves import cycle_phase, envelope, repeated_keyframes, smoothstep
from .skeleton import POSE_CHANNELS, forward_kinematics


@dataclass
class MotionContext:
    """What an action script needs to animate one clip.

    Args:
        pose (dict[str, np.ndarray]): ``(T,)`` channel arrays, edited in place.
        u (np.ndarray): Normalised action time, ``(T,)``: 0 before the
            action, 1 after it.
        ramp (float): Fraction of the action time spent getting into (and
            out of) the action posture.
        cycles (float): Number of repetitions of the movement.
        amp (float): Amplitude factor of this clip (1.0 is typical).
        part_scale (dict[str, float]): The performer's body-part scales.
        style (np.random.Generator): Generator of the performer's style for
            this action; re-seeded identically for every repetition.
        rng (np.random.Generator): Generator of per-repetition variation.
    """

    pose: Dict[str, np.ndarray]
    u: np.ndarray
    ramp: float
    cycles: float
    amp: float
    part_scale: Dict[str, float]
    style: np.random.Generator
    rng: np.random.Generator

    @property
    def env(self) -> np.ndarray:
        """Gate from rest (0) to the action posture (1) and back."""
        return envelope(self.u, self.ramp)

    @property
    def count(self) -> np.ndarray:
        """Cycle counter running from 0 to :attr:`cycles` between ramps."""
        return cycle_phase(self.u, self.ramp, self.cycles)

    def pick(self, low: float, high: float, jitter: float = 0.1) -> float:
        """A style value in ``[low, high]`` plus per-repetition jitter.

        Args:
            low (float): Lower end of the style range.
            high (float): Upper end of the style range.
            jitter (float): Standard deviation of the per-repetition change,
                as a fraction of ``high - low``. Defaults to ``0.1``.

        Returns:
            float: The value for this clip.
        """
        value = self.style.uniform(low, high)
        return float(value + self.rng.normal(0.0, jitter * (high - low)))

    def blend(self,
              channel: str,
              target,
              gate: Optional[np.ndarray] = None) -> None:
        """Move a channel towards ``target`` by ``gate`` (default: env).

        Args:
            channel (str): Pose channel to edit.
            target (float | np.ndarray): Target value(s).
            gate (np.ndarray, optional): Blend weights in ``[0, 1]``.
                Defaults to ``None`` (use :attr:`env`).
        """
        gate = self.env if gate is None else gate
        current = self.pose[channel]
        self.pose[channel] = current + gate * (target - current)


def _arm(ctx: MotionContext,
         side: str,
         gate: Optional[np.ndarray] = None,
         **targets) -> None:
    """Blend several channels of one arm (``elev``, ``azim``, ...)."""
    names = dict(elev='sh_elev',
                 azim='sh_azim',
                 twist='sh_twist',
                 elbow='elbow',
                 wrist='wrist')
    for key, target in targets.items():
        ctx.blend(f'{side}_{names[key]}', target, gate)


def _flat_feet(
    ctx: MotionContext, sides: Tuple[str, ...] = ('r', 'l')) -> None:
    """Set the ankles so that the feet stay parallel to the floor."""
    for side in sides:
        pose = ctx.pose
        pose[f'{side}_ankle'] = pose[f'{side}_knee'] - pose[f'{side}_hip_elev']


def _legs_forward(ctx: MotionContext,
                  gate: np.ndarray,
                  splay: float,
                  sides: Tuple[str, ...] = ('r', 'l')) -> None:
    """Turn the hip swing plane to the front before the thighs lift."""
    for side in sides:
        ctx.blend(f'{side}_hip_azim', splay, smoothstep(4.0 * gate))


def wave_right_hand(ctx: MotionContext) -> None:
    """Right hand raised and swung side to side. Most performers hold the
    upper arm still (low in front up to high at the side) and rock the
    upright forearm about the elbow; some sway the whole raised arm."""
    phase = 2 * np.pi * ctx.count + ctx.pick(0, 2 * np.pi)
    wrist = ctx.pick(0, 20) * np.sin(phase - 0.8)
    if ctx.style.random() < 0.7:  # forearm rocks about the elbow
        swing = ctx.amp * ctx.pick(18, 32)
        elev = ctx.pick(50, 105)
        upright = 180.0 - elev + ctx.pick(-15, 10)  # forearm about vertical
        _arm(ctx,
             'r',
             elev=elev + 3 * np.sin(phase),
             azim=ctx.pick(25, 100),
             twist=ctx.pick(-100, -70),
             elbow=upright + swing * np.sin(phase),
             wrist=wrist)
    else:  # the whole arm, raised high, sways at the shoulder
        swing = ctx.amp * ctx.pick(12, 22)
        _arm(ctx,
             'r',
             elev=ctx.pick(115, 150),
             azim=ctx.pick(50, 90) + swing * np.sin(phase),
             twist=ctx.pick(-100, -70),
             elbow=ctx.pick(10, 35),
             wrist=wrist)
    ctx.blend('neck_bend', ctx.pick(-5, 5))


def circle_right_arm(ctx: MotionContext) -> None:
    """Right arm drawing circles: most performers turn the straight or
    slightly bent arm in a large circle at the shoulder, in front of or
    beside the body; some keep the upper arm raised and circle the forearm
    about the elbow."""
    direction = 1.0 if ctx.style.random() < 0.5 else -1.0
    phase = direction * 2 * np.pi * ctx.count + ctx.pick(0, 2 * np.pi)
    if ctx.style.random() < 0.7:  # whole arm from the shoulder
        radius = ctx.amp * ctx.pick(22, 40)
        _arm(ctx,
             'r',
             elev=ctx.pick(75, 105) + radius * np.sin(phase),
             azim=ctx.pick(20, 75) + 1.2 * radius * np.cos(phase),
             twist=ctx.pick(-50, -10),
             elbow=ctx.pick(5, 45),
             wrist=ctx.pick(0, 15))
    else:  # forearm about the elbow, upper arm held out to the side
        radius = ctx.amp * ctx.pick(20, 32)
        elev = ctx.pick(70, 100)
        _arm(ctx,
             'r',
             elev=elev,
             azim=ctx.pick(50, 95),
             twist=ctx.pick(-100, -80) + radius * np.cos(phase),
             elbow=180.0 - elev + radius * np.sin(phase),
             wrist=ctx.pick(0, 15))


def raise_both_arms(ctx: MotionContext) -> None:
    """Both arms lifted overhead, held briefly and lowered, once or twice."""
    lag = abs(ctx.pick(0.0, 0.1, jitter=0.2))  # left arm behind the right
    top = min(178.0, ctx.pick(140, 172) + 20 * (ctx.amp - 1))
    azim, elbow = ctx.pick(0, 85), ctx.pick(3, 25)
    for side, shift in (('r', 0.0), ('l', lag)):
        # Starts ``shift`` cycles late and catches up by the end.
        count = np.clip(ctx.count - shift, 0, None) * (ctx.cycles /
                                                       (ctx.cycles - shift))
        lift = repeated_keyframes(count, (0, 0.35, 0.62, 1), (0, 1, 1, 0))
        _arm(ctx,
             side,
             lift,
             elev=top,
             azim=azim,
             twist=-0.6 * azim,
             elbow=elbow,
             wrist=ctx.pick(-10, 10))
    lift = repeated_keyframes(ctx.count, (0, 0.35, 0.62, 1), (0, 1, 1, 0))
    ctx.blend('lumbar_bend', -ctx.pick(0, 6), lift)
    ctx.blend('neck_bend', -ctx.pick(0, 15), lift)
    # Some performers dip their knees and rise on their toes as they reach.
    dip = repeated_keyframes(ctx.count, (0, 0.2, 0.35, 1), (0, 1, 0, 0))
    reach = ctx.pick(0.0, 1.0)
    pose = ctx.pose
    for side in ('r', 'l'):
        pose[f'{side}_knee'] = pose[f'{side}_knee'] + reach * 20 * dip
        pose[f'{side}_hip_elev'] = pose[f'{side}_hip_elev'] + reach * 10 * dip
        pose[f'{side}_ankle'] = pose[f'{side}_ankle'] - reach * 15 * lift
    pose['lift'] = pose['lift'] + reach * 0.03 * lift


def _midline_azim(elev: float, twist: float, elbow: float, wrist: float,
                  part_scale: Dict[str, float]) -> float:
    """Arm azimuth that puts the right hand just beside the body midline."""
    azim = np.linspace(-45.0, 20.0, 66)
    pose = {name: np.zeros_like(azim) for name in POSE_CHANNELS}
    pose.update(r_sh_elev=np.full_like(azim, elev),
                r_sh_azim=azim,
                r_sh_twist=np.full_like(azim, twist),
                r_elbow=np.full_like(azim, elbow),
                r_wrist=np.full_like(azim, wrist))
    joints = forward_kinematics(pose, part_scale)
    gap = joints[:, 11, 0] - joints[:, 20, 0]  # hand beside the chest line
    return float(azim[np.argmin(np.abs(gap - 0.02))])


def clap_hands(ctx: MotionContext) -> None:
    """Both arms forward, hands brought together repeatedly, low in front
    of the belly up to in front of the face."""
    arm = dict(elev=ctx.pick(50, 100) + 15 * (ctx.amp - 1),
               twist=ctx.pick(20, 45),
               elbow=ctx.pick(15, 50),
               wrist=ctx.pick(-10, 10))
    closed = _midline_azim(part_scale=ctx.part_scale, **arm)
    opened = closed + ctx.pick(40, 70)
    clap = repeated_keyframes(ctx.count, (0, 0.5, 1), (0, 1, 0))
    for side in ('r', 'l'):
        _arm(ctx, side, azim=opened + (closed - opened) * clap, **arm)
    ctx.blend('neck_bend', ctx.pick(0, 10))


def punch_left_arm(ctx: MotionContext) -> None:
    """Left arm driven straight forward and back, from a boxing guard or
    from the arms hanging loosely."""
    guarded = ctx.style.random() < 0.7
    guard = dict(elev=ctx.pick(25, 42),
                 azim=ctx.pick(10, 30),
                 twist=ctx.pick(-10, 10),
                 elbow=ctx.pick(100, 125))
    for side in ('r', 'l') if guarded else ('l', ):
        _arm(ctx, side, **guard)
    strike = repeated_keyframes(ctx.count, (0, 0.3, 0.45, 1), (0, 1, 1, 0))
    _arm(ctx,
         'l',
         strike,
         elev=ctx.pick(70, 95) + 15 * (ctx.amp - 1),
         azim=ctx.pick(-8, 10),
         elbow=ctx.pick(0, 20))
    pose = ctx.pose
    pose['chest_twist'] = pose['chest_twist'] - ctx.pick(5, 20) * strike
    ctx.blend('lumbar_bend', ctx.pick(0, 10))


def kick_right_leg(ctx: MotionContext) -> None:
    """Right knee chambered, shin snapped forward, leg pulled back down."""
    height = min(95.0, ctx.amp * ctx.pick(35, 85))
    count = ctx.count
    hip = repeated_keyframes(count, (0, 0.3, 0.7, 1), (0, 1, 1, 0))
    snap = repeated_keyframes(count, (0, 0.3, 0.45, 0.58, 0.72, 1),
                              (0, 0, 1, 1, 0, 0))
    pose = ctx.pose
    _legs_forward(ctx, hip, ctx.pick(0, 15), sides=('r', ))
    chamber = ctx.pick(60, 110)
    pose['r_hip_elev'] = pose['r_hip_elev'] + height * hip
    pose['r_knee'] = pose['r_knee'] + chamber * hip * (1 - 0.9 * snap)
    pose['r_ankle'] = pose['r_ankle'] - ctx.pick(0, 25) * snap
    pose['lumbar_bend'] = pose['lumbar_bend'] - ctx.pick(0, 15) * hip
    for side in ('r', 'l'):
        _arm(ctx,
             side,
             elev=ctx.pick(10, 45),
             azim=ctx.pick(40, 95),
             elbow=ctx.pick(10, 60))


def squat(ctx: MotionContext) -> None:
    """Knees and hips bent deeply with feet flat; the arms reach forward,
    rest on the hips or hang, depending on the performer."""
    low = repeated_keyframes(ctx.count, (0, 0.4, 0.6, 1), (0, 1, 1, 0))
    depth = float(np.clip(ctx.amp * ctx.pick(0.55, 1.0), 0.5, 1.1))
    _legs_forward(ctx, low, ctx.pick(5, 30))
    pose = ctx.pose
    arms = ctx.style.choice(3, p=(0.6, 0.25, 0.15))
    for side in ('r', 'l'):
        pose[f'{side}_hip_elev'] = pose[f'{side}_hip_elev'] + low * depth * 95
        pose[f'{side}_knee'] = pose[f'{side}_knee'] + low * depth * 115
        if arms == 0:  # reach forward for balance
            _arm(ctx,
                 side,
                 low,
                 elev=ctx.pick(55, 95),
                 azim=ctx.pick(0, 25),
                 elbow=ctx.pick(5, 35))
        elif arms == 1:  # hands on the hips
            _arm(ctx,
                 side,
                 ctx.env,
                 elev=ctx.pick(25, 40),
                 azim=ctx.pick(80, 100),
                 twist=ctx.pick(40, 70),
                 elbow=ctx.pick(90, 115))
    _flat_feet(ctx)
    ctx.blend('lumbar_bend', ctx.pick(15, 40), low)
    ctx.blend('neck_bend', -ctx.pick(0, 15), low)


def jump_in_place(ctx: MotionContext) -> None:
    """Crouch with arms back, spring up with arms swinging, land softly."""
    times = (0, 0.25, 0.38, 0.5, 0.62, 0.76, 1)
    count, pose = ctx.count, ctx.pose
    crouch = ctx.amp * ctx.pick(0.5, 1.1)
    knee = crouch * repeated_keyframes(count, times, (0, 65, 5, 18, 5, 55, 0))
    hip = crouch * repeated_keyframes(count, times, (0, 45, 0, 12, 0, 35, 0))
    arms = ctx.pick(0.0, 1.0) * repeated_keyframes(
        count, times, (0, -35, 130, 110, 50, 5, 0))
    bend = repeated_keyframes(count, times, (0, 28, 0, 4, 0, 22, 0))
    air = np.clip((count - np.floor(count) - 0.38) / 0.24, 0, 1)
    air = np.where(count >= ctx.cycles, 0.0, air)
    gate = np.clip(hip / 20.0, 0, 1)
    _legs_forward(ctx, gate, ctx.pick(5, 25))
    for side in ('r', 'l'):
        pose[f'{side}_hip_elev'] = pose[f'{side}_hip_elev'] + hip
        pose[f'{side}_knee'] = pose[f'{side}_knee'] + knee
        swing = np.clip(np.abs(arms) / 40.0, 0, 1)
        _arm(ctx, side, swing, azim=ctx.pick(5, 40), twist=0.0)
        pose[f'{side}_sh_elev'] = pose[f'{side}_sh_elev'] + ctx.amp * arms
    _flat_feet(ctx)
    for side in ('r', 'l'):
        pose[f'{side}_ankle'] = pose[f'{side}_ankle'] - 25 * np.sin(
            np.pi * air)
    pose['lift'] = pose['lift'] + ctx.pick(0.08, 0.22) * 4 * air * (1 - air)
    pose['lumbar_bend'] = pose['lumbar_bend'] + crouch * bend


@dataclass(frozen=True)
class ActionSpec:
    """Timing of one demo action.

    Args:
        name (str): Class name.
        animate (Callable[[MotionContext], None]): Script editing the pose.
        cycles (tuple[float, float]): Range of repetitions per clip;
            integer ranges give whole repetitions.
        cycle_frames (float): Frames per repetition at normal speed (30 fps).
        ramp_frames (float): Frames spent getting into the posture (and out
            of it) at normal speed.
        pinned (tuple[int]): Joints that stay put on the floor.
    """

    name: str
    animate: Callable[[MotionContext], None]
    cycles: Tuple[float, float]
    cycle_frames: float
    ramp_frames: float
    pinned: Tuple[int, ...] = (14, 18)


#: The eight demo actions, in label order.
ACTIONS: Tuple[ActionSpec, ...] = (
    ActionSpec('wave right hand', wave_right_hand, (2, 4), 11, 12),
    ActionSpec('circle right arm', circle_right_arm, (1.25, 2.25), 20, 10),
    ActionSpec('raise both arms', raise_both_arms, (1, 2), 36, 2),
    ActionSpec('clap hands', clap_hands, (3, 6), 8, 10),
    ActionSpec('punch forward with left arm', punch_left_arm, (1, 3), 15, 10),
    ActionSpec('kick forward with right leg',
               kick_right_leg, (1, 2),
               30,
               8,
               pinned=(14, )),
    ActionSpec('squat down', squat, (1, 2), 42, 4),
    ActionSpec('jump in place', jump_in_place, (1, 3), 24, 2),
)
