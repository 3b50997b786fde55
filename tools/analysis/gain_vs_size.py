"""Test gain against training-set size: a markdown table and a PNG from
finished, tested studies (see cocodiff_mm/analysis/gain_vs_size.py).

    python tools/analysis/gain_vs_size.py \\
        configs/analysis/utd_mhad_gain_vs_size.py --budget cpu --out-dir docs

writes ``<out-dir>/gain_vs_size.md`` and ``<out-dir>/gain_vs_size.png`` and
prints the table. Sizes whose runs are missing show "not run". Nothing is
trained or evaluated: run each study (tools/study.py SPEC, then --test)
first.
"""
import argparse
import os
import os.path as osp
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import cocodiff_mm  # noqa: E402,F401  (applies the runtime fixes first)
from cocodiff_mm.analysis.gain_vs_size import (  # noqa: E402
    PLOT_NAME, TABLE_NAME, write_gain_vs_size)
from cocodiff_mm.utils.config_keys import ConfigError  # noqa: E402
from cocodiff_mm.utils.outputs import check_writable  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('sizes', help='sizes file (e.g. configs/analysis/'
                        'utd_mhad_gain_vs_size.py)')
    parser.add_argument(
        '--budget', default='cpu',
        help='the budget the studies ran with (cpu, cuda)')
    parser.add_argument(
        '--out-dir', default='docs',
        help=f'where {TABLE_NAME} and {PLOT_NAME} go (default: docs)')
    args = parser.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    try:
        check_writable(args.out_dir, '--out-dir', folder=True)
        table = write_gain_vs_size(args.sizes, args.out_dir, args.budget,
                                   str(ROOT))
    except (ConfigError, RuntimeError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(table)
    print(f'(also in {osp.join(args.out_dir, TABLE_NAME)}, plot in '
          f'{osp.join(args.out_dir, PLOT_NAME)})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
