"""Fault injection: bad inputs and faults a user meets, each a clear error
with nothing lost or half-written.

Every case runs the code a user runs: ``tools/train.py``, ``tools/test.py``,
``tools/infer.py`` or ``tools/export_inference_ckpt.py`` in a subprocess, or
(for a disk that fills up in the middle of a write) the writer itself under
the fault. The parametrized families of refusals call the tool's ``main()``
in this process (``run_tool_in_process``: the same code without a fresh
interpreter's seconds of imports); the single cases around them, the
``--debug`` traceback and every case that trains run as processes. Each asserts the exit status, the error line (the file, the key
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

from conftest import (ONE_EPOCH_PER_STAGE, REPO, make_skeleton_annotations,
                      read_log, run_ok, run_tool, run_tool_in_process,
                      tiny_options, write_ddp_checkpoint, write_pickle)

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
    result = run_tool_in_process(
        'tools/train.py', BASELINE, '--work-dir', str(work_dir),
        '--cfg-options', f'{TRAIN_FIELD}={ann_file}',
        f'val_dataloader.dataset.ann_file={ann_file}')
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
                    env=dict(PYTHONWARNINGS='default'))
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
    result = run_tool_in_process('tools/train.py', DEMO, '--work-dir',
                                 str(work_dir), '--cfg-options',
                                 *options(tmp_path))
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
    error = one_error_line(run_tool_in_process(
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


# --------------------------------------------------------------------------
# No silently wrong result: non-finite losses, weights and scores stop the
# run in one line, and --resume refuses a run of another plan or model
# --------------------------------------------------------------------------
FIRST_BACKBONE_PARAM = 'backbone.data_bn.weight'


def poisoned_config(folder: Path, base: str, param: str, epoch: int,
                    at: str) -> Path:
    """``base`` plus :class:`PoisonHook` (``tests/helpers/poison_hook.py``):
    ``param`` turns NaN at the ``at`` (start or end) of ``epoch``."""
    from mmengine.config import Config

    hooks = [dict(h) for h in Config.fromfile(str(REPO / base)).get(
        'custom_hooks', [])]
    hooks.append(dict(type='PoisonHook', param=param, epoch=epoch, at=at))
    path = folder / 'poisoned.py'
    path.write_text(
        f'_base_ = [{str(REPO / base)!r}]\n'
        "custom_imports = dict(imports=['cocodiff_mm', 'poison_hook'],"
        ' allow_failed_imports=False)\n'
        f'custom_hooks = {hooks!r}\n')
    return path


def assert_finite_checkpoints(work: Path) -> List[str]:
    """Every checkpoint left in ``work`` has finite weights; their names."""
    names = []
    for path in sorted(work.glob('*.pth')):
        state = torch.load(path, weights_only=False)['state_dict']
        assert all(torch.isfinite(v).all() for v in state.values()
                   if v.is_floating_point()), path.name
        names.append(path.name)
    return names


def nan_copy(source: Path, target: Path, keys: Sequence[str]) -> Path:
    """``source`` with the tensors ``keys`` set to NaN."""
    saved = torch.load(source, weights_only=False)
    for key in keys:
        saved['state_dict'][key] = torch.full_like(saved['state_dict'][key],
                                                   float('nan'))
    torch.save(saved, target)
    return target


def test_a_non_finite_loss_stops_training_in_one_line(
        ntu60_pickle, text_bank_cache, tmp_path):
    """The temperature of L_con turns NaN at the start of stage 1: training
    stops at that iteration, naming stage, epoch, iteration, the loss term
    and the checkpoint to resume from; no best or stage-final checkpoint of
    NaN weights is written (it used to train on and exit 0)."""
    config = poisoned_config(tmp_path, COCODIFF,
                             'cls_head.loss_text.logit_scale', epoch=2,
                             at='start')
    work = tmp_path / 'work'
    error = one_error_line(run_tool(
        'tools/train.py', str(config), '--work-dir', str(work),
        '--cfg-options', *tiny_options(ntu60_pickle, text_bank_cache),
        *ONE_EPOCH_PER_STAGE, env=dict(PYTHONPATH=str(HELPERS))))
    assert error.startswith(
        'error: non-finite loss in stage 1 (diffusion on the frozen GCN), '
        'epoch 2 (epoch 1/1 of the stage), iteration 1/'), error
    assert 'loss_con = nan' in error and 'loss_rec' not in error
    assert error.endswith(f'--resume {work / "epoch_1.pth"}'), error
    assert assert_finite_checkpoints(work) == ['epoch_1.pth',
                                               'stage0_final.pth']


#: id -> (config, parameter turned NaN at the end of epoch 1 or 2, options,
#: checkpoints left, the start of the error line).
NAN_WEIGHT_CASES = {
    # CheckpointHook's epoch_2.pth, and then the best checkpoint, of NaN
    # weights (the loss is still finite: the weights turn NaN after the
    # epoch's last iteration).
    'epoch_and_best': (
        BASELINE, FIRST_BACKBONE_PARAM, 2, ['train_cfg.max_epochs=2'],
        ['best_acc_top1_epoch_1.pth', 'epoch_1.pth'],
        f'error: non-finite weights after epoch 2: {FIRST_BACKBONE_PARAM}'),
    # TwoStageLoop's stage0_final.pth: the denoiser, unused in stage 0,
    # turns NaN without any loss doing so.
    'stage_final': (
        COCODIFF, 'cls_head.denoiser.in_proj.weight', 1,
        [*ONE_EPOCH_PER_STAGE, 'default_hooks.checkpoint.interval=10'], [],
        'error: non-finite weights after stage 0 (baseline GCN), epoch 1 '
        '(epoch 1/1 of the stage): cls_head.denoiser.in_proj.weight'),
}


@pytest.mark.parametrize('case', list(NAN_WEIGHT_CASES))
def test_non_finite_weights_are_never_saved(ntu60_pickle, text_bank_cache,
                                            tmp_path, case):
    base, param, epoch, options, left, start = NAN_WEIGHT_CASES[case]
    config = poisoned_config(tmp_path, base, param, epoch, at='end')
    work = tmp_path / 'work'
    banks = text_bank_cache if base == COCODIFF else None
    error = one_error_line(run_tool(
        'tools/train.py', str(config), '--work-dir', str(work),
        '--cfg-options', *tiny_options(ntu60_pickle, banks), *options,
        env=dict(PYTHONPATH=str(HELPERS))))
    assert error.startswith(start), error
    assert 'refusing to save' in error
    assert assert_finite_checkpoints(work) == left
    if left:
        assert error.endswith(f'--resume {work / "epoch_1.pth"}'), error
        assert (work / 'last_checkpoint').read_text().strip() == str(
            work / 'epoch_1.pth')
    else:
        assert 'no checkpoint was saved yet' in error


def test_test_refuses_non_finite_scores(checkpoint, ntu60_pickle, tmp_path):
    """NaN weights evaluated anyway (--non-strict skips the load check):
    the scores are refused before any metric or dump is written
    (mmaction's AccMetric reported 0.125, argmax of NaN being class 0)."""
    bad = nan_copy(checkpoint, tmp_path / 'nan.pth', ['cls_head.fc.bias'])
    dump, metrics = tmp_path / 'preds.pkl', tmp_path / 'metrics.json'
    result = run_tool('tools/test.py', BASELINE, str(bad), '--non-strict',
                      '--work-dir', str(tmp_path / 'work'), '--dump',
                      str(dump), '--metrics-out', str(metrics),
                      '--cfg-options', *tiny_options(ntu60_pickle))
    error = one_error_line(result)
    assert error.startswith(f'error: {bad}: 60 of 60 test samples have '
                            'non-finite scores (NaN/inf)'), error
    assert 'acc/top1:' not in result.stdout + result.stderr
    assert not dump.exists() and not metrics.exists()


#: Where a checkpoint of NaN weights is loaded -> what the line adds.
NAN_READERS = {
    'test': (_test_command, ''),
    'resume': (_resume_command, ''),
    'load_from': (_load_from_command, ''),
    'pretrained': (_pretrained_command, ' (train_cfg.pretrained)'),
}


@pytest.mark.parametrize('reader', list(NAN_READERS))
def test_a_checkpoint_of_nan_weights_is_refused_when_loaded(
        checkpoint, ntu60_pickle, text_bank_cache, tmp_path, reader):
    bad = nan_copy(checkpoint, tmp_path / 'nan.pth',
                   [FIRST_BACKBONE_PARAM, 'cls_head.fc.weight'])
    command, suffix = NAN_READERS[reader]
    error = one_error_line(run_tool_in_process(
        *command(bad, tmp_path, ntu60_pickle, text_bank_cache)))
    assert error.startswith(
        f'error: {bad}: non-finite weights (NaN/inf) in 2 tensors '
        f'({FIRST_BACKBONE_PARAM}, cls_head.fc.weight)'), error
    assert error.endswith(suffix)
    assert_no_work_dir(tmp_path / 'work')


def _copy_run(source: Path, target: Path) -> Dict[str, bytes]:
    """Copy a work dir's checkpoints; returns their bytes by name."""
    target.mkdir()
    files = {p.name: p.read_bytes() for p in source.glob('*.pth')}
    for name, data in files.items():
        (target / name).write_bytes(data)
    (target / 'last_checkpoint').write_text(str(target / 'epoch_3.pth'))
    return files


def test_resume_with_another_stage_plan_is_refused(
        tiny_cocodiff_run, ntu60_pickle, text_bank_cache, tmp_path):
    """Longer stage 0 on --resume: refused, saying what differs and the way
    out; nothing in the work dir is touched (it went back to stage 0 on a
    model whose stage 1 had run and overwrote both stage finals)."""
    work = tmp_path / 'work'
    before = _copy_run(tiny_cocodiff_run, work)
    error = one_error_line(run_tool(
        'tools/train.py', COCODIFF, '--work-dir', str(work), '--resume',
        '--cfg-options', *tiny_options(ntu60_pickle, text_bank_cache),
        *ONE_EPOCH_PER_STAGE, 'train_cfg.stage0.epochs=2'))
    assert error.startswith(
        f'error: --resume {work / "epoch_3.pth"}: the checkpoint was '
        'trained with another plan or model: plan.stage0.end: 1 '
        '(checkpoint) vs 2 (config)'), error
    assert '--replan' in error
    assert {p.name: p.read_bytes() for p in work.glob('*.pth')} == before
    assert not list(work.glob('*/*.log'))


def test_resume_with_another_model_is_refused(tiny_cocodiff_run, ntu60_pickle,
                                              text_bank_cache, tmp_path):
    error = one_error_line(run_tool(
        'tools/train.py', COCODIFF, '--work-dir', str(tmp_path / 'work'),
        '--resume', str(tiny_cocodiff_run / 'epoch_2.pth'), '--cfg-options',
        *tiny_options(ntu60_pickle, text_bank_cache), *ONE_EPOCH_PER_STAGE,
        *WIDER))
    assert 'model.backbone.base_channels: 8 (checkpoint) vs 16 (config)' \
        in error and 'model.cls_head.in_channels: 32 (checkpoint) vs 64 ' \
        '(config)' in error, error
    assert_no_work_dir(tmp_path / 'work')


def test_replan_resumes_into_the_new_plan(tiny_cocodiff_run, ntu60_pickle,
                                          text_bank_cache, tmp_path):
    """The way out: --replan continues under the new plan, and the new
    checkpoints record it."""
    work = tmp_path / 'work'
    run_ok('tools/train.py', COCODIFF, '--work-dir', str(work), '--resume',
           str(tiny_cocodiff_run / 'epoch_2.pth'), '--replan', '--cfg-options',
           *tiny_options(ntu60_pickle, text_bank_cache), *ONE_EPOCH_PER_STAGE,
           'train_cfg.stage2.epochs=2')
    log = read_log(work)
    assert 'Stage 2 (fresh GCN + fine-tuned diffusion): epoch 2/2' in log
    plan = torch.load(work / 'epoch_4.pth',
                      weights_only=False)['meta']['cocodiff_run']['plan']
    assert plan['stage2'] == dict(begin=2, end=4, objective='joint',
                                  faithfulness_target=None)


def test_resume_of_a_checkpoint_without_a_plan_warns(checkpoint,
                                                     ntu60_pickle, tmp_path):
    """Checkpoints written before plans were recorded still resume."""
    saved = torch.load(checkpoint, weights_only=False)
    saved['meta'].pop('cocodiff_run', None)
    old = tmp_path / 'old.pth'
    torch.save(saved, old)
    result = run_ok('tools/train.py', BASELINE, '--work-dir',
                    str(tmp_path / 'work'), '--resume', str(old),
                    '--cfg-options', *tiny_options(ntu60_pickle),
                    'train_cfg.max_epochs=2')
    assert (f'warning: --resume {old} records no plan or model (written '
            'before they were recorded): not checked against the config'
            ) in result.stderr
    assert (tmp_path / 'work' / 'epoch_2.pth').is_file()


def test_load_from_of_another_width_is_refused(checkpoint, ntu60_pickle,
                                               tmp_path):
    """load_from is checked as strictly as tools/test.py (it trained a
    mostly random model, with 'size mismatch' lines in the log only)."""
    error = one_error_line(run_tool(
        'tools/train.py', BASELINE, '--work-dir', str(tmp_path / 'work'),
        '--cfg-options', *tiny_options(ntu60_pickle), *WIDER,
        f'load_from={checkpoint}'))
    assert error.startswith(f'error: {checkpoint} does not match the model:')
    assert 'shape mismatches (backbone.' in error
    assert error.endswith('(--non-strict loads it anyway)')
    assert_no_work_dir(tmp_path / 'work')


def test_train_non_strict_loads_another_width_anyway(checkpoint,
                                                     ntu60_pickle, tmp_path):
    result = run_ok('tools/train.py', BASELINE, '--work-dir',
                    str(tmp_path / 'work'), '--non-strict', '--cfg-options',
                    *tiny_options(ntu60_pickle), *WIDER,
                    f'load_from={checkpoint}', 'train_cfg.max_epochs=1')
    assert 'size mismatch' in result.stdout + result.stderr


# --------------------------------------------------------------------------
# Every config and command-line value is checked before the Runner: one
# ConfigError line, exit 2, the key named, no work dir (issue 24)
# --------------------------------------------------------------------------

#: --cfg-options of the CoCoDiff config -> fragments of the error line. The
#: first six were found by the issue; the others are new cases of the same
#: causes (a constructor's refusal, a misspelt argument of a registered
#: part, a loader value, a stage plan), so the check is not a list.
BAD_VALUE_CASES = {
    'text_mode': ('model.cls_head.text_mode=foo',
                  ['model.cls_head.text_mode',
                   "('both', 'fine', 'coarse', 'none')", "'foo'"]),
    'num_steps': ('model.cls_head.diffusion.num_steps=-3',
                  ['model.cls_head.diffusion', 'num_steps', '>= 1', '-3']),
    'batch_size': ('train_dataloader.batch_size=0',
                   ['train_dataloader.batch_size', '>= 1', 'got 0']),
    'optimizer_typo': ('optim_wrapper.optimizer.lrr=0.1',
                       ['optim_wrapper.optimizer.lrr is not an option',
                        "did you mean 'lr'"]),
    'stage2_epochs': ('train_cfg.stage2.epochs=0',
                      ['train_cfg.stage2.epochs']),
    'stage1_source': ('train_cfg.stage1_source=foo',
                      ['train_cfg.stage1_source',
                       "('pretrained', 'untrained', 'none')"]),
    'num_workers': ('train_dataloader.num_workers=-1',
                    ['train_dataloader.num_workers', '>= 0', 'got -1']),
    'val_batch_size': ('val_dataloader.batch_size=0',
                       ['val_dataloader.batch_size', '>= 1']),
    'diffusion_optimizer_typo': (
        'optim_wrapper.diffusion.optimizer.weight_decy=0',
        ['optim_wrapper.diffusion.optimizer.weight_decy is not an option',
         "did you mean 'weight_decay'"]),
    'backbone_channels': ('model.backbone.base_channels=6',
                          ['model.backbone', 'divisible']),
    'backbone_choice': ('model.backbone.data_bn_type=foo',
                        ['model.backbone.data_bn_type',
                         "('MVC', 'VC', 'none')"]),
    'scheduler_typo': ('param_scheduler.1.gama=0.5',
                       ['param_scheduler[1].gama is not an option',
                        "did you mean 'gamma'"]),
    'transform_typo': ('train_dataloader.dataset.pipeline.2.clip_lenn=16',
                       ['train_dataloader.dataset.pipeline[2].clip_lenn is '
                        "not an option", "did you mean 'clip_len'"]),
    'hook_value': ('custom_hooks.0.warmup_epochs=-1',
                   ['custom_hooks[0]', 'warmup_epochs', '>= 0']),
    'loss_weight': ('model.cls_head.loss_rec_weight=foo',
                    ['model.cls_head.loss_rec_weight must be a number',
                     "got 'foo'"]),
    'zero_channels': ('model.backbone.base_channels=0',
                      ['model.backbone.base_channels', '>= 1', 'got 0']),
}


@pytest.mark.parametrize('case', list(BAD_VALUE_CASES))
def test_a_bad_config_value_is_one_line_before_the_work_dir(
        ntu60_pickle, text_bank_cache, tmp_path, case):
    option, fragments = BAD_VALUE_CASES[case]
    work_dir = tmp_path / 'work'
    result = run_tool_in_process(
        'tools/train.py', COCODIFF, '--work-dir', str(work_dir),
        '--cfg-options', *tiny_options(ntu60_pickle, text_bank_cache),
        *ONE_EPOCH_PER_STAGE, option)  # a run not refused ends in seconds
    error = one_error_line(result)
    assert error.startswith(f'error: {COCODIFF}: '), error
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    assert not work_dir.exists()


def _without_launcher_env() -> None:
    names = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
    if any(name in os.environ for name in names):
        pytest.skip('this shell is inside a torchrun launch')


#: id -> (arguments after tools/train.py, fragments of the error line).
BAD_COMMAND_CASES = {
    'missing_config': (['configs/ctrgcn_ntu60_xsbu.py'],
                       ['config file configs/ctrgcn_ntu60_xsbu.py does not '
                        'exist']),
    'option_without_equals': ([BASELINE, '--cfg-options',
                               'train_cfg.max_epochs', '2'],
                              ['--cfg-options', "'train_cfg.max_epochs'",
                               'key=value']),
    'launcher_without_torchrun': ([BASELINE, '--launcher', 'pytorch'],
                                  ['--launcher pytorch', 'RANK',
                                   'WORLD_SIZE', 'MASTER_ADDR', 'torchrun']),
    'amp_without_cuda': ([BASELINE, '--amp'], ['--amp', 'CUDA']),
    'work_dir_under_a_file': ([BASELINE, '--work-dir', '{file}/work'],
                              ['--work-dir {file}/work', 'is a file']),
}


@pytest.mark.parametrize('case', list(BAD_COMMAND_CASES))
def test_a_bad_command_line_is_one_line_before_the_work_dir(tmp_path, case):
    arguments, fragments = BAD_COMMAND_CASES[case]
    if case == 'amp_without_cuda' and torch.cuda.is_available():
        pytest.skip('CUDA is available here')
    if case == 'launcher_without_torchrun':
        _without_launcher_env()
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    arguments = [a.replace('{file}', str(blocker)) for a in arguments]
    fragments = [f.replace('{file}', str(blocker)) for f in fragments]
    work_dir = tmp_path / 'work'
    if '--work-dir' not in arguments:
        arguments += ['--work-dir', str(work_dir)]
    error = one_error_line(run_tool_in_process('tools/train.py',
                                               *arguments))
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    assert not work_dir.exists()
    assert blocker.read_text() == 'x'


def test_test_refuses_unwritable_outputs_before_evaluation(
        ntu60_pickle, tmp_path):
    """Every output of tools/test.py is checked before the model is built
    or the checkpoint read (the checkpoint here is not even one)."""
    checkpoint = tmp_path / 'any.pth'
    checkpoint.write_bytes(b'not read')
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    outputs = {'--dump': (f'{blocker}/preds.pkl', 'is a file'),
               '--metrics-out': (str(tmp_path), 'is a folder'),
               '--work-dir': (f'{blocker}/work', 'is a file')}
    for option, (path, why) in outputs.items():
        result = run_tool('tools/test.py', BASELINE, str(checkpoint),
                          '--work-dir', str(tmp_path / 'work'), option,
                          path, '--cfg-options', *tiny_options(ntu60_pickle),
                          timeout=120)
        error = one_error_line(result)
        assert error.startswith(f'error: {option} {path}: '), error
        assert why in error, error
        assert 'acc/top1' not in result.stdout + result.stderr
        assert not (tmp_path / 'work').exists()
    assert sorted(os.listdir(tmp_path)) == ['a_file', 'any.pth']


# --------------------------------------------------------------------------
# One run per work dir
# --------------------------------------------------------------------------
def test_the_work_dir_lock_refuses_a_second_holder_and_cleans_up(tmp_path):
    import socket

    from cocodiff_mm.engine.work_dir_lock import (WorkDirInUseError,
                                                  WorkDirLock)

    work = tmp_path / 'work'
    with WorkDirLock(work) as lock:
        assert (work / '.lock').is_file()
        with pytest.raises(WorkDirInUseError) as info:
            WorkDirLock(work).acquire()
        message = str(info.value)
        assert f'pid {os.getpid()} on {socket.gethostname()}' in message
        assert str(work) in message and 'since ' in message
        assert lock.held
    # Released: the lock file and the folder it made are gone.
    assert not work.exists()
    WorkDirLock(work).acquire().release()


def _dead_pid() -> int:
    import sys
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    return process.pid


def _stale_lock(work: Path, pid: int) -> Path:
    import json
    import socket

    work.mkdir(parents=True, exist_ok=True)
    lock = work / '.lock'
    lock.write_text(json.dumps(dict(pid=pid, host=socket.gethostname(),
                                    since='2024-01-01T00:00:00')))
    return lock


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, capsys):
    import json

    from cocodiff_mm.engine.work_dir_lock import WorkDirLock

    work = tmp_path / 'work'
    pid = _dead_pid()
    _stale_lock(work, pid)
    with WorkDirLock(work):
        assert json.loads((work / '.lock').read_text())['pid'] == os.getpid()
    warning = capsys.readouterr().err
    assert warning.startswith(f'warning: {work}: taking over the lock of '
                              f'pid {pid} on ')
    assert 'no longer running' in warning
    assert not (work / '.lock').exists() and work.is_dir()


