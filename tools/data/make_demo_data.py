"""Generate the embedded demo data set (procedural NTU-layout 3D skeletons).

Example::

    python tools/data/make_demo_data.py --out data/skeleton/demo_3d.pkl

Writes an mmaction2 skeleton pickle with the splits ``xsub_train`` (odd
performers) and ``xsub_val`` (even performers) of the eight classes in
``cocodiff_mm.datasets.demo.DEMO_CLASSES`` and prints a summary. The same
arguments always produce the same arrays.
"""
import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import List, Optional

from cocodiff_mm.datasets.demo import DEMO_CLASSES, write_demo_dataset
from cocodiff_mm.datasets.pickle_io import read_annotations


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments. Defaults to ``None``
            (``sys.argv[1:]``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out',
                        type=Path,
                        default=Path('data/skeleton/demo_3d.pkl'),
                        help='output pickle (parent folders are created)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--num-performers',
                        type=int,
                        default=20,
                        help='performers; odd ones train, even ones validate')
    parser.add_argument('--repeats',
                        type=int,
                        default=3,
                        help='repetitions of every action per performer')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Generate, write and summarise the demo data set.

    Args:
        argv (list[str], optional): Arguments. Defaults to ``None``.

    Returns:
        int: 0 on success, 2 on invalid arguments.
    """
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        path = write_demo_dataset(args.out,
                                  num_performers=args.num_performers,
                                  repeats=args.repeats,
                                  seed=args.seed)
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    data = read_annotations(path)
    frames = [sample['total_frames'] for sample in data['annotations']]
    labels = Counter(sample['label'] for sample in data['annotations'])
    print(f'wrote {path} in {seconds:.1f} s (seed {args.seed})')
    for name, members in data['split'].items():
        print(f'  {name}: {len(members)} clips')
    print(f'  frames per clip: {min(frames)}..{max(frames)} '
          f'(mean {sum(frames) / len(frames):.1f}); joints 25, coords 3, '
          'persons 1')
    for label, name in enumerate(DEMO_CLASSES):
        print(f'  {label}: {name} ({labels[label]} clips)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
