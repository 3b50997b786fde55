"""Training cost of CoCoDiff relative to the baseline GCN, per iteration.

    python tools/benchmark_training.py [CONFIG] [--batch-size 16] [--iters 5]

Builds the CoCoDiff config's model and times real ``train_step`` calls
(forward, backward and SGD step) on random skeletons of the config's shape
for each objective: the baseline (stage 0: plain cross-entropy), stage 1 on
cached features (diffusion only), stage 1 through the frozen backbone, and
stage 2 (full objective). Prints seconds per iteration, peak CUDA memory
when on a GPU, and each ratio to the baseline; then the whole-schedule cost
of the config's stages in baseline-epoch units (the paper's Table VI reports
1.37x for both stages against one baseline epoch of CTR-GCN).
"""
import argparse
import time
from typing import Callable, Dict

import cocodiff_mm  # noqa: F401  (runtime fixes first)
import torch
from mmengine.config import Config, DictAction
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample


def parse_args() -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'config',
        nargs='?',
        default='configs/ctrgcn_cocodiff_ntu60_xsub.py',
        help='a CoCoDiff config')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--frames', type=int, default=64)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', default=None, help='default: cuda if '
                        'available, else cpu')
    parser.add_argument(
        '--amp', action='store_true', help='float16 autocast, as --amp')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings; the text encoder defaults to the '
        'offline MiniLM')
    return parser.parse_args()


def make_batch(cfg: Config, batch_size: int, frames: int,
               num_classes: int) -> Dict:
    """Random skeletons shaped like the config's input."""
    from mmaction.models.utils import Graph
    backbone = cfg.model.backbone
    joints = Graph(**backbone.graph_cfg).num_node
    persons = backbone.get('num_person', 2)
    channels = backbone.get('in_channels', 3)
    inputs = torch.randn(batch_size, 1, persons, frames, joints, channels)
    samples = []
    for index in range(batch_size):
        sample = ActionDataSample()
        sample.set_gt_label(index % num_classes)
        samples.append(sample)
    return dict(inputs=list(inputs), data_samples=samples)


def time_it(step: Callable[[], None], iters: int, warmup: int,
            device: torch.device) -> Dict[str, float]:
    """Mean seconds per call and peak CUDA memory (GiB) of ``step``."""
    for _ in range(warmup):
        step()
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / iters
    memory = (torch.cuda.max_memory_allocated() / 2**30
              if device.type == 'cuda' else float('nan'))
    return dict(seconds=seconds, memory=memory)


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict({'model.cls_head.text_bank.encoder': 'minilm'})
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    model.train()
    head = model.cls_head
    head.text_bank.build()
    head.text_bank.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    wrapper = OptimWrapper(optimizer)
    batch = make_batch(cfg, args.batch_size, args.frames, head.num_classes)
    autocast = (torch.autocast(device.type, dtype=torch.float16)
                if args.amp else torch.autocast(device.type, enabled=False))

    def train_step() -> None:
        with autocast:
            model.train_step(batch, optim_wrapper=wrapper)

    with torch.no_grad():
        data = model.data_preprocessor(batch, training=False)
        pooled = head.pool_features(model.extract_feat(data['inputs'])[0])
        labels = head.labels_of(data['data_samples'], device)

    def cached_stage1_step() -> None:
        with autocast:
            losses = head.loss_from_pooled(pooled, labels)
        wrapper.update_params(sum(losses.values()))

    results = {}
    head.set_objective('classify')
    results['baseline (stage 0)'] = time_it(train_step, args.iters,
                                            args.warmup, device)
    head.set_objective('diffusion')
    results['stage 1, cached features'] = time_it(cached_stage1_step,
                                                  args.iters, args.warmup,
                                                  device)
    for param in model.backbone.parameters():
        param.requires_grad_(False)
    results['stage 1, frozen backbone'] = time_it(train_step, args.iters,
                                                  args.warmup, device)
    for param in model.backbone.parameters():
        param.requires_grad_(True)
    head.set_objective('joint')
    results['stage 2 (full objective)'] = time_it(train_step, args.iters,
                                                  args.warmup, device)

    base = results['baseline (stage 0)']
    print(f'\n{args.config} on {device} (batch {args.batch_size}, '
          f'{args.frames} frames, T={head.diffusion.num_steps}'
          f'{", fp16 autocast" if args.amp else ""})')
    print(f'{"objective":<28} {"s/iter":>8} {"ratio":>7} {"peak GiB":>9} '
          f'{"ratio":>7}')
    for name, result in results.items():
        print(f'{name:<28} {result["seconds"]:8.3f} '
              f'{result["seconds"] / base["seconds"]:7.2f} '
              f'{result["memory"]:9.2f} '
              f'{result["memory"] / base["memory"]:7.2f}')
    train_cfg = cfg.train_cfg
    stage1 = train_cfg.get('stage1', {}).get('epochs', 0)
    stage2 = train_cfg.get('stage2', {}).get('epochs', 0)
    if stage2:
        per_epoch = (
            results['stage 2 (full objective)']['seconds'] +
            stage1 / stage2 *
            results['stage 1, cached features']['seconds']) / base['seconds']
        print(f'\nStages 1+2 per stage-2 epoch, in baseline epochs: '
              f'{per_epoch:.2f}x (stage 1 = {stage1} cached epochs per '
              f'{stage2} stage-2 epochs; paper, Table VI: 1.37x)')


if __name__ == '__main__':
    main()
