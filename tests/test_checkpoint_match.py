"""How a checkpoint is compared with a model, and the likely cause named.

The tools that refuse a checkpoint that does not fit, or a corrupt one
(``tools/test.py``, ``tools/infer.py``, the export, ``--resume``), are run
on such checkpoints in ``tests/test_faults.py``.
"""
import torch

from cocodiff_mm.engine.checkpoint_match import compare_state, likely_cause


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

