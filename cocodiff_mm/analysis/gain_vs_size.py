"""Test gain against training-set size, from finished accuracy studies.

A sizes file (a Python config, e.g.
``configs/analysis/utd_mhad_gain_vs_size.py``) lists one study spec per
training-set size and which of its arms plays each role::

    sizes = [
        dict(spec='configs/studies/utd_mhad_size_s1.py',
             arms=dict(baseline='baseline', cocodiff='cocodiff',
                       class_codes='class_codes')),
        ...
    ]

For every size, the test top-1 of each role's finished runs (read as
:class:`~cocodiff_mm.analysis.study.StudyRunner` wrote them, stale runs
refused) gives the per-seed (paired) gains of ``cocodiff`` and
``class_codes`` over ``baseline`` and of ``cocodiff`` over
``class_codes`` (:func:`~cocodiff_mm.analysis.study.paired_difference`).
The size itself, training clips per class, is computed from the baseline
arm's resolved training config: the clips of its training split in its
annotation pickle over the distinct labels among them.

:func:`format_gain_table` writes the markdown table and
:func:`plot_gains` the PNG (per-seed points and the mean line of each role
against clips per class), drawn on a bare Agg canvas (no ``pyplot``);
matplotlib is imported inside the function that draws.
``tools/analysis/gain_vs_size.py`` writes both.
"""
import io
import os
import os.path as osp
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..utils.atomic_write import atomic_write_bytes, atomic_write_text
from ..utils.config_keys import ConfigError, refuse_unknown_keys
from ..utils.safe_pickle import safe_pickle_load
from .study import (StudyRunner, StudySpec, format_paired_difference,
                    load_study_spec, mean_std, paired_difference, points)

PathLike = Union[str, os.PathLike]

#: Keys of a sizes file and of one size.
FILE_KEYS = ('sizes', )
SIZE_KEYS = ('spec', 'arms')
#: The roles every size names an arm for.
ROLES = ('baseline', 'cocodiff', 'class_codes')
#: The paired differences of a size: (key, arm role, reference role).
COMPARISONS = (('cocodiff', 'cocodiff', 'baseline'),
               ('class_codes', 'class_codes', 'baseline'),
               ('cocodiff-class_codes', 'cocodiff', 'class_codes'))
#: Legend labels of the plotted roles.
ROLE_LABELS = {
    'cocodiff': 'CoCoDiff (MiniLM texts)',
    'class_codes': 'class codes (untrained text encoder)'
}
#: Names of the outputs in ``--out-dir``.
TABLE_NAME = 'gain_vs_size.md'
PLOT_NAME = 'gain_vs_size.png'


@dataclass(frozen=True)
class Size:
    """One training-set size: a study and its arm of each role.

    Attributes:
        spec (StudySpec): The study.
        arms (dict[str, str]): Arm name of each of :data:`ROLES`.
        where (str): ``<sizes file>: sizes[<index>]``, for messages.
    """

    spec: StudySpec
    arms: Dict[str, str]
    where: str


@dataclass(frozen=True)
class ClipsPerClass:
    """The training clips of a split over its classes.

    Attributes:
        clips (int): Clips in the split.
        classes (int): Distinct labels among them.
        split (str): The split.
        ann_file (str): The annotation pickle.
    """

    clips: int
    classes: int
    split: str
    ann_file: str

    @property
    def value(self) -> float:
        """Clips per class."""
        return self.clips / self.classes


