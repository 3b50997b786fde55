"""Tests of the annotation checker, its CLI and the pickle reader/writer."""
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest

import cocodiff_mm  # noqa: F401  (runtime fixes before mmaction)
from cocodiff_mm.datasets.annotation_check import (AnnotationProblem,
                                                   check_annotation_file,
                                                   check_annotations)
from cocodiff_mm.datasets.pickle_io import (merge_annotations,
                                            read_annotations,
                                            write_annotations)

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / 'tools' / 'data' / 'check_annotations.py'


def sample(name: str,
           label: int = 0,
           frames: int = 5,
           joints: int = 25,
           coords: int = 3,
           persons: int = 1,
           score: bool = False) -> dict:
    """A valid sample."""
    rng = np.random.default_rng(len(name))
    out = dict(frame_dir=name,
               label=label,
               total_frames=frames,
               keypoint=rng.normal(size=(persons, frames, joints,
                                         coords)).astype(np.float32),
               img_shape=(1080, 1920),
               original_shape=(1080, 1920))
    if score:
        out['keypoint_score'] = np.ones((persons, frames, joints),
                                        dtype=np.float32)
    return out


def dataset(*samples: dict) -> dict:
    names = [s['frame_dir'] for s in samples]
    return dict(split=dict(train=names[::2], val=names[1::2]),
                annotations=list(samples))


def check(data, **kwargs):
    """``(sample, field)`` of each problem, and the problems."""
    problems = check_annotations(data, **kwargs)
    assert all(isinstance(p, AnnotationProblem) for p in problems)
    return [(p.sample, p.field) for p in problems], problems


