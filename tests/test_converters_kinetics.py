"""Tests of the Kinetics-Skeleton JSON converter and COCO->OpenPose mapping."""
import importlib.util
import json
import os
import pickle
from pathlib import Path
from typing import List

import numpy as np
import pytest

import cocodiff_mm  # noqa: F401  (runtime fixes before mmaction)
from cocodiff_mm.datasets.annotation_check import check_annotation_file
from cocodiff_mm.datasets.kinetics_json import (KINETICS_IMG_SHAPE,
                                                convert_kinetics_files,
                                                list_json_files,
                                                load_kinetics_json,
                                                read_label_names)
from cocodiff_mm.datasets.layouts import (COCO_JOINT_NAMES,
                                          OPENPOSE_JOINT_NAMES,
                                          annotations_coco_to_openpose,
                                          coco_to_openpose)
from cocodiff_mm.datasets.pickle_io import write_annotations

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(
    os.environ.get('COCODIFF_SHARED_DATA', REPO.parent / 'shared' / 'data'))
KINETICS_DIR = SHARED / 'kinetics_skeleton_sample'
CLIPS = KINETICS_DIR / 'clips'
LABEL_NAMES = KINETICS_DIR / 'kinetics400_label_names.txt'
CLI = REPO / 'tools' / 'data' / 'kinetics_json_to_pkl.py'

needs_real = pytest.mark.skipif(
    not LABEL_NAMES.is_file(),
    reason=f'Kinetics-Skeleton sample not found at {KINETICS_DIR} (set '
    f'COCODIFF_SHARED_DATA to the shared data folder)')

# frame_dir -> (true class index = 0-based line of the official list,
# number of frames); read from kinetics400_label_names.txt with grep -n.
EXPECTED = {
    '__0muxHV-Uw': (132, 299),  # folding napkins (label_index says 2)
    '__4frZhaVDs': (32, 299),  # braiding hair (label_index says 3)
    '__6LvmReo3Y': (262, 240),  # pushing cart (label_index says 4)
    '__NrybzYzUg': (0, 299),  # abseiling
    '__PYrzYbzKE': (173, 299),  # jumpstyle dancing
    '__U_scuxNlQ': (58, 299),  # clay pottery making
    '___dTOdxzXY': (172, 299),  # jumping into pool (label_index says 0)
    '___qijXy2f0': (234, 299),  # playing harp (label_index says 1)
    '__lt03EF4ao': (208, 249),  # passing American football (in game)
    '__u6odV5hrI': (207, 299),  # parkour
    '__vOysOPoCY': (207, 249),  # parkour
    '__vzEs2wzdQ': (335, 164),  # strumming guitar
}
H, W = KINETICS_IMG_SHAPE


