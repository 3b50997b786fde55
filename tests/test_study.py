"""tools/study.py: spec checks, paired statistics, and a real tiny study."""
import json
import math
import os
import pickle
import platform
import shutil
import textwrap
import time

import pytest
import torch

from conftest import REPO, run_tool_in_process, tiny_utd_options
from cocodiff_mm.analysis.feature_diagnostics import (class_mean_distances,
                                                      class_means, diversity,
                                                      margin)
from cocodiff_mm.analysis.learning_criteria import learning_criteria
from cocodiff_mm.analysis.study import (StudyRunner, StudySpecError,
                                        format_study_table, load_study_spec,
                                        machine_info, paired_difference)
from cocodiff_mm.utils.config_keys import ConfigError

SHIPPED_SPEC = REPO / 'configs' / 'studies' / 'utd_mhad_cocodiff.py'


def write_spec(path, body: str):
    path.write_text(textwrap.dedent(body))
    return path


def test_shipped_spec_is_valid_and_gives_both_budgets_the_same_epochs():
    spec = load_study_spec(str(SHIPPED_SPEC), root=str(REPO))
    assert spec.baseline == 'baseline' and 'cocodiff' in spec.final
    assert spec.val_split == 'xsub_dev_val' and spec.test_split == 'xsub_val'
    runner = StudyRunner(spec, 'cpu', root=str(REPO))
    base = runner.budget_options(spec.arm('baseline'))
    cocodiff = runner.budget_options(spec.arm('cocodiff'))
    epochs = spec.budgets['cpu'].epochs
    assert f'train_cfg.max_epochs={epochs}' in base
    assert f'train_cfg.stage2.epochs={epochs}' in cocodiff
    assert not any('max_epochs' in o for o in cocodiff)
    # Every CoCoDiff arm starts from the same seed's baseline.
    assert all(a.init_from == 'baseline' for a in spec.arms[1:])
    assert len(spec.budgets['cuda'].seeds) == 5
    assert len(spec.budgets['cpu'].seeds) >= 3


@pytest.mark.parametrize(
    'path', sorted((REPO / 'configs' / 'studies').glob('*.py')),
    ids=lambda path: path.stem)
def test_every_arm_of_every_shipped_spec_builds_a_model_that_fits(path):
    """An arm's budget and own options change the backbone's width (32
    base channels on the CPU, 64 for BlockGCN): the pooled feature must have
    the head's ``in_channels``, or the run would fail at its first step."""
    from mmaction.models.utils import Graph
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope('mmaction')
    spec = load_study_spec(str(path), root=str(REPO))
    runner = StudyRunner(spec, 'cpu', root=str(REPO))
    checked = set()
    for arm in spec.arms:
        model = runner.run_config(arm).model
        key = repr((model.backbone.to_dict(), model.cls_head.in_channels))
        if key in checked:  # most arms change the head, not the backbone
            continue
        checked.add(key)
        backbone = MODELS.build(model.backbone).eval()
        joints = Graph(**model.backbone.graph_cfg).num_node
        skeletons = torch.zeros(1, model.backbone.get('num_person', 2), 8,
                                joints, model.backbone.get('in_channels', 3))
        with torch.no_grad():
            width = backbone(skeletons).shape[2]
        assert width == model.cls_head.in_channels, (arm.name, width)


@pytest.mark.parametrize('body, message', [
    ("name='s'\nseeds=[0]\nbaseline='b'\nbudgets={}\n"
     "arms=[dict(name='b', config='configs/ctrgcn_demo.py', cfg_option=[])]",
     "arms[0].cfg_option is not an option (did you mean 'cfg_options'?)"),
    ("name='s'\nseeds=[0]\nbaseline='b'\nbudgets={}\n"
     "arms=[dict(name='b', config='configs/nope.py')]",
     'arms[0].config: configs/nope.py does not exist'),
    ("name='s'\nseeds=[0]\nbaseline='b'\nbudgets={}\n"
     "arms=[dict(name='c', config='configs/ctrgcn_demo.py', init_from='b'),"
     "dict(name='b', config='configs/ctrgcn_demo.py')]",
     "arms[0].init_from: 'b' must name an arm listed before it"),
    ("name='s'\nseeds=[0]\nbaseline='x'\nbudgets={}\n"
     "arms=[dict(name='b', config='configs/ctrgcn_demo.py')]",
     "no arm 'x'"),
    ("name='s'\nseeds=[0]\nbaseline='b'\n"
     "budgets=dict(cpu=dict(epochs=0, stage1_epochs=1))\n"
     "arms=[dict(name='b', config='configs/ctrgcn_demo.py')]",
     'budgets.cpu.epochs must be an int >= 1, got 0'),
])
def test_bad_specs_name_the_file_and_field(tmp_path, body, message):
    path = write_spec(tmp_path / 'spec.py', body)
    with pytest.raises(ConfigError) as error:
        load_study_spec(str(path), root=str(REPO))
    assert message in str(error.value) and str(path) in str(error.value)


