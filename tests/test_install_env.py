"""tools/install_env.py: idempotent, and keeps a CUDA torch."""
import importlib.util
import os
import subprocess
import sys

from conftest import REPO

spec = importlib.util.spec_from_file_location('install_env',
                                              REPO / 'tools/install_env.py')
install_env = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install_env)


def test_cuda_torch_is_kept_and_pinned():
    install, constraints = install_env.torch_plan(
        dict(version='2.11.0', cuda='13.0'))
    assert install is False
    assert constraints == 'torch==2.11.0\n'
    assert install_env.venv_flags(dict(version='2.11.0', cuda='13.0')) == [
        '--system-site-packages'
    ]


def test_cpu_or_missing_torch_gets_the_pinned_pair():
    for info in (None, dict(version='2.13.0', cuda=None)):
        install, constraints = install_env.torch_plan(info)
        assert install is True
        assert 'torch==2.13.0' in constraints
        assert 'torchvision==0.28.0' in constraints
        assert install_env.venv_flags(info) == []


def test_every_requirement_file_is_installed():
    """A new requirements/*.txt must be wired into install_env (or fail)."""
    separate = {'torch.txt', 'openmmlab.txt'}  # own pip calls in main()
    listed = set(install_env.requirement_files(minilm=True))
    on_disk = {path.name for path in (REPO / 'requirements').glob('*.txt')}
    assert listed | separate == on_disk
    assert 'onnx.txt' in install_env.requirement_files(minilm=False)
    assert 'minilm.txt' not in install_env.requirement_files(minilm=False)


def test_probe_reads_this_interpreters_torch():
    import torch
    info = install_env.probe_torch(sys.executable)
    assert info['version'] == torch.__version__.split('+')[0]
    assert info['cuda'] == torch.version.cuda


def test_second_install_runs_no_pip_and_changes_nothing():
    venv = REPO / '.venv'
    stamp = venv / install_env.STAMP_NAME
    if not stamp.is_file():
        import pytest
        pytest.skip('the suite is not running from `make test`\'s .venv')
    before = stamp.read_text()
    # Any pip install would fail on this constraints file: exit 0 means
    # none ran.
    env = dict(os.environ, PIP_CONSTRAINT=str(REPO / 'no-such-file.txt'))
    result = subprocess.run(
        [sys.executable, 'tools/install_env.py', '--venv', str(venv)],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert 'environment up to date' in result.stdout
    assert stamp.read_text() == before
