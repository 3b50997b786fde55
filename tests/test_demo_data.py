"""Tests of the procedural demo data set, its class texts and its CLI."""
import importlib.util
import json
import pickle
import re
from collections import Counter
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

import cocodiff_mm  # noqa: F401  (runtime fixes before mmaction)
from cocodiff_mm.datasets.annotation_check import check_annotations
from cocodiff_mm.datasets.demo import (DEMO_CLASSES, generate_clip,
                                       generate_demo_annotations,
                                       sample_performer, write_demo_dataset,
                                       xsub_split)
from cocodiff_mm.datasets.demo.skeleton import BONE_PAIRS

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / 'tools' / 'data' / 'make_demo_data.py'
TEXTS = REPO / 'cocodiff_mm' / 'texts' / 'demo.json'
NAME = re.compile(r'demo_P(\d{3})A(\d{3})R(\d{3})')

# mmaction2's bone pairs of the 'nturgb+d' layout (GenSkeFeat 'b' stream),
# minus the self-pair of the spine joint.
MMACTION_NTU_PAIRS = ((0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4),
                      (6, 5), (7, 6), (8, 20), (9, 8), (10, 9), (11, 10),
                      (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16),
                      (18, 17), (19, 18), (21, 22), (22, 7), (23, 24), (24,
                                                                        11))


@pytest.fixture(scope='module')
def demo() -> dict:
    """The default demo data set (seed 0, 20 performers, 3 repeats)."""
    return generate_demo_annotations()


@pytest.fixture(scope='module')
def clean() -> Dict[int, List[np.ndarray]]:
    """Noise-free clips facing the camera, per label (10 performers)."""
    clips = {label: [] for label in range(len(DEMO_CLASSES))}
    for performer_id in range(1, 11):
        performer = sample_performer(0, performer_id)
        for label in clips:
            for repetition in range(2):
                clips[label].append(
                    generate_clip(performer,
                                  label,
                                  repetition,
                                  noise_scale=0.0,
                                  max_view_angle=0.0))
    return clips