def test_train_refuses_a_work_dir_another_run_holds(ntu60_pickle, tmp_path):
    """tools/train.py while another run (here: this process) holds the work
    dir: refused naming the holder, nothing of the holder's touched."""
    import socket

    from cocodiff_mm.engine.work_dir_lock import WorkDirLock

    work = tmp_path / 'work'
    with WorkDirLock(work):
        (work / 'epoch_1.pth').write_bytes(b'the other run')
        error = one_error_line(run_tool(
            'tools/train.py', BASELINE, '--work-dir', str(work),
            '--cfg-options', *tiny_options(ntu60_pickle),
            'train_cfg.max_epochs=1', timeout=300))
        assert error.startswith(f'error: --work-dir {work} is in use by '
                                f'another run: pid {os.getpid()} on '
                                f'{socket.gethostname()} since ')
        assert sorted(p.name for p in work.iterdir()) == ['.lock',
                                                          'epoch_1.pth']
        assert (work / 'epoch_1.pth').read_bytes() == b'the other run'


def test_train_takes_over_a_stale_lock_and_releases_it(ntu60_pickle,
                                                       tmp_path):
    work = tmp_path / 'work'
    pid = _dead_pid()
    _stale_lock(work, pid)
    result = run_ok('tools/train.py', BASELINE, '--work-dir', str(work),
                    '--cfg-options', *tiny_options(ntu60_pickle),
                    'train_cfg.max_epochs=1', timeout=300)
    assert f'warning: {work}: taking over the lock of pid {pid}' \
        in result.stderr
    assert (work / 'epoch_1.pth').is_file() and not (work / '.lock').exists()


