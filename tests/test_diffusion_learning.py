"""The conditional UNet + GaussianDiffusion learn a text-conditioned 2-class
feature distribution on CPU (seconds), and ``generate`` follows the text."""
import pytest

import cocodiff_mm  # noqa: F401  (runtime fixes before mmaction)
import torch

from cocodiff_mm.models.diffusion import ConditionalUNet1D, GaussianDiffusion

FEAT_DIM = 32
TEXT_DIM = 8
NUM_STEPS = 30
SPREAD = 0.3


@pytest.fixture(scope='module')
def trained():
    """Fit the denoiser once for every test of this file."""
    return _train()


def _train():
    """Two Gaussian clusters, each with a fixed class text; 200 Adam steps."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    direction = torch.randint(0, 2, (FEAT_DIM, ), generator=gen) * 2 - 1.0
    centroids = torch.stack([direction, -direction])  # (2, C), far apart
    texts = torch.randn(2, TEXT_DIM, generator=gen)  # fixed class texts

    def sample(labels):
        noise = torch.randn(len(labels), FEAT_DIM, generator=gen)
        return centroids[labels] + SPREAD * noise

    net = ConditionalUNet1D(
        feat_dim=FEAT_DIM,
        cond_dim=TEXT_DIM,
        base_channels=16,
        channel_mults=(1, 2),
        time_embed_dim=32)
    diffusion = GaussianDiffusion(num_steps=NUM_STEPS)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(200):
        labels = torch.randint(0, 2, (128, ), generator=gen)
        out = diffusion.training_losses(
            net, sample(labels), texts[labels], generator=gen)
        loss = out['loss'].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    return dict(
        net=net,
        diffusion=diffusion,
        centroids=centroids,
        texts=texts,
        sample=sample,
        losses=losses)


def nearest_class(x, centroids):
    return torch.cdist(x, centroids).argmin(dim=1)


def test_training_loss_decreases(trained):
    losses = trained['losses']
    # Zero-initialised output: the first loss is E[eps^2] = 1.
    assert 0.8 < losses[0] < 1.2
    assert sum(losses[-20:]) / 20 < 0.2


# Deterministic DDIM (eta = 0) follows the probability-flow ODE, which is
# more sensitive to the errors of this briefly trained denoiser than the
# stochastic samplers (over 4 training seeds: 0.965 - 0.995 with all 30
# steps, 0.915 - 0.985 with 10; DDPM and DDIM eta = 1 gave 0.995 - 1.0).
@pytest.mark.parametrize('sampler,kwargs', [
    ('ddpm', {}),
    ('ddim', dict(ddim_steps=10, eta=1.0)),
    ('ddim', dict(eta=0.0)),
])
def test_generate_from_real_follows_text(trained, sampler, kwargs):
    """Real features of both classes, conditioned on their own class text
    (first half) or on the other class's text (second half)."""
    gen = torch.Generator().manual_seed(10)
    n = 128
    real_labels = torch.arange(n) % 2
    own = torch.arange(n) < n // 2
    text_labels = torch.where(own, real_labels, 1 - real_labels)
    x0 = trained['sample'](real_labels)
    with torch.no_grad():
        out = trained['diffusion'].generate(
            trained['net'],
            x0,
            trained['texts'][text_labels],
            sampler=sampler,
            generator=gen,
            **kwargs)
    centroids = trained['centroids']
    hit = nearest_class(out, centroids) == text_labels
    assert hit[own].float().mean() >= 0.9
    assert hit[~own].float().mean() >= 0.9
    # The samples lie in the class cluster, not only on its side.
    dist = (out - centroids[text_labels]).norm(dim=1).median()
    assert dist < 3 * SPREAD * FEAT_DIM**0.5


def test_generate_from_pure_noise(trained):
    gen = torch.Generator().manual_seed(3)
    n = 128
    labels = torch.arange(n) % 2
    x_start = torch.randn(n, FEAT_DIM, generator=gen)
    with torch.no_grad():
        out = trained['diffusion'].p_sample_loop(
            trained['net'],
            x_start,
            trained['texts'][labels],
            start_step=NUM_STEPS - 1,
            generator=gen)
    hit = (nearest_class(out, trained['centroids']) == labels).float().mean()
    assert hit >= 0.9


def test_partial_chain_keeps_the_real_sample_close(trained):
    """Starting the chain at an early step stays near the real feature."""
    gen = torch.Generator().manual_seed(4)
    x0 = trained['sample'](torch.zeros(100, dtype=torch.long))
    cond = trained['texts'][0].expand(100, TEXT_DIM)
    shifts = []
    with torch.no_grad():
        for start_step in (0, 1, NUM_STEPS - 1):
            out = trained['diffusion'].generate(
                trained['net'], x0, cond, start_step=start_step,
                generator=gen)
            shifts.append((out - x0).norm(dim=1).mean().item())
    assert shifts[0] < shifts[1] < 0.6 * shifts[2]
    # The full chain forgets x0: the shift is that of two independent
    # samples of the cluster, sqrt(2) * SPREAD * sqrt(C) ~ 2.4.
    assert 1.5 < shifts[2] < 3.5
