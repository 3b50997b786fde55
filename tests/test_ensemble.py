"""Fusion of ``tools/test.py --dump`` pickles (tools/analysis/ensemble.py).

One tiny CTR-GCN is trained for an epoch on generated NTU-60 data; its
checkpoint is tested on the joint and on the bone stream, which gives two
real dumps with different scores. The expected numbers are computed here
from the pickles, independently of the package.
"""
import importlib.util
import json
import os
import pickle
import random
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import pytest
from conftest import (REPO, make_skeleton_annotations, run_ok, run_tool,
                      tiny_options, write_pickle)

from cocodiff_mm.analysis.ensemble import (EnsembleError, evaluate, fuse,
                                           keep_sample_names, load_aligned,
                                           resolve_coefficients)

TOOL = 'tools/analysis/ensemble.py'
JOINT = 'configs/ctrgcn_ntu60_xsub.py'
BONE = 'configs/ctrgcn_ntu60_xsub_bone.py'


@pytest.fixture(scope='module')
def dumps(tmp_path_factory) -> Dict[str, Any]:
    """Joint and bone dumps of one checkpoint on 90 validation clips.

    The validation split is unbalanced (two clips of classes 1-30, one of
    the others), so mean-class accuracy differs from top-1.
    """
    root = tmp_path_factory.mktemp('ensemble')
    data = make_skeleton_annotations(60, per_class=4, seed=3)
    names = [sample['frame_dir'] for sample in data['annotations']]
    data['split'] = dict(
        xsub_train=[n for n in names if 'P001' in n],
        xsub_val=[
            n for n in names
            if 'P002' in n or ('P004' in n and int(n[-3:]) <= 30)
        ])
    ann = write_pickle(root / 'ntu60_3d.pkl', data)
    run_ok('tools/train.py',
           JOINT,
           '--work-dir',
           str(root / 'train'),
           '--seed',
           '0',
           '--cfg-options',
           *tiny_options(ann),
           'train_cfg.max_epochs=1',
           'train_cfg.val_interval=10')
    checkpoint = str(root / 'train' / 'epoch_1.pth')
    paths = dict(j=root / 'j.pkl', b=root / 'b.pkl')
    for config, stream in ((JOINT, 'j'), (BONE, 'b')):
        run_ok('tools/test.py',
               config,
               checkpoint,
               '--dump',
               str(paths[stream]),
               '--cfg-options',
               *tiny_options(ann))
    paths['val_names'] = data['split']['xsub_val']
    paths['labels'] = {s['frame_dir']: s['label'] for s in data['annotations']}
    return paths


def read_records(path: Path) -> List[dict]:
    with open(path, 'rb') as file:
        return pickle.load(file)


def write_records(path: Path, records: List[dict]) -> Path:
    with open(path, 'wb') as file:
        pickle.dump(records, file)
    return path


def by_name(path: Path) -> Tuple[Dict[str, np.ndarray], Dict[str, int]]:
    """Scores and labels of a dump keyed by ``frame_dir``."""
    records = read_records(path)
    scores = {
        r['frame_dir']: r['pred_score'].double().numpy()
        for r in records
    }
    labels = {r['frame_dir']: int(r['gt_label'].item()) for r in records}
    return scores, labels


def hand_fused(
        paths: Sequence[Path],
        weights: Sequence[float],
        softmax: bool = False) -> Tuple[Dict[str, np.ndarray], Dict[str, int]]:
    """Fused scores by name, computed here from the pickles."""
    streams = [by_name(path) for path in paths]
    labels = streams[0][1]
    fused = {}
    for name in labels:
        total = 0.0
        for (scores, _), weight in zip(streams, weights):
            score = scores[name]
            if softmax:
                score = np.exp(score - score.max())
                score = score / score.sum()
            total = total + weight * score
        fused[name] = total
    return fused, labels


def hand_metrics(scores: Dict[str, np.ndarray],
                 labels: Dict[str, int]) -> Dict[str, float]:
    """Top-1, top-5 and mean-class accuracy by sorting, per sample."""
    names = sorted(labels)
    matrix = np.stack([scores[n] for n in names])
    truth = np.array([labels[n] for n in names])
    ranking = np.argsort(-matrix, axis=1)
    top1 = ranking[:, 0] == truth
    top5 = (ranking[:, :5] == truth[:, None]).any(axis=1)
    per_class = [top1[truth == c].mean() for c in sorted(set(truth))]
    return dict(top1=top1.mean(),
                top5=top5.mean(),
                mean_class=float(np.mean(per_class)))