@dataclass
class SizeGains:
    """What one size measured on the test split.

    Attributes:
        study (str): The study's name.
        budget (str): The budget its runs used.
        seeds (tuple[int]): The budget's seeds.
        test_split (str): The study's test split.
        train_split (str, optional): The baseline's training split, when
            its config names one.
        clips (ClipsPerClass, optional): None when it cannot be computed
            for a size without results (see ``clips_error``).
        clips_error (str): Why ``clips`` is None. Defaults to ``''``.
        test (dict[str, dict[int, float]]): Test top-1 by role and seed.
        finished (dict[str, int]): Runs with a result (validated, tested
            or not) by role.
        diffs (dict[str, dict | None]): :func:`paired_difference` of each
            of :data:`COMPARISONS` by key.
        per_seed (dict[str, dict[int, float]]): The per-seed differences
            behind each of ``diffs``.
    """

    study: str
    budget: str
    seeds: Tuple[int, ...]
    test_split: str
    train_split: Optional[str]
    clips: Optional[ClipsPerClass]
    clips_error: str = ''
    test: Dict[str, Dict[int, float]] = field(default_factory=dict)
    finished: Dict[str, int] = field(default_factory=dict)
    diffs: Dict[str, Optional[Dict]] = field(default_factory=dict)
    per_seed: Dict[str, Dict[int, float]] = field(default_factory=dict)

    @property
    def tested_seeds(self) -> List[int]:
        """Seeds where every role has a test result."""
        common = set(self.seeds)
        for role in ROLES:
            common &= set(self.test.get(role, {}))
        return sorted(common)


def load_sizes(path: PathLike, root: str = '.') -> List[Size]:
    """Read and validate a sizes file.

    Args:
        path (str | os.PathLike): The file (a Python config).
        root (str): Repository root that the study specs (and their arm
            configs) are relative to. Defaults to ``'.'``.

    Returns:
        list[Size]: In file order.

    Raises:
        ConfigError: Naming the file and the field at fault: an unknown key
            (``ConfigKeyError``), a missing field or role, a spec that does
            not exist or does not load, an arm the spec does not have.
    """
    from mmengine.config import Config
    path = str(path)
    if not osp.isfile(path):
        raise ConfigError(f'sizes file {path} does not exist')
    # Names starting with "_" are the file's own helper variables.
    raw = {key: value for key, value in Config.fromfile(path).to_dict().items()
           if not key.startswith('_')}
    refuse_unknown_keys(raw, FILE_KEYS, f'{path}: file')
    items = raw.get('sizes')
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(f'{path}: sizes must be a non-empty list of dicts, '
                          f'got {items!r}')
    sizes = []
    for index, item in enumerate(items):
        where = f'{path}: sizes[{index}]'
        if not isinstance(item, dict):
            raise ConfigError(f'{where} must be a dict with keys '
                              f'{list(SIZE_KEYS)}, got {item!r}')
        refuse_unknown_keys(item, SIZE_KEYS, where)
        for key in SIZE_KEYS:
            if key not in item:
                raise ConfigError(f'{where}: missing field {key!r}')
        spec_path = osp.join(root, item['spec'])
        if not osp.isfile(spec_path):
            raise ConfigError(f'{where}.spec: {item["spec"]} does not exist')
        try:
            spec = load_study_spec(spec_path, root=root)
        except ConfigError as error:
            raise ConfigError(f'{where}.spec: {error}') from error
        arms = item['arms']
        if not isinstance(arms, dict):
            raise ConfigError(f'{where}.arms must be a dict of role to arm '
                              f'name, got {arms!r}')
        refuse_unknown_keys(arms, ROLES, f'{where}.arms')
        names = [arm.name for arm in spec.arms]
        for role in ROLES:
            if role not in arms:
                raise ConfigError(f'{where}.arms: missing role {role!r} '
                                  f'(roles: {list(ROLES)})')
            if arms[role] not in names:
                raise ConfigError(f'{where}.arms.{role}: {item["spec"]} has '
                                  f'no arm {arms[role]!r}; arms: {names}')
        sizes.append(Size(spec, {role: arms[role] for role in ROLES}, where))
    return sizes


