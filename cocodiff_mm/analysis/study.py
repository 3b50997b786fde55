"""Accuracy studies: every arm x seed trained and evaluated by the tools.

A study spec (a Python file read by mmengine's ``Config``, e.g.
``configs/studies/utd_mhad_cocodiff.py``) names the arms, the seeds and the
budgets. :class:`StudyRunner` trains each run with ``tools/train.py``,
evaluates the checkpoint chosen on the validation split with
``tools/test.py``, writes ``result.json`` per run and a markdown table.
Test-split numbers are produced only by a separate, explicit ``--test``
pass over the final arms, after their validation runs are complete.

Runs resume: a finished run (its ``result.json``) is skipped, and an
interrupted training continues from its latest checkpoint. A finished run
records a digest of its resolved training config; if the config, one of its
bases' defaults or the overrides change afterwards, the runner refuses the
stale run instead of counting it. Each result also records the machine it
trained on (:func:`machine_info`).
"""
import argparse
import contextlib
import copy
import glob
import hashlib
import json
import math
import os
import os.path as osp
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ..utils.atomic_write import atomic_write_json, atomic_write_text
from ..utils.checks import check_int, is_int
from ..utils.config_keys import ConfigError, refuse_unknown_keys
from .learning_criteria import (FAITHFULNESS, LOSS_CON_FALL,
                                STAGE2_ACC_GENERATED, learning_criteria,
                                read_diagnostics)

#: Keys of a study spec and of one arm.
SPEC_KEYS = ('name', 'arms', 'seeds', 'budgets', 'baseline', 'final',
             'val_split', 'test_split')
ARM_KEYS = ('name', 'config', 'cfg_options', 'init_from', 'description')
BUDGET_KEYS = ('epochs', 'stage1_epochs', 'cfg_options', 'seeds')


class StudySpecError(ConfigError):
    """A study spec that cannot run (names the file and the field)."""


@dataclass(frozen=True)
class Arm:
    """One configuration of a study.

    Attributes:
        name (str): Folder-safe name.
        config (str): Training config, relative to the repository root.
        cfg_options (tuple[str]): ``key=value`` overrides.
        init_from (str, optional): Arm whose checkpoint of the same seed
            becomes ``train_cfg.pretrained`` (stage 1 starts from it).
        description (str): One line for the table.
    """

    name: str
    config: str
    cfg_options: Tuple[str, ...] = ()
    init_from: Optional[str] = None
    description: str = ''


@dataclass(frozen=True)
class Budget:
    """Epochs, overrides and seeds of one kind of machine (cpu, cuda).

    Attributes:
        name (str): The budget's name in the spec.
        epochs (int): Baseline epochs, and stage 0 and stage 2 epochs of a
            two-stage arm (the same budget for both).
        stage1_epochs (int): Stage-1 epochs of a two-stage arm.
        cfg_options (tuple[str]): Overrides for every arm.
        seeds (tuple[int]): Seeds (defaults to the spec's).
    """

    name: str
    epochs: int
    stage1_epochs: int
    cfg_options: Tuple[str, ...] = ()
    seeds: Tuple[int, ...] = ()


