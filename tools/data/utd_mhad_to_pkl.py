"""Convert UTD-MHAD skeleton ``.mat`` files to an mmaction2 pickle.

Example::

    python tools/data/utd_mhad_to_pkl.py --data-dir data/utd_mhad \\
        --out data/skeleton/utd_mhad_3d.pkl

Writes ``keypoint`` ``(1, T, 20, 3)`` in UTD's own joint order (graph:
``cocodiff_mm.datasets.layouts.UTD_MHAD_LAYOUT``) with splits ``xsub_train``
(subjects 1, 3, 5, 7) and ``xsub_val`` (2, 4, 6, 8). Files that fail are
listed at the end; the others are still written (atomically) and the exit
status is 1.
"""
import argparse
import functools
import sys
from pathlib import Path
from typing import List, Optional

from tqdm import tqdm

from cocodiff_mm.datasets.pickle_io import write_annotations
from cocodiff_mm.datasets.utd_mhad import (build_utd_splits, convert_utd_files,
                                           list_utd_files)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments. Defaults to ``None``
            (``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-dir',
                        '--mat-dir',
                        dest='data_dir',
                        required=True,
                        type=Path,
                        help='folder with aA_sS_tT_skeleton.mat files (or '
                        'with them in skeleton/)')
    parser.add_argument('--out',
                        required=True,
                        type=Path,
                        help='output pickle, e.g. utd_mhad_3d.pkl')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion.

    Args:
        argv (list[str], optional): Arguments. Defaults to ``None``.

    Returns:
        int: Exit status: 0 when every file converted, 1 otherwise.
    """
    args = parse_args(argv)
    try:
        paths = list_utd_files(args.data_dir)
    except FileNotFoundError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    progress = functools.partial(tqdm,
                                 total=len(paths),
                                 desc='utd_mhad',
                                 unit='file')
    annotations, errors = convert_utd_files(paths, progress=progress)
    if annotations:
        split = build_utd_splits(a['frame_dir'] for a in annotations)
        write_annotations(args.out, split, annotations)
        num_classes = len({a['label'] for a in annotations})
        print(f'wrote {len(annotations)} samples ({num_classes} classes) to '
              f'{args.out} (' + ', '.join(
                  f'{name}: {len(names)}' for name, names in split.items()) +
              ')')
    if errors:
        print(f'{len(errors)} file(s) failed:', file=sys.stderr)
        for error in errors:
            print(f'  {error}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