def load_cli():
    """Import tools/data/check_annotations.py as a module."""
    spec = importlib.util.spec_from_file_location('check_annotations', CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------- the checker
def test_valid_data_has_no_problem():
    data = dataset(sample('a'), sample('b', label=59, persons=2),
                   sample('c', joints=18, coords=2, score=True))
    assert check_annotations(data, num_classes=60) == []
    assert check_annotations(dataset(sample('a'), sample('b')),
                             num_joints=25,
                             num_coords=3,
                             num_classes=60) == []


def test_problem_str_names_sample_field_and_message():
    problem = AnnotationProblem('S001', 'label', '60 out of range')
    assert str(problem) == '[S001] label: 60 out of range'


@pytest.mark.parametrize('data, expected_field', [
    ([1, 2], 'type'),
    (dict(split={}), 'annotations'),
    (dict(annotations=[sample('a')]), 'split'),
    (dict(split={}, annotations={'a': 1}), 'annotations'),
    (dict(split=['a'], annotations=[sample('a')]), 'split'),
    (dict(split={}, annotations=[]), 'annotations'),
])
def test_top_level_structure(data, expected_field):
    keys, problems = check(data, source='x.pkl')
    assert ('<root>', expected_field) in keys
    assert any('x.pkl' in p.message for p in problems)


def test_missing_fields_and_non_dict_sample():
    broken = sample('a')
    del broken['label'], broken['keypoint']
    nameless = sample('b')
    del nameless['frame_dir']
    data = dict(split=dict(train=['a']),
                annotations=[broken, nameless, 'oops'])
    keys, problems = check(data)
    assert ('a', 'label') in keys and ('a', 'keypoint') in keys
    assert ('annotations[1]', 'frame_dir') in keys
    assert ('annotations[2]', '<sample>') in keys
    assert all('required' in p.message for p in problems
               if p.field in ('label', 'keypoint', 'frame_dir'))


@pytest.mark.parametrize('keypoint, kwargs, expected', [
    (np.zeros((5, 25, 3), np.float32), {}, '4 dims'),
    ([[1.0]], {}, 'np.ndarray'),
    (np.zeros((1, 5, 17, 3), np.float32), dict(num_joints=25), 'expected 25'),
    (np.zeros((1, 5, 25, 2), np.float32), dict(num_coords=3), 'expected 3'),
    (np.zeros((1, 5, 25, 3), np.int64), {}, 'floating'),
    (np.zeros((0, 5, 25, 3), np.float32), {}, 'M = 0'),
])
def test_keypoint_shape_and_dtype(keypoint, kwargs, expected):
    bad = sample('a')
    bad['keypoint'] = keypoint
    keys, problems = check(dataset(bad, sample('b')), **kwargs)
    assert keys == [('a', 'keypoint')]
    assert expected in problems[0].message


@pytest.mark.parametrize('value', [np.nan, np.inf, -np.inf])
def test_non_finite_values(value):
    bad = sample('a', score=True)
    bad['keypoint'][0, 2, 3, 1] = value
    bad['keypoint_score'][0, 1, 1] = value
    keys, problems = check(dataset(bad))
    assert keys == [('a', 'keypoint'), ('a', 'keypoint_score')]
    assert all('1 non-finite' in p.message for p in problems)


def test_empty_sequence_and_total_frames():
    empty = sample('empty', frames=0)
    mismatch = sample('mismatch')
    mismatch['total_frames'] = 7
    not_int = sample('not_int')
    not_int['total_frames'] = 5.0
    keys, problems = check(dataset(empty, mismatch, not_int))
    assert ('empty', 'keypoint') in keys  # T = 0
    assert ('empty', 'total_frames') in keys  # total_frames = 0
    assert ('mismatch', 'total_frames') in keys
    assert ('not_int', 'total_frames') in keys
    message = dict(zip(keys, (p.message for p in problems)))
    assert 'T = 5' in message[('mismatch', 'total_frames')]


def test_keypoint_score_shape_and_type():
    wrong = sample('wrong', score=True)
    wrong['keypoint_score'] = wrong['keypoint_score'][:, :4]
    listed = sample('listed')
    listed['keypoint_score'] = [0.5]
    keys, problems = check(dataset(wrong, listed))
    assert keys == [('wrong', 'keypoint_score'), ('listed', 'keypoint_score')]
    assert '(1, 5, 25)' in problems[0].message


@pytest.mark.parametrize('label, num_classes, expected', [
    (1.0, None, 'int'),
    (True, None, 'int'),
    ('3', None, 'int'),
    (-1, None, '>= 0'),
    (60, 60, '[0, 60)'),
])
def test_label(label, num_classes, expected):
    bad = sample('a')
    bad['label'] = label
    keys, problems = check(dataset(bad, sample('b', label=np.int64(59))),
                           num_classes=num_classes)
    assert keys == [('a', 'label')]
    assert expected in problems[0].message


def test_duplicates_and_split_references():
    data = dict(split=dict(train=['a', 'ghost', 'a'], val='b', test=['b', 3]),
                annotations=[sample('a'),
                             sample('b'),
                             sample('a')])
    keys, problems = check(data)
    assert ('a', 'frame_dir') in keys  # duplicate sample
    assert ('ghost', "split['train']") in keys
    assert ('a', "split['train']") in keys  # listed twice
    assert ('split:val', 'split') in keys  # not a list
    assert ('split:test', 'split') in keys  # entry not a str
    assert any('ghost' == p.sample and 'no sample' in p.message
               for p in problems)


def test_every_problem_is_reported():
    bad1 = sample('one')
    bad1['label'] = -3
    bad1['keypoint'] = bad1['keypoint'].astype(np.int32)
    bad2 = sample('two', joints=17)
    bad2['total_frames'] = 9
    data = dict(split=dict(train=['one', 'two', 'three']),
                annotations=[bad1, bad2, sample('four')])
    keys, _ = check(data, num_joints=25)
    assert keys == [('one', 'label'), ('one', 'keypoint'), ('two', 'keypoint'),
                    ('two', 'total_frames'), ('three', "split['train']")]


# ------------------------------------------------------------ file and CLI
def test_check_annotation_file(tmp_path):
    good = write_annotations(tmp_path / 'good.pkl', dict(train=['a']),
                             [sample('a')])
    assert check_annotation_file(good, num_joints=25) == []
    problems = check_annotation_file(good, num_joints=18)
    assert [(p.sample, p.field) for p in problems] == [('a', 'keypoint')]
    garbage = tmp_path / 'garbage.pkl'
    garbage.write_bytes(b'\x00not a pickle')
    problems = check_annotation_file(garbage)
    assert len(problems) == 1 and 'garbage.pkl' in problems[0].message
    with pytest.raises(FileNotFoundError, match='nope.pkl'):
        check_annotation_file(tmp_path / 'nope.pkl')


def test_cli(tmp_path, capsys):
    bad = sample('bad')
    bad['label'] = 99
    path = write_annotations(tmp_path / 'bad.pkl',
                             dict(train=['bad', 'ghost']), [bad])
    good = write_annotations(tmp_path / 'good.pkl', dict(train=['a']),
                             [sample('a')])
    cli = load_cli()
    assert cli.main([str(path), '--num-classes', '60']) == 1
    out = capsys.readouterr().out.splitlines()
    assert f'{path}: [bad] label: 99 out of range (expected [0, 60))' in out
    assert any(
        line.startswith(f"{path}: [ghost] split['train']") for line in out)
    assert out[-1] == 'summary: 2 problem(s) in 1 file(s)'
    assert cli.main([str(good), '--num-joints', '25', '--num-coords',
                     '3']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f'{good}: OK', 'summary: 0 problem(s) in 1 file(s)']
    assert cli.main([str(tmp_path / 'missing.pkl')]) == 1
    assert 'missing.pkl' in capsys.readouterr().out


# --------------------------------------------------------------- pickle_io
def test_write_read_roundtrip(tmp_path):
    path = write_annotations(tmp_path / 'sub' / 'a.pkl', dict(train=('a', )),
                             [sample('a')])
    data = read_annotations(path)
    assert data['split'] == dict(train=['a'])
    np.testing.assert_array_equal(data['annotations'][0]['keypoint'],
                                  sample('a')['keypoint'])
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_write_is_atomic(tmp_path):
    path = write_annotations(tmp_path / 'a.pkl', dict(train=['a']),
                             [sample('a')])
    before = path.read_bytes()
    unpicklable = sample('b')
    unpicklable['hook'] = lambda: None
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        write_annotations(path, dict(train=['b']), [unpicklable])
    assert path.read_bytes() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ['a.pkl']  # no temp


def test_read_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='none.pkl'):
        read_annotations(tmp_path / 'none.pkl')
    for name, obj, message in [('list.pkl', [1], 'got list'),
                               ('keys.pkl', dict(split={}), 'annotations'),
                               ('split.pkl', dict(split=[],
                                                  annotations=[]), 'split')]:
        path = tmp_path / name
        path.write_bytes(pickle.dumps(obj))
        with pytest.raises(ValueError, match=f'{name}.*{message}'):
            read_annotations(path)
    path = tmp_path / 'junk.pkl'
    path.write_bytes(b'junk')
    with pytest.raises(ValueError, match='junk.pkl'):
        read_annotations(path)
    with pytest.raises(TypeError, match='split'):
        write_annotations(tmp_path / 'x.pkl', ['a'], [])


