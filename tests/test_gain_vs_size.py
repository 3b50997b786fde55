"""Test gain against training-set size (cocodiff_mm/analysis/gain_vs_size.py,
tools/analysis/gain_vs_size.py) on written study results: nothing trains.

Each fake study is a spec in ``tmp_path`` whose arms use the repository's
UTD-MHAD configs with a generated annotation pickle; its runs are
``result.json`` files written where :class:`StudyRunner` reads them, with
the config digest it checks.
"""
import json
import math
import textwrap

import numpy as np
import pytest

from conftest import REPO, run_tool, write_pickle
from cocodiff_mm.analysis.gain_vs_size import (clips_per_class,
                                               collect_gains,
                                               format_gain_table,
                                               load_sizes, plot_gains)
from cocodiff_mm.analysis.study import (StudyRunner, StudySpecError,
                                        load_study_spec)
from cocodiff_mm.utils.atomic_write import atomic_write_json
from cocodiff_mm.utils.config_keys import ConfigError

BASELINE_CONFIG = str(REPO / 'configs' / 'ctrgcn_utd_mhad_dev.py')
COCODIFF_CONFIG = str(REPO / 'configs' / 'ctrgcn_cocodiff_utd_mhad_dev.py')
TOOL = 'tools/analysis/gain_vs_size.py'
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def annotation_pickle(tmp_path):
    """Split ``s1``: classes 0-2 with 3 clips and class 3 with 2 (11 clips,
    4 labels: 2.75 per class); split ``full``: 4 clips of each of classes
    0-4 (20 clips, 5 labels: 4.0 per class). Class 4 is only in ``full``,
    so labels counted over the whole file would give 5 for ``s1``."""
    annotations, split = [], dict(s1=[], full=[])
    for label in range(5):
        for index in range(4):
            name = f'A{label:02d}_{index}'
            annotations.append(dict(frame_dir=name, label=label,
                                    total_frames=20))
            split['full'].append(name)
            if label < 4 and index < (3 if label < 3 else 2):
                split['s1'].append(name)
    return write_pickle(tmp_path / 'data' / 'ann.pkl',
                        dict(split=split, annotations=annotations))


def write_study(tmp_path, name, split, seeds=(0, 1, 2), arm_names=None):
    """A study spec as configs/studies/utd_mhad_size_s1.py lays it out:
    the baseline and two CoCoDiff arms training on ``split`` of the
    generated pickle. ``arm_names`` renames the roles' arms (as the full
    study names them)."""
    names = dict(roles(), **(arm_names or {}))
    pickle_path = annotation_pickle(tmp_path)
    size = [f'train_dataloader.dataset.dataset.ann_file={pickle_path}',
            f'train_dataloader.dataset.dataset.split={split}']
    path = tmp_path / f'{name}.py'
    path.write_text(textwrap.dedent(f"""
        name = {name!r}
        baseline = {names['baseline']!r}
        final = {list(names.values())!r}
        seeds = {list(seeds)!r}
        _size = {size!r}
        arms = [
            dict(name={names['baseline']!r}, config={BASELINE_CONFIG!r},
                 cfg_options=_size),
            dict(name={names['cocodiff']!r}, config={COCODIFF_CONFIG!r},
                 init_from={names['baseline']!r},
                 cfg_options=_size + [
                     'model.cls_head.text_bank.encoder=minilm']),
            dict(name={names['class_codes']!r}, config={COCODIFF_CONFIG!r},
                 init_from={names['baseline']!r},
                 cfg_options=_size + [
                     'model.cls_head.text_bank.encoder=random']),
        ]
        budgets = dict(cpu=dict(epochs=1, stage1_epochs=1))
        """))
    return path


