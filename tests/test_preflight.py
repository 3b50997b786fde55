"""Tests of the pre-training data check and the device set-up.

:func:`check_data` must name the file, the config field and the expected
value when an annotation file is missing or does not match the config;
:func:`configure_device` picks the backend. ``tools/train.py`` on such files
(exit 2 within seconds, nothing in the work dir) and on one-frame clips (a
warning) is in ``tests/test_faults.py``.
"""
import copy
import logging
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch
from mmengine.config import Config

from cocodiff_mm.engine import device as device_module
from cocodiff_mm.engine.device import configure_device
from cocodiff_mm.engine.preflight import (MAX_LISTED, PreflightError,
                                          check_data, prepare_hint)
from cocodiff_mm.utils.config_keys import ConfigError
from conftest import make_skeleton_annotations, write_pickle

REPO = Path(__file__).resolve().parents[1]
NTU60_CONFIG = REPO / 'configs' / 'ctrgcn_ntu60_xsub.py'
LOADERS = ('train_dataloader', 'val_dataloader')
TRAIN_FIELD = 'train_dataloader.dataset.ann_file'
#: Name of the first generated sample (class 0, performer 1).
FIRST_SAMPLE = 'S001C001P001R001A001'


# --------------------------------------------------------------------------
# check_data
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def ntu60_cfg() -> Config:
    return Config.fromfile(str(NTU60_CONFIG))


def with_ann_file(cfg: Config,
                  path: Path,
                  data_root: Optional[str] = None) -> Config:
    """A copy of ``cfg`` whose train and val loaders read ``path``."""
    cfg = copy.deepcopy(cfg)
    for loader in LOADERS:
        cfg[loader].dataset.ann_file = str(path)
        if data_root is not None:
            cfg[loader].dataset.data_root = data_root
    return cfg


def test_check_data_accepts_matching_file(ntu60_cfg, ntu60_pickle):
    check_data(with_ann_file(ntu60_cfg, ntu60_pickle), LOADERS)


def test_check_data_joins_data_root(ntu60_cfg, ntu60_pickle):
    cfg = with_ann_file(ntu60_cfg, Path(ntu60_pickle.name),
                        data_root=str(ntu60_pickle.parent))
    check_data(cfg, LOADERS)
    cfg = with_ann_file(ntu60_cfg, Path(ntu60_pickle.name),
                        data_root=str(ntu60_pickle.parent / 'elsewhere'))
    with pytest.raises(PreflightError, match='elsewhere'):
        check_data(cfg, LOADERS)


def test_check_data_missing_file(ntu60_cfg, tmp_path):
    missing = tmp_path / 'ntu120_3d.pkl'
    with pytest.raises(PreflightError) as info:
        check_data(with_ann_file(ntu60_cfg, missing), LOADERS)
    message = str(info.value)
    assert f'annotation file {missing} ({TRAIN_FIELD}) does not exist' \
        in message
    assert '--dataset ntu120' in message and f'--out {missing}' in message
    assert f'--cfg-options {TRAIN_FIELD}=' in message


def test_check_data_only_named_loaders(ntu60_cfg, ntu60_pickle, tmp_path):
    cfg = with_ann_file(ntu60_cfg, ntu60_pickle)
    cfg.test_dataloader.dataset.ann_file = str(tmp_path / 'absent.pkl')
    check_data(cfg, LOADERS)  # the test loader is not checked
    with pytest.raises(PreflightError,
                       match='test_dataloader.dataset.ann_file'):
        check_data(cfg, ('test_dataloader', ))


@pytest.mark.parametrize('options, expected', [
    (dict(num_joints=18), r'V = 18 joints .*\(expected 25\)'),
    (dict(num_coords=2), r'C = 2 coordinates .*\(expected 3\)'),
    (dict(num_classes=61), r'label: 60 out of range \(expected \[0, 60\)\)'),
],
                         ids=['joints', 'coords', 'labels'])
def test_check_data_mismatch(ntu60_cfg, tmp_path, options, expected):
    options = dict(dict(num_classes=60, per_class=1, frames=4), **options)
    path = write_pickle(tmp_path / 'ntu60_3d.pkl',
                        make_skeleton_annotations(**options))
    with pytest.raises(PreflightError, match=expected) as info:
        check_data(with_ann_file(ntu60_cfg, path), LOADERS)
    message = str(info.value)
    assert f'annotation file {path} ({TRAIN_FIELD}) does not match' in \
        message
    assert 'expects 25 joints, 3 coordinates per joint, labels in [0, 60)' \
        in message
    assert 'check_annotations.py' in message