# --------------------------------------------------------------------------
# COCODIFF_TRUST_CHECKPOINTS takes explicit values only
# --------------------------------------------------------------------------
TRUST_VALUES = {'1': True, 'true': True, ' YES ': True, 'True': True,
                '': False, '0': False, 'false': False, 'no': False,
                'OFF': False, ' False ': False}


@pytest.mark.parametrize('value', list(TRUST_VALUES))
def test_the_trust_variable_takes_explicit_values(monkeypatch, value):
    from cocodiff_mm.engine.checkpoint_safety import (
        TRUST_ENV, trust_checkpoints_requested)

    monkeypatch.setenv(TRUST_ENV, value)
    assert trust_checkpoints_requested() is TRUST_VALUES[value]


@pytest.mark.parametrize('value', ['2', 'enable', 'nein'])
def test_another_trust_value_is_one_line(tmp_path, value):
    checkpoint = tmp_path / 'any.pth'
    checkpoint.write_bytes(b'not read')
    work_dir = tmp_path / 'work'
    error = one_error_line(run_tool(
        'tools/test.py', BASELINE, str(checkpoint), '--work-dir',
        str(work_dir), timeout=120,
        env=dict(COCODIFF_TRUST_CHECKPOINTS=value)))
    assert error.startswith(f'error: COCODIFF_TRUST_CHECKPOINTS={value!r}'), \
        error
    for allowed in ("'1'", "'true'", "'yes'", "'0'", "'false'", "'no'",
                    "'off'"):
        assert allowed in error, error
    assert not work_dir.exists()