def clips_per_class(cfg, root: str = '.',
                    where: str = 'config') -> ClipsPerClass:
    """Training clips per class of a resolved training config.

    Reads ``cfg.train_dataloader.dataset.dataset`` (the dataset inside the
    repeat wrapper): its ``split`` in its ``ann_file`` (relative paths are
    relative to ``root``, where the tools run).

    Args:
        cfg (Config): E.g. :meth:`StudyRunner.run_config` of the baseline.
        root (str): Repository root. Defaults to ``'.'``.
        where (str): What ``cfg`` is, for messages. Defaults to
            ``'config'``.

    Returns:
        ClipsPerClass: The counts.

    Raises:
        ConfigError: The config lacks the fields, the pickle is missing or
            unreadable, lacks the split, or the split names clips that have
            no annotation.
    """
    try:
        dataset = cfg.train_dataloader.dataset.dataset
        ann_file, split = dataset.ann_file, dataset.split
    except (AttributeError, KeyError) as error:
        raise ConfigError(
            f'{where}: train_dataloader.dataset.dataset needs ann_file and '
            f'split to count the training clips ({error})') from error
    path = ann_file if osp.isabs(ann_file) else osp.join(root, ann_file)
    if not osp.isfile(path):
        raise ConfigError(f'{where}: train_dataloader.dataset.dataset.'
                          f'ann_file {path} does not exist')
    data = safe_pickle_load(path, 'an annotation pickle')
    if not isinstance(data, dict) or not isinstance(data.get('split'), dict) \
            or not isinstance(data.get('annotations'), list):
        raise ConfigError(f'{path}: not an annotation pickle (a dict with '
                          '"split" and "annotations")')
    if split not in data['split']:
        raise ConfigError(
            f'{path}: no split {split!r} (the training split of {where}); '
            f'splits: {sorted(data["split"])}. Regenerate the pickle with '
            'tools/data/utd_mhad_to_pkl.py')
    clips = list(data['split'][split])
    labels = {a['frame_dir']: a['label'] for a in data['annotations']}
    missing = [name for name in clips if name not in labels]
    if missing:
        raise ConfigError(f'{path}: split {split!r} names {len(missing)} '
                          f'clips without annotation, e.g. {missing[0]!r}')
    if not clips:
        raise ConfigError(f'{path}: split {split!r} is empty')
    classes = len({int(labels[name]) for name in clips})
    return ClipsPerClass(len(clips), classes, split, path)


def collect_size(size: Size, budget: str, root: str = '.') -> SizeGains:
    """The test results and paired gains of one size.

    Runs are read as ``StudyRunner(size.spec, budget, root=root)`` finds
    them (``<work_root>/<arm>/seed<k>/result.json``); a run whose config
    changed since it finished is refused, as the study runner refuses it.

    Args:
        size (Size): The size.
        budget (str): A budget of its spec (``'cpu'``, ``'cuda'``).
        root (str): Repository root. Defaults to ``'.'``.

    Returns:
        SizeGains: What the size measured. ``clips`` is None (and
        ``clips_error`` says why) only for a size without test results.

    Raises:
        ConfigError: A missing budget, a stale run, or training clips per
            class that cannot be computed for a size with test results.
    """
    runner = StudyRunner(size.spec, budget, root=root)
    test, finished = {}, {}
    for role in ROLES:
        arm = size.spec.arm(size.arms[role])
        test[role], finished[role] = {}, 0
        for seed in runner.budget.seeds:
            result = runner.current_result(arm, seed)
            if result is None:
                continue
            finished[role] += 1
            if 'test' in result:
                test[role][seed] = result['test']['acc/top1']
    base_cfg = runner.run_config(size.spec.arm(size.arms['baseline']))
    train_split = base_cfg.get('train_dataloader', {}).get(
        'dataset', {}).get('dataset', {}).get('split')
    clips, clips_error = None, ''
    try:
        clips = clips_per_class(
            base_cfg, root,
            f'{size.where} (arm {size.arms["baseline"]!r} of '
            f'{size.spec.name})')
    except ConfigError as error:
        if any(test.values()):
            raise
        clips_error = str(error)
    gains = SizeGains(size.spec.name, budget, tuple(runner.budget.seeds),
                      size.spec.test_split, train_split, clips, clips_error,
                      test, finished)
    for key, role, reference in COMPARISONS:
        seeds = sorted(set(test[role]) & set(test[reference]))
        gains.per_seed[key] = {
            s: test[role][s] - test[reference][s]
            for s in seeds
        }
        gains.diffs[key] = paired_difference(test[role], test[reference])
    return gains