def write_results(tmp_path, spec_path, arm, values, test=True):
    """``result.json`` of ``arm`` per seed, as ``StudyRunner.run_one`` (and
    ``run_test`` when ``test``) leaves it: ``values`` maps seed to top-1."""
    spec = load_study_spec(str(spec_path), root=str(tmp_path))
    runner = StudyRunner(spec, 'cpu', root=str(tmp_path))
    arm = spec.arm(arm)
    for seed, top1 in values.items():
        result = dict(arm=arm.name, seed=seed, budget='cpu',
                      config=arm.config, cfg_options=runner.run_options(arm),
                      config_digest=runner.config_digest(arm),
                      checkpoint='best_acc_top1_epoch_1.pth',
                      val={'acc/top1': 0.4}, train_seconds=60.0,
                      machine={}, diagnostics={})
        if test:
            result['test'] = {'acc/top1': top1}
        atomic_write_json(runner.result_path(arm, seed), result)
    return runner


def write_sizes(tmp_path, body):
    path = tmp_path / 'sizes.py'
    path.write_text(textwrap.dedent(body))
    return path


def roles(baseline='baseline', cocodiff='cocodiff',
          class_codes='class_codes'):
    return dict(baseline=baseline, cocodiff=cocodiff,
                class_codes=class_codes)


def row_of(table, study):
    """The cells of ``study``'s row, by column name."""
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith('| study |'))
    row = next(line for line in lines if line.startswith(f'| {study} |'))
    assert len(header.split('|')) == len(row.split('|'))
    return dict(zip([c.strip() for c in header.split('|')],
                    [c.strip() for c in row.split('|')]))


@pytest.fixture
def two_sizes(tmp_path):
    """Size ``small`` (split s1) with every role tested on seeds 0-2 and
    seed 3 tested for cocodiff only; size ``full`` (split ``full``, the
    full study's arm names) with the same numbers shifted, and nothing run
    for size ``ghost``, whose split is not in the pickle."""
    small = write_study(tmp_path, 'small', 's1', seeds=(0, 1, 2, 3))
    write_results(tmp_path, small, 'baseline', {0: 0.50, 1: 0.60, 2: 0.70})
    write_results(tmp_path, small, 'baseline', {3: 0.0}, test=False)
    write_results(tmp_path, small, 'cocodiff',
                  {0: 0.55, 1: 0.70, 2: 0.70, 3: 0.99})
    write_results(tmp_path, small, 'class_codes',
                  {0: 0.50, 1: 0.55, 2: 0.75})
    full_names = dict(cocodiff='gen_no_ramp',
                      class_codes='random_encoder_no_ramp')
    full = write_study(tmp_path, 'full', 'full', arm_names=full_names)
    write_results(tmp_path, full, 'baseline', {0: 0.80, 1: 0.80, 2: 0.80})
    write_results(tmp_path, full, 'gen_no_ramp', {0: 0.81, 1: 0.82, 2: 0.83})
    write_results(tmp_path, full, 'random_encoder_no_ramp',
                  {0: 0.79, 1: 0.80, 2: 0.81})
    ghost = write_study(tmp_path, 'ghost', 'missing_split')
    return write_sizes(tmp_path, f"""
        sizes = [
            dict(spec={str(small)!r}, arms={roles()!r}),
            dict(spec={str(ghost)!r}, arms={roles()!r}),
            dict(spec={str(full)!r}, arms={roles(**full_names)!r}),
        ]
        """)


def test_clips_per_class_counts_the_runs_split_only(tmp_path):
    """The arm's split override decides, and labels are counted among the
    split's clips (11 clips of 4 labels), not over the whole pickle."""
    spec_path = write_study(tmp_path, 'small', 's1')
    spec = load_study_spec(str(spec_path), root=str(tmp_path))
    runner = StudyRunner(spec, 'cpu', root=str(tmp_path))
    counted = clips_per_class(runner.run_config(spec.arm('baseline')),
                              str(tmp_path))
    assert (counted.clips, counted.classes, counted.split) == (11, 4, 's1')
    assert counted.value == pytest.approx(2.75)
    # A relative ann_file is read from the repository root.
    cfg = runner.run_config(spec.arm('baseline'))
    cfg.train_dataloader.dataset.dataset.ann_file = 'data/ann.pkl'
    assert clips_per_class(cfg, str(tmp_path)).clips == 11
    cfg.train_dataloader.dataset.dataset.split = 'nope'
    with pytest.raises(ConfigError, match=r"ann.pkl: no split 'nope'.*"
                       r"splits: \['full', 's1'\]"):
        clips_per_class(cfg, str(tmp_path))


