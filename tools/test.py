"""Evaluate a checkpoint on a config's test split (benchmark numbers).

Same arguments as mmaction2's ``tools/test.py``. Works for stock and CoCoDiff
configs alike: inference is the stock GCN in both.
"""
import argparse
import json
import os
import os.path as osp
import sys

import cocodiff_mm  # noqa: F401  (applies the runtime fixes first)
from mmengine.config import Config
from mmengine.runner import Runner

from cocodiff_mm.analysis.ensemble import keep_sample_names
from cocodiff_mm.engine.hooks import NonFiniteError
from cocodiff_mm.engine.launch import (RunnerArgumentParser,
                                      add_guard_hooks, add_runner_arguments,
                                      check_test_checkpoint, load_config,
                                      leave_process_group, report_error,
                                      run_checked, parse_runner_arguments,
                                      prepare_to_run)
from cocodiff_mm.utils.config_keys import ConfigError


def parse_args() -> argparse.Namespace:
    """Command-line arguments (those of mmaction2's tools/test.py)."""
    parser = RunnerArgumentParser(
        description='Test (and evaluate) an action recognizer')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--dump',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--metrics-out',
        type=str,
        help='also write the evaluation metrics to this JSON file')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='evaluate even if the checkpoint\'s keys or shapes do not match '
        'the model (mmengine\'s default; the mismatch is only logged)')
    add_runner_arguments(parser)
    return parse_runner_arguments(parser)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge command-line arguments into the config."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.dump is not None:
        if not args.dump.endswith(('.pkl', '.pickle')):
            raise ConfigError(f'--dump must name a .pkl or .pickle file, '
                              f'got {args.dump}')
        dump_metric = dict(type='DumpResults', out_file_path=args.dump)
        evaluator = cfg.test_evaluator
        if isinstance(evaluator, (list, tuple)):
            cfg.test_evaluator = [*evaluator, dump_metric]
        else:
            cfg.test_evaluator = [evaluator, dump_metric]
    cfg.load_from = args.checkpoint
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.dump is not None:
        keep_sample_names(cfg)  # frame_dir in each sample, for ensembles
    return cfg


def main() -> int:
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        print(f'error: checkpoint {args.checkpoint} does not exist',
              file=sys.stderr)
        return 2
    try:
        cfg = merge_args(load_config(args.config), args)
    except ConfigError as error:
        return report_error(error, args.debug)
    # Every output, before the model is built or the checkpoint read.
    outputs = [(args.dump, '--dump', False),
               (args.metrics_out, '--metrics-out', False),
               (cfg.work_dir, '--work-dir' if args.work_dir else 'work_dir',
                True)]
    status = prepare_to_run(cfg, args, ('test_dataloader', ), outputs)
    if status:
        return status
    if not args.non_strict:
        status = run_checked(check_test_checkpoint, cfg, args.checkpoint,
                             debug=args.debug)
        if status:
            return status
    add_guard_hooks(cfg)
    try:
        return evaluate(cfg, args)
    finally:
        leave_process_group()  # after evaluate(): its Runner is unreachable


def evaluate(cfg: Config, args: argparse.Namespace) -> int:
    """Run the Runner's test loop; write ``--metrics-out`` on rank 0."""
    runner = Runner.from_cfg(cfg)
    try:
        metrics = runner.test()
    except NonFiniteError as error:  # NaN scores: no metrics of them
        return report_error(error, args.debug)
    if args.metrics_out and runner.rank == 0:
        os.makedirs(
            osp.dirname(osp.abspath(args.metrics_out)), exist_ok=True)
        with open(args.metrics_out, 'w') as file:
            json.dump({k: float(v) for k, v in metrics.items()}, file,
                      indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
