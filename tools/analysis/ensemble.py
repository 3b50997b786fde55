"""Fuse the ``tools/test.py --dump`` pickles of several skeleton streams.

    python tools/analysis/ensemble.py --preds j.pkl b.pkl jm.pkl bm.pkl \\
        --preset ctrgcn --out fused.json

Samples are matched by name (``frame_dir``); dumps of different samples or
labels, with NaN/inf scores, or holding anything but numpy, torch tensors
and builtin containers (nothing in a dump runs) are refused. Prints top-1,
top-5 and mean-class accuracy of every stream and of the fusion (a tie with
the true class counts as a miss; see cocodiff_mm/analysis/ensemble.py).
``--out`` is checked writable before any dump is read.

Never tune the coefficients on the test split. ``--search-preds`` takes
validation dumps (one per stream, same order), searches the coefficients on
them only, refuses them if they share a sample with ``--preds``, and
reports ``--preds`` with the weights found.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cocodiff_mm.analysis.ensemble import (  # noqa: E402
    DEFAULT_SEARCH_GRID, PRESETS, EnsembleError, ensemble_report,
    format_report)
from cocodiff_mm.utils import ConfigError, atomic_write_json  # noqa: E402
from cocodiff_mm.utils.outputs import check_writable  # noqa: E402


def parse_args() -> argparse.Namespace:
    """Command-line arguments (those of mmaction2's report_accuracy.py and
    the search)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preds',
                        nargs='+',
                        required=True,
                        help='one tools/test.py --dump pickle per stream')
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument('--coefficients',
                         nargs='+',
                         type=float,
                         help='one fusion weight per --preds (default: all 1)')
    weights.add_argument(
        '--preset',
        choices=list(PRESETS),
        help='named weights: ctrgcn 0.6/0.6/0.4/0.4 and pyskl 2:2:1:1 (for '
        'joint, bone, joint motion, bone motion, in that order), equal')
    weights.add_argument(
        '--search-preds',
        nargs='+',
        metavar='VAL_PKL',
        help='validation dumps (one per stream, order of --preds) to search '
        'the weights on; never the test split: they must share no sample '
        'with --preds')
    parser.add_argument(
        '--search-grid',
        nargs='+',
        type=float,
        default=list(DEFAULT_SEARCH_GRID),
        help='values each weight takes in the search (default: '
        f'{" ".join(f"{v:g}" for v in DEFAULT_SEARCH_GRID)})')
    parser.add_argument('--apply-softmax',
                        action='store_true',
                        help='softmax each stream\'s scores before fusing')
    parser.add_argument('--out', help='also write the results to this JSON')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    try:
        if args.out:
            check_writable(args.out, '--out')
        report = ensemble_report(args.preds, args.coefficients, args.preset,
                                 args.apply_softmax, args.search_preds,
                                 args.search_grid)
    except (EnsembleError, ConfigError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(format_report(report))
    if args.out:
        atomic_write_json(args.out, report)
        print(f'(also in {args.out})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
