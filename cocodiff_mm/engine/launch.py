"""What tools/train.py and tools/test.py share: arguments and pre-run set-up.

Everything a run is given (command line, config, environment, output
paths) is checked here before the Runner exists, so a value that cannot
work stops the tool with one ``error:`` line and exit status 2 before a
work dir is made (the traceback only with ``--debug``).
"""
import argparse
import difflib
import functools
import os
import os.path as osp
import sys
from typing import Any, Callable, NoReturn, Optional, Sequence, Tuple

from mmengine.config import Config, DictAction

from .. import runtime
from ..utils.config_keys import ConfigError
from ..utils.outputs import check_writable
from .config_check import (build_model, check_buildable, check_class_texts,
                           check_config_keys, check_stage_plan)
from .preflight import PreflightError, check_data

#: What mmengine's ``init_dist`` reads for each launcher, and who sets it.
LAUNCHER_ENV = {
    'pytorch': (('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
                'torchrun (tools/dist_train.sh, tools/dist_test.sh)'),
    'slurm': (('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
              'srun (tools/slurm_train.sh, tools/slurm_test.sh)'),
    'mpi': (('OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_RANK',
             'OMPI_COMM_WORLD_SIZE', 'MASTER_ADDR'), 'mpirun'),
}


class RunnerArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one ``error:`` line (exit 2),
    as the tools' config and data errors are."""

    def error(self, message: str) -> NoReturn:
        """Print ``error: <message> (see --help)`` and exit 2."""
        self.exit(2, f'error: {message} (see {self.prog} --help)\n')


class ConfigOptionsAction(DictAction):
    """mmengine's ``DictAction`` for ``--cfg-options``, with an item it
    cannot parse (``key value`` for ``key=value``) refused by argparse."""

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            super().__call__(parser, namespace, values, option_string)
        except (ValueError, AssertionError, IndexError) as error:
            bad = [item for item in values if '=' not in item]
            what = (f'{bad[0]!r} is not key=value' if bad else
                    f'cannot parse {values!r} ({error})')
            raise argparse.ArgumentError(
                self, f'{what}; e.g. --cfg-options train_cfg.max_epochs=2 '
                "'model.backbone.tcn_dilations=(1,2)'") from error


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--cfg-options``, ``--launcher``, ``--skip-data-check`` and
    ``--local-rank`` (mmaction2's tools take the first, second and last)."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ConfigOptionsAction,
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
    argument; a ``--launcher`` whose environment variables are missing (run
    without torchrun, srun or mpirun) is refused by the parser."""
    args = parser.parse_args()
    names, setter = LAUNCHER_ENV.get(args.launcher, ((), ''))
    missing = [name for name in names if name not in os.environ]
    if missing:
        which = '' if missing == list(names) else \
            f' ({", ".join(missing)} missing)'
        parser.error(f'--launcher {args.launcher} needs the environment '
                     f'variables {", ".join(names)}{which}, which {setter} '
                     'sets; on one machine, leave out --launcher')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def launcher_rank(launcher: str) -> int:
    """This process's global rank under ``launcher``, before mmengine's
    ``init_dist`` exports ``RANK`` (srun and mpirun set their own)."""
    if launcher == 'none':
        return 0
    name = dict(slurm='SLURM_PROCID',
                mpi='OMPI_COMM_WORLD_RANK').get(launcher, 'RANK')
    return int(os.environ.get(name, os.environ.get('RANK', '0')))


def load_config(path: str) -> Config:
    """``Config.fromfile(path)``; a missing file is a :class:`ConfigError`
    naming it (and the closest config beside it)."""
    if not osp.isfile(path):
        folder = osp.dirname(path) or '.'
        names = sorted(os.listdir(folder)) if osp.isdir(folder) else []
        close = difflib.get_close_matches(osp.basename(path), names, n=1)
        hint = (f' (did you mean {osp.join(osp.dirname(path), close[0])}?)'
                if close else '')
        raise ConfigError(f'config file {path} does not exist{hint}')
    return Config.fromfile(path)


def check_outputs(outputs: Sequence[Tuple[Optional[str], str, bool]]
                  ) -> None:
    """Check each ``(path, option, folder)`` the run will write with
    :func:`~cocodiff_mm.utils.outputs.check_writable` (None: not asked
    for)."""
    for path, option, folder in outputs:
        if path is not None:
            check_writable(path, option, folder=folder)


def prepare_to_run(cfg: Config, args: argparse.Namespace,
                   loaders: Tuple[str, ...],
                   outputs: Sequence[Tuple[Optional[str], str, bool]] = ()
                   ) -> int:
    """Check the outputs, set up the process and the config's device parts
    (:func:`cocodiff_mm.runtime.setup`), then check the config and the
    data before the Runner starts (and creates a work dir).

    The config is checked by its own validators: its keys, the class texts
    and the stage plan, then what the Runner builds from it
    (:func:`~cocodiff_mm.engine.config_check.check_buildable`: the model,
    to train the optimizer and schedulers, hooks, the loaders' settings and
    pipelines, the evaluators).

    Args:
        cfg (Config): The merged config (changed in place).
        args (Namespace): Parsed arguments (``skip_data_check``,
            ``launcher``, ``debug``).
        loaders (tuple[str]): Dataloader fields the tool uses (their files
            are checked).
        outputs (Sequence[tuple]): ``(path, option, folder)`` of each file
            or folder the run writes (see :func:`check_outputs`). Defaults
            to ``()``.

    Returns:
        int: 0 to go on, or the exit status 2 after printing the error.
    """
    check_data_too = not args.skip_data_check and \
        launcher_rank(getattr(args, 'launcher', 'none')) == 0
    return run_checked(
        _check_config_and_data, cfg, loaders, check_data_too, outputs,
        debug=getattr(args, 'debug', False))


def _check_config_and_data(cfg: Config, loaders: Tuple[str, ...],
                           data_too: bool,
                           outputs: Sequence[Tuple[Optional[str], str, bool]]
                           ) -> None:
    check_outputs(outputs)
    runtime.setup(cfg)  # reads COCODIFF_TRUST_CHECKPOINTS (ConfigError)
    check_config_keys(cfg)
    if 'train_dataloader' in loaders:  # the text bank is built to train
        check_class_texts(cfg)
        check_stage_plan(cfg)
    check_buildable(cfg, loaders)
    if data_too:
        check_data(cfg, loaders)


def report_error(error: Exception, debug: bool = False) -> int:
    """Print a :class:`ConfigError` or :class:`PreflightError` as one
    ``error:`` line (re-raise it with ``debug``).

    Returns:
        int: The exit status, 2.
    """
    if debug:
        raise error
    print(f'error: {error}', file=sys.stderr)
    return 2


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
        return report_error(error, debug)
    return 0


def check_test_checkpoint(cfg: Config, checkpoint: str) -> None:
    """Build the config's model and refuse a checkpoint that does not fit.

    Runs before the Runner, so a mismatch stops ``tools/test.py`` before it
    creates a work dir or evaluates anything (see
    :func:`~cocodiff_mm.engine.checkpoint_match.check_checkpoint_matches`).
    """
    from .checkpoint_match import check_checkpoint_matches
    check_checkpoint_matches(build_model(cfg), checkpoint)


def check_pretrained_gcn(cfg: Config,
                         model: Optional[Callable[[], Any]] = None) -> None:
    """Read a ``TwoStageLoop``'s ``train_cfg.pretrained`` against the
    config's model, and keep it for the loop.

    mmengine's ``Runner.__init__`` makes the work dir, its log and config
    dump; the loop is built later, in ``Runner.train()``. Read here, a
    missing, corrupt or mismatching checkpoint stops the run before the
    work dir exists, and the loop takes the tensors read here instead of
    reading the file again (``read_gcn_checkpoint(keep=True)``).

    Args:
        cfg (Config): The merged config.
        model (Callable, optional): Returns the config's model, when the
            caller has one to share. Defaults to ``None`` (built here).

    Raises:
        PretrainedCheckpointError: If the checkpoint is missing, corrupt or
            truncated, or does not fit the model's backbone/classifier.
    """
    from mmaction.registry import LOOPS
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
    model = model() if model is not None else build_model(cfg)
    read_gcn_checkpoint(train_cfg['pretrained'], model, keep=True)


def choose_checkpoint_to_load(cfg: Config, auto_resume: bool,
                              strict: bool = True,
                              replan: bool = False) -> None:
    """Check the checkpoints the run will load, before the Runner makes a
    work dir; for ``--resume`` without a path, pick the newest intact
    checkpoint of the work dir (corrupt ones skipped).

    ``train_cfg.pretrained`` must fit the GCN (:func:`check_pretrained_gcn`).
    ``load_from`` and ``--resume`` must load (intact, finite weights) and,
    unless ``strict`` is off, fit the model key for key and shape for shape
    (:func:`~cocodiff_mm.engine.checkpoint_match.check_checkpoint_matches`,
    training-only keys included): mmengine's ``Runner.load_checkpoint``
    and ``Runner.resume`` load non-strictly and take no option for it, so a
    checkpoint of another width trained a mostly random model with exit 0.
    A checkpoint to resume must also record the config's stage plan and
    model, unless ``replan``
    (:func:`~cocodiff_mm.engine.run_record.check_resume_record`).

    Args:
        cfg (Config): The merged config (``load_from`` set for
            ``auto_resume``).
        auto_resume (bool): ``--resume`` without a path.
        strict (bool): Check keys and shapes (``--non-strict`` turns it
            off). Defaults to True.
        replan (bool): Resume under another plan (``--replan``). Defaults
            to False.

    Raises:
        CorruptCheckpointError: If the checkpoint to load is corrupt, or
            every checkpoint of the work dir is.
        NonFiniteCheckpointError: If its weights hold NaN or infinity.
        PretrainedCheckpointError: See :func:`check_pretrained_gcn`.
        ResumePlanError: For a checkpoint of another plan or model.
        CheckpointMismatchError: For keys or shapes that do not fit.
    """
    from .checkpoint_match import check_checkpoint_matches, read_checkpoint
    from .resume import newest_intact_checkpoint
    from .run_record import check_resume_record

    # Built once, and only when a check needs it.
    model = functools.lru_cache(maxsize=None)(lambda: build_model(cfg))
    check_pretrained_gcn(cfg, model)
    # Every rank reads the same files and so decides the same.
    chatty = os.environ.get('RANK', '0') == '0'

    def say(line: str) -> None:
        if chatty:
            print(line, file=sys.stderr)

    if auto_resume:
        cfg.load_from = newest_intact_checkpoint(cfg.work_dir, say)
    path = cfg.get('load_from')
    if not path:
        return
    checkpoint = read_checkpoint(path)
    if cfg.get('resume') and not replan:
        check_resume_record(checkpoint, path, cfg, say)
    if strict:
        check_checkpoint_matches(model(), path,
                                 training=True, checkpoint=checkpoint)


def add_guard_hooks(cfg: Config) -> None:
    """Add :class:`NonFiniteHook` and :class:`RunRecordHook` to
    ``cfg.custom_hooks`` unless it has them: every run stops at the first
    NaN and records its plan, the stock baseline configs included (they
    inherit mmaction2's ``default_runtime``, not a base of ours)."""
    hooks = list(cfg.get('custom_hooks') or [])
    types = [hook.get('type') for hook in hooks if hasattr(hook, 'get')]
    present = {t.__name__ if isinstance(t, type) else str(t).split('.')[-1]
               for t in types}
    for name in ('NonFiniteHook', 'RunRecordHook'):
        if name not in present:
            hooks.append(dict(type=name))
    cfg.custom_hooks = hooks


def leave_process_group() -> None:
    """Destroy the process group that mmengine's ``init_dist`` created,
    and release it, while Python is alive.

    mmengine leaves it to interpreter exit, where tearing down gloo's
    threads aborts the process: a rank of a run that succeeded dies with
    SIGABRT ("terminate called without an active exception") and torchrun
    fails the whole run. ``destroy_process_group`` drops the registry's
    reference, but the Runner's DDP wrapper holds another, and the Runner's
    reference cycles keep it alive until the interpreter's last collection;
    so call this once the Runner is unreachable (after the function that
    made it has returned) and it collects them. No barrier first: a peer
    that failed would never arrive.
    """
    import gc

    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        gc.collect()