def test_gains_are_paired_per_seed_against_closed_forms(tmp_path,
                                                       two_sizes):
    """Baseline 50/60/70, cocodiff 55/70/70, class codes 50/55/75 on seeds
    0-2: Δ cocodiff +5, +10, 0 -> +5.0 ± 5.0, 2/3 better, t = sqrt(3) on
    2 degrees of freedom: p = 1 - t / sqrt(2 + t^2) = 0.23; Δ class codes
    0, -5, +5 -> +0.0 ± 5.0, p 1; cocodiff - class codes +5, +15, -5 ->
    +5.0 ± 10.0, t = sqrt(3) / 2, p 0.48. Seed 3 (cocodiff at 99 %, the
    baseline not tested) is not paired."""
    gains = collect_gains(load_sizes(two_sizes, str(tmp_path)), 'cpu',
                          str(tmp_path))
    small = gains[0]
    assert small.clips.value == pytest.approx(2.75)
    assert small.tested_seeds == [0, 1, 2] and small.seeds == (0, 1, 2, 3)
    diff = small.diffs['cocodiff']
    assert (diff['mean'], diff['std']) == (pytest.approx(0.05),
                                           pytest.approx(0.05))
    assert (diff['wins'], diff['n']) == (2, 3)
    t = math.sqrt(3)
    assert diff['p'] == pytest.approx(1 - t / math.sqrt(2 + t**2))
    assert small.per_seed['cocodiff'] == pytest.approx(
        {0: 0.05, 1: 0.10, 2: 0.0})
    assert small.diffs['cocodiff-class_codes']['mean'] == pytest.approx(0.05)

    table = format_gain_table(gains)
    cells = row_of(table, 'small')
    assert cells['train split'] == 's1'
    assert cells['clips per class'] == '2.8 (11 clips, 4 classes)'
    assert cells['seeds tested'] == '3/4'
    assert cells['baseline test top-1'] == '60.0 ± 10.0 (n 3)'
    assert cells['Δ cocodiff'] == '+5.0 ± 5.0 (2/3, p 0.23)'
    assert cells['Δ class_codes'] == '+0.0 ± 5.0 (1/3, p 1.00)'
    assert cells['cocodiff − class_codes'] == '+5.0 ± 10.0 (2/3, p 0.48)'
    assert cells['per-seed Δ cocodiff'] == 's0 +5.0, s1 +10.0, s2 +0.0'
    assert cells['per-seed Δ class_codes'] == 's0 +0.0, s1 -5.0, s2 +5.0'
    assert (cells['per-seed cocodiff − class_codes']
            == 's0 +5.0, s1 +15.0, s2 -5.0')
    # The full study's roles under its own arm names; equal differences
    # have no t test.
    cells = row_of(table, 'full')
    assert cells['clips per class'] == '4.0 (20 clips, 5 classes)'
    assert cells['Δ cocodiff'] == '+2.0 ± 1.0 (3/3, p 0.07)'
    assert cells['cocodiff − class_codes'] == '+2.0 ± 0.0 (3/3)'


