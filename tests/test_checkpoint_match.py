"""tools/test.py refuses a checkpoint that does not fit the config's model
(instead of reporting the accuracy of a half-loaded one), and a corrupt one,
in one line with exit 2; --non-strict keeps mmengine's behaviour."""
import pytest
import torch

from conftest import run_ok, run_tool, tiny_options
from cocodiff_mm.engine.checkpoint_match import compare_state, likely_cause

BASELINE = 'configs/ctrgcn_ntu60_xsub.py'


def test_compare_state_closed_form():
    model = dict(a=torch.zeros(2, 3), b=torch.zeros(4),
                 **{'cls_head.fc.weight': torch.zeros(5, 2),
                    'cls_head.denoiser.w': torch.zeros(1),
                    'cls_head.denoiser.v': torch.zeros(3)})
    # The denoiser's v has another shape (other diffusion options): not used
    # by evaluation, so not a mismatch.
    state = {'a': torch.zeros(2, 4), 'cls_head.fc.weight': torch.zeros(5, 2),
             'cls_head.denoiser.v': torch.zeros(7), 'extra': torch.zeros(1)}
    missing, unexpected, shapes = compare_state(model, state)
    # The training-only denoiser key may be absent (an exported checkpoint).
    assert missing == ['b'] and unexpected == ['extra']
    assert shapes == ['a: checkpoint (2, 4) vs model (2, 3)']
    assert 'CoCoDiff checkpoint given to a baseline config' in likely_cause(
        [], ['cls_head.denoiser.w', 'cls_head.loss_text.t'], [])
    assert 'another config' in likely_cause([], [], shapes)


@pytest.fixture
def checkpoint(ntu_baseline_run):
    return ntu_baseline_run / 'epoch_1.pth'


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('error: ')]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def test_another_width_is_refused_before_evaluation(checkpoint, ntu60_pickle,
                                                     tmp_path):
    wider = ['model.backbone.base_channels=16', 'model.cls_head.in_channels=64']
    result = run_tool('tools/test.py', BASELINE, str(checkpoint),
                      '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                      *tiny_options(ntu60_pickle), *wider)
    error = one_error_line(result)
    assert error.startswith(f'error: {checkpoint} does not match the model:')
    assert 'shape mismatches (backbone.' in error
    assert 'Likely cause: the checkpoint was trained with another config' \
        in error
    assert 'acc/top1' not in result.stdout + result.stderr
    assert not (tmp_path / 'w').exists()
    # --non-strict: mmengine's behaviour (evaluates a half-loaded model).
    lenient = run_ok('tools/test.py', BASELINE, str(checkpoint),
                     '--work-dir', str(tmp_path / 'w'), '--non-strict',
                     '--cfg-options', *tiny_options(ntu60_pickle), *wider)
    assert 'acc/top1' in lenient.stdout + lenient.stderr


def test_a_cocodiff_checkpoint_in_a_baseline_config_says_export(
        checkpoint, ntu60_pickle, tmp_path):
    saved = torch.load(checkpoint, weights_only=False)
    saved['state_dict']['cls_head.denoiser.out.weight'] = torch.zeros(3)
    saved['state_dict']['cls_head.feature_mean'] = torch.zeros(32)
    cocodiff = tmp_path / 'cocodiff.pth'
    torch.save(saved, cocodiff)
    error = one_error_line(
        run_tool('tools/test.py', BASELINE, str(cocodiff), '--work-dir',
                 str(tmp_path / 'w'), '--cfg-options',
                 *tiny_options(ntu60_pickle)))
    assert '2 unexpected keys (cls_head.denoiser.out.weight, ' \
        'cls_head.feature_mean)' in error
    assert 'tools/export_inference_ckpt.py' in error


@pytest.mark.parametrize('damage', ['random', 'truncated'])
def test_a_corrupt_checkpoint_is_one_line(checkpoint, ntu60_pickle, tmp_path,
                                          damage):
    data = checkpoint.read_bytes()
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(bytes(range(256)) * 40 if damage == 'random' else
                    data[:len(data) // 2])
    error = one_error_line(
        run_tool('tools/test.py', BASELINE, str(bad), '--work-dir',
                 str(tmp_path / 'w'), '--cfg-options',
                 *tiny_options(ntu60_pickle)))
    assert error.startswith(f'error: {bad}: corrupt or truncated checkpoint')


def test_a_pickle_payload_is_refused_in_one_line(ntu60_pickle, tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ('unpickled',))

    path = tmp_path / 'payload.pth'
    torch.save(dict(state_dict={}, meta=Payload()), path)
    result = run_tool('tools/test.py', BASELINE, str(path), '--work-dir',
                      str(tmp_path / 'w'), '--cfg-options',
                      *tiny_options(ntu60_pickle))
    error = one_error_line(result)
    assert error.startswith(f'error: {path}: refused, it holds a pickled '
                            'object outside the allow-list')
    assert '(print)' in error and 'unpickled' not in result.stdout