def collect_gains(sizes: Sequence[Size], budget: str,
                  root: str = '.') -> List[SizeGains]:
    """:func:`collect_size` of every size, in order."""
    return [collect_size(size, budget, root) for size in sizes]


def _format_per_seed(diffs: Dict[int, float]) -> str:
    """``s0 +5.0, s1 +10.0``, or ``—`` without seeds."""
    if not diffs:
        return '—'
    return ', '.join(f's{seed} {points(value):+.1f}'
                     for seed, value in sorted(diffs.items()))


def _missing(gains: SizeGains, roles: Sequence[str]) -> str:
    """Why ``roles`` have no common test result: ``not run`` (a role has no
    finished run), ``not tested`` (only validation results) or ``—`` (no
    common seed)."""
    if any(not gains.finished.get(role) for role in roles):
        return 'not run'
    if any(not gains.test.get(role) for role in roles):
        return 'not tested'
    return '—'


def format_gain_table(gains: Sequence[SizeGains]) -> str:
    """Markdown: one row per size, test gains in points over the baseline.

    Args:
        gains (Sequence[SizeGains]): From :func:`collect_gains`.

    Returns:
        str: The table with a short explanation before and notes after.
    """
    budgets = sorted({g.budget for g in gains})
    splits = sorted({g.test_split for g in gains})
    lines = [
        'Test gain against training-set size: top-1 on the test split '
        f'({", ".join(f"`{s}`" for s in splits)}) of each study\'s final '
        f'arms, budget {", ".join(f"`{b}`" for b in budgets)}. Baseline: '
        'mean ± std over seeds (%). Δ: paired per seed, in points, mean ± '
        'std (seeds better / seeds, p: two-sided paired t test); '
        'cocodiff − class_codes: MiniLM texts against class codes '
        '(an untrained text encoder). Clips per class: the baseline\'s '
        'training clips over their distinct labels.', '',
        '| study | train split | clips per class | seeds tested | baseline '
        'test top-1 | Δ cocodiff | Δ class_codes | cocodiff − class_codes | '
        'per-seed Δ cocodiff | per-seed Δ class_codes | per-seed cocodiff '
        '− class_codes |', '|' + '---|' * 11
    ]
    notes = []
    for g in gains:
        if g.clips is None:
            clips = '—'
            notes.append(f'- `{g.study}`: clips per class unknown: '
                         f'{g.clips_error}')
        else:
            clips = (f'{g.clips.value:.1f} ({g.clips.clips} clips, '
                     f'{g.clips.classes} classes)')
        base = list(g.test['baseline'].values())
        if base:
            mean, std = mean_std([100 * v for v in base])
            base_cell = f'{mean:.1f} ± {std:.1f} (n {len(base)})'
        else:
            base_cell = _missing(g, ['baseline'])
        cells = []
        for key, role, reference in COMPARISONS:
            diff = g.diffs[key]
            cells.append(format_paired_difference(diff) if diff is not None else
                         _missing(g, [role, reference]))
        per_seed = [_format_per_seed(g.per_seed[key])
                    for key, _, _ in COMPARISONS]
        lines.append(
            f'| {g.study} | {g.train_split or "—"} | {clips} | '
            f'{len(g.tested_seeds)}/{len(g.seeds)} | {base_cell} | '
            f'{" | ".join(cells)} | {" | ".join(per_seed)} |')
    lines += [
        '', 'seeds tested: seeds where baseline, cocodiff and class_codes '
        'all have a test result, of the budget\'s seeds. not run: no '
        'finished run of an arm; not tested: validation results only '
        '(`tools/study.py SPEC --test` evaluates the final arms).'
    ]
    if notes:
        lines += [''] + notes
    return '\n'.join(lines) + '\n'