def test_a_size_without_runs_says_not_run(tmp_path, two_sizes):
    """No run, and a split the pickle lacks (data not regenerated yet): the
    row says "not run" and a note says why clips per class is unknown."""
    table = format_gain_table(
        collect_gains(load_sizes(two_sizes, str(tmp_path)), 'cpu',
                      str(tmp_path)))
    cells = row_of(table, 'ghost')
    assert cells['clips per class'] == '—'
    assert cells['seeds tested'] == '0/3'
    for column in ('baseline test top-1', 'Δ cocodiff', 'Δ class_codes',
                   'cocodiff − class_codes'):
        assert cells[column] == 'not run'
    assert cells['per-seed Δ cocodiff'] == '—'
    assert "`ghost`: clips per class unknown: " in table
    assert "no split 'missing_split'" in table


def test_validated_but_untested_runs_say_not_tested(tmp_path):
    spec = write_study(tmp_path, 'small', 's1')
    write_results(tmp_path, spec, 'baseline', {0: 0.5, 1: 0.6}, test=False)
    write_results(tmp_path, spec, 'cocodiff', {0: 0.5, 1: 0.6}, test=False)
    sizes = write_sizes(tmp_path, f"""
        sizes = [dict(spec={str(spec)!r}, arms={roles()!r})]
        """)
    cells = row_of(format_gain_table(
        collect_gains(load_sizes(sizes, str(tmp_path)), 'cpu',
                      str(tmp_path))), 'small')
    assert cells['baseline test top-1'] == 'not tested'
    assert cells['Δ cocodiff'] == 'not tested'
    assert cells['Δ class_codes'] == 'not run'


def test_a_tested_size_needs_its_clips_per_class(tmp_path):
    """Results that cannot be placed on the x axis are an error, not a
    note: their training split must be in the pickle."""
    spec = write_study(tmp_path, 'small', 'missing_split')
    write_results(tmp_path, spec, 'baseline', {0: 0.5})
    sizes = write_sizes(tmp_path, f"""
        sizes = [dict(spec={str(spec)!r}, arms={roles()!r})]
        """)
    with pytest.raises(ConfigError, match=r"ann.pkl: no split "
                       r"'missing_split' \(the training split of .*sizes.py: "
                       r"sizes\[0\] \(arm 'baseline' of small\)\)"):
        collect_gains(load_sizes(sizes, str(tmp_path)), 'cpu', str(tmp_path))


def test_a_run_whose_config_changed_is_refused(tmp_path):
    """As the study runner refuses it: a stale result is not counted."""
    spec = write_study(tmp_path, 'small', 's1')
    runner = write_results(tmp_path, spec, 'baseline', {0: 0.5})
    path = runner.result_path(runner.spec.arm('baseline'), 0)
    result = json.loads(open(path).read())
    result['config_digest'] = '0' * 16
    atomic_write_json(path, result)
    sizes = write_sizes(tmp_path, f"""
        sizes = [dict(spec={str(spec)!r}, arms={roles()!r})]
        """)
    with pytest.raises(StudySpecError, match='config_digest 0+ does not '
                       "match arm 'baseline'"):
        collect_gains(load_sizes(sizes, str(tmp_path)), 'cpu', str(tmp_path))


@pytest.mark.parametrize('body, message', [
    ("size = []", r"sizes.py: file.size is not an option \(did you mean "
     r"'sizes'\?\)"),
    ("sizes = []", r'sizes.py: sizes must be a non-empty list'),
    ("sizes = [dict(spec=SPEC, arms=ROLES, budget='cpu')]",
     r'sizes.py: sizes\[0\].budget is not an option'),
    ("sizes = [dict(arms=ROLES)]",
     r"sizes.py: sizes\[0\]: missing field 'spec'"),
    ("sizes = [dict(spec='nowhere.py', arms=ROLES)]",
     r'sizes.py: sizes\[0\].spec: nowhere.py does not exist'),
    ("sizes = [dict(spec=SPEC, arms=dict(baseline='baseline', "
     "cocodiff='cocodiff'))]",
     r"sizes.py: sizes\[0\].arms: missing role 'class_codes'"),
    ("sizes = [dict(spec=SPEC, arms=dict(ROLES, class_code='x'))]",
     r"sizes.py: sizes\[0\].arms.class_code is not an option \(did you "
     r"mean 'class_codes'\?\)"),
    ("sizes = [dict(spec=SPEC, arms=dict(ROLES, cocodiff='gen_no_ramp'))]",
     r"sizes.py: sizes\[0\].arms.cocodiff: .*small.py has no arm "
     r"'gen_no_ramp'"),
])
def test_bad_sizes_files_name_the_file_and_field(tmp_path, body, message):
    spec = write_study(tmp_path, 'small', 's1')
    sizes = write_sizes(tmp_path, f"""
        _SPEC = {str(spec)!r}
        _ROLES = {roles()!r}
        """ + body.replace('SPEC', '_SPEC').replace('ROLES', '_ROLES') + '\n')
    with pytest.raises(ConfigError, match=message):
        load_sizes(sizes, str(tmp_path))


