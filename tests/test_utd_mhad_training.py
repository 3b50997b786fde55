"""Real data: converted UTD-MHAD trains through the UTD-MHAD configs."""
import pickle

import pytest

from conftest import read_log, run_ok, shared_data_dir

UTD = shared_data_dir() / 'utd_mhad' / 'skeleton'


@pytest.fixture(scope='module')
def utd_pickle(tmp_path_factory):
    if not UTD.is_dir():
        pytest.skip(f'real UTD-MHAD data not found at {UTD} '
                    '(set COCODIFF_SHARED_DATA)')
    out = tmp_path_factory.mktemp('utd') / 'utd_mhad_3d.pkl'
    run_ok('tools/data/utd_mhad_to_pkl.py', '--data-dir', str(UTD), '--out',
           str(out))
    return out


def tiny_utd_options(ann_file):
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
        'train_dataloader.batch_size=32', 'val_dataloader.batch_size=64',
        'model.backbone.base_channels=8', 'model.cls_head.in_channels=32',
        'default_hooks.logger.interval=5'
    ]


def test_converted_utd_mhad_trains(utd_pickle, tmp_path):
    with open(utd_pickle, 'rb') as file:
        data = pickle.load(file)
    assert len(data['split']['xsub_train']) == 431
    assert len(data['split']['xsub_val']) == 430
    run_ok('tools/train.py', 'configs/ctrgcn_utd_mhad.py', '--work-dir',
           str(tmp_path), '--cfg-options', *tiny_utd_options(utd_pickle),
           'train_cfg.max_epochs=1')
    log = read_log(tmp_path)
    # 431 clips / 32 per batch = 14 steps; then validation on 430 clips.
    assert 'Epoch(train) [1][14/14]' in log
    assert 'acc/top1' in log
