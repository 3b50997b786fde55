"""Convert raw NTU RGB+D 60/120 ``.skeleton`` files to an mmaction2 pickle.

Example::

    python tools/data/ntu_raw_to_pkl.py --dataset ntu120 \\
        --raw-dir data/nturgbd_skeletons_s001_to_s017 \\
                  data/nturgbd_skeletons_s018_to_s032 \\
        --out data/skeleton/ntu120_3d.pkl --num-workers 8

Files that fail to parse are listed at the end; the others are still written
(atomically) and the exit status is 1.
"""
import argparse
import functools
import os
import sys
from pathlib import Path
from typing import List, Optional

from tqdm import tqdm

from cocodiff_mm.datasets.ntu_raw import (NTU_DATASETS, build_splits,
                                          convert_ntu_files, list_ntu_files,
                                          read_missing_list)
from cocodiff_mm.datasets.pickle_io import write_annotations

MISSING_LIST_NAMES = {
    'ntu60': 'NTU_RGBD_samples_with_missing_skeletons.txt',
    'ntu120': 'NTU_RGBD120_samples_with_missing_skeletons.txt',
}


def default_missing_list(dataset: str) -> Path:
    """The official missing-skeleton list in the shared data folder.

    Args:
        dataset (str): ``'ntu60'`` or ``'ntu120'``.

    Returns:
        Path: ``$COCODIFF_SHARED_DATA/ntu_raw_sample/<official name>``
        (default data folder: ``<repo>/../shared/data``).
    """
    repo = Path(__file__).resolve().parents[2]
    shared = Path(
        os.environ.get('COCODIFF_SHARED_DATA',
                       repo.parent / 'shared' / 'data'))
    return shared / 'ntu_raw_sample' / MISSING_LIST_NAMES[dataset]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments. Defaults to ``None``
            (``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset',
                        required=True,
                        choices=sorted(NTU_DATASETS))
    parser.add_argument('--raw-dir',
                        required=True,
                        nargs='+',
                        type=Path,
                        help='folder(s) holding the .skeleton files')
    parser.add_argument('--out',
                        required=True,
                        type=Path,
                        help='output pickle, e.g. ntu60_3d.pkl')
    missing = parser.add_mutually_exclusive_group()
    missing.add_argument(
        '--missing-list',
        type=Path,
        default=None,
        help='official list of samples with missing skeletons, skipped '
        '(default: the copy in the shared data folder, ntu_raw_sample/)')
    missing.add_argument('--no-missing-list',
                         action='store_true',
                         help='skip no sample')
    parser.add_argument('--num-workers',
                        type=int,
                        default=0,
                        help='worker processes (0: none)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion.

    Args:
        argv (list[str], optional): Arguments. Defaults to ``None``.

    Returns:
        int: Exit status: 0 when every file converted, 1 otherwise.
    """
    args = parse_args(argv)
    missing = set()
    if not args.no_missing_list:
        list_path = args.missing_list or default_missing_list(args.dataset)
        try:
            missing = read_missing_list(list_path)
        except FileNotFoundError as err:
            print(
                f'error: {err}; pass --missing-list PATH or '
                f'--no-missing-list',
                file=sys.stderr)
            return 1
        print(f'missing-skeleton list: {list_path} ({len(missing)} names)')
    try:
        paths, num_skipped = list_ntu_files(args.raw_dir, args.dataset,
                                            missing)
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'{len(paths)} {args.dataset} files to convert, {num_skipped} '
          f'skipped (missing skeletons)')
    if not paths:
        print('error: no file to convert', file=sys.stderr)
        return 1
    progress = functools.partial(tqdm,
                                 total=len(paths),
                                 desc=args.dataset,
                                 unit='file')
    annotations, errors = convert_ntu_files(paths,
                                            num_workers=args.num_workers,
                                            progress=progress)
    if annotations:
        split = build_splits([a['frame_dir'] for a in annotations],
                             args.dataset)
        write_annotations(args.out, split, annotations)
        sizes = ', '.join(f'{name}: {len(names)}'
                          for name, names in split.items())
        print(f'wrote {len(annotations)} samples to {args.out} ({sizes})')
    if errors:
        print(f'{len(errors)} file(s) failed:', file=sys.stderr)
        for error in errors:
            print(f'  {error}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
