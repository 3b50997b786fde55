"""Fault injection: bad inputs and faults a user meets, each a clear error
with nothing lost or half-written.

Every case runs the code a user runs: ``tools/train.py``, ``tools/test.py``,
``tools/infer.py`` or ``tools/export_inference_ckpt.py`` in a subprocess, or
(for a disk that fills up in the middle of a write) the writer itself under
the fault. Each asserts the exit status, the error line (the file, the key
or sample, the expected value or the way out) and what is left on disk. The
README's "Reliability" section gives the number of tests here, counted with

    pytest tests/test_faults.py --collect-only -q

An interrupted run that resumes to the same weights, with
``stage_times.json`` adding up across the resumes, is in
``tests/test_resume_equivalence.py``; the checkers behind these cases have
unit tests of their own (``test_annotation_check.py``,
``test_preflight.py``, ``test_config_check.py``, ``test_checkpoint_match.py``,
``test_atomic_write.py``).
"""
import errno
import os
import pickle
import subprocess
import textwrap
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np
import pytest
import torch

from conftest import (REPO, make_skeleton_annotations, read_log, run_ok,
                      run_tool, tiny_options, write_ddp_checkpoint,
                      write_pickle)

BASELINE = 'configs/ctrgcn_ntu60_xsub.py'
COCODIFF = 'configs/ctrgcn_cocodiff_ntu60_xsub.py'
DEMO = 'configs/ctrgcn_cocodiff_demo.py'
HELPERS = REPO / 'tests' / 'helpers'
TRAIN_FIELD = 'train_dataloader.dataset.ann_file'
#: Name of the first generated sample (class 0, performer 1).
FIRST_SAMPLE = 'S001C001P001R001A001'
#: A checkpoint of the tiny model (8 base channels) does not fit these.
WIDER = ['model.backbone.base_channels=16', 'model.cls_head.in_channels=64']


# --------------------------------------------------------------------------
# Shared checks
# --------------------------------------------------------------------------
def error_lines(result: subprocess.CompletedProcess) -> List[str]:
    """The ``error:`` lines of a tool's stderr."""
    return [line for line in result.stderr.splitlines()
            if line.startswith('error: ')]


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """Exit 2, no traceback and exactly one ``error:`` line; returns it."""
    assert result.returncode == 2, (result.returncode,
                                    result.stderr[-3000:])
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    errors = error_lines(result)
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def assert_no_work_dir(work_dir: Path) -> None:
    """The tool stopped before the Runner made (or wrote into) a work dir."""
    assert not work_dir.exists() or not any(work_dir.iterdir()), sorted(
        p.name for p in work_dir.rglob('*'))


