"""Cost of one diffusion training step, eager vs ``torch.compile`` modes.

    python tools/benchmark_denoiser_compile.py [--device cuda] [--modes ...]

One step is what stage 1 does per batch: ``L_rec`` on real features plus a
full generation chain (forward to T, reverse to x̂0) with a loss on its
output, backward and an SGD step, for the paper-literal
``ConditionalUNet1D`` (C=256, text dim 512, batch 64, T=30; the shipped
default is ``ConditionalMLPUNet``). The chain runs about 60 small UNet
passes per step, so it is bound by kernel launches on a GPU; CUDA graphs
(``reduce-overhead``) remove most of that. Warm-up includes compilation.
"""
import argparse
import time

import cocodiff_mm  # noqa: F401  (runtime fixes first)
import torch

from mmaction.registry import MODELS
from cocodiff_mm.models.diffusion import GaussianDiffusion

MODES = ('eager', 'default', 'reduce-overhead')


def time_mode(mode: str, device: str, steps: int, batch_size: int) -> str:
    """Mean milliseconds per step, and warm-up (compile) seconds."""
    torch.manual_seed(0)
    diffusion = GaussianDiffusion(num_steps=30, clip_denoised=5.0).to(device)
    net = MODELS.build(
        dict(type='ConditionalUNet1D', feat_dim=256, cond_dim=512,
             base_channels=32)).to(device)
    denoise = net if mode == 'eager' else torch.compile(net, mode=mode)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)
    x0 = torch.randn(batch_size, 256, device=device)
    cond = torch.randn(batch_size, 512, device=device)

    def step() -> None:
        loss = (diffusion.training_losses(denoise, x0, cond)['loss'].mean() +
                diffusion.generate(denoise, x0, cond).pow(2).mean())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def sync() -> None:
        if device.startswith('cuda'):
            torch.cuda.synchronize()

    start = time.perf_counter()
    for _ in range(3):
        step()
    sync()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    per_step = (time.perf_counter() - start) / steps * 1000
    return f'{mode:>16}: {per_step:8.1f} ms/step (warm-up {warm:.0f} s)'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default=None,
                        help='default: cuda if available, else cpu')
    parser.add_argument('--modes', nargs='+', default=list(MODES),
                        choices=MODES)
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=64)
    args = parser.parse_args()
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    for mode in args.modes:
        try:
            print(time_mode(mode, device, args.steps, args.batch_size),
                  flush=True)
        except Exception as error:  # report and go on with the next mode
            print(f'{mode:>16}: failed: {type(error).__name__}: {error}',
                  flush=True)


if __name__ == '__main__':
    main()