def assert_metrics(reported: Dict[str, float], expected: Dict[str, float]):
    for key in ('top1', 'top5', 'mean_class'):
        assert reported[key] == pytest.approx(expected[key], abs=1e-12), key


@pytest.fixture(scope='module')
def cli():
    """``main()`` of tools/analysis/ensemble.py, in this process."""
    spec = importlib.util.spec_from_file_location('ensemble_cli', REPO / TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def run(*args, capsys) -> Tuple[int, str, str]:
        old_argv = sys.argv
        sys.argv = [TOOL, *[str(arg) for arg in args]]
        try:
            code = module.main()
        except SystemExit as exit_:
            code = exit_.code
        finally:
            sys.argv = old_argv
        out, err = capsys.readouterr()
        return code, out, err

    return run


def refused(result: Tuple[int, str, str]) -> str:
    """The one-line error of a refused run (exit 2)."""
    code, out, err = result
    assert code == 2, (code, out, err)
    assert err.startswith('error: ') and err.count('\n') == 1, err
    return err


def test_metrics_on_known_scores():
    scores = np.array(
        [
            [9, 1, 1, 1, 1, 1, 1],  # label 0 first: a top-1 hit
            [1, 5, 6, 0, 0, 0, 0],  # label 0 third: a top-5 hit only
            [0, 1, 2, 3, 4, 5, 6],  # label 0 last: a miss
            [0, 7, 0, 0, 0, 0, 0],  # label 1 first
            [0, 0, 3, 3, 0, 0, 0],  # label 2 tied first: a top-1 miss
        ],
        dtype=float)
    labels = np.array([0, 0, 0, 1, 2])
    metrics = evaluate(scores, labels)
    assert metrics['top1'] == pytest.approx(2 / 5)
    assert metrics['top5'] == pytest.approx(4 / 5)
    assert metrics['mean_class'] == pytest.approx((1 / 3 + 1 + 0) / 3)


def test_coefficients_are_checked():
    assert resolve_coefficients(3) == (1.0, 1.0, 1.0)
    assert resolve_coefficients(3, preset='equal') == (1.0, 1.0, 1.0)
    assert resolve_coefficients(4, preset='pyskl') == (2.0, 2.0, 1.0, 1.0)
    for kwargs, message in ((dict(coefficients=[1, -1]),
                             '>= 0'), (dict(coefficients=[0, 0]), 'all zero'),
                            (dict(coefficients=[1, float('nan')]),
                             'finite'), (dict(coefficients=[1, 1],
                                              preset='equal'), 'not both'),
                            (dict(preset='best'), 'unknown preset')):
        with pytest.raises(EnsembleError, match=message):
            resolve_coefficients(2, **kwargs)


def test_dumps_carry_sample_names(dumps):
    for stream in ('j', 'b'):
        records = read_records(dumps[stream])
        names = [r['frame_dir'] for r in records]
        assert sorted(names) == sorted(dumps['val_names'])
        for record in records:
            assert int(
                record['gt_label']) == dumps['labels'][record['frame_dir']]


def test_keep_sample_names_follows_wrappers():
    from mmengine.config import Config

    cfg = Config(
        dict(test_dataloader=dict(dataset=dict(
            type='RepeatDataset',
            dataset=dict(type='ConcatDataset',
                         datasets=[
                             dict(pipeline=[dict(type='PackActionInputs')]),
                             dict(pipeline=[
                                 dict(type='PoseDecode'),
                                 dict(type='PackActionInputs',
                                      meta_keys=('img_shape', 'frame_dir'))
                             ])
                         ])))))
    assert keep_sample_names(cfg) == 2
    first, second = cfg.test_dataloader.dataset.dataset.datasets
    assert first.pipeline[0].meta_keys == ('img_shape', 'img_key', 'video_id',
                                           'timestamp', 'frame_dir',
                                           'filename')
    assert second.pipeline[1].meta_keys == ('img_shape', 'frame_dir',
                                            'filename')


def test_fused_accuracy_equals_hand_computed(dumps, tmp_path):
    out = tmp_path / 'result.json'
    result = run_ok(TOOL, '--preds', str(dumps['j']), str(dumps['b']),
                    '--coefficients', '0.7', '0.3', '--out', str(out))
    report = json.loads(out.read_text())
    assert report['num_samples'] == 90 and report['num_classes'] == 60
    assert report['coefficients'] == [0.7, 0.3]
    for stream, key in zip(report['streams'], ('j', 'b')):
        assert_metrics(stream, hand_metrics(*by_name(dumps[key])))
    expected = hand_metrics(*hand_fused([dumps['j'], dumps['b']], [0.7, 0.3]))
    assert_metrics(report['fused'], expected)
    fused_line = next(line for line in result.stdout.splitlines()
                      if line.startswith('fused'))
    assert fused_line.split()[1:4] == [
        f'{100 * expected[k]:.2f}' for k in ('top1', 'top5', 'mean_class')
    ]


@pytest.mark.parametrize('softmax', [False, True])
def test_fused_scores_match_by_name(dumps, softmax):
    names, scores, labels = load_aligned([dumps['j'], dumps['b']])
    fused = fuse(scores, (0.25, 1.5), apply_softmax=softmax)
    expected, expected_labels = hand_fused([dumps['j'], dumps['b']],
                                           [0.25, 1.5], softmax)
    assert sorted(names) == sorted(expected)
    for name, row, label in zip(names, fused, labels):
        np.testing.assert_allclose(row, expected[name], rtol=1e-12)
        assert label == expected_labels[name]


def test_shuffled_dump_gives_same_result(dumps, tmp_path, cli, capsys):
    records = read_records(dumps['b'])
    random.Random(0).shuffle(records)
    assert [r['frame_dir'] for r in records
            ] != [r['frame_dir'] for r in read_records(dumps['b'])]
    shuffled = write_records(tmp_path / 'b.pkl', records)
    reports = []
    for bone in (dumps['b'], shuffled):
        out = tmp_path / f'{len(reports)}.json'
        code, _, err = cli('--preds',
                           dumps['j'],
                           bone,
                           '--coefficients',
                           '1',
                           '0.5',
                           '--apply-softmax',
                           '--out',
                           out,
                           capsys=capsys)
        assert code == 0, err
        report = json.loads(out.read_text())
        for stream in report['streams']:
            del stream['path']
        reports.append(report)
    assert reports[0] == reports[1]
    assert_metrics(
        reports[1]['fused'],
        hand_metrics(*hand_fused([dumps['j'], dumps['b']], [1, 0.5], True)))


def test_mismatched_samples_refused_with_names(dumps, tmp_path, cli, capsys):
    records = read_records(dumps['b'])
    dropped = [records[3]['frame_dir'], records[40]['frame_dir']]
    fewer = write_records(
        tmp_path / 'fewer.pkl',
        [r for r in records if r['frame_dir'] not in dropped])
    err = refused(cli('--preds', dumps['j'], fewer, capsys=capsys))
    assert 'different samples' in err
    assert all(name in err for name in dropped)

    records[7] = dict(records[7], frame_dir='S099C001P001R001A001')
    renamed = write_records(tmp_path / 'renamed.pkl', records)
    err = refused(cli('--preds', dumps['j'], renamed, capsys=capsys))
    assert 'S099C001P001R001A001' in err


def test_label_disagreement_refused_with_names(dumps, tmp_path, cli, capsys):
    records = read_records(dumps['b'])
    wrong = records[5]['frame_dir']
    label = records[5]['gt_label']
    records[5] = dict(records[5], gt_label=(label + 1) % 60)
    relabelled = write_records(tmp_path / 'relabelled.pkl', records)
    err = refused(cli('--preds', dumps['j'], relabelled, capsys=capsys))
    assert 'disagree on 1 labels' in err and wrong in err


def test_repeated_or_missing_names_refused(dumps, tmp_path, cli, capsys):
    records = read_records(dumps['b'])
    twice = write_records(tmp_path / 'twice.pkl', records + records[:1])
    err = refused(cli('--preds', dumps['j'], twice, capsys=capsys))
    assert 'repeat' in err and records[0]['frame_dir'] in err

    nameless = write_records(tmp_path / 'nameless.pkl', [{
        k: v
        for k, v in r.items() if k != 'frame_dir'
    } for r in records])
    err = refused(cli('--preds', dumps['j'], nameless, capsys=capsys))
    assert 'no name' in err and 'tools/test.py' in err


def test_presets(dumps, tmp_path, cli, capsys):
    # Four streams: copies of j and b under other names stand for JM, BM.
    streams = [dumps['j'], dumps['b']]
    for index, source in enumerate(streams[:]):
        records = read_records(source)
        streams.append(write_records(tmp_path / f'motion{index}.pkl', records))
    for preset, weights in (('ctrgcn', [0.6, 0.6, 0.4,
                                        0.4]), ('pyskl', [2.0, 2.0, 1.0, 1.0]),
                            ('equal', [1.0, 1.0, 1.0, 1.0])):
        out = tmp_path / f'{preset}.json'
        code, stdout, err = cli('--preds',
                                *streams,
                                '--preset',
                                preset,
                                '--out',
                                out,
                                capsys=capsys)
        assert code == 0, err
        report = json.loads(out.read_text())
        assert report['coefficients'] == weights
        assert f'preset {preset}' in stdout
        assert_metrics(report['fused'],
                       hand_metrics(*hand_fused(streams, weights)))

    err = refused(
        cli('--preds',
            dumps['j'],
            dumps['b'],
            '--preset',
            'ctrgcn',
            capsys=capsys))
    assert 'preset ctrgcn weighs 4 streams' in err and 'got 2' in err


def test_coefficient_count_must_match(dumps):
    result = run_tool(TOOL, '--preds', str(dumps['j']), str(dumps['b']),
                      '--coefficients', '1', '1', '1')
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'error: 3 --coefficients for 2 --preds; give one coefficient per '
        'dump'
    ]