def test_machine_info_is_what_a_training_process_gets(monkeypatch):
    """The thread count of a fresh interpreter with the study's environment
    (the tools inherit it), and the CPU named by lscpu or, without it, by
    platform.processor()."""
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    info = machine_info()
    assert info['torch_threads'] == 1 and info['omp_num_threads'] == '1'
    assert info['cpu_capability'] == torch.backends.cpu.get_cpu_capability()
    monkeypatch.delenv('OMP_NUM_THREADS')
    assert machine_info()['omp_num_threads'] is None
    if shutil.which('lscpu'):
        lscpu = os.popen('LC_ALL=C lscpu').read()
        model = next(line.split(':', 1)[1].strip()
                     for line in lscpu.splitlines()
                     if line.startswith('Model name'))
        assert info['cpu_model'] == model
    monkeypatch.setenv('PATH', '')  # no lscpu
    assert machine_info()['cpu_model'] == platform.processor()


def test_paired_difference_is_per_seed():
    arm = {0: 0.80, 1: 0.70, 2: 0.90}
    base = {0: 0.75, 1: 0.72, 2: 0.85, 3: 0.1}  # seed 3: no pair, ignored
    diff = paired_difference(arm, base)
    diffs = [0.05, -0.02, 0.05]
    mean = sum(diffs) / 3
    std = math.sqrt(sum((d - mean)**2 for d in diffs) / 2)
    assert diff['n'] == 3 and diff['wins'] == 2
    assert diff['mean'] == pytest.approx(mean)
    assert diff['std'] == pytest.approx(std)
    assert paired_difference({5: 1.0}, base) is None


def test_paired_t_test_against_its_closed_form():
    # Differences 1, 2, 3: mean 2, std 1, t = 2 sqrt(3) on 2 degrees of
    # freedom, whose tail is 1/2 (1 - t / sqrt(t^2 + 2)) in closed form.
    diff = paired_difference({0: 1.0, 1: 2.0, 2: 3.0},
                             {0: 0.0, 1: 0.0, 2: 0.0})
    t = 2 * math.sqrt(3)
    assert diff['p'] == pytest.approx(1 - t / math.sqrt(t * t + 2))
    # The sign does not matter (two-sided); one seed or equal differences
    # leave no test.
    assert paired_difference({0: -1.0, 1: -2.0, 2: -3.0},
                             {0: 0.0, 1: 0.0, 2: 0.0})['p'] == \
        pytest.approx(diff['p'])
    assert paired_difference({0: 1.0}, {0: 0.0})['p'] is None
    assert paired_difference({0: 1.0, 1: 1.0}, {0: 0.0, 1: 0.0})['p'] is None


