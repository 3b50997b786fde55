"""Real data: converted UTD-MHAD trains through the UTD-MHAD configs."""
import pickle

import pytest

from conftest import read_log, run_ok, shared_data_dir, tiny_utd_options

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


def test_converted_utd_mhad_trains(utd_pickle, tmp_path):
    with open(utd_pickle, 'rb') as file:
        data = pickle.load(file)
    assert len(data['split']['xsub_train']) == 431
    assert len(data['split']['xsub_val']) == 430
    run_ok('tools/train.py', 'configs/ctrgcn_utd_mhad.py', '--work-dir',
           str(tmp_path), '--cfg-options',
           *tiny_utd_options(utd_pickle, batch_size=32),
           'default_hooks.logger.interval=5',
           'train_cfg.max_epochs=1')
    log = read_log(tmp_path)
    # 431 clips / 32 per batch = 14 steps; then validation on 430 clips.
    assert 'Epoch(train) [1][14/14]' in log
    assert 'acc/top1' in log
