"""An interrupted run resumes to exactly the weights of an uninterrupted one.

The shrunk NTU CoCoDiff config trains through all three stages twice, on the
CPU with the same seed, through the real ``tools/train.py`` in a subprocess:

* run A goes through uninterrupted;
* run B kills itself with SIGKILL half-way through an epoch of stage 1 (a
  test-only hook, ``tests/helpers/kill_hook.py``), is resumed with
  ``--resume`` (the newest checkpoint of its work dir), is killed again
  half-way through an epoch of stage 2, and is resumed again.

Every tensor of the final state dicts must be bit-identical: the model and
the optimizer state. One thread per process, so the CPU kernels reduce in
the same order in both runs. ``stage_times.json`` of run B must add up
across the resumes: each process continues the totals stored in the
checkpoint it resumed from (the test adds a marker offset to the first
resume's checkpoint and finds it, exactly, in the final file).
"""
import json
import re
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import torch
from mmengine.config import Config

from conftest import (REPO, make_skeleton_annotations, run_ok, run_tool,
                      tiny_options, write_pickle)

CONFIG = REPO / 'configs' / 'ctrgcn_cocodiff_ntu60_xsub.py'
HELPERS = Path(__file__).resolve().parent / 'helpers'
ENV = dict(PYTHONPATH=str(HELPERS), OMP_NUM_THREADS='1',
           MKL_NUM_THREADS='1')
KILLED = -9  # the return code of a process that got SIGKILL
#: Seconds added to the stage times of the checkpoint the first resume
#: reads; far more than the tiny run takes.
OFFSET = 1000.0


@pytest.fixture(scope='module')
def small_pickle(tmp_path_factory) -> Path:
    """An NTU-60 pickle with clips of 20 of the 60 classes: 20 training
    clips, 3 iterations per epoch of 8 (the last one short)."""
    path = tmp_path_factory.mktemp('resume_data') / 'ntu60_3d.pkl'
    return write_pickle(path, make_skeleton_annotations(20, per_class=2))


def process_logs(work: Path) -> List[str]:
    """The log of each process that trained in ``work``, in order."""
    return [path.read_text() for path in sorted(work.glob('*/*.log'))]


def announced(log: str) -> List[str]:
    """``stage/epoch-of-stage`` of each epoch a log announces."""
    return re.findall(r'Stage (\d) \([^)]*\): epoch (\d+)/', log)


def config_with_kill_hook(folder: Path) -> Path:
    """The CoCoDiff config plus :class:`KillHook` (off until its ``epoch``
    is set by ``--cfg-options``); returns the config's path."""
    hooks = [dict(h) for h in Config.fromfile(str(CONFIG)).custom_hooks]
    path = folder / 'with_kill_hook.py'
    path.write_text(
        f'_base_ = [{str(CONFIG)!r}]\n'
        "custom_imports = dict(imports=['cocodiff_mm', 'kill_hook'],"
        ' allow_failed_imports=False)\n'
        f"custom_hooks = {hooks + [dict(type='KillHook')]!r}\n")
    return path


def train(config: Path, work: Path, options: List[str],
          kill_epoch: Optional[int] = None, resume: bool = False):
    """``tools/train.py`` on ``config`` with seed 0; returns the result."""
    kill_index = len(Config.fromfile(str(CONFIG)).custom_hooks)
    args = ['tools/train.py', str(config), '--work-dir', str(work),
            '--seed', '0', *(['--resume'] if resume else []),
            '--cfg-options', *options]
    if kill_epoch is not None:
        args.append(f'custom_hooks.{kill_index}.epoch={kill_epoch}')
    if kill_epoch is None:
        return run_ok(*args, env=ENV)
    result = run_tool(*args, env=ENV)
    assert result.returncode == KILLED, (
        f'expected SIGKILL in epoch {kill_epoch}, got exit '
        f'{result.returncode}\n{result.stderr[-3000:]}')
    return result


def saved_stage_seconds(checkpoint: Path) -> Dict[str, float]:
    """The stage times a checkpoint carries (the message hub's info)."""
    saved = torch.load(checkpoint, map_location='cpu', weights_only=False)
    return saved['message_hub']['runtime_info']['stage_seconds']


def add_stage_seconds(checkpoint: Path, offset: float) -> Dict[str, float]:
    """Add ``offset`` to every stage time a checkpoint carries (nothing
    else changes); returns the new times.

    A resumed run must continue from these totals, so the offset shows up
    exactly in what it reports; without it a run that forgot the time
    before the resume could pass by chance (its own epoch being slower).
    """
    saved = torch.load(checkpoint, map_location='cpu', weights_only=False)
    times = saved['message_hub']['runtime_info']['stage_seconds']
    for key in times:
        times[key] += offset
    torch.save(saved, checkpoint)
    return dict(times)


