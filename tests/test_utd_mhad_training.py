"""Real data: converted UTD-MHAD trains through the UTD-MHAD configs."""
import pickle

from conftest import read_log, run_ok, tiny_utd_options

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