def split_dump(source: Path, target: Path, clip: str) -> Path:
    """The samples of a dump whose names hold ``clip`` (e.g. ``P004``)."""
    return write_records(
        target, [r for r in read_records(source) if clip in r['frame_dir']])


def renamed_copy(source: Path, target: Path, prefix: str) -> Path:
    """A dump whose samples are renamed with ``prefix``."""
    return write_records(target, [
        dict(r, frame_dir=prefix + r['frame_dir'])
        for r in read_records(source)
    ])


def hand_search(paths: Sequence[Path], grid: Sequence[float]) -> tuple:
    """Best (top1, mean_class, top5) over a two-stream grid, the first in
    grid order among ties (the documented rule)."""
    candidates = [(a, b) for a in grid for b in grid if a or b]
    keys = []
    for weights in candidates:
        metrics = hand_metrics(*hand_fused(paths, weights))
        keys.append((metrics['top1'], metrics['mean_class'], metrics['top5']))
    return candidates[keys.index(max(keys))]


def with_oracle(source: Path, target: Path) -> Path:
    """A dump whose true class scores 1 more: a stream that is always
    right, so a search must pick it alone."""
    records = []
    for record in read_records(source):
        score = record['pred_score'].clone()
        score[int(record['gt_label'])] += 1
        records.append(dict(record, pred_score=score))
    return write_records(target, records)