def test_check_data_lists_at_most_max_listed(ntu60_cfg, tmp_path):
    data = make_skeleton_annotations(60, per_class=1, frames=4,
                                     num_joints=18)
    path = write_pickle(tmp_path / 'ntu60_3d.pkl', data)
    with pytest.raises(PreflightError) as info:
        check_data(with_ann_file(ntu60_cfg, path), LOADERS)
    message = str(info.value)
    assert message.count('V = 18 joints') == MAX_LISTED
    assert f'... and {60 - MAX_LISTED} more' in message


def test_check_data_missing_split(ntu60_cfg, tmp_path):
    data = make_skeleton_annotations(
        60, per_class=2, frames=4, splits=dict(train='train', val='val'))
    path = write_pickle(tmp_path / 'ntu60_3d.pkl', data)
    with pytest.raises(PreflightError) as info:
        check_data(with_ann_file(ntu60_cfg, path), LOADERS)
    message = str(info.value)
    assert ("split 'xsub_train' (train_dataloader.dataset.split) is not in "
            "the file; it has ['train', 'val']") in message
    assert "split 'xsub_val' (val_dataloader.dataset.split)" in message


def test_check_data_follows_dataset_wrappers(tmp_path):
    """UTD-MHAD's train loader wraps its PoseDataset in a RepeatDataset."""
    cfg = Config.fromfile(str(REPO / 'configs' / 'ctrgcn_utd_mhad.py'))
    assert cfg.train_dataloader.dataset.type == 'RepeatDataset'
    data = make_skeleton_annotations(27, per_class=2, frames=4,
                                     num_joints=20, num_persons=1)
    good = write_pickle(tmp_path / 'utd_mhad_3d.pkl', data)
    cfg.train_dataloader.dataset.dataset.ann_file = str(good)
    cfg.val_dataloader.dataset.ann_file = str(good)
    check_data(cfg, LOADERS)

    missing = tmp_path / 'missing' / 'utd_mhad_3d.pkl'
    cfg.train_dataloader.dataset.dataset.ann_file = str(missing)
    with pytest.raises(PreflightError) as info:
        check_data(cfg, LOADERS)
    message = str(info.value)
    assert 'train_dataloader.dataset.dataset.ann_file' in message
    assert 'tools/data/utd_mhad_to_pkl.py' in message


def test_check_data_2d_keypoints_with_score(tmp_path):
    """Kinetics: 2 coordinates + keypoint_score make the 3 input channels."""
    cfg = Config.fromfile(str(REPO / 'configs' / 'ctrgcn_kinetics.py'))
    splits = dict(train='train', val='val')
    scored = make_skeleton_annotations(400, per_class=1, frames=4,
                                       num_joints=18, num_coords=2,
                                       with_score=True, splits=splits)
    path = write_pickle(tmp_path / 'kinetics_skeleton_2d.pkl', scored)
    check_data(with_ann_file(cfg, path), LOADERS)

    plain = make_skeleton_annotations(400, per_class=1, frames=4,
                                      num_joints=18, num_coords=2,
                                      splits=splits)
    path = write_pickle(tmp_path / 'kinetics_plain_2d.pkl', plain)
    with pytest.raises(PreflightError, match=r'\(expected 3\)'):
        check_data(with_ann_file(cfg, path), LOADERS)


def _with_an_all_zero_clip(tmp_path: Path) -> Path:
    """An NTU-60 pickle whose first clip is all zeros (no body detected)."""
    data = make_skeleton_annotations(60, per_class=2, frames=4)
    first = data['annotations'][0]
    first['keypoint'] = np.zeros_like(first['keypoint'])
    return write_pickle(tmp_path / 'ntu60_3d.pkl', data)


def test_an_all_zero_clip_is_one_warning_line(ntu60_cfg, tmp_path, capsys):
    """Printed, not left to Python's warning filters: once per file (the
    train and val loaders read the same one), on one line, with its name."""
    path = _with_an_all_zero_clip(tmp_path)
    check_data(with_ann_file(ntu60_cfg, path), LOADERS)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f'warning: {path}: 1 of 120 clips are empty: '
                               f'1 all-zero ({FIRST_SAMPLE});')
    assert 'data_check.fail_on_empty=True' in lines[0]


def test_fail_on_empty_makes_an_all_zero_clip_an_error(ntu60_cfg, tmp_path,
                                                       capsys):
    path = _with_an_all_zero_clip(tmp_path)
    cfg = with_ann_file(ntu60_cfg, path)
    cfg.data_check = dict(fail_on_empty=True)
    with pytest.raises(PreflightError) as info:
        check_data(cfg, LOADERS)
    message = str(info.value)
    assert f'annotation file {path} ({TRAIN_FIELD})' in message
    assert f'[{FIRST_SAMPLE}] keypoint: all-zero clip' in message
    assert 'data_check.fail_on_empty=True' in message
    assert capsys.readouterr().err == ''  # an error, not also a warning
    cfg.data_check = dict(fail_on_empty=False)
    check_data(cfg, LOADERS)