def load_cli():
    """Import tools/data/kinetics_json_to_pkl.py as a module."""
    spec = importlib.util.spec_from_file_location('kinetics_json_to_pkl', CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def labels():
    if not LABEL_NAMES.is_file():
        pytest.skip(f'Kinetics label names not found at {LABEL_NAMES}')
    return read_label_names(LABEL_NAMES)


@pytest.fixture(scope='module')
def converted(labels):
    annotations, errors, skipped = convert_kinetics_files(
        list_json_files(CLIPS), labels)
    assert errors == [] and skipped == []
    return {a['frame_dir']: a for a in annotations}


# ---------------------------------------------------------------- real data
@needs_real
def test_label_names_file(labels):
    assert len(labels) == 400
    assert labels['abseiling'] == 0
    assert labels['zumba'] == 399


@needs_real
def test_labels_come_from_text_not_label_index(converted):
    assert {
        k: a['label']
        for k, a in converted.items()
    } == {
        k: v[0]
        for k, v in EXPECTED.items()
    }
    rewritten = 0
    for name, sample in converted.items():
        raw = json.loads((CLIPS / f'{name}.json').read_text())
        rewritten += raw['label_index'] != sample['label']
    assert rewritten == 5


@needs_real
def test_shapes_and_dtypes(converted):
    for name, sample in converted.items():
        num_frames = EXPECTED[name][1]
        assert sample['total_frames'] == num_frames
        assert sample['keypoint'].shape == (2, num_frames, 18, 2)
        assert sample['keypoint_score'].shape == (2, num_frames, 18)
        assert sample['keypoint'].dtype == np.float32
        assert sample['keypoint_score'].dtype == np.float32
        assert sample['img_shape'] == (256, 340)
        assert sample['original_shape'] == (256, 340)


@needs_real
def test_values_against_json(converted):
    # __vzEs2wzdQ frame_index 1, first person: nose pose (0.61, 0.057) with
    # score 0.61; joint 4 (right wrist) has score 0 -> image centre.
    sample = converted['__vzEs2wzdQ']
    np.testing.assert_allclose(sample['keypoint'][0, 0, 0],
                               [0.61 * 340, 0.057 * 256],
                               rtol=1e-6)
    assert sample['keypoint_score'][0, 0, 0] == pytest.approx(0.61)
    np.testing.assert_allclose(sample['keypoint'][0, 0, 4], [170, 128])
    assert sample['keypoint_score'][0, 0, 4] == 0
    # __lt03EF4ao frame_index 111 has 4 people with mean scores 0.682,
    # 0.769, 0.791, 0.395: the 3rd (nose 0.462, 0.397) then the 2nd (nose
    # 0.241, 0.359) are kept.
    sample = converted['__lt03EF4ao']
    np.testing.assert_allclose(sample['keypoint'][0, 110, 0],
                               [0.462 * 340, 0.397 * 256],
                               rtol=1e-6)
    np.testing.assert_allclose(sample['keypoint'][1, 110, 0],
                               [0.241 * 340, 0.359 * 256],
                               rtol=1e-6)


@needs_real
def test_every_kept_person_matches_json(converted):
    name = '__PYrzYbzKE'  # up to 11 people per frame
    raw = json.loads((CLIPS / f'{name}.json').read_text())
    sample = converted[name]
    for frame in raw['data'][::37]:
        people = sorted(frame['skeleton'],
                        key=lambda p: -np.mean(p['score']))[:2]
        t = frame['frame_index'] - 1
        for m, person in enumerate(people):
            pose = np.array(person['pose']).reshape(18, 2) * [W, H]
            score = np.array(person['score'])
            np.testing.assert_allclose(sample['keypoint_score'][m, t],
                                       score,
                                       rtol=1e-6)
            seen = score > 0
            np.testing.assert_allclose(sample['keypoint'][m, t][seen],
                                       pose[seen],
                                       rtol=1e-5)


@needs_real
def test_pickle_passes_check_and_mmaction2_pipeline(converted, tmp_path):
    from mmaction.datasets import PoseDataset
    from mmaction.utils import register_all_modules
    register_all_modules()
    annotations = list(converted.values())
    path = write_annotations(tmp_path / 'k.pkl',
                             dict(val=[a['frame_dir'] for a in annotations]),
                             annotations)
    assert check_annotation_file(path,
                                 num_joints=18,
                                 num_coords=2,
                                 num_classes=400) == []
    pipeline = [
        dict(type='PreNormalize2D'),
        dict(type='GenSkeFeat', dataset='openpose', feats=['j']),
        dict(type='UniformSampleFrames', clip_len=20),
        dict(type='PoseDecode'),
        dict(type='FormatGCNInput', num_person=2),
        dict(type='PackActionInputs')
    ]
    dataset = PoseDataset(str(path), pipeline, split='val')
    assert len(dataset) == 12
    inputs = dataset[0]['inputs']
    assert tuple(inputs.shape) == (1, 2, 20, 18, 3)
    xy = inputs[..., :2]
    # the release stays within ~[0, 1.05] of the frame -> about [-1, 1.1]
    assert xy.min() >= -1.0 and xy.max() <= 1.2
    # missing joints sit at the centre: 0 after PreNormalize2D
    missing = inputs[..., 2] == 0
    assert missing.any() and xy[missing].abs().max() < 1e-6


# ---------------------------------------------------------------- synthetic
def write_clip(path: Path, frames: List[List[dict]], label: str) -> Path:
    """Write a clip in the release's JSON format."""
    data = [
        dict(frame_index=k + 1, skeleton=people)
        for k, people in enumerate(frames)
    ]
    path.write_text(json.dumps(dict(data=data, label=label, label_index=0)))
    return path


def fake_person(value: float, score: float) -> dict:
    return dict(pose=[value] * 36, score=[score] * 18)


def test_top_two_by_mean_score_per_frame(tmp_path):
    frames = [[
        fake_person(0.1, 0.2),
        fake_person(0.2, 0.9),
        fake_person(0.3, 0.5)
    ], [fake_person(0.4, 0.3)]]
    path = write_clip(tmp_path / 'clip.json', frames, 'b')
    sample = load_kinetics_json(path, dict(a=0, b=1))
    assert sample['label'] == 1 and sample['frame_dir'] == 'clip'
    assert sample['keypoint'].shape == (2, 2, 18, 2)
    np.testing.assert_allclose(sample['keypoint'][:, 0, 0],
                               [[0.2 * W, 0.2 * H], [0.3 * W, 0.3 * H]],
                               rtol=1e-6)
    np.testing.assert_allclose(sample['keypoint_score'][:, 0, 0], [0.9, 0.5])
    # frame 2 has one person; the second slot is empty (centre, score 0)
    np.testing.assert_allclose(sample['keypoint'][1, 1], [[W / 2, H / 2]] * 18)
    assert not sample['keypoint_score'][1, 1].any()


def test_single_person_clip_has_one_slot(tmp_path):
    path = write_clip(tmp_path / 'one.json', [[fake_person(0.5, 0.7)]] * 3,
                      'a')
    sample = load_kinetics_json(path, dict(a=0))
    assert sample['keypoint'].shape == (1, 3, 18, 2)


def test_unknown_label_and_bad_json_name_the_file(tmp_path):
    path = write_clip(tmp_path / 'x.json', [[fake_person(0.5, 0.7)]], 'zz')
    with pytest.raises(ValueError, match=r'x\.json.*label \'zz\''):
        load_kinetics_json(path, dict(a=0))
    bad = tmp_path / 'bad.json'
    bad.write_text('{"data": [')
    with pytest.raises(ValueError, match='bad.json.*invalid JSON'):
        load_kinetics_json(bad, dict(a=0))
    short = write_clip(tmp_path / 'short.json',
                       [[dict(pose=[0.1] * 30, score=[0.5] * 18)]], 'a')
    with pytest.raises(ValueError, match='short.json.*36 pose values'):
        load_kinetics_json(short, dict(a=0))


def test_empty_clips_are_skipped(tmp_path):
    write_clip(tmp_path / 'empty.json', [[], []], 'a')
    write_clip(tmp_path / 'full.json', [[fake_person(0.5, 0.7)]], 'a')
    write_clip(tmp_path / 'wrong.json', [[fake_person(0.5, 0.7)]], 'nope')
    paths = list_json_files(tmp_path)
    annotations, errors, skipped = convert_kinetics_files(paths, dict(a=0))
    assert [a['frame_dir'] for a in annotations] == ['full']
    assert skipped == ['empty']
    assert len(errors) == 1 and 'wrong.json' in errors[0]
    kept, _, skipped = convert_kinetics_files(paths,
                                              dict(a=0),
                                              skip_empty=False)
    assert len(kept) == 2 and skipped == []


def test_coco_to_openpose_mapping():
    rng = np.random.default_rng(0)
    keypoint = rng.uniform(0, 100, (2, 3, 17, 2)).astype(np.float32)
    score = rng.uniform(0, 1, (2, 3, 17)).astype(np.float32)
    out_kp, out_score = coco_to_openpose(keypoint, score)
    assert out_kp.shape == (2, 3, 18, 2) and out_score.shape == (2, 3, 18)
    assert out_kp.dtype == np.float32
    for op_index, name in enumerate(OPENPOSE_JOINT_NAMES):
        if name == 'neck':
            continue
        coco_index = COCO_JOINT_NAMES.index(name)
        np.testing.assert_array_equal(out_kp[..., op_index, :],
                                      keypoint[..., coco_index, :])
        np.testing.assert_array_equal(out_score[..., op_index],
                                      score[..., coco_index])
    # explicit spot checks of the OpenPose order
    np.testing.assert_array_equal(out_kp[..., 2, :], keypoint[..., 6, :])
    np.testing.assert_array_equal(out_kp[..., 11, :], keypoint[..., 11, :])
    np.testing.assert_array_equal(out_kp[..., 17, :], keypoint[..., 3, :])
    np.testing.assert_allclose(out_kp[..., 1, :],
                               (keypoint[..., 5, :] + keypoint[..., 6, :]) / 2)
    np.testing.assert_array_equal(out_score[..., 1],
                                  np.minimum(score[..., 5], score[..., 6]))
    only_kp, none = coco_to_openpose(keypoint)
    assert none is None and only_kp.shape == (2, 3, 18, 2)
    with pytest.raises(ValueError, match='17'):
        coco_to_openpose(np.zeros((1, 2, 18, 2)))


def test_coco_pickle_cli(tmp_path):
    keypoint = np.arange(1 * 4 * 17 * 2, dtype=np.float32).reshape(1, 4, 17, 2)
    score = np.full((1, 4, 17), 0.5, dtype=np.float32)
    score[..., 6] = 0.25
    sample = dict(frame_dir='v1',
                  label=3,
                  total_frames=4,
                  keypoint=keypoint,
                  keypoint_score=score,
                  img_shape=(480, 640),
                  original_shape=(480, 640))
    src = write_annotations(tmp_path / 'coco.pkl', dict(train=['v1']),
                            [sample])
    converted = annotations_coco_to_openpose([sample])[0]
    assert sample['keypoint'].shape[2] == 17  # input untouched
    assert converted['label'] == 3 and converted['img_shape'] == (480, 640)
    out = tmp_path / 'op.pkl'
    assert load_cli().main(['--coco-pkl', str(src), '--out', str(out)]) == 0
    with open(out, 'rb') as f:
        data = pickle.load(f)
    assert data['split'] == dict(train=['v1'])
    result = data['annotations'][0]
    assert result['keypoint'].shape == (1, 4, 18, 2)
    np.testing.assert_allclose(result['keypoint'][0, 0, 1],
                               (keypoint[0, 0, 5] + keypoint[0, 0, 6]) / 2)
    assert result['keypoint_score'][0, 0, 1] == 0.25


@needs_real
def test_cli_train_then_append_val(tmp_path, capsys):
    train_dir, val_dir = tmp_path / 'train', tmp_path / 'val'
    train_dir.mkdir()
    val_dir.mkdir()
    names = sorted(EXPECTED)
    for k, name in enumerate(names):
        folder = train_dir if k < 8 else val_dir
        (folder / f'{name}.json').symlink_to(CLIPS / f'{name}.json')
    out = tmp_path / 'kinetics.pkl'
    cli = load_cli()
    common = ['--label-names', str(LABEL_NAMES), '--out', str(out)]
    assert cli.main(
        ['--json-dir', str(train_dir), '--split-name', 'train'] + common) == 0
    assert cli.main(
        ['--json-dir',
         str(val_dir), '--split-name', 'val', '--append'] + common) == 0
    with open(out, 'rb') as f:
        data = pickle.load(f)
    assert data['split'] == dict(train=names[:8], val=names[8:])
    assert [a['label']
            for a in data['annotations']] == [EXPECTED[n][0] for n in names]
    # appending the same split again is refused and leaves the file intact
    assert cli.main(
        ['--json-dir',
         str(val_dir), '--split-name', 'val', '--append'] + common) == 1
    assert 'already exist' in capsys.readouterr().err
    with open(out, 'rb') as f:
        assert pickle.load(f)['split'] == data['split']