def test_search_on_validation_dumps_only(dumps, tmp_path, cli, capsys):
    # A held-out carve-out of the real dumps: the second clips (P004) are
    # the validation split, the first clips (P002) the reported one. In
    # each validation set one stream is made always right, so the two
    # searches must choose different weights on the same --preds.
    val = {
        s: split_dump(dumps[s], tmp_path / f'val_{s}.pkl', 'P004')
        for s in ('j', 'b')
    }
    test = [
        split_dump(dumps[s], tmp_path / f'test_{s}.pkl', 'P002')
        for s in ('j', 'b')
    ]
    grid = [0.0, 0.5, 1.0]
    oracle_j = [with_oracle(val['j'], tmp_path / 'oracle_j.pkl'), val['b']]
    oracle_b = [val['j'], with_oracle(val['b'], tmp_path / 'oracle_b.pkl')]
    for search, expected in ((oracle_j, (0.5, 0.0)), (oracle_b, (0.0, 0.5))):
        assert hand_search(search, grid) == expected
        out = tmp_path / 'search.json'
        code, stdout, err = cli('--preds',
                                *test,
                                '--search-preds',
                                *search,
                                '--search-grid',
                                *grid,
                                '--out',
                                out,
                                capsys=capsys)
        assert code == 0, err
        report = json.loads(out.read_text())
        assert tuple(report['coefficients']) == expected
        assert report['coefficients_from'] == 'search'
        assert report['num_samples'] == 60
        assert report['search']['num_samples'] == 30
        assert ('coefficients searched on 30 validation samples over grid '
                f'0 0.5 1: {expected[0]:g} {expected[1]:g}') in stdout
        assert_metrics(report['search']['fused'],
                       hand_metrics(*hand_fused(search, expected)))
        assert report['search']['fused']['top1'] == 1.0
        assert_metrics(report['fused'],
                       hand_metrics(*hand_fused(test, expected)))

    # Ties go to the first combination in grid order (both streams right).
    both = [oracle_j[0], oracle_b[1]]
    code, _, err = cli('--preds',
                       *test,
                       '--search-preds',
                       *both,
                       '--search-grid',
                       *grid,
                       '--out',
                       out,
                       capsys=capsys)
    assert code == 0, err
    assert json.loads(out.read_text())['coefficients'] == [0.0, 0.5]