# --------------------------------------------------------------------------
# Data wrong in meaning, not in shape (issue 24, cause 7)
# --------------------------------------------------------------------------
def test_a_config_without_texts_for_its_classes_exits_2(tmp_path):
    """A 10-class CoCoDiff config that forgets ``text_bank.texts`` inherits
    the base's NTU-120 texts: refused, not trained on their first 10."""
    config = tmp_path / 'mine_cocodiff.py'
    config.write_text(
        f"_base_ = ['{REPO}/configs/ctrgcn_demo.py',\n"
        f"          '{REPO}/configs/_base_/cocodiff.py']\n"
        'model = dict(cls_head={{_base_.cocodiff_head}})\n'
        'optim_wrapper = {{_base_.cocodiff_optim_wrapper}}\n'
        'train_cfg = {{_base_.cocodiff_train_cfg}}\n')
    work_dir = tmp_path / 'work'
    error = one_error_line(run_tool(
        'tools/train.py', str(config), '--work-dir', str(work_dir),
        '--cfg-options', 'model.cls_head.num_classes=10', timeout=120))
    assert error.startswith(
        f"error: {config}: model.cls_head.text_bank.texts='ntu120': "), error
    assert 'have 120 classes but the head has 10' in error, error
    assert 'text_bank.classes=10' in error, error
    assert not work_dir.exists()