def test_merge_annotations():
    base = dataset(sample('a'), sample('b'))
    merged = merge_annotations(base, dict(test=['c']), [sample('c')])
    assert merged['split'] == dict(train=['a'], val=['b'], test=['c'])
    assert [s['frame_dir'] for s in merged['annotations']] == ['a', 'b', 'c']
    assert len(base['annotations']) == 2  # input untouched
    with pytest.raises(ValueError, match='already exist'):
        merge_annotations(base, dict(train=['c']), [sample('c')])
    with pytest.raises(ValueError, match='frame_dir already present'):
        merge_annotations(base, dict(test=['a']), [sample('a')])


# ------------------------------------------- empty clips and unsafe pickles
def test_near_constant_is_defined_in_closed_form():
    from cocodiff_mm.datasets.annotation_check import (
        NEAR_CONSTANT_TOLERANCE, empty_clip_kind)

    assert NEAR_CONSTANT_TOLERANCE == 1e-6
    shape = (1, 10, 25, 3)  # 250 values per coordinate
    assert empty_clip_kind(np.zeros(shape, np.float32)) == 'all-zero'
    assert empty_clip_kind(np.full(shape, 3.0)) == 'near-constant'
    # One value off by d moves the mean by d / 250: its deviation is
    # d * 249 / 250, below the tolerance for d = 1e-6, above for 2e-6.
    for offset, expected in ((1e-6, 'near-constant'), (2e-6, None)):
        clip = np.full(shape, 3.0)
        clip[0, 4, 7, 1] += offset
        assert empty_clip_kind(clip) == expected, offset
    # A still pose (joints apart, no motion) is not empty, nor is a moving
    # person beside an all-zero second one.
    still = np.repeat(np.arange(75.0).reshape(1, 1, 25, 3), 10, axis=1)
    assert empty_clip_kind(still) is None
    two = np.zeros((2, 10, 25, 3), np.float32)
    two[0] = np.random.default_rng(0).normal(size=(10, 25, 3))
    assert empty_clip_kind(two) is None


