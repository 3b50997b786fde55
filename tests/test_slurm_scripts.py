"""tools/slurm_train.sh and tools/slurm_test.sh, with a fake ``srun``.

The fake records its arguments and environment; with ``FAKE_SRUN_RUN=1`` it
then runs the command as the one task of a one-node Slurm job (the
``SLURM_*`` variables srun would set), so ``--launcher slurm`` goes through
mmengine's Slurm initialisation for real, on the CPU with gloo.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, tiny_options

TRAIN = 'tools/slurm_train.sh'
TEST = 'tools/slurm_test.sh'

FAKE_SRUN = r'''#!/usr/bin/env bash
# Record the arguments, one per line, and the environment as JSON.
printf '%s\n' "$@" > "$FAKE_SRUN_DIR/args"
"$FAKE_PYTHON" -c 'import json, os; print(json.dumps(dict(os.environ)))' \
    > "$FAKE_SRUN_DIR/env.json"
while [ $# -gt 0 ]; do
    case "$1" in -p) shift 2 ;; -*) shift ;; *) break ;; esac
done
[ -n "${FAKE_SRUN_RUN:-}" ] || exit 0
export SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 \
    SLURM_NODELIST=localhost MASTER_ADDR=127.0.0.1
exec "$@"
'''


@pytest.fixture
def fake_srun(tmp_path):
    """Environment with the fake ``srun`` first on PATH; the folder where
    it records."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if k not in ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK',
                        'SRUN_ARGS', 'PORT', 'MASTER_PORT')}
    env.update(PATH=f'{bin_dir}{os.pathsep}{env["PATH"]}',
               FAKE_SRUN_DIR=str(tmp_path), FAKE_PYTHON=sys.executable,
               PYTHON=sys.executable,
               HF_HUB_OFFLINE='1', PYTHONWARNINGS='ignore')
    return env, tmp_path


def run_script(script: str, *args: str, env: dict, **extra_env: str):
    """``bash script args`` from the repository root."""
    return subprocess.run(['bash', script, *args], cwd=REPO,
                          env=dict(env, **extra_env), capture_output=True,
                          text=True, timeout=300)


def recorded(folder: Path):
    """The fake srun's arguments and environment."""
    args = (folder / 'args').read_text().splitlines()
    return args, json.loads((folder / 'env.json').read_text())


def srun_options(args: list) -> list:
    """The arguments before the Python executable."""
    return args[:args.index(sys.executable)]


@pytest.mark.parametrize('script', [TRAIN, TEST])
def test_scripts_parse(script):
    assert subprocess.run(['bash', '-n', script], cwd=REPO).returncode == 0
    assert os.access(REPO / script, os.X_OK)


#: What each script passes to its Python tool after the srun options, for
#: the positional arguments ``p job configs/x.py ARG4``.
TOOL_ARGS = {
    TRAIN: ['train.py', 'configs/x.py', '--work-dir=ARG4'],
    TEST: ['test.py', 'configs/x.py', 'ARG4'],
}


def tool_command(script: str, *extra: str) -> list:
    """The Python command line ``srun`` must receive."""
    tool, *positional = TOOL_ARGS[script]
    return [sys.executable, '-u', str(REPO / 'tools' / tool), *positional,
            '--launcher=slurm', *extra]


@pytest.mark.parametrize('script', [TRAIN, TEST])
def test_defaults(script, fake_srun):
    env, folder = fake_srun
    result = run_script(script, 'gpu_part', 'cocodiff', 'configs/x.py',
                        'ARG4', '--seed', '0', '--cfg-options',
                        'model.cls_head.text_bank.texts=my texts',
                        env=env)
    assert result.returncode == 0, result.stderr
    args, srun_env = recorded(folder)
    assert srun_options(args) == [
        '-p', 'gpu_part', '--job-name=cocodiff', '--gres=gpu:8',
        '--ntasks=8', '--ntasks-per-node=8', '--cpus-per-task=5',
        '--kill-on-bad-exit=1']
    # Arguments keep their spaces.
    assert args[len(srun_options(args)):] == tool_command(
        script, '--seed', '0', '--cfg-options',
        'model.cls_head.text_bank.texts=my texts')
    assert 12000 <= int(srun_env['MASTER_PORT']) < 32000


@pytest.mark.parametrize('script', [TRAIN, TEST])
def test_resources_from_the_environment(script, fake_srun):
    env, folder = fake_srun
    result = run_script(script, 'p2', 'eval', 'configs/x.py', 'ARG4',
                        '--dump', 'preds.pkl', env=env, GPUS='16',
                        GPUS_PER_NODE='4', CPUS_PER_TASK='2',
                        SRUN_ARGS='--quotatype=auto  --time=1:00:00',
                        PORT='29123')
    assert result.returncode == 0, result.stderr
    args, srun_env = recorded(folder)
    assert srun_options(args) == [
        '-p', 'p2', '--job-name=eval', '--gres=gpu:4', '--ntasks=16',
        '--ntasks-per-node=4', '--cpus-per-task=2', '--kill-on-bad-exit=1',
        '--quotatype=auto', '--time=1:00:00']
    assert args[len(srun_options(args)):] == tool_command(
        script, '--dump', 'preds.pkl')
    assert srun_env['MASTER_PORT'] == '29123'


@pytest.mark.parametrize('script', [TRAIN, TEST])
def test_too_few_arguments_print_the_usage(script, fake_srun):
    env, folder = fake_srun
    result = run_script(script, 'part', 'job', 'configs/x.py', env=env)
    assert result.returncode == 2
    assert result.stderr.startswith('usage: bash ')
    assert not (folder / 'args').exists()


def test_a_slurm_launched_run_trains_and_tests(fake_srun, ntu60_pickle):
    env, folder = fake_srun
    work = folder / 'work'
    one_task = dict(GPUS='1', GPUS_PER_NODE='1', PORT='29431',
                    FAKE_SRUN_RUN='1')
    result = run_script(TRAIN, 'p', 'job', 'configs/ctrgcn_ntu60_xsub.py',
                        str(work), '--cfg-options',
                        *tiny_options(ntu60_pickle), 'train_cfg.max_epochs=1',
                        env=env, **one_task)
    assert result.returncode == 0, result.stderr[-3000:]
    log = '\n'.join(p.read_text() for p in work.glob('*/*.log'))
    assert 'Distributed launcher: slurm' in log
    assert 'Distributed training: True' in log
    metrics = folder / 'metrics.json'
    result = run_script(TEST, 'p', 'job', 'configs/ctrgcn_ntu60_xsub.py',
                        str(work / 'epoch_1.pth'), '--work-dir',
                        str(folder / 'test'), '--metrics-out', str(metrics),
                        '--cfg-options', *tiny_options(ntu60_pickle),
                        env=env, **one_task)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'acc/top1' in json.loads(metrics.read_text())
