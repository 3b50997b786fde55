"""Random state derived from the run's seed and the epoch, not from history.

mmengine seeds ``random``, numpy and torch once, when the Runner starts, and
saves no random state in checkpoints. After ``--resume`` the generators
therefore start again from the seed, while the uninterrupted run continued
them through every earlier epoch (and through validation, whose
``UniformSampleFrames`` reseeds numpy's global generator): the resumed run
draws other clip frames, other diffusion noise and other re-initialised
weights. :class:`~cocodiff_mm.engine.TwoStageLoop` instead seeds every
epoch with :func:`seed_epoch`, and runs one-off random work (the stage-1
feature extraction) under :func:`seeded_rng`, so what an epoch draws depends
only on the seed and the epoch's index, wherever the run was started.
"""
import contextlib
import random
from typing import Iterator

import numpy as np
import torch

#: Streams of one epoch that must not share a seed.
EPOCH_STREAM = 0
FEATURE_STREAM = 1


def epoch_seed(seed: int, epoch: int, stream: int = EPOCH_STREAM) -> int:
    """A 32-bit seed for one epoch of a run.

    ``numpy.random.SeedSequence`` hashes the three numbers together, so runs
    of neighbouring seeds do not replay each other's epochs (as
    ``seed + epoch`` would: seed 1 epoch 0 = seed 0 epoch 1).

    Args:
        seed (int): The run's seed (``runner.seed``).
        epoch (int): 0-based global epoch.
        stream (int): Which use of the epoch this seed is for. Defaults to
            ``EPOCH_STREAM``.

    Returns:
        int: A seed in ``[0, 2**32)``.
    """
    entropy = [seed % (1 << 64), epoch, stream]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def seed_all(seed: int) -> None:
    """Seed ``random``, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def seed_epoch(seed: int, epoch: int) -> None:
    """Seed every generator for ``epoch`` of a run seeded with ``seed``."""
    seed_all(epoch_seed(seed, epoch))


@contextlib.contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Run a block with every generator seeded, then restore their states.

    The block's draws then neither depend on nor change what the code
    around it draws.

    Args:
        seed (int): Seed of the block.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    devices = [torch.cuda.current_device()
               ] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        seed_all(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