def _with_empty_clips() -> dict:
    zero, flat = sample('zero'), sample('flat')
    zero['keypoint'] = np.zeros_like(zero['keypoint'])
    flat['keypoint'] = np.full_like(flat['keypoint'], 0.25)
    return dataset(sample('a'), zero, flat, sample('b'))


def test_empty_clips_warn_by_default_and_fail_on_request(tmp_path, capsys):
    from cocodiff_mm.datasets.annotation_check import EmptyClipWarning

    data = _with_empty_clips()
    with pytest.warns(EmptyClipWarning) as caught:
        assert check_annotations(data, source='x.pkl') == []
    message = str(caught[0].message)
    assert message.startswith('x.pkl: 2 of 4 clips are empty: 1 all-zero '
                              '(zero), 1 near-constant (flat)')
    keys, problems = check(data, fail_on_empty=True)
    assert keys == [('zero', 'keypoint'), ('flat', 'keypoint')]
    assert 'all-zero clip' in problems[0].message
    assert 'near-constant clip' in problems[1].message

    path = write_annotations(tmp_path / 'empty.pkl', data['split'],
                             data['annotations'])
    cli = load_cli()
    assert cli.main([str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f'{path}: warning: 2 of 4 clips are empty: '
                             '1 all-zero (zero), 1 near-constant (flat)')
    assert out[1:] == [f'{path}: OK', 'summary: 0 problem(s) in 1 file(s)']
    assert cli.main([str(path), '--fail-on-empty']) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f'{path}: [zero] keypoint: all-zero clip')
    assert out[-1] == 'summary: 2 problem(s) in 1 file(s)'


def test_an_annotation_pickle_that_would_run_code_is_refused(tmp_path,
                                                             capsys):
    import os

    from cocodiff_mm.datasets.demo.generator import write_demo_dataset
    from cocodiff_mm.datasets.pickle_io import load_pickle

    marker = tmp_path / 'MARKER'

    class Payload:
        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    data = dataset(sample('a'))
    data['annotations'][0]['img_shape'] = Payload()
    path = tmp_path / 'payload.pkl'
    with open(path, 'wb') as file:
        pickle.dump(data, file)
    refusal = (f'{path}: refusing to unpickle {os.system.__module__}.system:'
               ' only numpy, torch tensors and builtin containers are allowed'
               ' in an annotation pickle')
    problems = check_annotation_file(path)
    assert [str(p) for p in problems] == [f'[<root>] file: {refusal}']
    with pytest.raises(ValueError) as error:
        load_pickle(path)
    assert str(error.value) == refusal
    assert load_cli().main([str(path)]) == 1
    assert refusal in capsys.readouterr().out
    assert not marker.exists()
    # Real annotation files still load: the demo generator's, and 2D ones
    # with scores pickled with the default protocol.
    demo = write_demo_dataset(tmp_path / 'demo.pkl', num_performers=2,
                              repeats=1)
    assert check_annotation_file(demo, num_joints=25, num_coords=3) == []
    scored = dataset(sample('a', score=True, joints=17, coords=2),
                     sample('b', score=True, joints=17, coords=2))
    with open(tmp_path / 'scored.pkl', 'wb') as file:
        pickle.dump(scored, file)
    loaded = load_pickle(tmp_path / 'scored.pkl')
    np.testing.assert_array_equal(loaded['annotations'][1]['keypoint_score'],
                                  scored['annotations'][1]['keypoint_score'])
    assert check_annotation_file(tmp_path / 'scored.pkl') == []
