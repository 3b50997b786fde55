"""TensorBoard logging through tools/train.py's ``--cfg-options``.

mmengine's ``DictAction`` parses list items as strings, never as dicts, so
``visualizer.vis_backends="[dict(type='TensorboardVisBackend')]"`` gives a
list of strings that the visualizer cannot build. The working option sets
the type of the config's one backend by its list index.
"""
import importlib.util
import math
import sys

import pytest

from conftest import REPO, run_ok, tiny_options

CONFIG = 'configs/ctrgcn_ntu60_xsub.py'
#: The option the README documents.
TENSORBOARD_OPTION = 'visualizer.vis_backends.0.type=TensorboardVisBackend'


def train_tool():
    """tools/train.py as a module (nothing runs on import)."""
    spec = importlib.util.spec_from_file_location(
        'tool_train', REPO / 'tools' / 'train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_option_builds_a_tensorboard_backend(monkeypatch, tmp_path):
    from mmaction.registry import VISUALIZERS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.visualization import TensorboardVisBackend

    tool = train_tool()
    monkeypatch.setattr(sys, 'argv', [
        'train.py', str(REPO / CONFIG), '--cfg-options', TENSORBOARD_OPTION])
    args = tool.parse_args()
    cfg = tool.merge_args(Config.fromfile(args.config), args)
    assert [b['type'] for b in cfg.visualizer.vis_backends] == [
        'TensorboardVisBackend']
    init_default_scope('mmaction')
    visualizer = VISUALIZERS.build(
        dict(cfg.visualizer, name='tensorboard_option_test',
             save_dir=str(tmp_path)))
    # Building needs no tensorboard: the writer is created on first use.
    assert isinstance(
        visualizer.get_backend('TensorboardVisBackend'),
        TensorboardVisBackend)


def test_training_writes_tensorboard_scalars(ntu60_pickle, tmp_path):
    pytest.importorskip(
        'tensorboard',
        reason='tensorboard is not installed in this environment (pip '
        'install tensorboard): the event file cannot be written or read')
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator

    run_ok('tools/train.py', CONFIG, '--work-dir', str(tmp_path),
           '--cfg-options', *tiny_options(ntu60_pickle),
           'train_cfg.max_epochs=1', TENSORBOARD_OPTION)
    events = sorted(tmp_path.glob('*/vis_data/events.out.tfevents.*'))
    assert len(events) == 1, list(tmp_path.rglob('*'))
    accumulator = EventAccumulator(str(events[0]))
    accumulator.Reload()
    tags = set(accumulator.Tags()['scalars'])
    assert {'loss', 'loss_cls', 'lr', 'acc/top1'} <= tags, tags
    losses = accumulator.Scalars('loss')
    assert losses and all(math.isfinite(e.value) for e in losses)
    assert [e.step for e in losses] == sorted(e.step for e in losses)