@dataclass(frozen=True)
class StudySpec:
    """A whole study.

    Attributes:
        name (str): Folder name of the study.
        arms (tuple[Arm]): In running order (an arm after its ``init_from``).
        seeds (tuple[int]): Default seeds.
        budgets (dict[str, Budget]): By name.
        baseline (str): Arm the others are compared with, seed by seed.
        final (tuple[str]): Arms evaluated on the test split by ``--test``.
        val_split (str): Split for model selection.
        test_split (str): Split evaluated once per final arm.
        path (str): The spec file.
    """

    name: str
    arms: Tuple[Arm, ...]
    seeds: Tuple[int, ...]
    budgets: Dict[str, Budget]
    baseline: str
    final: Tuple[str, ...]
    val_split: str
    test_split: str
    path: str = ''

    def arm(self, name: str) -> Arm:
        """The arm called ``name``."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise StudySpecError(f'{self.path}: no arm {name!r}; arms: '
                             f'{[a.name for a in self.arms]}')


def load_study_spec(path: str, root: str = '.') -> StudySpec:
    """Read and validate a study spec file.

    Args:
        path (str): The spec (a Python config file).
        root (str): Repository root that arm configs are relative to.
            Defaults to ``'.'``.

    Returns:
        StudySpec: The validated spec.

    Raises:
        ConfigError: Naming the file and the field at fault
            (:class:`StudySpecError`, or ``ConfigKeyError`` for an unknown
            key).
    """
    from mmengine.config import Config
    if not osp.isfile(path):
        raise StudySpecError(f'study spec {path} does not exist')
    # Names starting with "_" are the spec file's own helper variables.
    raw = {key: value for key, value in Config.fromfile(path).to_dict().items()
           if not key.startswith('_')}
    refuse_unknown_keys(raw, SPEC_KEYS, f'{path}: spec')
    for key in ('name', 'arms', 'seeds', 'budgets', 'baseline'):
        if key not in raw:
            raise StudySpecError(f'{path}: missing field {key!r}')
    arms, names = [], set()
    for index, item in enumerate(raw['arms']):
        where = f'{path}: arms[{index}]'
        refuse_unknown_keys(item, ARM_KEYS, where)
        if 'name' not in item or 'config' not in item:
            raise StudySpecError(f'{where}: needs "name" and "config"')
        if item['name'] in names:
            raise StudySpecError(f'{where}: duplicate arm name '
                                 f'{item["name"]!r}')
        if not osp.isfile(osp.join(root, item['config'])):
            raise StudySpecError(f'{where}.config: {item["config"]} does '
                                 'not exist')
        init_from = item.get('init_from')
        if init_from is not None and init_from not in names:
            raise StudySpecError(
                f'{where}.init_from: {init_from!r} must name an arm listed '
                f'before it; earlier arms: {sorted(names)}')
        names.add(item['name'])
        arms.append(
            Arm(item['name'], item['config'],
                tuple(item.get('cfg_options', ())), init_from,
                item.get('description', '')))
    seeds = tuple(raw['seeds'])
    if not seeds or not all(is_int(s) for s in seeds):
        raise StudySpecError(f'{path}: seeds must be a non-empty list of '
                             f'ints, got {raw["seeds"]!r}')
    budgets = {}
    for name, item in raw['budgets'].items():
        where = f'{path}: budgets.{name}'
        refuse_unknown_keys(item, BUDGET_KEYS, where)
        for key in ('epochs', 'stage1_epochs'):
            check_int(item.get(key), f'{where}.{key}', minimum=1)
        budgets[name] = Budget(name, item['epochs'], item['stage1_epochs'],
                               tuple(item.get('cfg_options', ())),
                               tuple(item.get('seeds', seeds)))
    spec = StudySpec(raw['name'], tuple(arms), seeds, budgets,
                     raw['baseline'], tuple(raw.get('final', ())),
                     raw.get('val_split', 'xsub_dev_val'),
                     raw.get('test_split', 'xsub_val'), path)
    for name in (spec.baseline, *spec.final):
        spec.arm(name)
    return spec


@contextlib.contextmanager
def stopwatch(path: str, every: float) -> Iterator[Callable[[], float]]:
    """Add the time spent in the block to the seconds saved in ``path``.

    The sum is saved every ``every`` seconds while the block runs, not only
    at its end: a study killed mid-training (the end of a session) keeps
    the time that training had spent, and its resumed run adds to it.

    Args:
        path (str): A JSON file ``{"seconds": ...}`` (made if missing).
        every (float): Seconds between two saves.

    Yields:
        callable: Returns the seconds so far, earlier tries included.
    """
    before = 0.0
    if osp.isfile(path):  # time of earlier, interrupted tries
        with open(path) as file:
            before = json.load(file)['seconds']
    start = time.perf_counter()
    stopped: List[float] = []  # the end of the block, once it has ended
    done = threading.Event()

    def spent() -> float:
        end = stopped[0] if stopped else time.perf_counter()
        return before + end - start

    def keep_saving() -> None:
        while not done.wait(every):
            atomic_write_json(path, dict(seconds=spent()))

    saver = threading.Thread(target=keep_saving, daemon=True)
    saver.start()
    try:
        yield spent
    finally:
        done.set()
        saver.join()
        stopped.append(time.perf_counter())
        atomic_write_json(path, dict(seconds=spent()))


def machine_info(python: str = sys.executable) -> Dict:
    """The CPU and the torch thread count of a training run started here.

    The tools run as ``python`` with this process's environment, so a fresh
    ``python`` with it reports the threads they train with
    (``OMP_NUM_THREADS`` when set, else torch's default for the machine).

    Returns:
        dict: ``torch_threads``, ``omp_num_threads`` (the variable, or
        None), ``cpu_capability`` (the SIMD level torch's CPU kernels use,
        e.g. ``AVX2`` or ``AVX512``: "AMD EPYC" names several generations,
        whose kernels round differently) and ``cpu_model`` (``lscpu``'s
        "Model name", else ``platform.processor()``).
    """
    threads, capability = subprocess.run(
        [python, '-c', 'import torch; print(torch.get_num_threads(), '
         'torch.backends.cpu.get_cpu_capability())'],
        capture_output=True, text=True,
        check=True).stdout.splitlines()[-1].split()
    try:
        lscpu = subprocess.run(['lscpu'], capture_output=True, text=True,
                               env=dict(os.environ, LC_ALL='C')).stdout
    except OSError:  # no lscpu (macOS, minimal images)
        lscpu = ''
    models = [line.partition(':')[2].strip() for line in lscpu.splitlines()
              if line.partition(':')[0].strip() == 'Model name']
    return dict(torch_threads=int(threads),
                omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
                cpu_capability=capability,
                cpu_model=next(filter(None, models), platform.processor()))


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    var = sum((v - mean)**2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def paired_difference(values: Dict[int, float],
                      reference: Dict[int, float]) -> Optional[Dict]:
    """Per-seed differences ``values - reference`` on their common seeds.

    Returns:
        dict | None: ``mean``, ``std``, ``n``, ``wins`` (seeds where the arm
        is better), ``sem`` (standard error) and ``p``, the two-sided p-value
        of a paired t test (None below 2 seeds or when every difference is
        the same), or None without common seeds.
    """
    seeds = sorted(set(values) & set(reference))
    if not seeds:
        return None
    diffs = [values[s] - reference[s] for s in seeds]
    mean, std = mean_std(diffs)
    sem = std / math.sqrt(len(seeds))
    p = None
    if len(seeds) > 1 and sem > 1e-12:  # not float noise of equal ones
        from scipy.stats import t as student_t
        p = float(2 * student_t.sf(abs(mean / sem), len(seeds) - 1))
    return dict(mean=mean, std=std, n=len(seeds),
                wins=sum(d > 0 for d in diffs), sem=sem, p=p)


class StudyRunner:
    """Trains and evaluates a study's runs through ``tools/``.

    Args:
        spec (StudySpec): The study.
        budget (str): A key of ``spec.budgets`` (``'cpu'``, ``'cuda'``).
        work_root (str): Where runs go; each run in
            ``<work_root>/<arm>/seed<k>``. Defaults to
            ``work_dirs/studies/<spec.name>_<budget>``.
        root (str): Repository root (the tools' working directory).
            Defaults to ``'.'``.
        python (str): Interpreter for the tools. Defaults to the current.
        execute (callable, optional): ``execute(command, log_path)`` runs a
            command and returns its exit status; the default runs it in
            ``root`` with its output in ``log_path``. Defaults to None.
        echo (callable): Progress printer. Defaults to ``print``.
        seeds (sequence[int], optional): Run and test only these of the
            budget's seeds (e.g. one seed per process, to share a machine's
            cores); the table still covers all of them. Defaults to None
            (all).
    """

    #: Seconds between two saves of a training's time so far.
    timing_every = 60.0

    def __init__(self,
                 spec: StudySpec,
                 budget: str,
                 work_root: Optional[str] = None,
                 root: str = '.',
                 python: str = sys.executable,
                 execute: Optional[Callable[[List[str], str], int]] = None,
                 echo: Callable[[str], None] = print,
                 seeds: Optional[Sequence[int]] = None) -> None:
        if budget not in spec.budgets:
            raise StudySpecError(f'{spec.path}: no budget {budget!r}; '
                                 f'budgets: {sorted(spec.budgets)}')
        self.spec = spec
        self.budget = spec.budgets[budget]
        unknown = sorted(set(seeds or ()) - set(self.budget.seeds))
        if unknown:
            raise StudySpecError(
                f'{spec.path}: seeds {unknown} are not in budget '
                f'{budget!r}; its seeds: {list(self.budget.seeds)}')
        self.seeds = tuple(seeds) if seeds else self.budget.seeds
        self.root = root
        self.work_root = work_root or osp.join(
            root, 'work_dirs', 'studies', f'{spec.name}_{budget}')
        self.python = python
        self.execute = execute or self._execute
        self.echo = echo
        self._configs: Dict = {}
        self._digests: Dict[str, str] = {}
        self._machine: Optional[Dict] = None

    # ------------------------------------------------------------------
    # Paths and commands
    # ------------------------------------------------------------------
    def run_dir(self, arm: Arm, seed: int) -> str:
        """The folder of one run."""
        return osp.join(self.work_root, arm.name, f'seed{seed}')

    def result_path(self, arm: Arm, seed: int) -> str:
        """The run's ``result.json``."""
        return osp.join(self.run_dir(arm, seed), 'result.json')

    def read_result(self, arm: Arm, seed: int) -> Optional[Dict]:
        """The run's result, or None before it finished."""
        path = self.result_path(arm, seed)
        if not osp.isfile(path):
            return None
        with open(path) as file:
            return json.load(file)

    def arm_config(self, arm: Arm):
        """The arm's training config (read once), without its overrides."""
        if arm.config not in self._configs:
            from mmengine.config import Config
            self._configs[arm.config] = Config.fromfile(
                osp.join(self.root, arm.config))
        return self._configs[arm.config]

    def run_config(self, arm: Arm):
        """The arm's training config as the study resolves it now: the
        config file with its bases, merged with the budget's and the arm's
        overrides exactly as ``tools/train.py`` merges ``--cfg-options``
        (the per-seed ``train_cfg.pretrained`` excepted).

        Returns:
            Config: A copy, free to change.
        """
        from ..engine.launch import add_runner_arguments

        # tools/train.py's own parser, so that values and list indices
        # resolve as they do for the run.
        parser = argparse.ArgumentParser()
        add_runner_arguments(parser)
        options = self.run_options(arm)
        overrides = parser.parse_args(
            ['--cfg-options', *options] if options else []).cfg_options
        cfg = copy.deepcopy(self.arm_config(arm))
        cfg.merge_from_dict(overrides or {})
        return cfg

    def config_digest(self, arm: Arm) -> str:
        """Digest of :meth:`run_config`."""
        if arm.name not in self._digests:
            text = json.dumps(self.run_config(arm).to_dict(), sort_keys=True,
                              default=str)
            self._digests[arm.name] = hashlib.sha256(
                text.encode()).hexdigest()[:16]
        return self._digests[arm.name]

    def current_result(self, arm: Arm, seed: int) -> Optional[Dict]:
        """The run's result, refused if its config has changed since.

        Results written before runs recorded ``config_digest`` are taken
        as they are.

        Raises:
            StudySpecError: The recorded ``config_digest`` differs from the
                arm's config as it resolves now.
        """
        result = self.read_result(arm, seed)
        if result is None or 'config_digest' not in result:
            return result
        digest = self.config_digest(arm)
        if result['config_digest'] != digest:
            raise StudySpecError(
                f'{self.result_path(arm, seed)}: config_digest '
                f'{result["config_digest"]} does not match arm '
                f'{arm.name!r} as it resolves now ({digest}): its config, '
                'a default of its bases or its cfg_options changed since '
                'this run. Pin the old values in the arm\'s cfg_options, '
                f'or move {self.run_dir(arm, seed)} away to train it again')
        return result

    def machine(self) -> Dict:
        """:func:`machine_info` for this runner's interpreter (once)."""
        if self._machine is None:
            self._machine = machine_info(self.python)
        return self._machine

    def is_two_stage(self, arm: Arm) -> bool:
        """Whether the arm's config trains with :class:`TwoStageLoop`."""
        train_cfg = self.arm_config(arm).get('train_cfg', {})
        return train_cfg.get('type') == 'TwoStageLoop'

    def num_classes(self, arm: Arm) -> int:
        """Classes of the arm's model (chance CE is their log)."""
        return self.arm_config(arm).model.cls_head.num_classes

    def budget_options(self, arm: Arm) -> List[str]:
        """The overrides that give ``arm`` the study's budget."""
        epochs = self.budget.epochs
        if self.is_two_stage(arm):
            options = [
                f'train_cfg.stage0.epochs={epochs}',
                f'train_cfg.stage1.epochs={self.budget.stage1_epochs}',
                f'train_cfg.stage2.epochs={epochs}'
            ]
        else:
            options = [f'train_cfg.max_epochs={epochs}']
        return [*self.budget.cfg_options, *options]

    def run_options(self, arm: Arm) -> List[str]:
        """Every ``--cfg-options`` of the arm's runs: the budget's, then the
        arm's own (the per-seed ``train_cfg.pretrained`` excepted)."""
        return self.budget_options(arm) + list(arm.cfg_options)

    def train_command(self, arm: Arm, seed: int) -> List[str]:
        """``tools/train.py`` for one run (resuming when it can)."""
        train_dir = osp.join(self.run_dir(arm, seed), 'train')
        options = self.run_options(arm)
        if arm.init_from is not None:
            source = self.spec.arm(arm.init_from)
            result = self.current_result(source, seed)
            if result is None:
                raise RuntimeError(f'{arm.name} seed {seed} starts from '
                                   f'{source.name} seed {seed}, which has '
                                   'not finished')
            options.append(f'train_cfg.pretrained={result["checkpoint"]}')
        command = [
            self.python, 'tools/train.py', arm.config, '--work-dir',
            train_dir, '--seed',
            str(seed)
        ]
        if glob.glob(osp.join(train_dir, 'epoch_*.pth')):
            command.append('--resume')
        return command + ['--cfg-options', *options]

    def test_command(self, arm: Arm, seed: int, checkpoint: str,
                     split: str, out: str) -> List[str]:
        """``tools/test.py`` of ``checkpoint`` on ``split``."""
        options = self.run_options(arm)
        return [
            self.python, 'tools/test.py', arm.config, checkpoint,
            '--work-dir',
            osp.join(self.run_dir(arm, seed), f'test_{split}'),
            '--metrics-out', out, '--dump',
            osp.splitext(out)[0] + '.pkl', '--cfg-options', *options,
            f'test_dataloader.dataset.split={split}'
        ]

    def _execute(self, command: List[str], log_path: str) -> int:
        """Run ``command`` in the repository root, output to ``log_path``."""
        with open(log_path, 'a') as log:
            log.write('\n$ ' + ' '.join(command) + '\n')
            log.flush()
            return subprocess.call(
                command, cwd=self.root, stdout=log, stderr=subprocess.STDOUT)

    def _checked(self, command: List[str], log_path: str) -> None:
        status = self.execute(command, log_path)
        if status != 0:
            raise RuntimeError(f'exit {status}: {" ".join(command)}; see '
                               f'{log_path}')

    # ------------------------------------------------------------------
    # Runs
    # ------------------------------------------------------------------
    def runs(self) -> List[Tuple[Arm, int]]:
        """Every (arm, seed) of the budget, arm by arm in spec order."""
        return [(arm, seed) for arm in self.spec.arms
                for seed in self.budget.seeds]

    def run_all(self, arms: Optional[Sequence[str]] = None) -> None:
        """Train and validate every unfinished run (of ``arms``, of the
        runner's seeds)."""
        todo = [(arm, seed) for arm, seed in self.runs()
                if (arms is None or arm.name in arms)
                and seed in self.seeds]
        started, durations = time.perf_counter(), []
        for number, (arm, seed) in enumerate(todo, 1):
            if self.current_result(arm, seed) is not None:
                self.echo(f'[{number}/{len(todo)}] {arm.name} seed {seed}: '
                          'done (skipped)')
                continue
            left = len(todo) - number + 1
            eta = (f', about {left * sum(durations) / len(durations) / 60:.0f}'
                   ' min left') if durations else ''
            self.echo(f'[{number}/{len(todo)}] {arm.name} seed {seed}: '
                      f'training ({(time.perf_counter() - started) / 60:.0f} '
                      f'min so far{eta})')
            start = time.perf_counter()
            self.run_one(arm, seed)
            durations.append(time.perf_counter() - start)
            result = self.read_result(arm, seed)
            self.echo(f'    val top-1 {100 * result["val"]["acc/top1"]:.1f}%'
                      f' in {result["train_seconds"] / 60:.1f} min')

    def run_one(self, arm: Arm, seed: int) -> Dict:
        """Train (or resume) one run and evaluate it on the val split."""
        run_dir = self.run_dir(arm, seed)
        os.makedirs(run_dir, exist_ok=True)
        log_path = osp.join(run_dir, 'study.log')
        timing_path = osp.join(run_dir, 'train_seconds.json')
        command = self.train_command(arm, seed)
        with stopwatch(timing_path, self.timing_every) as spent:
            status = self.execute(command, log_path)
        if status != 0:
            raise RuntimeError(f'{arm.name} seed {seed}: training exited '
                               f'{status}; see {log_path}')
        train_dir = osp.join(run_dir, 'train')
        checkpoint = selected_checkpoint(train_dir)
        val_out = osp.join(run_dir, 'val_metrics.json')
        self._checked(
            self.test_command(arm, seed, checkpoint, self.spec.val_split,
                              val_out), log_path)
        with open(val_out) as file:
            val = json.load(file)
        result = dict(
            arm=arm.name,
            seed=seed,
            budget=self.budget.name,
            config=arm.config,
            cfg_options=self.run_options(arm),
            config_digest=self.config_digest(arm),
            checkpoint=checkpoint,
            val=val,
            train_seconds=spent(),
            machine=self.machine(),
            diagnostics=last_diagnostics(train_dir))
        atomic_write_json(self.result_path(arm, seed), result)
        return result

    def run_test(self, arms: Sequence[str]) -> None:
        """Evaluate the final ``arms`` on the test split, once per run.

        Refuses to start before every seed of these arms has its
        validation result: the arms must have been chosen on validation.
        """
        chosen = [self.spec.arm(name) for name in arms]
        missing = [f'{arm.name} seed {seed}' for arm in chosen
                   for seed in self.seeds
                   if self.read_result(arm, seed) is None]
        if missing:
            raise RuntimeError('test split refused: validation runs not '
                               f'finished: {", ".join(missing)}')
        for arm in chosen:
            for seed in self.seeds:
                result = self.current_result(arm, seed)
                if 'test' in result:
                    continue
                self.echo(f'{arm.name} seed {seed}: test split '
                          f'{self.spec.test_split}')
                out = osp.join(self.run_dir(arm, seed), 'test_metrics.json')
                self._checked(
                    self.test_command(arm, seed, result['checkpoint'],
                                      self.spec.test_split, out),
                    osp.join(self.run_dir(arm, seed), 'study.log'))
                with open(out) as file:
                    result['test'] = json.load(file)
                atomic_write_json(self.result_path(arm, seed), result)

    # ------------------------------------------------------------------
    # Table
    # ------------------------------------------------------------------
    def collect(self) -> Dict[str, Dict[int, Dict]]:
        """Finished results by arm and seed; two-stage runs whose work dirs
        are at hand also get their ``learning`` criteria (see
        :mod:`~cocodiff_mm.analysis.learning_criteria`)."""
        results = {}
        for arm, seed in self.runs():
            result = self.read_result(arm, seed)
            if result is None:
                continue
            train_dir = osp.join(self.run_dir(arm, seed), 'train')
            if self.is_two_stage(arm) and osp.isdir(train_dir):
                learning = learning_criteria(train_dir,
                                             self.num_classes(arm))
                if learning is not None:
                    result['learning'] = learning
            results.setdefault(arm.name, {})[seed] = result
        return results

    def table(self) -> str:
        """The study's markdown table (see :func:`format_study_table`)."""
        return format_study_table(self.spec, self.budget, self.collect())

    def write_table(self) -> str:
        """Write ``table.md`` and ``summary.json``; return the table."""
        text = self.table()
        atomic_write_text(osp.join(self.work_root, 'table.md'), text)
        atomic_write_json(
            osp.join(self.work_root, 'summary.json'), self.collect())
        return text


def selected_checkpoint(train_dir: str) -> str:
    """The checkpoint chosen on validation (``best_acc_top1_*``), else the
    last one."""
    best = sorted(glob.glob(osp.join(train_dir, 'best_acc_top1_epoch_*.pth')))
    if best:
        return best[-1]
    pointer = osp.join(train_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as file:
            return file.read().strip()
    raise FileNotFoundError(f'no checkpoint in {train_dir}')


def last_diagnostics(train_dir: str) -> Dict[str, Dict]:
    """The last generation-diagnostics line of each objective (stage)."""
    return {values['objective']: values
            for values in read_diagnostics(train_dir)}


def _percent(values: Sequence[float]) -> str:
    mean, std = mean_std([100 * v for v in values])
    return f'{mean:.1f} ± {std:.1f}'


def points(value: float) -> float:
    """A fraction as points rounded to 0.1, without a negative zero."""
    return round(100 * value, 1) + 0.0


def format_paired_difference(diff: Optional[Dict]) -> str:
    """``+5.0 ± 5.0 (2/3, p 0.23)``: a :func:`paired_difference` in
    points, wins / seeds and the paired t test; ``—`` for None."""
    if diff is None:
        return '—'
    if diff.get('p') is None:
        p = ''
    elif diff['p'] < 0.01:
        p = ', p < 0.01'
    else:
        p = f', p {diff["p"]:.2f}'
    return (f'{points(diff["mean"]):+.1f} ± {points(diff["std"]):.1f} '
            f'({diff["wins"]}/{diff["n"]}{p})')


def format_study_table(spec: StudySpec, budget: Budget,
                       results: Dict[str, Dict[int, Dict]]) -> str:
    """Markdown: accuracy over seeds, paired differences, diagnostics.

    Accuracies are top-1 in percent, mean ± sample std over the finished
    seeds; Δ is the per-seed (paired) difference to the baseline arm, with
    the number of seeds where the arm is better.
    """
    base = results.get(spec.baseline, {})
    base_val = {s: r['val']['acc/top1'] for s, r in base.items()}
    base_test = {s: r['test']['acc/top1'] for s, r in base.items()
                 if 'test' in r}
    lines = [
        f'Study `{spec.name}`, budget `{budget.name}` ({budget.epochs} '
        f'epochs, stage 1: {budget.stage1_epochs}); validation split '
        f'`{spec.val_split}`, test split `{spec.test_split}` (final arms '
        'only). Top-1 %, mean ± std over seeds; Δ paired per seed vs '
        f'`{spec.baseline}` (seeds better / seeds, p: two-sided paired t '
        'test).', '',
        '| arm | seeds | val top-1 | Δ val | test top-1 | Δ test | '
        'train min | gen acc s1 | gen acc s2 | margin s1 gen/real | '
        'margin s2 gen/real | DIV gen/real | dist ratio gen |',
        '|' + '---|' * 13
    ]
    for arm in spec.arms:
        runs = results.get(arm.name)
        if not runs:
            lines.append(f'| {arm.name} | 0 | not run |' + ' |' * 10)
            continue
        val = {s: r['val']['acc/top1'] for s, r in runs.items()}
        test = {s: r['test']['acc/top1'] for s, r in runs.items()
                if 'test' in r}
        minutes = mean_std([r['train_seconds'] / 60 for r in runs.values()])
        diag = _diagnostic_columns(runs)
        is_base = arm.name == spec.baseline
        delta_val = '—' if is_base else format_paired_difference(
            paired_difference(val, base_val))
        delta_test = '—' if is_base or not test else \
            format_paired_difference(paired_difference(test, base_test))
        lines.append(
            f'| {arm.name} | {len(runs)} | {_percent(list(val.values()))} | '
            f'{delta_val} | {_percent(list(test.values())) if test else "—"}'
            f' | {delta_test} | {minutes[0]:.1f} | {diag} |')
    described = [a for a in spec.arms if a.description]
    if described:
        lines += ['', 'Arms:'] + [f'- `{a.name}`: {a.description}'
                                  for a in described]
    lines += [
        '', 'gen acc s1: the frozen pretrained classifier on generated '
        'features at the end of stage 1 (class faithfulness); s2: the '
        'final classifier on them at the end of stage 2. margin: the '
        'classifier\'s own-class score minus its best other score, mean '
        'over generated and over real features (larger: easier), frozen '
        '(s1) and final (s2) classifier. DIV: '
        'Action2Motion diversity, generated over real, at the end of '
        'stage 2. dist ratio: distance to the own class mean over the '
        'distance to the nearest other class mean (< 1: on the right '
        'side). All on the validation clips.', ''
    ]
    learning = _learning_table(spec, results)
    return '\n'.join(lines + learning)


def _learning_table(spec: StudySpec,
                    results: Dict[str, Dict[int, Dict]]) -> List[str]:
    """Markdown: does each two-stage arm's diffusion learn? The worst seed
    of each check, over the seeds whose work dirs are at hand."""
    rows = []
    for arm in spec.arms:
        found = [r['learning'] for r in results.get(arm.name, {}).values()
                 if 'learning' in r]
        if found:
            rows.append(
                f'| {arm.name} | {len(found)} | '
                f'{_worst(found, "loss_con_fall", min)} | '
                f'{_worst(found, "faithfulness", min)} | '
                f'{_worst(found, "acc_generated_first_epoch", min)} | '
                f'{_worst(found, "acc_generated_later_min", min)} | '
                f'{_worst(found, "ce_generated_max", max, percent=False)} / '
                f'{found[0]["chance_ce"]:.2f} | '
                f'{_worst(found, "gen_over_real_min", min, signed=True)} |')
    if not rows:
        return []
    return [
        'Does the diffusion learn? The worst seed of each check, over the '
        'seeds whose work dirs are at hand (targets in brackets).', '',
        '| arm | seeds | `loss_con` fall in stage 1 '
        f'(≥ {LOSS_CON_FALL:.0%}) | faithfulness, end of stage 1 '
        f'(≥ {FAITHFULNESS:.0%}) | `acc_generated`, stage-2 epoch 1 | '
        '`acc_generated`, lowest stage-2 epoch from the 2nd '
        f'(≥ {STAGE2_ACC_GENERATED:.0%}) | largest `ce_generated` epoch '
        '/ chance ln C | stage 2, generated − real recognised, lowest epoch '
        '(val) |', '|' + '---|' * 8, *rows, '',
        '`loss_con` fall: 1 − last stage-1 epoch / first. '
        '`acc_generated`: per stage-2 epoch; in epoch 1 the classifier '
        'starts from random weights. `ce_generated`: the largest epoch of '
        'the CE on generated features before '
        'its weight and ramp. These are epoch means of the training outputs; '
        'the last column compares the classifier\'s accuracy on generated '
        'and real validation features after each stage-2 epoch (points). '
        'All from each run\'s `train/generation_diagnostics.jsonl`.', ''
    ]


def _worst(found: List[Dict], key: str, pick: Callable,
           percent: bool = True, signed: bool = False) -> str:
    """``pick`` (min or max) of ``key`` over the runs that measured it:
    a percentage, signed points, or a plain number."""
    values = [c[key] for c in found if c.get(key) is not None]
    if not values:
        return '—'
    value = pick(values)
    if signed:
        return f'{100 * value:+.1f}'
    return f'{100 * value:.1f} %' if percent else f'{value:.2f}'


def _diagnostic_columns(runs: Dict[int, Dict]) -> str:
    """Mean over seeds of the stage-1/2 diagnostics columns."""

    def column(objective: str, key: str, scale: float = 1.0) -> List[float]:
        # Runs from before a diagnostic existed lack its key.
        return [r['diagnostics'][objective][key] * scale
                for r in runs.values()
                if key in r.get('diagnostics', {}).get(objective, {})]

    def fmt(values: List[float], digits: int = 1) -> str:
        return f'{sum(values) / len(values):.{digits}f}' if values else '—'

    s1 = column('diffusion', 'gen_acc', 100)
    s2 = column('joint', 'gen_acc', 100)
    div = [g / r for g, r in zip(
        column('joint', 'div_gen'), column('joint', 'div_real'))]
    ratio = column('joint', 'dist_ratio_gen')
    margins = [f'{fmt(column(o, "margin_gen"), 2)} / '
               f'{fmt(column(o, "margin_real"), 2)}'
               for o in ('diffusion', 'joint')]
    return (f'{fmt(s1)} | {fmt(s2)} | {margins[0]} | {margins[1]} | '
            f'{fmt(div, 2)} | {fmt(ratio, 2)}')