def test_plot_is_a_png_with_both_roles_drawn(tmp_path, two_sizes):
    """The PNG has the figure's size, and pixels of both roles' colours
    (C0: cocodiff, C1: class codes) that an empty plot lacks."""
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    gains = collect_gains(load_sizes(two_sizes, str(tmp_path)), 'cpu',
                          str(tmp_path))
    path = plot_gains(gains, tmp_path / 'out' / 'gain.png', figsize=(5, 4),
                      dpi=100)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
    pixels = imread(path)[..., :3]
    assert pixels.shape == (400, 500, 3)

    def has_colour(image, name):
        distance = np.abs(image - np.array(to_rgb(name))).max(axis=-1)
        return bool((distance < 0.02).any())

    assert has_colour(pixels, 'C0') and has_colour(pixels, 'C1')
    empty = plot_gains([], tmp_path / 'out' / 'empty.png', figsize=(5, 4),
                       dpi=100)
    assert not has_colour(imread(empty)[..., :3], 'C1')


def test_tool_writes_table_and_plot_and_refuses_a_bad_file(tmp_path):
    """Runs under the repository root's default work roots, where a fresh
    study name has no runs: every row says "not run"; a bad file exits 2
    with one error line naming it and the field."""
    spec = write_study(tmp_path, 'gain_vs_size_test_no_such_study', 's1')
    sizes = write_sizes(tmp_path, f"""
        sizes = [dict(spec={str(spec)!r}, arms={roles()!r})]
        """)
    out = tmp_path / 'out'
    result = run_tool(TOOL, str(sizes), '--budget', 'cpu', '--out-dir',
                      str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    table = (out / 'gain_vs_size.md').read_text()
    assert table in result.stdout
    cells = row_of(table, 'gain_vs_size_test_no_such_study')
    assert cells['Δ cocodiff'] == 'not run'
    assert cells['clips per class'] == '2.8 (11 clips, 4 classes)'
    assert (out / 'gain_vs_size.png').read_bytes().startswith(PNG_SIGNATURE)

    bad = write_sizes(tmp_path, f"""
        sizes = [dict(spec={str(spec)!r}, arms=dict(baseline='baseline'))]
        """)
    result = run_tool(TOOL, str(bad), '--out-dir', str(out))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('error:')]
    assert len(errors) == 1
    assert f"{bad}: sizes[0].arms: missing role 'cocodiff'" in errors[0]


def test_the_shipped_sizes_file_names_arms_of_the_shipped_specs():
    """The three sizes, small to full, each with an arm for every role."""
    sizes = load_sizes(str(REPO / 'configs' / 'analysis' /
                           'utd_mhad_gain_vs_size.py'), root=str(REPO))
    assert [s.spec.name for s in sizes] == [
        'utd_mhad_size_s1', 'utd_mhad_size_s13', 'utd_mhad_cocodiff']
    assert sizes[2].arms == dict(baseline='baseline', cocodiff='gen_no_ramp',
                                 class_codes='random_encoder_no_ramp')
