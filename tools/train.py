"""Train a skeleton action recognizer (stock or CoCoDiff) from a config.

Same arguments as mmaction2's ``tools/train.py``. Before the Runner starts,
the annotation files are checked against the config, and the distributed
backend and DDP wrapper are chosen for the machine (NCCL with CUDA, gloo
without).
"""
import argparse
import os.path as osp
import sys

import cocodiff_mm  # noqa: F401  (applies the runtime fixes first)
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from cocodiff_mm.utils.config_keys import ConfigError

from cocodiff_mm.engine.hooks import NonFiniteError
from cocodiff_mm.engine.launch import (RunnerArgumentParser,
                                      add_guard_hooks, add_runner_arguments,
                                      choose_checkpoint_to_load,
                                      launcher_rank, load_config,
                                      report_error, run_checked,
                                      leave_process_group,
                                      parse_runner_arguments,
                                      prepare_to_run)
from cocodiff_mm.engine.work_dir_lock import WorkDirLock


def parse_args() -> argparse.Namespace:
    """Command-line arguments (those of mmaction2's tools/train.py)."""
    parser = RunnerArgumentParser(description='Train an action recognizer')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or from the latest one in the '
        'work dir when no path is given')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument(
        '--diff-rank-seed',
        action='store_true',
        help='set a different seed on each rank')
    parser.add_argument(
        '--deterministic',
        action='store_true',
        help='set deterministic options for the CUDNN backend')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='load a load_from or --resume checkpoint even if its keys or '
        'shapes do not match the model (mmengine\'s default: what does not '
        'fit is only logged)')
    parser.add_argument(
        '--replan',
        action='store_true',
        help='--resume under another stage plan or model than the '
        'checkpoint records (its stage follows from the epoch)')
    add_runner_arguments(parser)
    return parse_runner_arguments(parser)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge command-line arguments into the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        if not torch.cuda.is_available():
            raise ConfigError('--amp needs a CUDA device (mixed precision '
                              'runs on the GPU) and none is available here; '
                              'leave out --amp')
        wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper_type not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ConfigError(f'--amp does not support the optimizer wrapper '
                              f'{wrapper_type!r} (optim_wrapper.type)')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    if cfg.get('randomness', None) is None:
        cfg.randomness = dict(
            seed=args.seed,
            diff_rank_seed=args.diff_rank_seed,
            deterministic=args.deterministic)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main() -> int:
    args = parse_args()
    try:
        cfg = merge_args(load_config(args.config), args)
    except ConfigError as error:
        return report_error(error, args.debug)
    work_dir_option = '--work-dir' if args.work_dir else 'work_dir'
    status = prepare_to_run(cfg, args,
                            ('train_dataloader', 'val_dataloader'),
                            outputs=[(cfg.work_dir, work_dir_option, True)])
    if status:
        return status
    # One run per work dir, taken before anything reads or writes in it;
    # the ranks of a distributed run share it (rank 0 holds it).
    lock = WorkDirLock(cfg.work_dir, option=work_dir_option)
    if launcher_rank(args.launcher) == 0:
        status = run_checked(lock.acquire, debug=args.debug)
        if status:
            return status
    try:
        return train(cfg, args)
    finally:
        leave_process_group()  # after train(): its Runner is unreachable
        lock.release()


def train(cfg: Config, args: argparse.Namespace) -> int:
    """Check the checkpoint to start from, then train (the work dir is
    held)."""
    if args.resume is not None and args.resume != 'auto' and \
            not osp.isfile(args.resume):
        print(f'error: --resume checkpoint {args.resume} does not exist',
              file=sys.stderr)
        return 2
    add_guard_hooks(cfg)
    status = run_checked(choose_checkpoint_to_load, cfg, args.resume == 'auto',
                         not args.non_strict, args.replan, debug=args.debug)
    if status:
        return status
    try:
        runner = Runner.from_cfg(cfg)
        runner.train()
    # ConfigError: found while the loop is set up; NonFiniteError: a NaN
    # loss, weight or validation score stopped the run.
    except (ConfigError, NonFiniteError) as error:
        if args.debug:
            raise
        print(f'error: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
