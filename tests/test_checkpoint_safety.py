"""Checkpoints load with weights_only=True; importing the package changes
nothing about torch.load; arbitrary code in a checkpoint is refused."""
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from cocodiff_mm import runtime
from cocodiff_mm.engine.checkpoint_safety import (TRUST_ENV,
                                                  history_buffer_method)

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONWARNINGS='ignore', **env)
    full_env.pop(TRUST_ENV, None)
    full_env.update(env)
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def mmengine_checkpoint(tmp_path):
    """A checkpoint like mmengine's Runner saves: numpy values and a
    message hub whose HistoryBuffer pickles its statistics methods."""
    from mmengine.logging import HistoryBuffer

    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    history = HistoryBuffer()
    history.update(0.5)
    history.update(0.25)
    checkpoint = dict(
        meta=dict(epoch=3, seed=np.int64(7), hook_msgs=dict(
            best_score=np.float64(0.75))),
        state_dict=model.state_dict(),
        message_hub=dict(log_scalars={'train/loss': history},
                         runtime_info=dict(ids=np.arange(5))))
    path = tmp_path / 'epoch_3.pth'
    torch.save(checkpoint, path)
    return path, model


class WritesAFile:
    """A pickle payload: unpickling it runs ``open(path, 'w')``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


@pytest.fixture
def malicious_checkpoint(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'malicious.pth'
    torch.save(dict(state_dict={}, meta=WritesAFile(str(marker))), path)
    return path, marker


def test_a_fresh_process_resumes_an_mmengine_checkpoint(mmengine_checkpoint):
    """No HistoryBuffer exists yet in a fresh process: the allowed getattr
    must still know the built-in statistics methods."""
    path, _ = mmengine_checkpoint
    result = run_python(f"""
        from cocodiff_mm import runtime
        from mmengine.runner.checkpoint import _load_checkpoint
        runtime.setup()
        loaded = _load_checkpoint({str(path)!r})
        print(loaded['message_hub']['log_scalars']['train/loss'].mean())
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith('0.375')


def test_import_leaves_torch_load_and_set_device_alone(mmengine_checkpoint):
    """Also ``read_checkpoint`` allows the mmengine types for its own load
    only."""
    path, _ = mmengine_checkpoint
    result = run_python(f"""
        import pickle, torch
        set_device = torch.cuda.set_device
        import cocodiff_mm
        from cocodiff_mm.engine.checkpoint_match import read_checkpoint
        from mmengine.logging import HistoryBuffer
        from mmengine.runner.checkpoint import CheckpointLoader, load_from_local
        assert torch.cuda.set_device is set_device
        assert CheckpointLoader._get_checkpoint_loader('a.pth') is \\
            load_from_local
        try:
            torch.load({str(path)!r})
        except pickle.UnpicklingError as error:
            assert 'weights_only' in str(error)
            print('refused')
        read_checkpoint({str(path)!r})
        print('read; allowed after:',
              HistoryBuffer in torch.serialization.get_safe_globals())
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'refused' in result.stdout
    assert 'read; allowed after: False' in result.stdout


def test_read_checkpoint_keeps_the_process_allow_list(mmengine_checkpoint):
    """Its per-load allow-list must not remove what setup() allowed."""
    from mmengine.logging import HistoryBuffer

    from cocodiff_mm.engine.checkpoint_match import read_checkpoint

    runtime.setup()
    read_checkpoint(str(mmengine_checkpoint[0]))
    assert HistoryBuffer in torch.serialization.get_safe_globals()


def test_mmengine_checkpoint_loads_with_weights_only(mmengine_checkpoint):
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint

    runtime.setup()  # as the tools do (conftest did already)
    path, model = mmengine_checkpoint
    loaded = torch.load(path, weights_only=True)
    assert loaded['meta']['seed'] == 7
    loaded = _load_checkpoint(str(path), map_location='cpu')
    np.testing.assert_array_equal(
        loaded['message_hub']['runtime_info']['ids'], np.arange(5))
    history = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(history, HistoryBuffer)
    assert history.current() == 0.25 and history.mean() == 0.375
    fresh = nn.Linear(4, 3)
    load_checkpoint(fresh, str(path), map_location='cpu', strict=True)
    assert torch.equal(fresh.weight, model.weight)


def test_code_in_a_checkpoint_is_refused(malicious_checkpoint):
    from mmengine.runner.checkpoint import _load_checkpoint

    runtime.setup()
    path, marker = malicious_checkpoint
    with pytest.raises(pickle.UnpicklingError):
        _load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()


def test_the_allowed_getattr_reaches_statistics_methods_only():
    from mmengine.logging import HistoryBuffer

    assert history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for owner, name in [(HistoryBuffer, '__init__'), (os, 'system'),
                        (HistoryBuffer, '__subclasses__')]:
        with pytest.raises(pickle.UnpicklingError, match=TRUST_ENV):
            history_buffer_method(owner, name)


def test_trusting_is_an_explicit_opt_in(malicious_checkpoint):
    """The tools' launch path: refused by default, loaded with the opt-in."""
    path, marker = malicious_checkpoint
    code = f"""
        import argparse, pickle
        from mmengine.config import Config
        import cocodiff_mm
        from cocodiff_mm.engine.launch import prepare_to_run
        from mmengine.runner.checkpoint import _load_checkpoint
        cfg = Config(dict(model=dict()))
        prepare_to_run(cfg, argparse.Namespace(skip_data_check=True), ())
        try:
            _load_checkpoint({str(path)!r})
            print('loaded')
        except pickle.UnpicklingError:
            print('refused')
    """
    default = run_python(code)
    assert default.returncode == 0, default.stderr[-2000:]
    assert 'refused' in default.stdout and not marker.exists()
    trusted = run_python(code, **{TRUST_ENV: '1'})
    assert trusted.returncode == 0, trusted.stderr[-2000:]
    assert 'loaded' in trusted.stdout and marker.exists()
    assert 'only load files you trust' in trusted.stderr
