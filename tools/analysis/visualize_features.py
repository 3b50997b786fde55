"""Figures and numbers of a trained model's features and predictions.

Two sub-commands, each writing one folder (``--out-dir``) of PNGs and JSON
(file list: cocodiff_mm/analysis/feature_report.py)::

    # Real (and, for a CoCoDiff checkpoint, generated) pooled features of a
    # split: t-SNE (real 'o', generated 'x'), confusion matrix of the
    # model's predictions, features.npz and metrics.json (accuracy, DIV of
    # real and generated features, class-mean distances, per-class accuracy)
    python tools/analysis/visualize_features.py features CONFIG CKPT \\
        --out-dir work_dirs/vis --split xsub_val --classes 0 1 2 3 4

    # Per-class accuracy of two checkpoints side by side (paper Fig. 5) and
    # their confusion matrices, from tools/test.py CONFIG CKPT --dump X.pkl
    python tools/analysis/visualize_features.py per-class \\
        --dumps baseline.pkl cocodiff.pkl --names baseline cocodiff \\
        --config CONFIG --out-dir work_dirs/fig5

``--out-dir`` is checked writable first. ``per-class`` reads dumps without
running anything in them, refuses NaN/inf scores and counts a tie with the
true class as a miss. ``features`` reads ``--loader`` (default
``val_dataloader``: one clip per sample) with its ``dataset.split``
replaced by ``--split``; the features are generated in eval mode under
``--seed``. Class names come from ``--label-names FILE`` (one per line),
else the config's class texts, else indices.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import cocodiff_mm  # noqa: E402,F401  (applies the runtime fixes first)
from mmengine.config import Config, DictAction  # noqa: E402

from cocodiff_mm.analysis.feature_report import (  # noqa: E402
    DumpError, write_feature_report, write_per_class_report)
from cocodiff_mm.engine.preflight import PreflightError  # noqa: E402
from cocodiff_mm.utils import ConfigError  # noqa: E402
from cocodiff_mm.utils.outputs import check_writable  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments of both sub-commands."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest='command', required=True)

    features = commands.add_parser(
        'features', help='t-SNE, DIV and confusion matrix of one checkpoint')
    features.add_argument('config', help='config file (a CoCoDiff one)')
    features.add_argument('checkpoint', help='checkpoint file')
    features.add_argument('--out-dir', required=True, help='output folder')
    features.add_argument(
        '--loader', default='val_dataloader',
        help='dataloader of the config to read (default: val_dataloader, '
        'one clip per sample)')
    features.add_argument('--split', help='dataset.split to read instead')
    features.add_argument(
        '--classes', nargs='+', type=int,
        help='classes of the t-SNE figure (default: the first 10)')
    features.add_argument(
        '--max-per-class', type=int, default=200,
        help='real samples per class in the t-SNE (default: 200)')
    features.add_argument(
        '--div-pairs', type=int, default=200,
        help='pairs of the DIV estimate (default: 200, Action2Motion)')
    features.add_argument(
        '--seed', type=int, default=0,
        help='seed of generation, DIV pairs and t-SNE (default: 0)')
    features.add_argument(
        '--no-generated', action='store_true',
        help='real features only, even for a CoCoDiff checkpoint')
    features.add_argument(
        '--device', help='cpu or cuda (default: cuda when available)')
    features.add_argument(
        '--skip-data-check', action='store_true',
        help='do not validate the annotation file first')
    features.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value')

    per_class = commands.add_parser(
        'per-class', help='per-class accuracy bars of tools/test.py dumps')
    per_class.add_argument('--dumps', nargs='+', required=True,
                           help='tools/test.py --dump pickles, one split')
    per_class.add_argument('--names', nargs='+',
                           help='one name per dump (default: file names)')
    per_class.add_argument('--out-dir', required=True, help='output folder')
    per_class.add_argument(
        '--config', help='config whose class texts name the classes')
    per_class.add_argument(
        '--classes', nargs='+', type=int,
        help='classes of the bar plot (default: all)')
    per_class.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of --config, key=value')

    for command in (features, per_class):
        command.add_argument(
            '--label-names', help='file of class names, one per line')
        command.add_argument(
            '--debug', action='store_true',
            help='show the traceback of errors (exit 2)')
    return parser.parse_args(argv)


def load_config(path: str, options) -> Config:
    """The config with ``--cfg-options`` merged."""
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def run_features(args: argparse.Namespace) -> int:
    """The ``features`` sub-command."""
    import torch
    from tqdm import tqdm

    from cocodiff_mm.analysis.feature_extraction import (
        build_split_dataloader, dataset_split, extract_features, load_model,
        split_loader_cfg)
    from cocodiff_mm.apis.class_names import choose_class_names
    from cocodiff_mm.engine.launch import prepare_to_run

    cfg = load_config(args.config, args.cfg_options)
    cfg[args.loader] = split_loader_cfg(cfg, args.loader, args.split)
    status = prepare_to_run(cfg, args, (args.loader, ))
    if status:
        return status
    class_names, source = choose_class_names(cfg, args.label_names)
    print(f'class names: {source}')
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model, can_generate = load_model(cfg, args.checkpoint, device)
    generate = can_generate and not args.no_generated
    if not can_generate:
        print(f'{args.checkpoint} holds no diffusion: real features only')
    dataloader = build_split_dataloader(cfg, args.loader, seed=args.seed)
    features = extract_features(
        model, dataloader, generate=generate, seed=args.seed,
        progress=lambda it, total, desc: tqdm(it, total=total, desc=desc))
    print(f'{len(features.labels)} samples; t-SNE ...')
    report = write_feature_report(
        features, args.out_dir, model.cls_head.num_classes, class_names,
        args.classes, args.max_per_class, args.div_pairs, args.seed,
        settings=dict(config=args.config, checkpoint=args.checkpoint,
                      loader=args.loader,
                      split=dataset_split(cfg[args.loader]),
                      generated=generate, seed=args.seed, device=device))
    line = (f'accuracy {report["accuracy"]:.4f}, DIV real '
            f'{report["div_real"]:.4f}')
    if generate:
        line += (f', generated {report["div_generated"]:.4f} (their '
                 f'accuracy {report["accuracy_generated"]:.4f})')
    print(f'{line}\nwrote {args.out_dir}')
    return 0


def run_per_class(args: argparse.Namespace) -> int:
    """The ``per-class`` sub-command."""
    from cocodiff_mm.apis.class_names import (choose_class_names,
                                              read_name_file)

    class_names = None
    if args.config:
        class_names, source = choose_class_names(
            load_config(args.config, args.cfg_options), args.label_names)
        print(f'class names: {source}')
    elif args.label_names:
        class_names = read_name_file(args.label_names)
    report = write_per_class_report(args.dumps, args.out_dir, args.names,
                                    class_names, args.classes)
    for name, model in report['models'].items():
        print(f'{name}: top-1 {model["accuracy"]:.4f}, mean class '
              f'{model["mean_class_accuracy"]:.4f} '
              f'({model["num_samples"]} samples)')
    print(f'wrote {args.out_dir}')
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    run = run_features if args.command == 'features' else run_per_class
    try:
        check_writable(args.out_dir, '--out-dir', folder=True)
        return run(args)
    except (ConfigError, PreflightError, DumpError, ValueError) as error:
        if args.debug:
            raise
        print(f'error: {error}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
