"""Convert Kinetics-Skeleton JSON clips (or a COCO-17 pickle) to an
mmaction2 pickle in the OpenPose-18 layout.

Examples::

    # ST-GCN release: one split per run; --append adds it to an existing
    # pickle so train and val end up in one file.
    python tools/data/kinetics_json_to_pkl.py \\
        --json-dir data/kinetics-skeleton/kinetics_train --split-name train \\
        --label-names data/kinetics400_label_names.txt \\
        --out data/skeleton/kinetics400_openpose.pkl
    python tools/data/kinetics_json_to_pkl.py \\
        --json-dir data/kinetics-skeleton/kinetics_val --split-name val \\
        --label-names data/kinetics400_label_names.txt \\
        --out data/skeleton/kinetics400_openpose.pkl --append

    # mmaction2 COCO-17 2D pickle -> 18 OpenPose joints (neck added)
    python tools/data/kinetics_json_to_pkl.py \\
        --coco-pkl data/skeleton/k400_2d.pkl --out data/skeleton/k400_op.pkl

Files that fail are listed at the end; the others are still written
(atomically) and the exit status is 1.
"""
import argparse
import functools
import sys
from pathlib import Path
from typing import List, Optional

from tqdm import tqdm

from cocodiff_mm.datasets.kinetics_json import (convert_kinetics_files,
                                                list_json_files,
                                                read_label_names)
from cocodiff_mm.datasets.layouts import annotations_coco_to_openpose
from cocodiff_mm.datasets.pickle_io import (merge_annotations,
                                            read_annotations,
                                            write_annotations)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments. Defaults to ``None``
            (``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0].replace('\n', ' '))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--json-dir',
                        type=Path,
                        help='folder of <youtube_id>.json clips')
    source.add_argument('--coco-pkl',
                        type=Path,
                        help='mmaction2 2D pickle with COCO-17 keypoints to '
                        'reorder into OpenPose-18')
    parser.add_argument('--out',
                        required=True,
                        type=Path,
                        help='output pickle')
    parser.add_argument('--label-names',
                        type=Path,
                        help='official class-name list, one per line in '
                        'index order (with --json-dir)')
    parser.add_argument('--split-name',
                        help='split of these clips, e.g. '
                        'train or val (with --json-dir)')
    parser.add_argument('--max-persons',
                        type=int,
                        default=2,
                        help='people kept per frame')
    parser.add_argument('--keep-empty',
                        action='store_true',
                        help='keep clips with no person in any frame')
    parser.add_argument('--append',
                        action='store_true',
                        help='add the split to the existing --out pickle')
    args = parser.parse_args(argv)
    if args.json_dir is not None and (args.label_names is None
                                      or args.split_name is None):
        parser.error('--json-dir needs --label-names and --split-name')
    if args.coco_pkl is not None and args.append:
        parser.error('--append only applies to --json-dir')
    return args


def convert_coco(args: argparse.Namespace) -> int:
    """Reorder a COCO-17 pickle into OpenPose-18 and write it."""
    try:
        data = read_annotations(args.coco_pkl)
        annotations = annotations_coco_to_openpose(
            tqdm(data['annotations'], desc='coco->openpose', unit='sample'))
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    write_annotations(args.out, data['split'], annotations)
    print(f'wrote {len(annotations)} samples to {args.out}')
    return 0


def convert_json(args: argparse.Namespace) -> int:
    """Convert a folder of JSON clips and write (or append) one split."""
    try:
        label_to_index = read_label_names(args.label_names)
        paths = list_json_files(args.json_dir)
        existing = read_annotations(args.out) if args.append else None
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    progress = functools.partial(tqdm,
                                 total=len(paths),
                                 desc=args.split_name,
                                 unit='clip')
    annotations, errors, skipped = convert_kinetics_files(
        paths,
        label_to_index,
        max_persons=args.max_persons,
        skip_empty=not args.keep_empty,
        progress=progress)
    if skipped:
        print(f'skipped {len(skipped)} clip(s) with no person')
    if annotations:
        split = {args.split_name: [a['frame_dir'] for a in annotations]}
        if existing is not None:
            try:
                merged = merge_annotations(existing, split, annotations)
            except ValueError as err:
                print(f'error: {args.out}: {err}', file=sys.stderr)
                return 1
            split, annotations = merged['split'], merged['annotations']
        write_annotations(args.out, split, annotations)
        sizes = ', '.join(f'{name}: {len(names)}'
                          for name, names in split.items())
        print(f'wrote {len(annotations)} samples to {args.out} ({sizes})')
    if errors:
        print(f'{len(errors)} file(s) failed:', file=sys.stderr)
        for error in errors:
            print(f'  {error}', file=sys.stderr)
        return 1
    if not annotations:
        print('error: no clip to write', file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion.

    Args:
        argv (list[str], optional): Arguments. Defaults to ``None``.

    Returns:
        int: Exit status: 0 on success, 1 when anything failed.
    """
    args = parse_args(argv)
    return convert_coco(args) if args.coco_pkl else convert_json(args)


if __name__ == '__main__':
    sys.exit(main())