def truncated_copy(source: Path, target: Path) -> Path:
    """The first half of ``source``, as a crash while writing leaves it."""
    data = source.read_bytes()
    target.write_bytes(data[:len(data) // 2])
    return target


@pytest.fixture
def checkpoint(ntu_baseline_run) -> Path:
    """A good checkpoint of the tiny baseline model (8 base channels)."""
    return ntu_baseline_run / 'epoch_1.pth'


# --------------------------------------------------------------------------
# Data: tools/train.py stops before the Runner (exit 2 in seconds)
# --------------------------------------------------------------------------
def _annotations(**options) -> Dict:
    return make_skeleton_annotations(
        **dict(dict(num_classes=60, per_class=2, frames=8), **options))


def _with_first_sample(change: Callable[[Dict], None]) -> Callable[[], Dict]:
    def make() -> Dict:
        data = _annotations()
        change(data['annotations'][0])
        return data
    return make


def _set_nan(sample: Dict) -> None:
    sample['keypoint'][0, 3, 5, 1] = np.nan


def _make_empty(sample: Dict) -> None:
    sample['keypoint'] = sample['keypoint'][:, :0]
    sample['total_frames'] = 0


def _set_label(sample: Dict) -> None:
    sample['label'] = 70


#: id -> (what the file holds, fragments the error must contain).
DATA_CASES = {
    'missing_file': (None, ['does not exist', TRAIN_FIELD,
                            'tools/data/ntu_raw_to_pkl.py']),
    'truncated_pickle': ('truncated', [TRAIN_FIELD, 'not a readable pickle']),
    'not_a_pickle': (b'frame,joint,x,y,z\n0,0,0.1,0.2,0.3\n',
                     [TRAIN_FIELD, 'not a readable pickle']),
    'wrong_joint_count': (lambda: _annotations(num_joints=18),
                          [FIRST_SAMPLE, 'V = 18 joints', '(expected 25)']),
    'wrong_coordinate_count': (lambda: _annotations(num_coords=2),
                               [FIRST_SAMPLE, 'C = 2 coordinates',
                                '(expected 3)']),
    'nan_keypoint': (_with_first_sample(_set_nan),
                     [FIRST_SAMPLE, '1 non-finite value(s)']),
    'empty_clip': (_with_first_sample(_make_empty),
                   [FIRST_SAMPLE, 'empty sequence']),
    'label_out_of_range': (_with_first_sample(_set_label),
                           [f'[{FIRST_SAMPLE}] label: 70 out of range',
                            '[0, 60)']),
    'missing_split': (lambda: _annotations(
        splits=dict(train='xsub_train', val='xview_val')),
        ["split 'xsub_val' (val_dataloader.dataset.split)", 'xview_val']),
}


def write_data_case(content, path: Path) -> Path:
    """Write one :data:`DATA_CASES` file (or nothing, for a missing one)."""
    if content is None:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if content == 'truncated':
        full = write_pickle(path.with_name('full.pkl'), _annotations())
        return truncated_copy(full, path)
    if isinstance(content, bytes):
        path.write_bytes(content)
        return path
    return write_pickle(path, content())


@pytest.mark.parametrize('case', list(DATA_CASES))
def test_bad_data_stops_train_before_the_runner(tmp_path, case):
    content, fragments = DATA_CASES[case]
    ann_file = write_data_case(content, tmp_path / 'data' / 'ntu60_3d.pkl')
    work_dir = tmp_path / 'work'
    result = run_tool('tools/train.py', BASELINE, '--work-dir',
                      str(work_dir), '--cfg-options',
                      f'{TRAIN_FIELD}={ann_file}',
                      f'val_dataloader.dataset.ann_file={ann_file}',
                      timeout=120, env=dict(OMP_NUM_THREADS='1'))
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert 'Traceback' not in result.stderr
    errors = error_lines(result)
    assert len(errors) == 1 and str(ann_file) in errors[0], result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr[-3000:])
    # Stopped by the data check, before the Runner started: nothing the
    # Runner logs (its environment report, an epoch), and no work dir.
    output = result.stdout + result.stderr
    assert 'System environment' not in output and 'Epoch(' not in output
    assert_no_work_dir(work_dir)


def test_one_frame_clips_train_with_a_warning(tmp_path):
    data = _annotations()
    names = []
    for sample in data['annotations'][:2]:
        sample['keypoint'] = sample['keypoint'][:, :1]
        sample['total_frames'] = 1
        names.append(sample['frame_dir'])
    ann_file = write_pickle(tmp_path / 'short.pkl', data)
    work_dir = tmp_path / 'work'
    result = run_ok('tools/train.py', BASELINE, '--work-dir', str(work_dir),
                    '--cfg-options', *tiny_options(ann_file),
                    'train_cfg.max_epochs=1',
                    env=dict(PYTHONWARNINGS='default', OMP_NUM_THREADS='1'))
    assert (f'{ann_file}: 2 clip(s) have a single frame (total_frames=1): '
            f'{", ".join(names)}; the model sees a still pose'
            ) in result.stderr
    assert (work_dir / 'epoch_1.pth').is_file()


# --------------------------------------------------------------------------
# Configs: a typo or a bad value stops tools/train.py before the work dir
# --------------------------------------------------------------------------
def _broken_json(tmp_path: Path) -> List[str]:
    broken = tmp_path / 'broken_texts.json'
    broken.write_text('{"name": "x"')
    return [f'model.cls_head.text_bank.texts={broken}']


#: id -> (--cfg-options of the demo config, fragments of the error line).
CONFIG_CASES = {
    'typo_in_a_stage_dict': (
        lambda tmp_path: ['train_cfg.stage1.epoch=1'],
        [f'error: {DEMO}: train_cfg.stage1.epoch is not an option (did you '
         "mean 'epochs'?); allowed: ["]),
    'too_few_class_texts': (
        lambda tmp_path: ['model.cls_head.text_bank.texts=demo',
                          'model.cls_head.num_classes=40'],
        ['model.cls_head.text_bank.texts=', 'have only 8 classes; cannot '
         'take the first 40']),
    'malformed_text_json': (
        _broken_json, ['model.cls_head.text_bank.texts=', 'broken_texts.json',
                       'not valid JSON']),
}


@pytest.mark.parametrize('case', list(CONFIG_CASES))
def test_bad_config_exits_2_before_a_work_dir_exists(tmp_path, case):
    options, fragments = CONFIG_CASES[case]
    work_dir = tmp_path / 'work'
    result = run_tool('tools/train.py', DEMO, '--work-dir', str(work_dir),
                      '--cfg-options', *options(tmp_path), timeout=120)
    error = one_error_line(result)
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    assert not work_dir.exists()


def test_debug_shows_the_traceback_of_a_config_error(tmp_path):
    result = run_tool('tools/train.py', DEMO, '--work-dir',
                      str(tmp_path / 'work'), '--debug', '--cfg-options',
                      'train_cfg.stage1.epoch=1', timeout=120)
    assert result.returncode != 0
    assert 'Traceback' in result.stderr and 'ConfigKeyError' in result.stderr


def test_a_mismatching_pretrained_gcn_exits_2_before_a_work_dir(
        checkpoint, ntu60_pickle, text_bank_cache, tmp_path):
    work_dir = tmp_path / 'work'
    result = run_tool(
        'tools/train.py', COCODIFF, '--work-dir', str(work_dir),
        '--cfg-options', *tiny_options(ntu60_pickle, text_bank_cache),
        *WIDER, f'train_cfg.pretrained={checkpoint}')
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    errors = error_lines(result)
    assert len(errors) == 1, result.stderr[-3000:]
    assert f'pretrained GCN checkpoint {checkpoint} (train_cfg.pretrained) ' \
        'does not match' in errors[0]
    assert 'shape mismatches: backbone.' in result.stderr
    assert_no_work_dir(work_dir)


def test_a_missing_pretrained_gcn_exits_2_before_a_work_dir(
        ntu60_pickle, text_bank_cache, tmp_path):
    missing, work_dir = tmp_path / 'nowhere.pth', tmp_path / 'work'
    error = one_error_line(run_tool(
        'tools/train.py', COCODIFF, '--work-dir', str(work_dir),
        '--cfg-options', *tiny_options(ntu60_pickle, text_bank_cache),
        f'train_cfg.pretrained={missing}'))
    assert f'pretrained GCN checkpoint {missing} (train_cfg.pretrained) ' \
        'does not exist' in error
    assert 'train_cfg.pretrained=None' in error  # the way out
    assert_no_work_dir(work_dir)


# --------------------------------------------------------------------------
# Checkpoints that do not fit: refused before anything is evaluated
# --------------------------------------------------------------------------
def test_test_refuses_another_width_before_evaluation(checkpoint,
                                                      ntu60_pickle, tmp_path):
    work_dir = tmp_path / 'work'
    error = one_error_line(run_tool(
        'tools/test.py', BASELINE, str(checkpoint), '--work-dir',
        str(work_dir), '--cfg-options', *tiny_options(ntu60_pickle), *WIDER))
    assert error.startswith(f'error: {checkpoint} does not match the model:')
    assert 'shape mismatches (backbone.' in error
    assert 'Likely cause: the checkpoint was trained with another config' \
        in error
    assert_no_work_dir(work_dir)


def test_test_non_strict_keeps_evaluating_a_half_loaded_model(
        checkpoint, ntu60_pickle, tmp_path):
    result = run_ok('tools/test.py', BASELINE, str(checkpoint), '--work-dir',
                    str(tmp_path / 'work'), '--non-strict', '--cfg-options',
                    *tiny_options(ntu60_pickle), *WIDER)
    output = result.stdout + result.stderr
    assert 'acc/top1' in output and 'size mismatch' in output


def test_test_says_export_for_a_cocodiff_checkpoint(checkpoint, ntu60_pickle,
                                                    tmp_path):
    saved = torch.load(checkpoint, weights_only=False)
    saved['state_dict']['cls_head.denoiser.out.weight'] = torch.zeros(3)
    saved['state_dict']['cls_head.feature_mean'] = torch.zeros(32)
    cocodiff = tmp_path / 'cocodiff.pth'
    torch.save(saved, cocodiff)
    error = one_error_line(
        run_tool('tools/test.py', BASELINE, str(cocodiff), '--work-dir',
                 str(tmp_path / 'work'), '--cfg-options',
                 *tiny_options(ntu60_pickle)))
    assert '2 unexpected keys (cls_head.denoiser.out.weight, ' \
        'cls_head.feature_mean)' in error
    assert 'tools/export_inference_ckpt.py' in error
    assert_no_work_dir(tmp_path / 'work')


def test_infer_refuses_another_width(checkpoint, ntu60_pickle):
    error = one_error_line(run_tool(
        'tools/infer.py', BASELINE, str(checkpoint), str(ntu60_pickle),
        '--sample', FIRST_SAMPLE, '--cfg-options',
        *tiny_options(ntu60_pickle), *WIDER))
    assert str(checkpoint) in error
    assert 'shape mismatches (backbone.' in error
    assert 'another config' in error


def test_export_refuses_a_checkpoint_that_fails_its_check(checkpoint,
                                                          tmp_path):
    """The baseline config's full-width model: the tiny checkpoint does not
    load into it, and the export writes nothing (it used to write, then
    fail its check)."""
    out = tmp_path / 'inference.pth'
    error = one_error_line(run_tool(
        'tools/export_inference_ckpt.py', str(checkpoint), str(out),
        '--config', BASELINE))
    assert error.startswith(f'error: {checkpoint} does not match the given '
                            'config: ')
    assert f'nothing was written to {out}' in error
    assert os.listdir(tmp_path) == []


def test_export_of_a_missing_checkpoint_is_one_line(tmp_path):
    missing = tmp_path / 'nope.pth'
    error = one_error_line(run_tool(
        'tools/export_inference_ckpt.py', str(missing),
        str(tmp_path / 'x.pth')))
    assert f'checkpoint {missing} does not exist' in error
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------
# Corrupt checkpoints: the path and "corrupt or truncated", exit 2
# --------------------------------------------------------------------------
def _test_command(bad: Path, tmp_path: Path, data: Path,
                  banks: Path) -> Sequence[str]:
    return ('tools/test.py', BASELINE, str(bad), '--work-dir',
            str(tmp_path / 'work'), '--cfg-options', *tiny_options(data))


def _infer_command(bad: Path, tmp_path: Path, data: Path,
                   banks: Path) -> Sequence[str]:
    return ('tools/infer.py', BASELINE, str(bad), str(data), '--sample',
            FIRST_SAMPLE, '--cfg-options', *tiny_options(data))


def _export_command(bad: Path, tmp_path: Path, data: Path,
                    banks: Path) -> Sequence[str]:
    return ('tools/export_inference_ckpt.py', str(bad),
            str(tmp_path / 'work' / 'inference.pth'))


def _resume_command(bad: Path, tmp_path: Path, data: Path,
                    banks: Path) -> Sequence[str]:
    return ('tools/train.py', BASELINE, '--work-dir', str(tmp_path / 'work'),
            '--resume', str(bad), '--cfg-options', *tiny_options(data))


def _load_from_command(bad: Path, tmp_path: Path, data: Path,
                       banks: Path) -> Sequence[str]:
    return ('tools/train.py', BASELINE, '--work-dir', str(tmp_path / 'work'),
            '--cfg-options', *tiny_options(data), f'load_from={bad}')


def _pretrained_command(bad: Path, tmp_path: Path, data: Path,
                        banks: Path) -> Sequence[str]:
    return ('tools/train.py', COCODIFF, '--work-dir', str(tmp_path / 'work'),
            '--cfg-options', *tiny_options(data, banks),
            f'train_cfg.pretrained={bad}')


#: Where a checkpoint is read -> (the command, what the line adds).
CORRUPT_READERS = {
    'test': (_test_command, ''),
    'infer': (_infer_command, ''),
    'export': (_export_command, ''),
    'resume': (_resume_command, ''),
    'load_from': (_load_from_command, ''),
    'pretrained': (_pretrained_command, ' (train_cfg.pretrained)'),
}
#: Every reader goes through ``read_checkpoint``, whose two ways of failing
#: (not a torch file at all; a zip cut short) both go through tools/test.py;
#: each other reader gets the damage the issue found it with, or the other.
CORRUPT_CASES = [('test', 'random_bytes'), ('test', 'truncated'),
                 ('infer', 'truncated'), ('export', 'random_bytes'),
                 ('resume', 'truncated'), ('load_from', 'random_bytes'),
                 ('pretrained', 'random_bytes')]


@pytest.mark.parametrize('reader, damage', CORRUPT_CASES,
                         ids=[f'{r}-{d}' for r, d in CORRUPT_CASES])
def test_a_corrupt_checkpoint_is_one_line(checkpoint, ntu60_pickle,
                                          text_bank_cache, tmp_path, reader,
                                          damage):
    bad = tmp_path / 'bad.pth'
    if damage == 'random_bytes':
        bad.write_bytes(np.random.default_rng(0).bytes(16384))
    else:
        truncated_copy(checkpoint, bad)
    command, suffix = CORRUPT_READERS[reader]
    error = one_error_line(run_tool(
        *command(bad, tmp_path, ntu60_pickle, text_bank_cache)))
    assert f'error: {bad}: corrupt or truncated checkpoint' in error
    assert error.endswith(suffix)
    assert_no_work_dir(tmp_path / 'work')


def test_a_pickled_payload_is_refused_in_one_line(ntu60_pickle, tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ('unpickled',))

    path = tmp_path / 'payload.pth'
    torch.save(dict(state_dict={}, meta=Payload()), path)
    result = run_tool('tools/test.py', BASELINE, str(path), '--work-dir',
                      str(tmp_path / 'work'), '--cfg-options',
                      *tiny_options(ntu60_pickle))
    error = one_error_line(result)
    assert error.startswith(f'error: {path}: refused, it holds a pickled '
                            'object outside the allow-list')
    assert '(print)' in error and 'unpickled' not in result.stdout


def test_auto_resume_skips_a_truncated_latest_checkpoint(
        ntu_baseline_run, ntu60_pickle, tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'epoch_1.pth').write_bytes(
        (ntu_baseline_run / 'epoch_1.pth').read_bytes())
    truncated_copy(ntu_baseline_run / 'epoch_2.pth', work / 'epoch_2.pth')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    result = run_ok('tools/train.py', BASELINE, '--work-dir', str(work),
                    '--resume', '--cfg-options', *tiny_options(ntu60_pickle),
                    'train_cfg.max_epochs=3')
    assert (f'warning: --resume skips {work / "epoch_2.pth"}: corrupt or '
            'truncated checkpoint') in result.stderr
    log = read_log(work)
    assert f'Load checkpoint from {work / "epoch_1.pth"}' in log
    # Resumed after epoch 1: epochs 2 and 3 run again.
    assert 'Epoch(train) [2]' in log and 'Epoch(train) [3]' in log
    assert torch.load(work / 'epoch_3.pth',
                      weights_only=False)['meta']['epoch'] == 3


def test_auto_resume_with_every_checkpoint_corrupt_is_one_line(
        ntu_baseline_run, ntu60_pickle, tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        truncated_copy(ntu_baseline_run / name, work / name)
    error = one_error_line(run_tool(
        'tools/train.py', BASELINE, '--work-dir', str(work), '--resume',
        '--cfg-options', *tiny_options(ntu60_pickle)))
    assert error == (f'error: {work}: every checkpoint is corrupt or '
                     'truncated (epoch_2.pth, epoch_1.pth); remove them to '
                     'start afresh')
    assert sorted(p.name for p in work.iterdir()) == ['epoch_1.pth',
                                                       'epoch_2.pth']


# --------------------------------------------------------------------------
# A full disk: the previous file stays whole, no temporary file is left
# --------------------------------------------------------------------------
def test_a_full_disk_while_training_keeps_the_previous_checkpoint(
        ntu60_pickle, tmp_path):
    config = tmp_path / 'full_disk.py'
    config.write_text(textwrap.dedent(f"""
        _base_ = [{str(REPO / BASELINE)!r}]
        custom_imports = dict(imports=['cocodiff_mm', 'full_disk_hook'],
                              allow_failed_imports=False)
        custom_hooks = [dict(type='FullDiskHook', epoch=2)]
        """))
    work = tmp_path / 'work'
    result = run_tool('tools/train.py', str(config), '--work-dir', str(work),
                      '--cfg-options', *tiny_options(ntu60_pickle),
                      'train_cfg.max_epochs=2',
                      env=dict(PYTHONPATH=str(HELPERS)))
    assert result.returncode != 0
    assert 'No space left on device' in result.stderr
    # The first epoch's checkpoints are whole and load; the second epoch's
    # never got their real names, and no temporary file is left.
    state = torch.load(work / 'epoch_1.pth', weights_only=False)
    assert state['meta']['epoch'] == 1
    assert sorted(p.name for p in work.glob('*.pth')) == [
        'best_acc_top1_epoch_1.pth', 'epoch_1.pth']
    assert (work / 'last_checkpoint').read_text().strip() == str(
        work / 'epoch_1.pth')
    assert not [p for p in work.rglob('*') if p.name.endswith('.tmp')]


def _half_written(path) -> OSError:
    """Write some bytes to ``path``, then fail as a full disk does."""
    with open(path, 'wb') as file:
        file.write(b'half of the new con')
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_a_full_disk_during_export_keeps_the_previous_export(
        tmp_path, monkeypatch):
    from cocodiff_mm.engine.inference_export import \
        export_inference_checkpoint

    src, dst = tmp_path / 'epoch_3.pth', tmp_path / 'inference.pth'
    write_ddp_checkpoint(src)
    dst.write_bytes(b'previous export')

    def save(obj, path, *args, **kwargs):
        raise _half_written(path)

    monkeypatch.setattr(torch, 'save', save)
    with pytest.raises(OSError) as info:
        export_inference_checkpoint(str(src), str(dst))
    assert info.value.errno == errno.ENOSPC
    assert dst.read_bytes() == b'previous export'
    assert sorted(os.listdir(tmp_path)) == ['epoch_3.pth', 'inference.pth']


def test_a_full_disk_keeps_the_previous_annotation_file(tmp_path,
                                                        monkeypatch):
    from cocodiff_mm.datasets import pickle_io

    dst = tmp_path / 'ntu60.pkl'
    pickle_io.write_annotations(dst, dict(train=['a']), [dict(frame_dir='a')])
    before = dst.read_bytes()

    def dump(obj, file, *args, **kwargs):
        file.write(b'half')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pickle_io.pickle, 'dump', dump)
    with pytest.raises(OSError) as info:
        pickle_io.write_annotations(dst, dict(train=['b']),
                                    [dict(frame_dir='b')])
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert dst.read_bytes() == before
    assert pickle.loads(before)['split'] == dict(train=['a'])
    assert os.listdir(tmp_path) == ['ntu60.pkl']


def test_a_full_disk_keeps_the_previous_text_bank(tmp_path, monkeypatch):
    import safetensors.torch

    from cocodiff_mm.models.text.text_bank import (load_bank_file,
                                                   save_bank_file)

    dst = tmp_path / 'bank.safetensors'
    tensors = dict(fine_embeds=torch.ones(2, 3), coarse_embeds=torch.ones(2, 3),
                   fine_counts=torch.ones(2, dtype=torch.int64),
                   coarse_counts=torch.ones(2, dtype=torch.int64))
    save_bank_file(dst, tensors, dict(version='1'))
    before = dst.read_bytes()

    def save_file(payload, path, metadata=None):
        raise _half_written(path)

    monkeypatch.setattr(safetensors.torch, 'save_file', save_file)
    with pytest.raises(OSError) as info:
        save_bank_file(dst, tensors, dict(version='2'))
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert dst.read_bytes() == before
    assert load_bank_file(dst)[1] == dict(version='1')
    assert os.listdir(tmp_path) == ['bank.safetensors']


# --------------------------------------------------------------------------
# Analysis tools: unsafe pickles, non-finite scores, ties, outputs first
# --------------------------------------------------------------------------
PER_CLASS = 'tools/analysis/visualize_features.py'


def _dump(path: Path, scores: Sequence[Sequence[float]],
          labels: Sequence[int]) -> Path:
    """A ``tools/test.py --dump`` pickle (torch tensors, protocol 2 as
    ``mmengine.dump`` writes it)."""
    records = [dict(frame_dir=f's{index}', gt_label=torch.tensor([label]),
                    pred_score=torch.tensor(score, dtype=torch.float32))
               for index, (score, label) in enumerate(zip(scores, labels))]
    with open(path, 'wb') as file:
        pickle.dump(records, file, protocol=2)
    return path


class _TouchPayload:
    """Unpickling it would run ``touch <marker>``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def _refusal(path: Path, what: str) -> str:
    return (f'{path}: refusing to unpickle {os.system.__module__}.system: '
            'only numpy, torch tensors and builtin containers are allowed in '
            f'{what}')


def test_per_class_report_refuses_a_dump_that_would_run_code(tmp_path):
    marker = tmp_path / 'MARKER'
    payload = tmp_path / 'payload.pkl'
    with open(payload, 'wb') as file:
        pickle.dump([dict(frame_dir='a', gt_label=torch.tensor([0]),
                          pred_score=_TouchPayload(marker))], file)
    error = one_error_line(run_tool(PER_CLASS, 'per-class', '--dumps',
                                    str(payload), '--out-dir',
                                    str(tmp_path / 'out')))
    assert error == 'error: ' + _refusal(payload,
                                         'a tools/test.py --dump pickle')
    assert not marker.exists() and not (tmp_path / 'out').exists()


def test_per_class_report_refuses_nan_and_counts_ties_as_misses(tmp_path):
    import json

    nan = _dump(tmp_path / 'nan.pkl', [[1, 0], [float('nan'), 0], [0, 1]],
                [0, 0, 1])
    error = one_error_line(run_tool(PER_CLASS, 'per-class', '--dumps',
                                    str(nan), '--out-dir',
                                    str(tmp_path / 'out')))
    assert error.startswith(f'error: {nan}: 1 of 3 samples have non-finite '
                            'pred_score (NaN/inf): s1')
    # Every class scores the same: no sample is recognised.
    flat = _dump(tmp_path / 'flat.pkl', [[0.5, 0.5, 0.5]] * 3, [0, 1, 2])
    run_ok(PER_CLASS, 'per-class', '--dumps', str(flat), '--out-dir',
           str(tmp_path / 'out'))
    model = json.loads(
        (tmp_path / 'out' / 'per_class.json').read_text())['models']['flat']
    assert model['accuracy'] == 0 and model['mean_class_accuracy'] == 0
    assert model['per_class_accuracy'] == [0, 0, 0]
    assert np.trace(np.asarray(model['confusion_matrix'])) == 0


def test_per_class_report_checks_its_out_dir_first(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    error = one_error_line(run_tool(PER_CLASS, 'per-class', '--dumps',
                                    str(tmp_path / 'absent.pkl'),
                                    '--out-dir', str(blocker)))
    assert error.startswith(f'error: --out-dir {blocker}: ')
    assert 'absent.pkl' not in error


def test_train_refuses_an_annotation_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / 'MARKER'
    data = _annotations()
    data['annotations'][0]['img_shape'] = _TouchPayload(marker)
    ann = write_pickle(tmp_path / 'ntu60_3d.pkl', data)
    error = one_error_line(run_tool(
        'tools/train.py', BASELINE, '--work-dir', str(tmp_path / 'work'),
        '--cfg-options', *tiny_options(ann)))
    assert _refusal(ann, 'an annotation pickle') in error
    assert not marker.exists()
    assert_no_work_dir(tmp_path / 'work')
