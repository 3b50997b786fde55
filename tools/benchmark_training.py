"""Training cost of CoCoDiff against the baseline, measured side by side.

    python tools/benchmark_training.py [CONFIG] [--device cuda] [--amp]
        [--batch-size N] [--rounds 7] [--no-literal] [--out FILE.json]

Times one real optimisation step of each kind in turns, in one process, on
the same batch: the baseline, stage 1 on cached features, the stage-1
feature extraction, stage 2, and stage 2 in the paper-literal setting.
Prints the median seconds, the ratios to the baseline, memory, and the
whole two-stage run in baseline epochs (the paper's Table VI measure);
writes the same figures as JSON. See cocodiff_mm/analysis/training_cost.py.
"""
import argparse
import json
import logging
import os

import cocodiff_mm  # noqa: F401  (registers the modules)
import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from cocodiff_mm import runtime
from cocodiff_mm.analysis.training_cost import (LITERAL_OPTIONS,
                                                TrainingCostBenchmark,
                                                format_report,
                                                whole_run_estimate)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'config', nargs='?', default='configs/ctrgcn_cocodiff_ntu60_xsub.py')
    parser.add_argument('--device', default=None,
                        help='cpu or cuda (default: cuda when available)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='default: 8 on the CPU, 64 on CUDA')
    parser.add_argument('--frames', type=int, default=None,
                        help="default: the training pipeline's clip_len")
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--amp', action='store_true',
                        help='AmpOptimWrapper (mixed precision, CUDA)')
    parser.add_argument('--no-literal', action='store_true',
                        help='skip the paper-literal stage-2 arm')
    parser.add_argument('--out', default=None, help='JSON of the figures '
                        '(default: work_dirs/benchmark_training/<config>_'
                        '<device>.json)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings; the text encoder defaults to '
        'random weights (the cost does not depend on them)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict({'model.cls_head.text_bank.encoder': 'random'})
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    # Building two models logs every parameter's lr and init; keep warnings.
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    batch_size = args.batch_size or (64 if device.startswith('cuda') else 8)
    runtime.setup()  # as tools/train.py does (the allocator without CUDA)
    benchmark = TrainingCostBenchmark(
        cfg, device, batch_size, frames=args.frames, amp=args.amp,
        literal_options=None if args.no_literal else LITERAL_OPTIONS)
    result = benchmark.run(args.rounds, args.warmup,
                           progress=lambda line: print(line, flush=True))
    estimate = whole_run_estimate(result['arms'], cfg.train_cfg)
    print()
    print(format_report(args.config, result, estimate))
    name = os.path.splitext(os.path.basename(args.config))[0]
    out = args.out or os.path.join('work_dirs', 'benchmark_training',
                                   f'{name}_{device.split(":")[0]}.json')
    os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
    with open(out, 'w') as file:
        json.dump(dict(config=args.config, **result, estimate=estimate),
                  file, indent=1)
    print(f'\nfigures written to {out}')


if __name__ == '__main__':
    main()
