"""Stage 1 on cached features goes through the optim wrapper's update path.

A real Runner trains stage 1 of the CoCoDiff NTU config (shrunk) twice:
with batch 6 and ``accumulative_counts=2``, and with batch 12. The diffusion
losses are made deterministic per sample (timestep and noise derived from
the feature itself), so the two runs must end with the same diffusion
weights; a stage-1 step that called ``backward``/``step`` by hand would
update twice as often and fail.
"""
import argparse

import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from conftest import tiny_options
from cocodiff_mm.models.diffusion.gaussian_diffusion import GaussianDiffusion

CONFIG = 'configs/ctrgcn_cocodiff_ntu60_xsub.py'


def parse_options(options):
    namespace = argparse.Namespace()
    DictAction(option_strings=[], dest='options')(None, namespace, options)
    return namespace.options


@pytest.fixture
def deterministic_diffusion(monkeypatch):
    """L_rec with t and noise that depend only on each sample's feature."""
    original = GaussianDiffusion.training_losses

    def training_losses(self, denoiser, x0, cond, t=None, noise=None,
                        generator=None):
        # The signs of the first features pick the step: the same for a
        # sample whatever batch it is in (a float sum could round apart).
        signs = (x0.detach()[:, :5] > 0).long()
        t = (signs * torch.tensor([1, 2, 4, 8, 16])).sum(dim=1) % \
            self.num_steps
        noise = torch.sin(x0.detach() * 37.0)
        return original(self, denoiser, x0, cond, t=t, noise=noise)

    monkeypatch.setattr(GaussianDiffusion, 'training_losses',
                        training_losses)


def stage1_weights(work_dir, ntu60_pickle, bank_dir, batch_size,
                   **wrapper):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(parse_options(tiny_options(ntu60_pickle, bank_dir)))
    cfg.merge_from_dict({
        'train_dataloader.batch_size': batch_size,
        # No coupling between samples and no random draws in the loss: L_rec
        # only, mean fine texts, fixed statistics; a constant lr, so the
        # iteration count does not matter.
        'model.cls_head.text_mode': 'fine',
        'model.cls_head.text_bank.sample_mode': 'mean',
        'model.cls_head.feature_norm_momentum': 0.0,
        'train_cfg.stage1_source': 'untrained',
        'train_cfg.stage1': dict(epochs=2, param_scheduler=[]),
        'train_cfg.stage2': dict(epochs=1),
        'randomness': dict(seed=0),
        'work_dir': str(work_dir),
        # SGD for the diffusion too: AdamW's first updates are about
        # lr * sign(grad), so float rounding between two ways of summing the
        # same gradient would move near-zero entries by +-lr.
        'optim_wrapper.diffusion.optimizer': dict(
            type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0),
    })
    cfg.optim_wrapper.update(wrapper)
    runner = Runner.from_cfg(cfg)
    initial = {k: v.clone() for k, v in runner.model.state_dict().items()
               if k.startswith('cls_head.denoiser.')}
    runner.train()
    state = torch.load(work_dir / 'stage1_final.pth', weights_only=False)
    final = {k: v for k, v in state['state_dict'].items()
             if k.startswith('cls_head.denoiser.')}
    return final, initial


def test_accumulation_matches_a_doubled_batch(deterministic_diffusion,
                                              ntu60_pickle, text_bank_cache,
                                              tmp_path):
    # 60 training clips: 10 batches of 6 (5 updates) or 5 batches of 12.
    accumulated, _ = stage1_weights(tmp_path / 'accumulated', ntu60_pickle,
                                    text_bank_cache, 6,
                                    accumulative_counts=2)
    doubled, _ = stage1_weights(tmp_path / 'doubled', ntu60_pickle,
                                text_bank_cache, 12)
    single, _ = stage1_weights(tmp_path / 'single', ntu60_pickle,
                               text_bank_cache, 6)
    changed = [k for k in doubled
               if not torch.allclose(doubled[k], single[k], atol=1e-6)]
    assert changed, 'batch 6 and batch 12 should train differently'
    for key in doubled:
        torch.testing.assert_close(accumulated[key], doubled[key],
                                   rtol=1e-3, atol=1e-5, msg=key)


def test_clip_grad_applies_in_stage1(ntu60_pickle, text_bank_cache,
                                     tmp_path):
    """With a tiny max_norm the diffusion hardly moves in stage 1, and
    mmengine logs the clipped gradient norm."""
    sgd = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0)
    free, initial = stage1_weights(tmp_path / 'free', ntu60_pickle,
                                   text_bank_cache, 12, optimizer=sgd)
    clipped, _ = stage1_weights(tmp_path / 'clipped', ntu60_pickle,
                                text_bank_cache, 12, optimizer=sgd,
                                clip_grad=dict(max_norm=1e-8))

    def moved(final):
        return sum(float((final[k] - initial[k]).abs().sum())
                   for k in initial)

    assert moved(clipped) < 1e-2 * moved(free)
    log = '\n'.join(p.read_text()
                    for p in (tmp_path / 'clipped').glob('*/*.log'))
    assert 'grad_norm' in log