def test_an_all_zero_clip_is_one_warning_line_or_an_error(tmp_path):
    """One ``warning:`` line naming the clip, whatever Python's warning
    filters say (``run_tool`` sets ``PYTHONWARNINGS=ignore``); with
    ``data_check.fail_on_empty=True`` an error naming it, before the
    Runner."""
    def zero(sample: Dict) -> None:
        sample['keypoint'] = np.zeros_like(sample['keypoint'])

    ann_file = write_pickle(tmp_path / 'ntu60_3d.pkl',
                            _with_first_sample(zero)())
    files = ['--cfg-options', f'{TRAIN_FIELD}={ann_file}',
             f'val_dataloader.dataset.ann_file={ann_file}']
    # The absent --resume checkpoint stops the run right after the data
    # check, so nothing trains.
    result = run_tool('tools/train.py', BASELINE, '--work-dir',
                      str(tmp_path / 'work'), '--resume',
                      str(tmp_path / 'absent.pth'), *files, timeout=120)
    warnings = [line for line in result.stderr.splitlines()
                if line.startswith('warning: ')]
    assert len(warnings) == 1, result.stderr[-3000:]
    assert warnings[0].startswith(
        f'warning: {ann_file}: 1 of 120 clips are empty: 1 all-zero '
        f'({FIRST_SAMPLE});'), warnings
    assert 'absent.pth does not exist' in one_error_line(result)

    work_dir = tmp_path / 'refused'
    result = run_tool('tools/train.py', BASELINE, '--work-dir',
                      str(work_dir), *files,
                      'data_check.fail_on_empty=True', timeout=120)
    error = one_error_line(result)
    assert str(ann_file) in error, error
    assert f'[{FIRST_SAMPLE}] keypoint: all-zero clip' in result.stderr
    assert 'data_check.fail_on_empty=True' in result.stderr
    assert 'warning: ' not in result.stderr
    assert_no_work_dir(work_dir)
