"""Check mmaction2 skeleton annotation pickles and list every problem.

Example::

    python tools/data/check_annotations.py data/skeleton/ntu60_3d.pkl \\
        --num-joints 25 --num-coords 3 --num-classes 60

Prints one problem per line and a summary; exits 1 when any file has a
problem (or is missing), 0 otherwise. Empty clips (all-zero or
near-constant keypoints, see ``NEAR_CONSTANT_TOLERANCE`` in
cocodiff_mm/datasets/annotation_check.py) are one warning line per file, or
one problem each with ``--fail-on-empty``. Nothing in a file is run while
it is read: only numpy arrays, torch tensors and builtin containers are
unpickled.
"""
import argparse
import sys
import warnings
from pathlib import Path
from typing import List, Optional

from tqdm import tqdm

from cocodiff_mm.datasets.annotation_check import (EmptyClipWarning,
                                                   check_annotation_file)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments. Defaults to ``None``
            (``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('files',
                        nargs='+',
                        type=Path,
                        help='annotation pickle(s)')
    parser.add_argument('--num-joints',
                        type=int,
                        default=None,
                        help='expected V (not checked when omitted)')
    parser.add_argument('--num-coords',
                        type=int,
                        default=None,
                        help='expected C (not checked when omitted)')
    parser.add_argument('--num-classes',
                        type=int,
                        default=None,
                        help='labels must lie in [0, num_classes)')
    parser.add_argument('--fail-on-empty',
                        action='store_true',
                        help='count all-zero and near-constant clips as '
                        'problems (default: one warning line per file)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Check the files.

    Args:
        argv (list[str], optional): Arguments. Defaults to ``None``.

    Returns:
        int: 1 when any problem was found, else 0.
    """
    args = parse_args(argv)
    total = 0
    for path in tqdm(args.files,
                     desc='checking',
                     unit='file',
                     disable=len(args.files) < 2):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always', EmptyClipWarning)
                problems = check_annotation_file(
                    path,
                    num_joints=args.num_joints,
                    num_coords=args.num_coords,
                    num_classes=args.num_classes,
                    fail_on_empty=args.fail_on_empty)
        except FileNotFoundError as err:
            print(f'{path}: {err}')
            total += 1
            continue
        for warning in caught:
            if issubclass(warning.category, EmptyClipWarning):
                message = str(warning.message)
                message = message[len(f'{path}: '):] if message.startswith(
                    f'{path}: ') else message
                print(f'{path}: warning: {message}')
            else:
                warnings.warn_explicit(warning.message, warning.category,
                                       warning.filename, warning.lineno)
        for problem in problems:
            print(f'{path}: {problem}')
        status = f'{len(problems)} problem(s)' if problems else 'OK'
        print(f'{path}: {status}')
        total += len(problems)
    print(f'summary: {total} problem(s) in {len(args.files)} file(s)')
    return 1 if total else 0


if __name__ == '__main__':
    sys.exit(main())
