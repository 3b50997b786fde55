"""What tools/train.py and tools/test.py share: arguments and pre-run set-up."""
import argparse
import os
import sys
from typing import Callable, Tuple

from mmengine.config import Config, DictAction

from .. import runtime
from ..utils.config_keys import ConfigError
from .config_check import (check_class_texts, check_config_keys,
                           check_stage_plan)
from .preflight import PreflightError, check_data


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--cfg-options``, ``--launcher``, ``--skip-data-check`` and
    ``--local-rank`` (mmaction2's tools take the first, second and last)."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (lists as key="[a,b]")')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--skip-data-check',
        action='store_true',
        help='do not validate the annotation files before starting')
    parser.add_argument(
        '--debug',
        action='store_true',
        help='show the traceback of config and data errors (exit 2)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_arguments(
        parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, exporting ``LOCAL_RANK`` for launchers that pass it as an
    argument."""
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def prepare_to_run(cfg: Config, args: argparse.Namespace,
                   loaders: Tuple[str, ...]) -> int:
    """Set up the process and the config's device parts
    (:func:`cocodiff_mm.runtime.setup`), then check the config's keys and
    the data before the Runner starts (and creates a work dir).

    Args:
        cfg (Config): The merged config (changed in place).
        args (Namespace): Parsed arguments (``skip_data_check``).
        loaders (tuple[str]): Dataloader fields whose files are checked.

    Returns:
        int: 0 to go on, or the exit status 2 after printing the error.
    """
    runtime.setup(cfg)
    check_data_too = not args.skip_data_check and \
        os.environ.get('RANK', '0') == '0'
    return run_checked(
        _check_config_and_data, cfg, loaders, check_data_too,
        debug=getattr(args, 'debug', False))


def _check_config_and_data(cfg: Config, loaders: Tuple[str, ...],
                           data_too: bool) -> None:
    check_config_keys(cfg)
    if 'train_dataloader' in loaders:  # the text bank is built to train
        check_class_texts(cfg)
        check_stage_plan(cfg)
    if data_too:
        check_data(cfg, loaders)


def run_checked(check: Callable, *args, debug: bool = False) -> int:
    """Run a pre-run ``check``; a :class:`ConfigError` or
    :class:`PreflightError` prints one line.

    Returns:
        int: 0, or the exit status 2 after printing the error (re-raised
        with ``debug``).
    """
    try:
        check(*args)
    except (ConfigError, PreflightError) as error:
        if debug:
            raise
        print(f'error: {error}', file=sys.stderr)
        return 2
    return 0


def check_test_checkpoint(cfg: Config, checkpoint: str) -> None:
    """Build the config's model and refuse a checkpoint that does not fit.

    Runs before the Runner, so a mismatch stops ``tools/test.py`` before it
    creates a work dir or evaluates anything (see
    :func:`~cocodiff_mm.engine.checkpoint_match.check_checkpoint_matches`).
    """
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    from .checkpoint_match import check_checkpoint_matches
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    check_checkpoint_matches(MODELS.build(cfg.model), checkpoint)


def check_pretrained_gcn(cfg: Config) -> None:
    """Read a ``TwoStageLoop``'s ``train_cfg.pretrained`` against the
    config's model, and keep it for the loop.

    mmengine's ``Runner.__init__`` makes the work dir, its log and config
    dump; the loop is built later, in ``Runner.train()``. Read here, a
    missing, corrupt or mismatching checkpoint stops the run before the
    work dir exists, and the loop takes the tensors read here instead of
    reading the file again (``read_gcn_checkpoint(keep=True)``).

    Raises:
        PretrainedCheckpointError: If the checkpoint is missing, corrupt or
            truncated, or does not fit the model's backbone/classifier.
    """
    from mmaction.registry import LOOPS, MODELS
    from mmengine.registry import init_default_scope

    from .pretrained_gcn import read_gcn_checkpoint
    from .two_stage_loop import TwoStageLoop
    train_cfg = cfg.get('train_cfg') or {}
    loop = train_cfg.get('type')
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    if isinstance(loop, str):
        loop = LOOPS.get(loop)
    if loop is not TwoStageLoop or train_cfg.get('pretrained') is None or \
            train_cfg.get('stage1_source', 'pretrained') != 'pretrained':
        return
    read_gcn_checkpoint(train_cfg['pretrained'], MODELS.build(cfg.model),
                        keep=True)


def choose_checkpoint_to_load(cfg: Config, auto_resume: bool) -> None:
    """Check ``cfg.load_from`` and ``train_cfg.pretrained`` load; for
    ``--resume`` without a path, pick the newest intact checkpoint of the
    work dir (corrupt ones skipped).

    Raises:
        CorruptCheckpointError: If the checkpoint to load is corrupt, or
            every checkpoint of the work dir is.
        PretrainedCheckpointError: See :func:`check_pretrained_gcn`.
    """
    from .checkpoint_match import read_checkpoint
    from .resume import newest_intact_checkpoint
    check_pretrained_gcn(cfg)
    if auto_resume:
        # Every rank reads the same files and so picks the same checkpoint.
        chatty = os.environ.get('RANK', '0') == '0'
        cfg.load_from = newest_intact_checkpoint(
            cfg.work_dir,
            lambda line: chatty and print(line, file=sys.stderr))
        return
    if cfg.get('load_from'):
        read_checkpoint(cfg.load_from)