def test_diagnostics_against_closed_forms():
    # Two points at distance 2: every pair of distinct features is 2 apart.
    features = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    assert diversity(features, 50, torch.Generator().manual_seed(0)) == \
        pytest.approx(2.0)
    # Classes 0 and 1 with means (0, 0) and (4, 0); class 2 is absent.
    real = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [4.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    means = class_means(real, labels, 3)
    assert torch.isnan(means[2]).all()
    generated = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    values = class_mean_distances(generated, torch.tensor([0, 0]), means)
    # own: 1 and 3; nearest other (class 1 only; 2 has no mean): 3 and 1.
    assert values['own'] == pytest.approx(2.0)
    assert values['nearest_other'] == pytest.approx(2.0)
    assert values['ratio'] == pytest.approx(1.0)
    # Margins: 3 - 1 = 2 (right), 0.5 - 2 = -1.5 (wrong), 1 - 1 = 0 (tie
    # with the best other class; the own score is excluded from "others").
    scores = torch.tensor([[3.0, 1.0, -1.0], [2.0, 0.5, 0.0],
                           [1.0, 0.0, 1.0]])
    assert margin(scores, torch.tensor([0, 1, 2])) == pytest.approx(0.5 / 3)


def fake_tools(commands):
    """An ``execute`` for :class:`StudyRunner` that records each command and
    leaves what the real tools would: a checkpoint, or a metrics file."""

    def execute(command, log_path):
        commands.append(command)
        if command[1] == 'tools/train.py':
            train_dir = command[command.index('--work-dir') + 1]
            os.makedirs(train_dir, exist_ok=True)
            open(os.path.join(train_dir, 'best_acc_top1_epoch_1.pth'),
                 'w').close()
        else:
            out = command[command.index('--metrics-out') + 1]
            with open(out, 'w') as file:
                json.dump({'acc/top1': 0.5}, file)
        return 0

    return execute


def baseline_and_cocodiff_spec(tmp_path, seeds, final=None):
    """A two-arm UTD-MHAD spec (CoCoDiff starting from the baseline)."""
    return load_study_spec(str(write_spec(tmp_path / 'spec.py', f"""
        name = 's'
        baseline = 'baseline'
        final = {list(final or ())!r}
        seeds = {seeds!r}
        arms = [
            dict(name='baseline', config='configs/ctrgcn_utd_mhad_dev.py'),
            dict(name='cocodiff',
                 config='configs/ctrgcn_cocodiff_utd_mhad_dev.py',
                 init_from='baseline'),
        ]
        budgets = dict(cpu=dict(epochs=1, stage1_epochs=1))
        """)), root=str(REPO))


def test_seeds_option_runs_and_tests_only_those_seeds(tmp_path):
    """One process per seed can share a machine: each trains and tests its
    own seed, and refuses a seed the budget does not have."""
    spec = baseline_and_cocodiff_spec(tmp_path, seeds=[0, 1, 2],
                                      final=['baseline', 'cocodiff'])
    commands = []
    work = str(tmp_path / 'runs')
    runner = StudyRunner(spec, 'cpu', work, str(REPO),
                         execute=fake_tools(commands), echo=lambda _: None,
                         seeds=[1])
    runner.run_all()
    trained = [c[c.index('--seed') + 1] for c in commands
               if c[1] == 'tools/train.py']
    assert trained == ['1', '1']
    result = runner.read_result(spec.arm('cocodiff'), 1)
    assert result['machine'] == runner.machine()
    assert set(result['machine']) == {'torch_threads', 'omp_num_threads',
                                      'cpu_capability', 'cpu_model'}
    # Seeds 0 and 2 have no validation result, yet seed 1 may be tested.
    runner.run_test(spec.final)
    tested = [c for c in commands if 'test_dataloader.dataset.split='
              'xsub_val' in c]
    assert len(tested) == 2 and all('/seed1/' in c[3] for c in tested)
    assert '| cocodiff | 1 |' in runner.table()
    with pytest.raises(StudySpecError, match=r'seeds \[7\] are not in '
                       r"budget 'cpu'; its seeds: \[0, 1, 2\]"):
        StudyRunner(spec, 'cpu', work, str(REPO), seeds=[1, 7])


def test_training_time_survives_a_killed_study(tmp_path):
    """The time a training has spent is on disk while it still runs (a
    study killed then keeps it), and the resumed run adds to it."""
    spec = baseline_and_cocodiff_spec(tmp_path, seeds=[0])
    timing = tmp_path / 'runs' / 'baseline' / 'seed0' / 'train_seconds.json'
    saved_while_running = []
    leave_checkpoint = fake_tools([])

    def killed(command, log_path):
        time.sleep(0.5)
        saved_while_running.append(json.loads(timing.read_text())['seconds'])
        raise KeyboardInterrupt  # the study process dies mid-training

    def resumed(command, log_path):
        if command[1] == 'tools/train.py':
            time.sleep(0.2)
        return leave_checkpoint(command, log_path)

    runner = StudyRunner(spec, 'cpu', str(tmp_path / 'runs'), str(REPO),
                         execute=killed, echo=lambda _: None)
    runner.timing_every = 0.1
    with pytest.raises(KeyboardInterrupt):
        runner.run_all(['baseline'])
    assert 0.3 < saved_while_running[0] < 0.5
    first_try = json.loads(timing.read_text())['seconds']
    assert first_try >= 0.5
    runner.execute = resumed
    runner.run_all(['baseline'])
    seconds = runner.read_result(spec.arm('baseline'), 0)['train_seconds']
    # Both tries, and not the validation that follows the training.
    assert first_try + 0.2 <= seconds < first_try + 0.2 + 0.1
    assert json.loads(timing.read_text())['seconds'] == seconds


def test_a_finished_run_whose_config_changed_is_refused(tmp_path):
    """A finished run records its resolved config: a default changed in the
    config afterwards makes the runner refuse the run instead of counting
    it, pinning the old value in the arm's cfg_options makes the run
    current again, and a result from before digests is taken as it is."""
    config = tmp_path / 'baseline.py'

    def write_config(lr):
        config.write_text(
            f"_base_ = '{REPO}/configs/ctrgcn_utd_mhad_dev.py'\n"
            f'optim_wrapper = dict(optimizer=dict(lr={lr}))\n')

    def runner_for(cfg_options=()):
        spec = load_study_spec(str(write_spec(tmp_path / 'spec.py', f"""
            name = 's'
            baseline = 'baseline'
            final = ['baseline']
            seeds = [0]
            arms = [dict(name='baseline', config={str(config)!r},
                         cfg_options={list(cfg_options)!r})]
            budgets = dict(cpu=dict(epochs=1, stage1_epochs=1))
            """)), root=str(REPO))
        return StudyRunner(spec, 'cpu', str(tmp_path / 'runs'), str(REPO),
                           execute=fake_tools(commands), echo=lambda _: None)

    commands = []
    write_config(0.1)
    runner_for().run_all()
    runner_for().run_all()
    assert len(commands) == 2  # trained and validated once, then skipped
    write_config(0.05)
    stale = runner_for()
    result_path = stale.result_path(stale.spec.arm('baseline'), 0)
    message = (rf"{result_path}: config_digest \w+ does not match arm "
               r"'baseline' as it resolves now \(\w+\).*Pin the old values")
    with pytest.raises(StudySpecError, match=message):
        stale.run_all()
    with pytest.raises(StudySpecError, match=message):
        stale.run_test(['baseline'])
    assert len(commands) == 2
    pinned = runner_for(['optim_wrapper.optimizer.lr=0.1'])
    pinned.run_test(['baseline'])
    assert len(commands) == 3
    with open(result_path) as file:
        legacy = json.load(file)
    del legacy['config_digest']
    with open(result_path, 'w') as file:
        json.dump(legacy, file)
    runner_for().run_all()
    assert len(commands) == 3


def write_lines(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(json.dumps(row) + '\n' for row in rows))


def test_learning_criteria_read_off_the_diagnostics(tmp_path):
    """Stage 1 (epochs 1-3, epoch 3 written twice by a resume) and stage 2
    (epochs 4-6): every value by hand."""
    train = tmp_path / 'train'
    stage1 = dict(objective='diffusion', train_acc_generated=0.5)
    stage2 = dict(objective='joint', gen_acc=0.9, real_acc=0.5,
                  train_loss_con=0.1)
    write_lines(train / 'generation_diagnostics.jsonl', [
        dict(stage1, epoch=1, gen_acc=0.2, train_loss_con=2.5),
        dict(stage1, epoch=2, gen_acc=0.5, train_loss_con=1.0),
        dict(stage1, epoch=3, gen_acc=0.1, train_loss_con=9.0),  # resumed
        dict(stage1, epoch=3, gen_acc=0.75, train_loss_con=0.5),
        dict(stage2, epoch=4, train_acc_generated=0.2,
             train_ce_generated=3.5, gen_acc=0.1, real_acc=0.15),
        dict(stage2, epoch=5, train_acc_generated=0.9,
             train_ce_generated=1.0),
        dict(stage2, epoch=6, train_acc_generated=0.7,
             train_ce_generated=0.5),
    ])
    got = learning_criteria(str(train), num_classes=27)
    assert got['loss_con_first'] == 2.5 and got['loss_con_last'] == 0.5
    assert got['loss_con_fall'] == pytest.approx(0.8)
    assert got['faithfulness'] == 0.75
    assert got['acc_generated_by_epoch'] == {1: 0.2, 2: 0.9, 3: 0.7}
    assert got['acc_generated_first_epoch'] == 0.2
    assert got['acc_generated_later_min'] == 0.7
    assert got['ce_generated_max'] == 3.5
    assert got['chance_ce'] == pytest.approx(math.log(27))
    assert got['gen_over_real_min'] == pytest.approx(-0.05)
    # Without the coarse text there is no loss_con to check; before stage 2
    # nothing is decided.
    write_lines(tmp_path / 'fine/generation_diagnostics.jsonl', [
        dict(epoch=1, objective='diffusion', gen_acc=0.3),
        dict(epoch=2, objective='joint', gen_acc=0.3, real_acc=0.2,
             train_acc_generated=0.4, train_ce_generated=2.0)])
    fine = learning_criteria(str(tmp_path / 'fine'), 27)
    assert fine['loss_con_fall'] is None and fine['faithfulness'] == 0.3
    assert fine['acc_generated_later_min'] is None
    write_lines(tmp_path / 'early/generation_diagnostics.jsonl',
                [dict(epoch=1, objective='diffusion', gen_acc=0.3)])
    assert learning_criteria(str(tmp_path / 'early'), 27) is None
    assert learning_criteria(str(tmp_path / 'none'), 27) is None


def test_learning_table_shows_the_worst_seed(tmp_path):
    spec = baseline_and_cocodiff_spec(tmp_path, seeds=[0, 1])

    def run(top1, **learning):
        result = dict(val={'acc/top1': top1}, train_seconds=60)
        if learning:
            result['learning'] = dict(chance_ce=math.log(27), **learning)
        return result

    results = dict(
        baseline={0: run(0.5), 1: run(0.6)},
        cocodiff={
            0: run(0.7, loss_con_fall=0.9, faithfulness=0.8,
                   acc_generated_first_epoch=0.2,
                   acc_generated_later_min=0.6, ce_generated_max=2.0,
                   gen_over_real_min=0.05),
            1: run(0.8, loss_con_fall=0.5, faithfulness=0.95,
                   acc_generated_first_epoch=0.1,
                   acc_generated_later_min=0.9, ce_generated_max=2.5,
                   gen_over_real_min=-0.02)})
    table = format_study_table(spec, spec.budgets['cpu'], results)
    assert ('| cocodiff | 2 | 50.0 % | 80.0 % | 10.0 % | 60.0 % | '
            '2.50 / 3.30 | -2.0 |') in table
    # Val: 75.0 ± 7.1; paired +0.2 and +0.2 -> +20.0 ± 0.0, both better.
    assert '| cocodiff | 2 | 75.0 ± 7.1 | +20.0 ± 0.0 (2/2) |' in table


def test_study_table_shows_the_hardness_of_generated_features(tmp_path):
    spec = baseline_and_cocodiff_spec(tmp_path, seeds=[0, 1])

    def run(gen_margins, real_margin):
        # One run from before the margins existed: no key, not counted.
        stage = dict(gen_acc=0.9, div_gen=1.0, div_real=2.0,
                     dist_ratio_gen=0.5)
        if gen_margins is not None:
            stage.update(margin_gen=gen_margins, margin_real=real_margin)
        return dict(val={'acc/top1': 0.5}, train_seconds=60,
                    diagnostics=dict(diffusion=dict(stage), joint=stage))

    results = dict(baseline={0: run(None, None)},
                   cocodiff={0: run(3.0, 1.0), 1: run(5.0, 2.0),
                             2: run(None, None)})
    table = format_study_table(spec, spec.budgets['cpu'], results)
    header = next(line for line in table.splitlines()
                  if line.startswith('| arm |'))
    row = next(line for line in table.splitlines()
               if line.startswith('| cocodiff |'))
    cells = dict(zip(header.split(' | '), row.split(' | ')))
    assert cells['margin s1 gen/real'] == '4.00 / 1.50'
    assert cells['margin s2 gen/real'] == '4.00 / 1.50'
    assert len(header.split('|')) == len(row.split('|'))


def dumped_top1(path, expected_count: int) -> float:
    """Top-1 of a ``tools/test.py --dump`` file with ``expected_count``
    samples (108: subject 7; 430: the test subjects 2, 4, 6, 8)."""
    with open(path, 'rb') as file:
        dumped = pickle.load(file)
    assert len(dumped) == expected_count
    hits = sum(int(d['pred_score'].argmax()) == int(d['gt_label'])
               for d in dumped)
    return hits / expected_count


def study_ok(spec_path, *args: str):
    """``tools/study.py SPEC ARGS`` in this process; it must succeed."""
    result = run_tool_in_process('tools/study.py', str(spec_path), *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    return result


def test_tiny_study_trains_validates_resumes_and_tests_last(
        utd_pickle, tmp_path):
    """Baseline and CoCoDiff, one seed, through the real tools: val first,
    the test split only on request, and a rerun skips finished runs."""
    cocodiff_options = [
        'model.cls_head.text_bank.encoder=random',
        'model.cls_head.denoiser.widths=(32,)',
        'model.cls_head.diffusion.num_steps=5',
        'model.cls_head.generation.start_step=2'
    ]
    options = tiny_utd_options(utd_pickle, batch_size=32) + [
        'test_dataloader.dataset.pipeline.1.clip_len=16',
        'test_dataloader.dataset.pipeline.1.num_clips=1',
        'test_dataloader.batch_size=64',
    ]
    spec_path = write_spec(
        tmp_path / 'spec.py', f"""
        name = 'tiny'
        baseline = 'baseline'
        final = ['baseline', 'cocodiff']
        seeds = [0]
        arms = [
            dict(name='baseline', config='configs/ctrgcn_utd_mhad_dev.py'),
            dict(name='cocodiff',
                 config='configs/ctrgcn_cocodiff_utd_mhad_dev.py',
                 init_from='baseline', cfg_options={cocodiff_options!r}),
        ]
        budgets = dict(cpu=dict(epochs=1, stage1_epochs=1,
                                cfg_options={options!r}))
        """)
    work = tmp_path / 'runs'
    # The study itself runs in this process (it only starts the tools):
    # four interpreters fewer.
    refused = run_tool_in_process('tools/study.py', str(spec_path),
                                  '--work-root', str(work), '--test')
    assert refused.returncode == 2
    assert 'validation runs not finished: baseline seed 0' in refused.stderr

    result = study_ok(spec_path, '--work-root', str(work))
    assert '[2/2] cocodiff seed 0: training' in result.stdout
    base = json.loads((work / 'baseline/seed0/result.json').read_text())
    cocodiff = json.loads((work / 'cocodiff/seed0/result.json').read_text())
    assert 'test' not in base and 'test' not in cocodiff
    # Stage 1 started from the baseline checkpoint of the same seed.
    log = (work / 'cocodiff/seed0/study.log').read_text()
    assert f'Stage 1 uses the pretrained GCN {base["checkpoint"]}' in log
    # The validation metrics are those of the dumped predictions on the
    # 108 clips of subject 7, not of the test subjects.
    assert cocodiff['val']['acc/top1'] == pytest.approx(
        dumped_top1(work / 'cocodiff/seed0/val_metrics.pkl', 108))
    # Diagnostics of both stages reached the result.
    assert set(cocodiff['diagnostics']) == {'diffusion', 'joint'}
    assert cocodiff['train_seconds'] > 0

    again = study_ok(spec_path, '--work-root', str(work))
    assert again.stdout.count('done (skipped)') == 2

    tested = study_ok(spec_path, '--work-root', str(work), '--test')
    assert tested.stdout.startswith('baseline seed 0: test split')
    for arm in ('baseline', 'cocodiff'):
        result = json.loads((work / arm / 'seed0/result.json').read_text())
        assert result['test']['acc/top1'] == pytest.approx(
            dumped_top1(work / arm / 'seed0/test_metrics.pkl', 430))
    table = (work / 'table.md').read_text()
    assert '| cocodiff | 1 |' in table and 'Δ val' in table
    # The learning checks were read off the CoCoDiff run's real logs.
    assert 'Does the diffusion learn?' in table
    learning = json.loads(
        (work / 'summary.json').read_text())['cocodiff']['0']['learning']
    assert 0 <= learning['faithfulness'] <= 1
    assert learning['loss_con_first'] > 0
    assert learning['ce_generated_max'] > 0
    assert list(learning['acc_generated_by_epoch']) == ['1']
    assert 'learning' not in json.loads(
        (work / 'summary.json').read_text())['baseline']['0']