@pytest.mark.parametrize('options, expected', [
    (dict(fail_on_emtpy=True), "data_check.fail_on_emtpy is not an option "
     "(did you mean 'fail_on_empty'?)"),
    (dict(fail_on_empty='yes'),
     "data_check.fail_on_empty must be True or False, got 'yes'"),
    (True, 'data_check must be a dict, e.g. dict(fail_on_empty=True), got '
     'True'),
])
def test_data_check_options_are_checked(ntu60_cfg, ntu60_pickle, options,
                                        expected):
    cfg = with_ann_file(ntu60_cfg, ntu60_pickle)
    cfg.data_check = options
    with pytest.raises(ConfigError) as info:
        check_data(cfg, LOADERS)
    assert str(info.value).startswith(f'{cfg.filename}: {expected}')


def test_prepare_hints():
    assert 'ntu_raw_to_pkl.py --dataset ntu60' in prepare_hint(
        'data/skeleton/ntu60_3d.pkl')
    assert 'kinetics_json_to_pkl.py' in prepare_hint(
        'data/skeleton/kinetics_skeleton_2d.pkl')
    assert 'make_demo_data.py --out x/demo_3d.pkl' in prepare_hint(
        'x/demo_3d.pkl')
    assert 'tools/data' in prepare_hint('mine.pkl')


# --------------------------------------------------------------------------
# configure_device
# --------------------------------------------------------------------------
no_cuda = pytest.mark.skipif(torch.cuda.is_available(),
                             reason='needs a machine without CUDA')


def test_backend_follows_cuda():
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend=None))))
    assert configure_device(cfg) is cfg
    expected = 'nccl' if torch.cuda.is_available() else 'gloo'
    assert cfg.env_cfg.dist_cfg.backend == expected


def test_backend_of_shipped_config(ntu60_cfg):
    cfg = copy.deepcopy(ntu60_cfg)
    assert cfg.env_cfg.dist_cfg.backend is None  # ctrgcn_runtime.py
    configure_device(cfg)
    expected = 'nccl' if torch.cuda.is_available() else 'gloo'
    assert cfg.env_cfg.dist_cfg.backend == expected


@pytest.mark.parametrize('content', [dict(), dict(env_cfg=dict())],
                         ids=['no_env_cfg', 'no_dist_cfg'])
def test_backend_filled_in_when_absent(content):
    cfg = configure_device(Config(content))
    expected = 'nccl' if torch.cuda.is_available() else 'gloo'
    assert cfg.env_cfg.dist_cfg.backend == expected


def test_explicit_backend_kept():
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='gloo'))))
    assert configure_device(cfg).env_cfg.dist_cfg.backend == 'gloo'


@no_cuda
def test_nccl_switched_to_gloo_with_warning(monkeypatch):
    logged = []
    monkeypatch.setattr(device_module, 'print_log',
                        lambda msg, logger=None, level=logging.INFO:
                        logged.append((msg, level)))
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    configure_device(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert len(logged) == 1
    message, level = logged[0]
    assert level == logging.WARNING
    assert 'nccl' in message and 'gloo' in message


@no_cuda
def test_ddp_device_ids_none_with_launcher_without_cuda():
    cfg = Config(dict(launcher='pytorch'))
    configure_device(cfg)
    wrapper = cfg.model_wrapper_cfg
    assert wrapper['type'] == 'MMDistributedDataParallel'
    assert 'device_ids' in wrapper and wrapper['device_ids'] is None
    assert wrapper['broadcast_buffers'] is False


@no_cuda
def test_ddp_wrapper_options_kept():
    """CoCoDiff configs set find_unused_parameters; it must survive."""
    cfg = Config(dict(launcher='pytorch', model_wrapper_cfg=dict(
        type='MMDistributedDataParallel', find_unused_parameters=True)))
    configure_device(cfg)
    assert cfg.model_wrapper_cfg['find_unused_parameters'] is True
    assert cfg.model_wrapper_cfg['device_ids'] is None


def test_no_wrapper_without_launcher():
    cfg = Config(dict(launcher='none'))
    configure_device(cfg)
    assert 'model_wrapper_cfg' not in cfg
    configure_device(Config(dict()))  # no launcher key at all


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_ddp_wrapper_untouched_with_cuda():
    cfg = Config(dict(launcher='pytorch'))
    configure_device(cfg)
    assert 'model_wrapper_cfg' not in cfg