def assert_same_tensors(a, b, where: str = '') -> None:
    """Every tensor in two nested containers is bit-identical."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and \
            a.shape == b.shape, where
        assert torch.equal(a, b), (
            f'{where}: max difference {(a.double() - b.double()).abs().max()}')
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_tensors(a[key], b[key], f'{where}.{key}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f'{where}[{index}]')
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'


def check_equivalence(tmp_path: Path, options: List[str], stages: List[int],
                      kills: List[int]) -> None:
    """Train A uninterrupted and B with a SIGKILL in each epoch of
    ``kills``; compare the final checkpoints and B's stage times.

    Args:
        tmp_path (Path): Folder of both work dirs.
        options (list[str]): ``--cfg-options`` of every run.
        stages (list[int]): Epochs of stages 0, 1 and 2.
        kills (list[int]): Global epochs (1-based) in which run B dies, one
            in stage 1 and one in stage 2, each after the stage's first
            epoch, so each resume starts in the middle of its stage.
    """
    config = config_with_kill_hook(tmp_path)
    total = sum(stages)
    options = [*options, *(f'train_cfg.stage{k}.epochs={n}'
                           for k, n in enumerate(stages)),
               'custom_hooks.0.warmup_epochs=1']
    run_a, run_b = tmp_path / 'a', tmp_path / 'b'
    train(config, run_a, options)

    train(config, run_b, options, kill_epoch=kills[0])
    # The epoch it died in left nothing; the one before is complete.
    assert not (run_b / f'epoch_{kills[0]}.pth').exists()
    before_first = add_stage_seconds(run_b / f'epoch_{kills[0] - 1}.pth',
                                     OFFSET)
    train(config, run_b, options, kill_epoch=kills[1], resume=True)
    assert not (run_b / f'epoch_{kills[1]}.pth').exists()
    before_second = saved_stage_seconds(run_b / f'epoch_{kills[1] - 1}.pth')
    train(config, run_b, options, resume=True)

    # Each resume started with the epoch (and stage) the kill interrupted.
    logs = process_logs(run_b)
    assert len(logs) == 3
    for killed, resumed, epoch in zip(logs, logs[1:], kills):
        assert f'resumed epoch: {epoch - 1},' in resumed
        assert announced(resumed)[0] == announced(killed)[-1]
    final = f'epoch_{total}.pth'
    a = torch.load(run_a / final, map_location='cpu', weights_only=False)
    b = torch.load(run_b / final, map_location='cpu', weights_only=False)
    assert_same_tensors(a['state_dict'], b['state_dict'], 'state_dict')
    assert_same_tensors(a['optimizer'], b['optimizer'], 'optimizer')
    for name in ('stage0_final.pth', 'stage1_final.pth'):
        assert_same_tensors(
            torch.load(run_a / name, weights_only=False)['state_dict'],
            torch.load(run_b / name, weights_only=False)['state_dict'], name)

    # stage_times.json adds up across the two resumes: stage 0 finished
    # before the first kill and keeps its time exactly; stage 1 and stage 2
    # each continue from what the resumed checkpoint held (the half epoch a
    # kill interrupted is retrained, so it is not counted). The OFFSET put
    # into the first resume's checkpoint must reach the final file.
    times = json.loads((run_b / 'stage_times.json').read_text())
    assert set(times) == {'stage0', 'stage1', 'stage2'}
    assert set(before_first) == {'stage0', 'stage1'}
    assert set(before_second) == {'stage0', 'stage1', 'stage2'}
    assert before_second['stage0'] == before_first['stage0']
    assert before_second['stage1'] > before_first['stage1'] > OFFSET
    assert 0 < before_second['stage2'] < OFFSET
    assert times['stage0'] == pytest.approx(before_first['stage0'], abs=0.01)
    assert times['stage1'] == pytest.approx(before_second['stage1'], abs=0.01)
    assert times['stage2'] > before_second['stage2']


def test_killed_twice_and_resumed_equals_uninterrupted(
        tmp_path, small_pickle, text_bank_cache):
    """1 + 2 + 2 epochs; killed in epoch 3 (stage 1) and 5 (stage 2)."""
    check_equivalence(tmp_path, tiny_options(small_pickle, text_bank_cache),
                      stages=[1, 2, 2], kills=[3, 5])


@pytest.mark.slow
def test_killed_late_in_longer_stages_equals_uninterrupted(
        tmp_path, small_pickle, text_bank_cache):
    """2 + 4 + 4 epochs; killed in epoch 6 (stage 1's last) and 9 (stage 2's
    third), after the lr warm-up and the CE(generated) ramp."""
    check_equivalence(tmp_path, tiny_options(small_pickle, text_bank_cache),
                      stages=[2, 4, 4], kills=[6, 9])
