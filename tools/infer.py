"""Print the top-5 classes of one skeleton clip for a trained checkpoint.

    python tools/infer.py CONFIG CHECKPOINT INPUT [--sample NAME]

INPUT is a raw NTU RGB+D ``.skeleton`` file, a Kinetics-Skeleton ``.json``
clip, a ``.npy`` array ``(M, T, V, C)`` or ``(T, V, C)``, or an annotation
pickle ``.pkl`` with ``--sample FRAME_DIR`` naming one of its samples. The
clip goes through the config's test pipeline. Plain and CoCoDiff
checkpoints both work: inference builds the stock GCN (no diffusion part)
and loads its weights strictly. A bad input (an all-zero or near-constant
clip included), config, checkpoint or ``--out`` path (checked first) prints
one line and exits 2.
"""
import argparse
import sys

import cocodiff_mm  # noqa: F401  (runtime fixes, registration)
from mmengine.config import Config, DictAction

from cocodiff_mm import runtime
from cocodiff_mm.apis import classify_clip
from cocodiff_mm.utils.atomic_write import atomic_write_json
from cocodiff_mm.utils.config_keys import ConfigError
from cocodiff_mm.utils.outputs import check_writable


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config the checkpoint was trained '
                        'with (or its baseline)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('input', help='.skeleton, .json, .npy or .pkl clip')
    parser.add_argument(
        '--sample', help='frame_dir of the sample to classify (.pkl input)')
    parser.add_argument(
        '--label-names',
        help='class names, one per line in class order (default: chosen '
        'for the config, see cocodiff_mm/apis/class_names.py)')
    parser.add_argument('--topk', type=int, default=5,
                        help='how many classes to print (default: 5)')
    parser.add_argument(
        '--out', help='also write the top classes and every score to this '
        'JSON file')
    parser.add_argument(
        '--device', help='e.g. cpu, cuda:0 (default: CUDA when available)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (lists as key="[a,b]")')
    parser.add_argument('--debug', action='store_true',
                        help='show the traceback of errors (exit 2)')
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f'--topk must be >= 1, got {args.topk}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        runtime.setup()  # safe checkpoint loading (and the trust opt-in)
        if args.out:
            check_writable(args.out, '--out')
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        prediction = classify_clip(cfg, args.checkpoint, args.input,
                                   sample=args.sample,
                                   label_names=args.label_names,
                                   device=args.device)
    except (ConfigError, FileNotFoundError) as error:
        if args.debug:
            raise
        print(f'error: {error}', file=sys.stderr)
        return 2
    print('\n'.join(prediction.report(args.topk)))
    if args.out:
        atomic_write_json(args.out, prediction.to_dict(args.topk))
    return 0


if __name__ == '__main__':
    sys.exit(main())
