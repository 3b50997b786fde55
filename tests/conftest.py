"""Shared fixtures: generated skeleton data in mmaction2's pickle format."""
import os
import pickle
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
# One OpenMP thread for torch here and in every tool the tests start (they
# inherit it), set before torch is imported: with the suite's tiny tensors
# the threads' start-up and spinning cost more than they share, and on a
# CPU shared with other work they run many times slower. OMP_NUM_THREADS
# given to pytest wins.
os.environ.setdefault('OMP_NUM_THREADS', '1')

from cocodiff_mm import runtime  # noqa: E402  (import fixes first)

# As the tools do: tests that build a Runner in-process load checkpoints
# with weights_only=True and write them atomically.
runtime.setup()

REPO = Path(__file__).resolve().parent.parent


def build_gcn_recognizer(backbone: Dict, out_channels: int,
                         num_classes: int = 60):
    """A ``RecognizerGCN`` of ``backbone`` with a ``GCNHead`` on its
    ``out_channels``."""
    from mmaction.registry import MODELS
    return MODELS.build(
        dict(type='RecognizerGCN',
             backbone=backbone,
             cls_head=dict(type='GCNHead', num_classes=num_classes,
                           in_channels=out_channels)))


def parameters_without_gradient(model) -> list:
    """Parameters of an NTU-shaped recognizer that a training loss on a
    random batch leaves without a finite, non-zero gradient."""
    import torch
    from mmaction.structures import ActionDataSample
    model.train()
    inputs = torch.randn(2, 1, 2, 8, 25, 3)
    samples = [ActionDataSample().set_gt_label(label) for label in (3, 7)]
    model(inputs, samples, mode='loss')['loss_cls'].backward()
    return [name for name, p in model.named_parameters()
            if p.grad is None or not torch.isfinite(p.grad).all()
            or p.grad.abs().sum() == 0]


def _named_instance_classes():
    """mmengine's classes that keep one instance per name, but the default
    scope (module-level builds rely on the 'mmaction' scope staying)."""
    from mmengine.registry import DefaultScope
    from mmengine.utils import ManagerMixin
    found, todo = [], [ManagerMixin]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls is not ManagerMixin and cls is not DefaultScope:
            found.append(cls)
    return found


@pytest.fixture(scope='session', autouse=True)
def own_logger_and_message_hub():
    """Each Runner a test builds gets its own logger, message hub and
    visualizer.

    mmengine keys them by experiment name, the config's name plus a
    timestamp to the second, and hands an existing one back: a Runner built
    in the same second as an earlier one (in the same test, or the previous
    test's) wrote its log into the earlier work dir and read the earlier
    runtime info. The tools build one Runner per process, so only the tests
    need this; forgetting the instances before each Runner is built makes
    each name new again.
    """
    from mmengine.runner import Runner
    build = Runner.__init__

    def build_with_own_instances(self, *args, **kwargs):
        for cls in _named_instance_classes():
            cls._instance_dict.clear()
        build(self, *args, **kwargs)

    # Session-wide: module-scoped fixtures build Runners before any
    # function-scoped fixture is set up.
    Runner.__init__ = build_with_own_instances
    yield
    Runner.__init__ = build


def pytest_addoption(parser):
    parser.addoption(
        '--runslow',
        action='store_true',
        default=False,
        help='also run the slow end-to-end tests (make test-all)')


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: long end-to-end run; only with --runslow')


def pytest_collection_modifyitems(config, items):
    if config.getoption('--runslow'):
        return
    skip = pytest.mark.skip(reason='slow end-to-end run: use --runslow '
                            '(make test-all)')
    for item in items:
        if 'slow' in item.keywords:
            item.add_marker(skip)


def shared_data_dir() -> Path:
    """The real data folder (``COCODIFF_SHARED_DATA`` or ../shared/data)."""
    return Path(os.environ.get('COCODIFF_SHARED_DATA',
                               REPO.parent / 'shared' / 'data'))