def load_cli():
    """Import tools/data/make_demo_data.py as a module."""
    spec = importlib.util.spec_from_file_location('make_demo_data', CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resampled_features(samples: List[dict], length: int = 32) -> np.ndarray:
    """Clips linearly resampled to ``length`` frames, centred on the mean
    position of the base of the spine, flattened."""
    features = []
    for sample in samples:
        clip = sample['keypoint'][0].astype(np.float64)
        where = np.linspace(0, len(clip) - 1, length)
        low = np.floor(where).astype(int)
        high = np.minimum(low + 1, len(clip) - 1)
        weight = (where - low)[:, None, None]
        clip = clip[low] * (1 - weight) + clip[high] * weight
        features.append((clip - clip[:, 0].mean(0)).ravel())
    return np.stack(features)


def nearest_neighbour_accuracy(data: dict) -> float:
    """1-NN accuracy, xsub_train -> xsub_val, on resampled centred joints."""
    by_name = {sample['frame_dir']: sample for sample in data['annotations']}
    train = [by_name[name] for name in data['split']['xsub_train']]
    val = [by_name[name] for name in data['split']['xsub_val']]
    x_train, x_val = resampled_features(train), resampled_features(val)
    distance = ((x_val**2).sum(1)[:, None] + (x_train**2).sum(1)[None] -
                2 * x_val @ x_train.T)
    predicted = np.array([s['label'] for s in train])[distance.argmin(1)]
    return float(np.mean(predicted == np.array([s['label'] for s in val])))


def test_classes():
    assert len(DEMO_CLASSES) == 8
    assert len(set(DEMO_CLASSES)) == 8
    assert all(isinstance(name, str) and name for name in DEMO_CLASSES)


def test_same_seed_gives_identical_arrays():
    first = generate_demo_annotations(num_performers=4, repeats=2, seed=7)
    second = generate_demo_annotations(num_performers=4, repeats=2, seed=7)
    assert pickle.dumps(first) == pickle.dumps(second)
    other = generate_demo_annotations(num_performers=4, repeats=2, seed=8)
    assert first['split'] == other['split']
    differs = [
        not np.array_equal(a['keypoint'], b['keypoint'])
        for a, b in zip(first['annotations'], other['annotations'])
    ]
    assert all(differs), 'another seed must change every clip'


def test_clip_independent_of_data_set_size():
    small = generate_demo_annotations(num_performers=2, repeats=1, seed=3)
    large = generate_demo_annotations(num_performers=6, repeats=3, seed=3)
    by_name = {a['frame_dir']: a['keypoint'] for a in large['annotations']}
    for sample in small['annotations']:
        assert np.array_equal(sample['keypoint'], by_name[sample['frame_dir']])


def test_structure_shapes_and_splits(demo):
    assert set(demo) == {'split', 'annotations'}
    assert check_annotations(demo, num_joints=25, num_coords=3,
                             num_classes=8) == []
    annotations = demo['annotations']
    assert len(annotations) == 20 * 8 * 3
    for sample in annotations:
        keypoint = sample['keypoint']
        assert keypoint.dtype == np.float32
        assert keypoint.shape == (1, sample['total_frames'], 25, 3)
        assert 40 <= sample['total_frames'] <= 90
        assert sample['img_shape'] == sample['original_shape'] == (1080, 1920)
        assert isinstance(sample['label'], int)
        performer, action, _ = map(
            int,
            NAME.fullmatch(sample['frame_dir']).groups())
        assert action == sample['label'] + 1
    lengths = [sample['total_frames'] for sample in annotations]
    assert max(lengths) - min(lengths) >= 30, 'durations must vary'

    by_name = {a['frame_dir']: a for a in annotations}
    performers = {}
    for split in ('xsub_train', 'xsub_val'):
        names = demo['split'][split]
        assert len(names) == 240
        labels = Counter(by_name[name]['label'] for name in names)
        assert labels == {label: 30 for label in range(8)}
        performers[split] = {
            int(NAME.fullmatch(name).group(1))
            for name in names
        }
    assert performers['xsub_train'] == set(range(1, 21, 2))
    assert performers['xsub_val'] == set(range(2, 21, 2))
    assert xsub_split(5) == ([1, 3, 5], [2, 4])
    with pytest.raises(ValueError, match='num_performers'):
        xsub_split(1)


def test_kinect_camera_space(demo):
    points = np.concatenate([a['keypoint'][0] for a in demo['annotations']])
    assert np.isfinite(points).all()
    # Metres in front of the camera, y up, the body 2.5-3.5 m away.
    assert 1.0 < points[..., 2].min() and points[..., 2].max() < 4.5
    assert np.abs(points[..., 0]).max() < 2.0
    first = np.stack([a['keypoint'][0, 0] for a in demo['annotations']])
    assert 2.3 < first[:, 0, 2].min() and first[:, 0, 2].max() < 3.7
    assert (first[:, 3, 1] > first[:, 0, 1] + 0.3).all(), 'head above pelvis'
    assert (first[:, 0, 1] > first[:, 19, 1] + 0.5).all(), 'pelvis above feet'
    # As in NTU RGB+D, the right shoulder of a performer facing the camera
    # (within +-45 degrees) has the larger x.
    assert (first[:, 8, 0] > first[:, 4, 0]).all()
    # Performers really are seen from different directions.
    shoulders = first[:, 8] - first[:, 4]
    yaw = np.degrees(np.arctan2(shoulders[:, 2], shoulders[:, 0]))
    assert yaw.min() < -30 and yaw.max() > 30


def test_bone_lengths_constant_within_clip(clean, demo):
    pairs = sorted(set(BONE_PAIRS) | set(MMACTION_NTU_PAIRS))
    child, parent = np.array(pairs).T
    for clips in clean.values():
        for clip in clips:
            lengths = np.linalg.norm(clip[:, child] - clip[:, parent], axis=-1)
            assert np.ptp(lengths, axis=0).max() < 1e-4
    # With sensor noise the lengths only jitter by a few millimetres.
    jitter = [
        np.std(np.linalg.norm(a['keypoint'][0][:, child] -
                              a['keypoint'][0][:, parent],
                              axis=-1),
               axis=0) for a in demo['annotations'][:48]
    ]
    assert 0.001 < np.median(jitter) < 0.02
    # Body proportions differ between performers.
    upper_arm = [np.linalg.norm(clip[0, 9] - clip[0, 8]) for clip in clean[0]]
    assert np.ptp(upper_arm) > 0.03


def test_motions_do_what_their_names_say(clean):

    def per_clip(label, fn):
        return np.array([fn(clip) for clip in clean[label]])

    y = lambda clip, joint: clip[:, joint, 1]  # noqa: E731
    wave, circle, raise_arms, clap, punch, kick, squat, jump = range(8)
    for label in (wave, circle):  # right hand up, left hand down
        assert (per_clip(label, lambda c: (y(c, 11) - y(c, 8)).max())
                > 0).all()
        assert (per_clip(label, lambda c: (y(c, 7) - y(c, 4)).max())
                < -0.2).all()
    assert (per_clip(raise_arms, lambda c:
                     (np.minimum(y(c, 7), y(c, 11)) - y(c, 3)).max())
            > 0.1).all(), 'both hands above the head'
    assert (per_clip(
        clap, lambda c: np.linalg.norm(c[:, 7] - c[:, 11], axis=-1).min())
            < 0.1).all(), 'hands meet'
    assert (per_clip(punch, lambda c: (c[0, 4, 2] - c[:, 7, 2]).max())
            > 0.4).all(), 'left hand reaches forward'
    assert (per_clip(kick, lambda c: (y(c, 19) - y(c, 19)[0]).max())
            > 0.1).all(), 'right foot leaves the floor'
    assert (per_clip(kick, lambda c: np.abs(y(c, 15) - y(c, 15)[0]).max())
            < 0.03).all(), 'left foot stays on the floor'
    assert (per_clip(squat, lambda c: (y(c, 0)[0] - y(c, 0)).max())
            > 0.12).all(), 'pelvis goes down'
    assert (per_clip(squat, lambda c: np.abs(y(c, 15) - y(c, 15)[0]).max())
            < 0.03).all(), 'feet stay on the floor'
    assert (per_clip(
        jump,
        lambda c: np.minimum(y(c, 15) - y(c, 15)[0],
                             y(c, 19) - y(c, 19)[0]).max())
            > 0.04).all(), 'both feet leave the floor'


def test_nearest_neighbour_difficulty(demo):
    accuracy = nearest_neighbour_accuracy(demo)
    # Far above chance (12.5 %), but not solved by template matching.
    assert 0.55 <= accuracy <= 0.9, f'1-NN accuracy {accuracy:.3f}'


def test_mmaction2_pipeline(tmp_path):
    from mmaction.datasets import PoseDataset
    from mmaction.utils import register_all_modules
    register_all_modules()
    path = write_demo_dataset(tmp_path / 'demo_3d.pkl',
                              num_performers=2,
                              repeats=1)
    pipeline = [
        dict(type='PreNormalize3D'),
        dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
        dict(type='UniformSampleFrames', clip_len=32),
        dict(type='PoseDecode'),
        dict(type='FormatGCNInput', num_person=1),
        dict(type='PackActionInputs')
    ]
    for split, performer in (('xsub_train', 1), ('xsub_val', 2)):
        dataset = PoseDataset(str(path), pipeline, split=split)
        assert len(dataset) == 8
        for index in range(len(dataset)):
            sample = dataset[index]
            inputs = sample['inputs']
            assert tuple(inputs.shape) == (1, 1, 32, 25, 3)
            assert np.isfinite(inputs.numpy()).all()
            assert sample['data_samples'].gt_label.item() == index
    # The stand-alone transforms, built from mmaction2's registry.
    from mmaction.registry import TRANSFORMS
    transforms = [TRANSFORMS.build(cfg) for cfg in pipeline[:-1]]
    results = dict(generate_demo_annotations(2, 1)['annotations'][5],
                   start_index=0,
                   modality='Pose')
    for transform in transforms:
        results = transform(results)
    assert results['keypoint'].shape == (1, 1, 32, 25, 3)


def test_cli_writes_atomically_and_summarises(tmp_path, capsys):
    out = tmp_path / 'data' / 'skeleton' / 'demo_3d.pkl'
    argv = [
        '--out',
        str(out), '--seed', '1', '--num-performers', '4', '--repeats', '1'
    ]
    assert load_cli().main(argv) == 0
    printed = capsys.readouterr().out
    assert 'xsub_train: 16 clips' in printed
    assert 'xsub_val: 16 clips' in printed
    assert 'squat down' in printed
    assert sorted(p.name for p in out.parent.iterdir()) == ['demo_3d.pkl']
    with open(out, 'rb') as file:
        written = pickle.load(file)
    expected = generate_demo_annotations(num_performers=4, repeats=1, seed=1)
    assert written['split'] == expected['split']
    for got, want in zip(written['annotations'], expected['annotations']):
        assert got['frame_dir'] == want['frame_dir']
        assert np.array_equal(got['keypoint'], want['keypoint'])

    assert load_cli().main(['--out', str(out), '--num-performers', '1']) == 2
    assert 'num_performers' in capsys.readouterr().err


def test_invalid_arguments():
    with pytest.raises(ValueError, match='repeats'):
        generate_demo_annotations(num_performers=2, repeats=0)
    with pytest.raises(ValueError, match='seed'):
        generate_demo_annotations(num_performers=2, repeats=1, seed=-1)
    with pytest.raises(ValueError, match='label'):
        generate_clip(sample_performer(0, 1), 8, 0)


def test_class_texts_describe_demo_classes():
    data = json.loads(TEXTS.read_text(encoding='utf-8'))
    assert data['name'] == 'demo'
    assert [entry['label'] for entry in data['classes']] == list(DEMO_CLASSES)
    for entry in data['classes']:
        assert entry['coarse'][0] == entry['label']
        assert len(set(entry['coarse'])) >= 6
        assert len(set(entry['fine'])) >= 3
        for text in entry['fine']:
            assert 20 <= len(text.split()) <= 45, text
