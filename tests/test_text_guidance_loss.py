"""Tests of the coarse-text contrastive KL loss (method.md Eq. 5/6)."""
import math

import pytest

import cocodiff_mm  # noqa: F401  (runtime fixes before mmaction)
import torch

from mmaction.registry import MODELS
from cocodiff_mm.models.losses import TextGuidanceLoss


def hand_loss(skeleton, text, labels, tau):
    """Eq. 5/6 with Python floats and explicit loops."""
    n = len(labels)

    def unit(v):
        norm = math.sqrt(sum(a * a for a in v))
        return [a / norm for a in v]

    s = [unit(v) for v in skeleton]
    e = [unit(v) for v in text]
    logit = [[sum(a * b for a, b in zip(s[i], e[j])) / tau for j in range(n)]
             for i in range(n)]
    q = [[float(labels[i] == labels[j]) for j in range(n)] for i in range(n)]
    q = [[v / sum(row) for v in row] for row in q]
    kl_s2t = kl_t2s = 0.0
    for i in range(n):  # row i: skeleton i over texts j
        z = sum(math.exp(logit[i][j]) for j in range(n))
        for j in range(n):
            if q[i][j] > 0:
                p = math.exp(logit[i][j]) / z
                kl_s2t += q[i][j] * math.log(q[i][j] / p)
    for j in range(n):  # text j over skeletons i
        z = sum(math.exp(logit[i][j]) for i in range(n))
        for i in range(n):
            if q[j][i] > 0:
                p = math.exp(logit[i][j]) / z
                kl_t2s += q[j][i] * math.log(q[j][i] / p)
    return 0.5 * (kl_s2t / n + kl_t2s / n)


SKELETON = [[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]]
CLASS_TEXT = {0: [1.0, 1.0], 1: [-1.0, 2.0]}
LABELS = [0, 0, 1]


def test_tiny_batch_against_hand_value():
    loss = TextGuidanceLoss(temperature=0.5, learnable_temperature=False)
    text = [CLASS_TEXT[y] for y in LABELS]
    value = loss(torch.tensor(SKELETON), torch.tensor(text),
                 torch.tensor(LABELS))
    expected = hand_loss(SKELETON, text, LABELS, tau=0.5)
    assert value.dim() == 0
    assert value.item() == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(0.359485, abs=1e-6)  # recorded once


def test_loss_weight_scales():
    emb = torch.randn(6, 4)
    text = torch.randn(6, 4)
    labels = torch.tensor([0, 1, 0, 2, 1, 1])
    base = TextGuidanceLoss(learnable_temperature=False)(emb, text, labels)
    heavy = TextGuidanceLoss(
        loss_weight=2.5, learnable_temperature=False)(emb, text, labels)
    assert heavy.item() == pytest.approx(2.5 * base.item(), rel=1e-6)


def test_aligned_is_lower_than_shuffled_and_near_zero():
    gen = torch.Generator().manual_seed(0)
    class_text = torch.eye(4)[:3] * 3  # orthogonal class texts
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])
    text = class_text[labels]
    aligned = text + 0.01 * torch.randn(8, 4, generator=gen)
    shuffled = aligned[torch.tensor([2, 5, 0, 6, 7, 1, 3, 4])]
    loss = TextGuidanceLoss(temperature=0.07, learnable_temperature=False)
    l_aligned = loss(aligned, text, labels)
    l_shuffled = loss(shuffled, text, labels)
    assert l_aligned < l_shuffled
    assert l_aligned.item() < 1e-3  # p equals the soft targets
    assert l_shuffled.item() > 1.0


def test_gradients_and_learnable_temperature():
    loss = MODELS.build(dict(type='TextGuidanceLoss', temperature=0.07))
    assert isinstance(loss, TextGuidanceLoss)
    assert isinstance(loss.logit_scale, torch.nn.Parameter)
    assert loss.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert loss.temperature == pytest.approx(0.07)
    emb = torch.randn(6, 5, requires_grad=True)
    text = torch.randn(6, 5, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    loss(emb, text, labels).backward()
    assert emb.grad.abs().sum() > 0
    assert text.grad.abs().sum() > 0
    assert loss.logit_scale.grad is not None
    assert loss.logit_scale.grad.abs() > 0
    assert 'logit_scale' in loss.state_dict()


def test_fixed_temperature_and_clamp():
    fixed = TextGuidanceLoss(temperature=0.2, learnable_temperature=False)
    assert not any(True for _ in fixed.parameters())
    assert 'logit_scale' not in fixed.state_dict()
    assert fixed.temperature == pytest.approx(0.2)
    # 1 / tau = 1000 is clamped to max_logit_scale = 100 (tau = 0.01).
    clamped = TextGuidanceLoss(
        temperature=0.001, learnable_temperature=False)
    ref = TextGuidanceLoss(temperature=0.01, learnable_temperature=False)
    emb, text = torch.randn(5, 3), torch.randn(5, 3)
    labels = torch.tensor([0, 1, 1, 0, 2])
    assert clamped.temperature == pytest.approx(0.01)
    torch.testing.assert_close(
        clamped(emb, text, labels), ref(emb, text, labels))


def test_errors():
    loss = TextGuidanceLoss()
    with pytest.raises(ValueError, match='skeleton_emb and text_emb'):
        loss(torch.randn(4, 3), torch.randn(4, 5), torch.zeros(4))
    with pytest.raises(ValueError, match='labels must have 4'):
        loss(torch.randn(4, 3), torch.randn(4, 3), torch.zeros(3))
    with pytest.raises(ValueError, match='temperature'):
        TextGuidanceLoss(temperature=0.0)