def make_skeleton_annotations(num_classes: int,
                              per_class: int = 4,
                              num_joints: int = 25,
                              num_coords: int = 3,
                              num_persons: int = 2,
                              frames: int = 20,
                              with_score: bool = False,
                              splits: Optional[Dict[str, str]] = None,
                              seed: int = 0) -> Dict:
    """Generated clips in the exact layout of mmaction2's skeleton pickles.

    Each class moves one joint along its own direction, so a model can
    learn the labels. Even samples go to the train split, odd ones to val.

    Args:
        num_classes (int): Number of classes.
        per_class (int): Clips per class. Defaults to 4.
        num_joints (int): Joints V. Defaults to 25.
        num_coords (int): Coordinates C. Defaults to 3.
        num_persons (int): Persons M. Defaults to 2.
        frames (int): Frames T. Defaults to 20.
        with_score (bool): Add ``keypoint_score`` (2D data). Defaults to
            False.
        splits (dict, optional): Names of the train and val splits,
            ``dict(train=..., val=...)``. Defaults to xsub_train/xsub_val.
        seed (int): Random seed. Defaults to 0.

    Returns:
        dict: ``dict(split=..., annotations=[...])``.
    """
    splits = splits or dict(train='xsub_train', val='xsub_val')
    rng = np.random.default_rng(seed)
    annotations, split = [], {splits['train']: [], splits['val']: []}
    time = np.linspace(0, 2 * np.pi, frames)
    for label in range(num_classes):
        direction = rng.normal(size=num_coords)
        direction /= np.linalg.norm(direction)
        joint = label % num_joints
        for index in range(per_class):
            name = f'S001C001P{index + 1:03d}R001A{label + 1:03d}'
            rest = rng.normal(scale=0.3, size=(num_persons, 1, num_joints,
                                               num_coords))
            keypoint = np.repeat(rest, frames, axis=1)
            keypoint[:, :, joint] += np.sin(time)[None, :, None] * direction
            keypoint += rng.normal(scale=0.02, size=keypoint.shape)
            sample = dict(
                frame_dir=name,
                label=label,
                total_frames=frames,
                keypoint=keypoint.astype(np.float32),
                img_shape=(1080, 1920),
                original_shape=(1080, 1920))
            if with_score:
                sample['keypoint_score'] = rng.uniform(
                    0.5, 1.0, size=(num_persons, frames,
                                    num_joints)).astype(np.float32)
            annotations.append(sample)
            split[splits['train' if index % 2 == 0 else 'val']].append(name)
    return dict(split=split, annotations=annotations)