def test_search_refuses_test_samples(dumps, tmp_path, cli, capsys):
    err = refused(
        cli('--preds',
            dumps['j'],
            dumps['b'],
            '--search-preds',
            dumps['j'],
            dumps['b'],
            capsys=capsys))
    assert 'never on the test split' in err
    assert read_records(dumps['j'])[0]['frame_dir'] in err

    # One shared sample is enough to refuse.
    records = read_records(renamed_copy(dumps['b'], tmp_path / 'v.pkl', 'v'))
    records[0] = read_records(dumps['b'])[0]
    leaky = write_records(tmp_path / 'leaky_b.pkl', records)
    records = read_records(renamed_copy(dumps['j'], tmp_path / 'w.pkl', 'v'))
    records[0] = read_records(dumps['j'])[0]
    leaky_j = write_records(tmp_path / 'leaky_j.pkl', records)
    err = refused(
        cli('--preds',
            dumps['j'],
            dumps['b'],
            '--search-preds',
            leaky_j,
            leaky,
            capsys=capsys))
    assert 'share 1 samples' in err

    code, _, err = cli('--preds',
                       dumps['j'],
                       dumps['b'],
                       '--search-preds',
                       leaky_j,
                       leaky,
                       '--coefficients',
                       '1',
                       '1',
                       capsys=capsys)
    assert code == 2 and 'not allowed with' in err


# --------------------------------------------------------------------------
# No silently wrong result: ties, non-finite scores, unsafe pickles, --out
# --------------------------------------------------------------------------
def write_action_dump(path: Path, scores: np.ndarray, labels: Sequence[int],
                      prefix: str = 's') -> Path:
    """A dump as ``DumpResults`` writes it: ``ActionDataSample.to_dict()``
    records (torch tensors) through ``mmengine.dump`` to a pickle."""
    import mmengine
    import torch
    from mmaction.structures import ActionDataSample

    records = []
    for index, (score, label) in enumerate(zip(scores, labels)):
        sample = ActionDataSample()
        sample.set_gt_label(int(label))
        sample.set_pred_score(torch.as_tensor(score, dtype=torch.float32))
        sample.set_metainfo(dict(frame_dir=f'{prefix}{index:03d}',
                                 img_shape=(1080, 1920)))
        records.append(sample.to_dict())
    mmengine.dump(records, str(path))
    return path


def informative_scores(labels: Sequence[int], num_classes: int,
                       seed: int) -> np.ndarray:
    """Random scores where the label scores highest in 3 of 4 samples and
    lowest in the others."""
    scores = np.random.default_rng(seed).uniform(size=(len(labels),
                                                       num_classes))
    for index, label in enumerate(labels):
        scores[index, label] = 2.0 if index % 4 else -1.0
    return scores