def plot_gains(gains: Sequence[SizeGains],
               path: PathLike,
               figsize: Tuple[float, float] = (7.0, 4.5),
               dpi: int = 120) -> Path:
    """Test gain over the baseline against training clips per class.

    Per role (cocodiff, class_codes): the per-seed gains as small markers
    (the roles slightly apart on x) and the mean over seeds as a line;
    a horizontal line at 0. Sizes without clips per class or without
    paired test results are left out; with none, the axes say so.

    Args:
        gains (Sequence[SizeGains]): From :func:`collect_gains`.
        path (str | os.PathLike): The PNG to write (parents created).
        figsize (tuple[float, float]): Inches. Defaults to ``(7.0, 4.5)``.
        dpi (int): Dots per inch. Defaults to 120.

    Returns:
        Path: The written PNG.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, dpi=dpi, layout='constrained')
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    placed = [g for g in gains if g.clips is not None]
    xs = sorted({g.clips.value for g in placed})
    span = (xs[-1] - xs[0]) if len(xs) > 1 else (xs[0] if xs else 1.0)
    offsets = {'cocodiff': -0.012 * span, 'class_codes': 0.012 * span}
    colours = {'cocodiff': 'C0', 'class_codes': 'C1'}
    plotted = False
    for role in ('cocodiff', 'class_codes'):
        means = sorted((g.clips.value, 100 * g.diffs[role]['mean'])
                       for g in placed if g.diffs[role] is not None)
        if not means:
            continue
        plotted = True
        seed_x, seed_y = [], []
        for g in placed:
            for value in g.per_seed[role].values():
                seed_x.append(g.clips.value + offsets[role])
                seed_y.append(100 * value)
        axes.scatter(seed_x, seed_y, s=14, alpha=0.55, color=colours[role],
                     edgecolors='none',
                     label=f'{ROLE_LABELS[role]}, per seed')
        axes.plot([x + offsets[role] for x, _ in means],
                  [y for _, y in means], marker='o', color=colours[role],
                  label=f'{ROLE_LABELS[role]}, mean')
    axes.axhline(0.0, color='grey', linewidth=0.8, linestyle='--')
    if xs:
        axes.set_xticks(xs, [f'{x:.1f}' for x in xs])
    if not plotted:
        axes.text(0.5, 0.5, 'no paired test results yet', ha='center',
                  va='center', transform=axes.transAxes)
    axes.set_xlabel('training clips per class')
    axes.set_ylabel('test top-1 gain over the baseline (points)')
    axes.set_title('Test gain against training-set size')
    if plotted:
        axes.legend(fontsize='small')
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=dpi)
    return atomic_write_bytes(path, buffer.getvalue())


def write_gain_vs_size(sizes_path: PathLike,
                       out_dir: PathLike,
                       budget: str = 'cpu',
                       root: str = '.') -> str:
    """Write ``<out_dir>/gain_vs_size.md`` and ``gain_vs_size.png``.

    Args:
        sizes_path (str | os.PathLike): The sizes file.
        out_dir (str | os.PathLike): Output folder (created).
        budget (str): The studies' budget. Defaults to ``'cpu'``.
        root (str): Repository root. Defaults to ``'.'``.

    Returns:
        str: The markdown table.

    Raises:
        ConfigError: See :func:`load_sizes` and :func:`collect_size`.
    """
    gains = collect_gains(load_sizes(sizes_path, root), budget, root)
    table = format_gain_table(gains)
    atomic_write_text(osp.join(out_dir, TABLE_NAME), table)
    plot_gains(gains, osp.join(out_dir, PLOT_NAME))
    return table