def write_pickle(path: Path, data: Dict) -> Path:
    """Write annotations to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'wb') as file:
        pickle.dump(data, file)
    return path


def write_ddp_checkpoint(path: Path) -> Path:
    """A small checkpoint as DDP training writes it: ``module.`` before
    every key, a backbone, a classifier and a training-only denoiser
    tensor, saved at epoch 3."""
    import torch

    state = {
        'module.backbone.weight': torch.ones(2, 3),
        'module.cls_head.fc.weight': torch.ones(4, 2),
        'module.cls_head.denoiser.weight': torch.ones(5),
    }
    torch.save(dict(meta=dict(epoch=3), state_dict=state), path)
    return path


@pytest.fixture(scope='session')
def ntu60_pickle(tmp_path_factory) -> Path:
    """A small generated ``ntu60_3d.pkl`` (60 classes, 2 persons, 3D)."""
    path = tmp_path_factory.mktemp('data') / 'ntu60_3d.pkl'
    return write_pickle(path, make_skeleton_annotations(60, per_class=2))


@pytest.fixture(scope='session')
def utd_pickle(tmp_path_factory) -> Path:
    """The real UTD-MHAD skeletons converted by the tool (skips without
    ``../shared/data``)."""
    source = shared_data_dir() / 'utd_mhad' / 'skeleton'
    if not source.is_dir():
        pytest.skip(f'real UTD-MHAD data not found at {source} '
                    '(set COCODIFF_SHARED_DATA)')
    out = tmp_path_factory.mktemp('utd') / 'utd_mhad_3d.pkl'
    run_ok('tools/data/utd_mhad_to_pkl.py', '--data-dir', str(source),
           '--out', str(out))
    return out


@pytest.fixture(scope='session')
def ntu_baseline_run(tmp_path_factory, ntu60_pickle) -> Path:
    """Work dir of a 2-epoch baseline run of the NTU-60 config (shrunk by
    :func:`tiny_options`), as a user would have it: ``epoch_1.pth`` and
    ``epoch_2.pth``."""
    work = tmp_path_factory.mktemp('ntu_baseline_run')
    run_ok('tools/train.py', 'configs/ctrgcn_ntu60_xsub.py', '--work-dir',
           str(work), '--cfg-options', *tiny_options(ntu60_pickle),
           'train_cfg.max_epochs=2')
    return work


@pytest.fixture(scope='session')
def text_bank_cache() -> Path:
    """A text-bank cache kept between runs (``.cache/test_text_banks``).

    Bank files are keyed by a hash of their texts, encoder and weights and
    checked on load, so a stale file is never used; keeping them saves the
    MiniLM encoding (tens of seconds) on every run after the first.
    """
    path = Path(os.environ.get('COCODIFF_TEST_BANKS',
                               REPO / '.cache' / 'test_text_banks'))
    path.mkdir(parents=True, exist_ok=True)
    return path


#: ``--cfg-options`` training every stage of a CoCoDiff config for one
#: epoch: global epochs 1 (stage 0), 2 (stage 1) and 3 (stage 2).
ONE_EPOCH_PER_STAGE = ('train_cfg.stage0.epochs=1',
                       'train_cfg.stage1.epochs=1',
                       'train_cfg.stage2.epochs=1')


def tiny_options(ann_file: Path, bank_dir: Optional[Path] = None) -> list:
    """``--cfg-options`` that shrink an NTU config to seconds on a CPU.

    The model keeps its architecture with 8 base channels (features of 32),
    clips are 16 frames, and checkpoints are kept for every epoch.
    """
    options = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [
            f'{loader}.dataset.ann_file={ann_file}',
            f'{loader}.num_workers=0', f'{loader}.persistent_workers=False',
            f'{loader}.dataset.pipeline.2.clip_len=16'
        ]
    options += [
        'train_dataloader.batch_size=8', 'val_dataloader.batch_size=8',
        'test_dataloader.dataset.pipeline.2.num_clips=2',
        'model.backbone.base_channels=8', 'model.cls_head.in_channels=32',
        'default_hooks.checkpoint.max_keep_ckpts=-1',
        'default_hooks.logger.interval=2'
    ]
    if bank_dir is not None:
        options += [
            'model.cls_head.text_bank.encoder=minilm',
            f'model.cls_head.text_bank.cache_dir={bank_dir}',
            'model.cls_head.denoiser.widths=(32,)'
        ]
    return options


@pytest.fixture(scope='session')
def tiny_cocodiff_run(tmp_path_factory, ntu60_pickle,
                      text_bank_cache) -> Path:
    """The work dir of ``tools/train.py`` on the NTU-60 CoCoDiff config,
    :func:`tiny_options`, one epoch per stage, seed 0 (``epoch_1.pth`` to
    ``epoch_3.pth``): one training for the tests of what reads a trained
    CoCoDiff model or resumes from it. Read it; do not write in it."""
    work = tmp_path_factory.mktemp('tiny_cocodiff')
    run_ok('tools/train.py', 'configs/ctrgcn_cocodiff_ntu60_xsub.py',
           '--work-dir', str(work), '--seed', '0', '--cfg-options',
           *tiny_options(ntu60_pickle, text_bank_cache), *ONE_EPOCH_PER_STAGE)
    return work


def tiny_utd_options(ann_file: Path, batch_size: int) -> list:
    """``--cfg-options`` that shrink a UTD-MHAD config to seconds on a CPU:
    8 base channels, 16 frames, no repeats, no worker processes."""
    options = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [f'{loader}.num_workers=0',
                    f'{loader}.persistent_workers=False']
    return options + [
        f'train_dataloader.dataset.dataset.ann_file={ann_file}',
        f'val_dataloader.dataset.ann_file={ann_file}',
        f'test_dataloader.dataset.ann_file={ann_file}',
        'train_dataloader.dataset.times=1',
        'train_dataloader.dataset.dataset.pipeline.1.clip_len=16',
        'val_dataloader.dataset.pipeline.1.clip_len=16',
        f'train_dataloader.batch_size={batch_size}',
        'val_dataloader.batch_size=64',
        'model.backbone.base_channels=8', 'model.cls_head.in_channels=32'
    ]


def run_tool(*args: str, timeout: int = 600, env: Optional[dict] = None):
    """Run ``python tools/...`` from the repository root; return the result.

    Raises:
        AssertionError: With the tail of the output when it exits non-zero.
    """
    import subprocess
    import sys

    full_env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONWARNINGS='ignore')
    full_env.update(env or {})
    result = subprocess.run([sys.executable, *args],
                            cwd=REPO,
                            env=full_env,
                            capture_output=True,
                            text=True,
                            timeout=timeout)
    return result


#: Tool modules loaded by :func:`load_tool`, by script path.
_TOOL_MODULES: Dict[str, object] = {}


def load_tool(script: str):
    """``tools/...py`` (relative to the repository) as a module, loaded
    once, to call its ``main()`` in this process."""
    import importlib.util

    if script not in _TOOL_MODULES:
        spec = importlib.util.spec_from_file_location(
            f'_tool_{Path(script).stem}', REPO / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _TOOL_MODULES[script] = module
    return _TOOL_MODULES[script]


def run_tool_in_process(script: str, *args: str,
                        env: Optional[dict] = None):
    """``python SCRIPT ARGS`` as a call of the tool's ``main()`` here.

    For commands a tool refuses before it trains: a fresh interpreter pays
    several seconds of imports per launch, most of the suite's time when
    every refusal had one. The tool's own prints to stdout and stderr are
    captured; ``sys.exit`` (argparse's usage errors) keeps its status, and
    an uncaught exception becomes status 1 with its traceback on stderr, as
    the interpreter would report it. It runs in the repository root with
    ``env`` added; both are undone afterwards. Loggers made before the call
    keep their streams, and Python warnings go to pytest: check the
    ``error:`` line and the disk, not the Runner's log.

    Returns:
        subprocess.CompletedProcess: ``returncode``, ``stdout``, ``stderr``.
    """
    import contextlib
    import io
    import subprocess
    import sys
    import traceback

    main = load_tool(script).main
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_env, saved_argv, saved_cwd = dict(os.environ), sys.argv, os.getcwd()
    os.environ.update(env or {})
    sys.argv = [script, *args]
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(stdout), \
                contextlib.redirect_stderr(stderr):
            try:
                status = main()
            except SystemExit as exit_:
                status = exit_.code if isinstance(exit_.code, int) else (
                    0 if exit_.code is None else 1)
            except Exception:  # noqa: BLE001 (reported as Python would)
                traceback.print_exc()
                status = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
        os.chdir(saved_cwd)
    return subprocess.CompletedProcess([script, *args], status,
                                       stdout.getvalue(), stderr.getvalue())


def run_ok(*args: str, **kwargs):
    """:func:`run_tool` that must succeed."""
    result = run_tool(*args, **kwargs)
    assert result.returncode == 0, (
        f'{" ".join(args)} exited {result.returncode}\n'
        f'{result.stdout[-3000:]}\n{result.stderr[-5000:]}')
    return result


def read_log(work_dir: Path) -> str:
    """Text of every mmengine log file under ``work_dir``."""
    return '\n'.join(
        path.read_text() for path in sorted(work_dir.glob('*/*.log')))


def run_dist_train(config: str, processes: int, *args: str,
                   timeout: int = 600):
    """``bash tools/dist_train.sh CONFIG N ARGS`` on a free loopback port.

    Each process gets one thread: several processes share 2 cores.

    Raises:
        AssertionError: With the end of stderr when it exits non-zero.
    """
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHON=sys.executable,
               PORT=str(port), PYTHONWARNINGS='ignore')
    result = subprocess.run(
        ['bash', 'tools/dist_train.sh', config, str(processes), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    # torchrun's own traceback fills the end of stderr: keep enough to
    # show the failing rank's output above it.
    assert result.returncode == 0, (
        f'{result.stdout[-3000:]}\n{result.stderr[-10000:]}')
    return result