def test_ties_count_against_the_sample():
    from cocodiff_mm.analysis.ensemble import top_k_accuracy

    # All classes equal: no class is in the top k < C.
    assert evaluate(np.zeros((4, 7)), np.array([0, 1, 2, 6])) == dict(
        top1=0.0, top5=0.0, mean_class=0.0)
    assert top_k_accuracy(np.zeros((4, 7)), np.array([0, 1, 2, 6]), 7) == 1
    # The true class tied with one other: a top-1 miss, a top-2 hit.
    tie = np.array([[2.0, 2.0, 0.0], [2.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    assert top_k_accuracy(tie, np.array([0, 1, 2]), 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(tie, np.array([0, 1, 2]), 2) == 1.0
    with pytest.raises(ValueError, match='2 of 3 samples'):
        top_k_accuracy(np.array([[np.nan, 1], [np.inf, 0], [0, 1]]),
                       np.array([0, 1, 0]), 1)


def test_an_all_equal_stream_is_not_perfect_nor_searched(tmp_path, cli,
                                                         capsys):
    labels = [index % 6 for index in range(24)]
    val = [write_action_dump(tmp_path / 'val_j.pkl',
                             informative_scores(labels, 6, 0), labels, 'v'),
           write_action_dump(tmp_path / 'val_flat.pkl',
                             np.full((24, 6), 0.5), labels, 'v')]
    test = [write_action_dump(tmp_path / 'test_j.pkl',
                              informative_scores(labels, 6, 1), labels, 't'),
            write_action_dump(tmp_path / 'test_flat.pkl',
                              np.full((24, 6), 0.5), labels, 't')]
    out = tmp_path / 'report.json'
    code, _, err = cli('--preds', *test, '--search-preds', *val,
                       '--search-grid', 0, 0.5, 1, '--out', out,
                       capsys=capsys)
    assert code == 0, err
    report = json.loads(out.read_text())
    flat = report['streams'][1]
    assert (flat['top1'], flat['top5'], flat['mean_class']) == (0, 0, 0)
    assert report['search']['streams'][1]['top1'] == 0
    # Weight on the flat stream alone would rank every class equal.
    assert report['coefficients'] == [0.5, 0.0]
    assert report['fused']['top1'] == pytest.approx(18 / 24)


def test_a_non_finite_stream_is_refused_naming_the_dump(tmp_path, cli,
                                                        capsys):
    labels = [0, 1, 2, 0, 1]
    scores = informative_scores(labels, 3, 0)
    good = write_action_dump(tmp_path / 'good.pkl', scores, labels)
    scores[1, 2], scores[3, 0], scores[3, 1] = np.nan, np.nan, np.inf
    scores[4, 0] = -np.inf
    bad = write_action_dump(tmp_path / 'bad.pkl', scores, labels)
    err = refused(cli('--preds', good, bad, capsys=capsys))
    assert f'{bad}: 3 of 5 samples have non-finite pred_score' in err
    assert 's001' in err and 's003' in err


def _code_payload(marker: Path):
    """An object whose unpickling would run ``touch marker``."""

    class Payload:
        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    return Payload()


def test_a_dump_that_would_run_code_is_refused(tmp_path, cli, capsys):
    marker = tmp_path / 'MARKER'
    payload = write_records(tmp_path / 'payload.pkl', [
        dict(frame_dir='a', gt_label=0, pred_score=_code_payload(marker))])
    err = refused(cli('--preds', payload, capsys=capsys))
    assert (f'{payload}: refusing to unpickle {os.system.__module__}.system:'
            ' only numpy, torch tensors and builtin containers are allowed '
            'in a tools/test.py --dump pickle') in err
    assert not marker.exists()
    # A real dump (DumpResults' records through mmengine.dump) still loads,
    # and so does one pickled with the highest protocol.
    labels = [0, 1, 2]
    scores = informative_scores(labels, 3, 0)
    real = write_action_dump(tmp_path / 'real.pkl', scores, labels)
    loaded = load_aligned([real])
    np.testing.assert_array_equal(loaded[1][0], scores.astype(np.float32))
    records = read_records(real)
    with open(tmp_path / 'proto5.pkl', 'wb') as file:
        pickle.dump(records, file, protocol=5)
    assert load_aligned([tmp_path / 'proto5.pkl'])[0] == loaded[0]


def test_out_is_checked_before_the_dumps_are_read(tmp_path, cli, capsys):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    out = blocker / 'fused.json'
    err = refused(cli('--preds', tmp_path / 'absent.pkl', '--out', out,
                      capsys=capsys))
    assert f'--out {out}:' in err and 'absent.pkl' not in err
    err = refused(cli('--preds', tmp_path / 'absent.pkl', '--out', tmp_path,
                      capsys=capsys))
    assert f'--out {tmp_path}:' in err and 'is a folder' in err


def test_code_hidden_in_tensor_storage_bytes_is_refused(tmp_path, cli,
                                                        capsys):
    # A tensor's storage pickles as bytes that torch.storage.
    # _load_from_bytes reads with torch's full unpickler: code can hide
    # there behind an allowed name.
    import io

    import torch

    marker = tmp_path / 'MARKER'
    inner = io.BytesIO()
    torch.save(_code_payload(marker), inner,
               _use_new_zipfile_serialization=False)

    class HiddenStorage:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (inner.getvalue(), ))

    path = write_records(tmp_path / 'hidden.pkl', [
        dict(frame_dir='a', gt_label=0, pred_score=HiddenStorage())])
    err = refused(cli('--preds', path, capsys=capsys))
    assert f'{path}: refusing to unpickle a tensor storage' in err
    assert not marker.exists()
