"""Run an accuracy study: every arm x seed through tools/train.py and
tools/test.py, then a markdown table (see cocodiff_mm/analysis/study.py).

    python tools/study.py configs/studies/utd_mhad_cocodiff.py --budget cpu
    python tools/study.py SPEC --budget cpu --test        # final arms only
    python tools/study.py SPEC --budget cpu --table       # table so far
    python tools/study.py SPEC --budget cpu --seeds 3 &   # one process per
    python tools/study.py SPEC --budget cpu --seeds 4 &   # seed, side by side

Finished runs are skipped and interrupted ones resume, so the command can
be rerun (e.g. under nohup) until the table is complete.
"""
import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cocodiff_mm.analysis.study import (StudyRunner,  # noqa: E402
                                        load_study_spec)
from cocodiff_mm.utils.config_keys import ConfigError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('spec', help='study spec file')
    parser.add_argument(
        '--budget', default='cpu', help='a budget of the spec (cpu, cuda)')
    parser.add_argument('--work-root', help='where the runs go')
    parser.add_argument(
        '--arms', nargs='+', help='only these arms (default: all)')
    parser.add_argument(
        '--seeds',
        nargs='+',
        type=int,
        help='only these of the budget\'s seeds (default: all); the table '
        'still shows every finished seed')
    parser.add_argument(
        '--test',
        nargs='*',
        metavar='ARM',
        help='evaluate the final arms (the spec\'s, or these) on the test '
        'split; needs their validation runs finished')
    parser.add_argument(
        '--table', action='store_true', help='only print the table')
    args = parser.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    try:
        spec = load_study_spec(args.spec, root=str(ROOT))
        runner = StudyRunner(
            spec, args.budget, args.work_root, str(ROOT), seeds=args.seeds)
        if args.test is not None:
            runner.run_test(args.test or spec.final)
        elif not args.table:
            runner.run_all(args.arms)
    except (ConfigError, RuntimeError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(runner.write_table())
    print(f'(also in {runner.work_root}/table.md)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
