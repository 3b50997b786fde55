"""Tests of the raw NTU RGB+D converter (library and CLI)."""
import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import pytest

import cocodiff_mm  # noqa: F401  (runtime fixes before mmaction)
from cocodiff_mm.datasets.ntu_raw import (SkeletonFormatError, belongs_to,
                                          build_splits, list_ntu_files,
                                          load_ntu_sample, parse_sample_name,
                                          read_missing_list,
                                          read_skeleton_file, split_names)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(
    os.environ.get('COCODIFF_SHARED_DATA', REPO.parent / 'shared' / 'data'))
NTU_DIR = SHARED / 'ntu_raw_sample'
REAL_SAMPLE = NTU_DIR / 'S001C001P001R001A001.skeleton'
CLI = REPO / 'tools' / 'data' / 'ntu_raw_to_pkl.py'

needs_real = pytest.mark.skipif(
    not REAL_SAMPLE.is_file(),
    reason=f'real NTU sample not found at {REAL_SAMPLE} (set '
    f'COCODIFF_SHARED_DATA to the shared data folder)')

# ---------------------------------------------------------------- generator
Body = Tuple[str, np.ndarray]  # (body id, joints (25, 3))


def write_raw(path: Path, frames: Sequence[Sequence[Body]]) -> Path:
    """Write ``frames`` (per frame, a list of bodies) in the raw format."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, joints in bodies:
            lines.append(f'{body_id} 0 1 1 1 1 0 0.01 0.02 2')
            lines.append('25')
            for x, y, z in joints:
                lines.append(f'{x:.7g} {y:.7g} {z:.7g} 250.1 180.2 1000.3 '
                             f'500.4 0.1 0.2 0.3 0.4 2')
    path.write_text('\n'.join(lines) + '\n')
    return path


def person(seed: int,
           num_frames: int,
           amplitude: float,
           offset: float = 0.0) -> np.ndarray:
    """A person-shaped body (taller than wide) moving with ``amplitude``."""
    rng = np.random.default_rng(seed)
    base = np.stack([
        rng.uniform(-0.25, 0.25, 25) + offset,
        rng.uniform(-0.8, 0.8, 25),
        rng.uniform(2.9, 3.1, 25)
    ],
                    axis=-1)
    t = np.arange(num_frames)[:, None, None]
    wave = amplitude * np.sin(t / 5.0 + rng.uniform(0, 6, (1, 25, 3)))
    return (base[None] + wave).astype(np.float32)


def wide_thing(seed: int, num_frames: int, amplitude: float) -> np.ndarray:
    """A noise "body" far wider than tall, moving a lot."""
    rng = np.random.default_rng(seed)
    base = np.stack([
        rng.uniform(-1.0, 1.0, 25),
        rng.uniform(-0.1, 0.1, 25),
        rng.uniform(2.0, 2.2, 25)
    ],
                    axis=-1)
    jitter = rng.normal(0, amplitude, (num_frames, 25, 3))
    jitter[..., 1] *= 0.1  # stays flat
    return (base[None] + jitter).astype(np.float32)


def frames_of(
        num_frames: int, tracks: Sequence[Tuple[str, np.ndarray,
                                                range]]) -> List[List[Body]]:
    """Per-frame body lists from ``(id, joints (n, 25, 3), frame range)``."""
    frames: List[List[Body]] = [[] for _ in range(num_frames)]
    for body_id, joints, span in tracks:
        for k, t in enumerate(span):
            frames[t].append((body_id, joints[k]))
    return frames


def single_body_file(path: Path, num_frames: int = 20, seed: int = 0) -> Path:
    """A valid file with one moving person."""
    joints = person(seed, num_frames, 0.05)
    return write_raw(
        path,
        frames_of(num_frames,
                  [('72057594037931101', joints, range(num_frames))]))


def load_cli():
    """Import tools/data/ntu_raw_to_pkl.py as a module."""
    spec = importlib.util.spec_from_file_location('ntu_raw_to_pkl', CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- real data
@needs_real
def test_real_sample_shape_and_values():
    sample = load_ntu_sample(REAL_SAMPLE)
    kp = sample['keypoint']
    assert kp.shape == (1, 103, 25, 3)
    assert kp.dtype == np.float32
    assert sample['frame_dir'] == 'S001C001P001R001A001'
    assert sample['label'] == 0
    assert sample['total_frames'] == 103
    # Numbers read from the file text: line 4 is joint 0 of frame 0, line 7
    # joint 3 of frame 0; the last line is joint 24 of frame 102 and the
    # third-last joint 22 of frame 102.
    np.testing.assert_allclose(kp[0, 0, 0], [0.2181153, 0.1725972, 3.785547])
    np.testing.assert_allclose(kp[0, 0, 3], [0.2128507, 0.8079225, 3.581995])
    np.testing.assert_allclose(kp[0, 102, 24], [0.1140334, 0.7601054, 3.444])
    np.testing.assert_allclose(kp[0, 102, 22], [0.19339, 0.2853357, 3.6])


@needs_real
def test_real_sample_matches_file_text_everywhere():
    lines = REAL_SAMPLE.read_text().splitlines()
    kp = load_ntu_sample(REAL_SAMPLE)['keypoint']
    for frame in (0, 50, 102):
        for joint in (0, 11, 24):
            # 1 header line, 28 lines per frame (count, info, njoints, 25)
            values = lines[1 + frame * 28 + 3 + joint].split()
            assert len(values) == 12
            np.testing.assert_allclose(kp[0, frame, joint],
                                       [float(v) for v in values[:3]])


@needs_real
def test_real_sample_through_mmaction2_pipeline(tmp_path):
    from cocodiff_mm.datasets.pickle_io import write_annotations
    from mmaction.datasets import PoseDataset
    from mmaction.utils import register_all_modules
    register_all_modules()
    sample = load_ntu_sample(REAL_SAMPLE)
    path = write_annotations(tmp_path / 'ntu.pkl',
                             build_splits([sample['frame_dir']], 'ntu60'),
                             [sample])
    pipeline = [
        dict(type='PreNormalize3D'),
        dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
        dict(type='UniformSampleFrames', clip_len=16),
        dict(type='PoseDecode'),
        dict(type='FormatGCNInput', num_person=2),
        dict(type='PackActionInputs')
    ]
    dataset = PoseDataset(str(path), pipeline, split='xsub_train')
    assert len(dataset) == 1
    out = dataset[0]
    assert tuple(out['inputs'].shape) == (1, 2, 16, 25, 3)
    assert out['data_samples'].gt_label.item() == 0
    assert len(PoseDataset(str(path), pipeline, split='xview_val')) == 1


# ---------------------------------------------------------------- synthetic
def test_two_bodies_kept_most_active_first(tmp_path):
    calm = person(1, 30, 0.01, offset=-0.6)
    busy = person(2, 30, 0.2, offset=0.6)
    path = write_raw(
        tmp_path / 'S001C002P003R001A050.skeleton',
        frames_of(30, [('11', calm, range(30)), ('22', busy, range(30))]))
    sample = load_ntu_sample(path)
    kp = sample['keypoint']
    assert kp.shape == (2, 30, 25, 3)
    assert sample['label'] == 49
    np.testing.assert_allclose(kp[0], busy, atol=1e-6)
    np.testing.assert_allclose(kp[1], calm, atol=1e-6)


@pytest.mark.parametrize('noise', ['short_lived', 'wide'])
def test_third_noise_body_dropped(tmp_path, noise):
    actor_a = person(3, 40, 0.05, offset=-0.6)
    actor_b = person(4, 40, 0.03, offset=0.6)
    tracks = [('1', actor_a, range(40)), ('2', actor_b, range(40))]
    if noise == 'short_lived':
        # very active but seen in 5 frames only
        tracks.append(('3', person(5, 5, 2.0), range(10, 15)))
    else:
        # long-lived, very active, but far wider than tall
        tracks.append(('3', wide_thing(6, 40, 0.5), range(40)))
    path = write_raw(tmp_path / 'S001C001P001R001A001.skeleton',
                     frames_of(40, tracks))
    num_frames, bodies = read_skeleton_file(path)
    assert num_frames == 40 and len(bodies) == 3
    kp = load_ntu_sample(path)['keypoint']
    assert kp.shape == (2, 40, 25, 3)
    np.testing.assert_allclose(kp[0], actor_a, atol=1e-6)
    np.testing.assert_allclose(kp[1], actor_b, atol=1e-6)


def test_body_split_over_two_ids_is_merged(tmp_path):
    actor = person(7, 60, 0.1, offset=-0.5)
    other = person(8, 60, 0.02, offset=0.5)
    # Kinect lost the first actor at frame 30 and re-found it as a new id.
    path = write_raw(
        tmp_path / 'S002C001P001R001A001.skeleton',
        frames_of(60, [('1', actor[:30], range(30)),
                       ('9', actor[30:], range(30, 60)),
                       ('2', other, range(60))]))
    kp = load_ntu_sample(path)['keypoint']
    assert kp.shape == (2, 60, 25, 3)
    np.testing.assert_allclose(kp[0], actor, atol=1e-6)
    np.testing.assert_allclose(kp[1], other, atol=1e-6)


def test_absent_frames_are_zero(tmp_path):
    joints = person(9, 15, 0.05)
    path = write_raw(tmp_path / 'S001C001P001R001A002.skeleton',
                     frames_of(20, [('1', joints, range(3, 18))]))
    sample = load_ntu_sample(path)
    kp = sample['keypoint']
    assert kp.shape == (1, 20, 25, 3) and sample['total_frames'] == 20
    assert not kp[0, :3].any() and not kp[0, 18:].any()
    np.testing.assert_allclose(kp[0, 3:18], joints, atol=1e-6)


def test_split_membership():
    names = [
        'S001C001P001R001A001',  # performer 1 train, camera 1 val, odd set
        'S002C002P003R002A010',  # performer 3 val, camera 2 train, even set
        'S017C003P038R001A060',  # performer 38 train, camera 3 train
        'S018C001P045R001A061',  # ntu120 only: performer 45 train
        'S019C002P044R001A120',  # performer 44 val (not in the 120 list)
    ]
    ntu60 = build_splits(names[:3], 'ntu60')
    assert ntu60 == dict(xsub_train=[names[0], names[2]],
                         xsub_val=[names[1]],
                         xview_train=[names[1], names[2]],
                         xview_val=[names[0]])
    ntu120 = build_splits(names, 'ntu120')
    assert ntu120 == dict(xsub_train=[names[0], names[2], names[3]],
                          xsub_val=[names[1], names[4]],
                          xset_train=[names[1], names[3]],
                          xset_val=[names[0], names[2], names[4]])
    assert split_names(parse_sample_name(names[3]),
                       'ntu120') == ('xsub_train', 'xset_train')
    assert not belongs_to(parse_sample_name(names[3]), 'ntu60')
    assert not belongs_to(parse_sample_name('S001C001P001R001A061'), 'ntu60')
    assert belongs_to(parse_sample_name('S001C001P001R001A061'), 'ntu120')
    with pytest.raises(ValueError, match='SsssCccc'):
        parse_sample_name('foo.skeleton')


def test_missing_list_skipping(tmp_path):
    raw = tmp_path / 'raw'
    raw.mkdir()
    for name in ('S001C001P001R001A001', 'S001C002P005R002A008',
                 'S001C001P001R001A061', 'S018C001P045R001A001'):
        single_body_file(raw / f'{name}.skeleton')
    (raw / 'README.txt').write_text('not a sample')
    missing_list = tmp_path / 'missing.txt'
    missing_list.write_text('S001C002P005R002A008\r\nS009C001P001R001A001\n')
    missing = read_missing_list(missing_list)
    assert missing == {'S001C002P005R002A008', 'S009C001P001R001A001'}
    paths, skipped = list_ntu_files([raw], 'ntu60', missing)
    assert [p.stem for p in paths] == ['S001C001P001R001A001']
    assert skipped == 1
    paths, skipped = list_ntu_files([raw], 'ntu120', missing)
    assert [p.stem for p in paths] == [
        'S001C001P001R001A001', 'S001C001P001R001A061', 'S018C001P045R001A001'
    ]
    assert skipped == 1


@needs_real
def test_official_missing_lists_parse():
    ntu60 = read_missing_list(NTU_DIR /
                              'NTU_RGBD_samples_with_missing_skeletons.txt')
    ntu120 = read_missing_list(
        NTU_DIR / 'NTU_RGBD120_samples_with_missing_skeletons.txt')
    assert len(ntu60) == 302 and len(ntu120) == 535
    assert 'S001C002P005R002A008' in ntu60 and ntu60 <= ntu120


def test_truncated_file_names_file_and_line(tmp_path):
    path = single_body_file(tmp_path / 'S001C001P001R001A001.skeleton',
                            num_frames=4)
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 4 * 28
    # cut inside frame 2, after joint 9 of its body (line 1 + 2*28 + 3 + 10)
    path.write_text('\n'.join(lines[:1 + 2 * 28 + 3 + 10]) + '\n')
    with pytest.raises(SkeletonFormatError) as info:
        load_ntu_sample(path)
    assert info.value.line == 1 + 2 * 28 + 3 + 10 + 1
    assert info.value.path == str(path)
    assert f'{path}:{info.value.line}:' in str(info.value)
    assert 'end of file' in str(info.value)


@pytest.mark.parametrize('line_index, replacement, expected', [
    (0, 'three', 'number of frames'),
    (5, '0.1 0.2 abc 1 1 1 1 0 0 0 0 2', 'joint 1'),
    (5, '0.1 0.2', 'joint 1'),
    (3, '24', '25 joints'),
    (2, '1 2 3', 'body info'),
])
def test_malformed_line_names_line(tmp_path, line_index, replacement,
                                   expected):
    path = single_body_file(tmp_path / 'S001C001P001R001A001.skeleton',
                            num_frames=3)
    lines = path.read_text().splitlines()
    lines[line_index] = replacement
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(SkeletonFormatError, match=expected) as info:
        read_skeleton_file(path)
    assert info.value.line == line_index + 1


def test_trailing_garbage_is_an_error(tmp_path):
    path = single_body_file(tmp_path / 'S001C001P001R001A001.skeleton',
                            num_frames=2)
    path.write_text(path.read_text() + '\n1\n')
    with pytest.raises(SkeletonFormatError, match='after the last frame'):
        read_skeleton_file(path)


def run_cli(argv: List[str]) -> int:
    """Run the CLI's main in this process."""
    return load_cli().main(argv)


def test_cli_collects_errors_and_writes_good_ones(tmp_path, capsys):
    raw = tmp_path / 'raw'
    raw.mkdir()
    good = [
        'S001C001P001R001A001', 'S001C002P002R001A002', 'S001C003P004R002A003'
    ]
    for k, name in enumerate(good):
        single_body_file(raw / f'{name}.skeleton', seed=k)
    bad = single_body_file(raw / 'S001C001P003R001A004.skeleton')
    bad.write_text('\n'.join(bad.read_text().splitlines()[:40]))
    single_body_file(raw / 'S001C002P005R002A008.skeleton')  # missing-listed
    missing_list = tmp_path / 'missing.txt'
    missing_list.write_text('S001C002P005R002A008\n')
    out = tmp_path / 'out' / 'ntu60_3d.pkl'
    status = run_cli([
        '--dataset', 'ntu60', '--raw-dir',
        str(raw), '--out',
        str(out), '--missing-list',
        str(missing_list)
    ])
    captured = capsys.readouterr()
    assert status == 1
    assert f'{bad}:41:' in captured.err
    with open(out, 'rb') as f:
        data = pickle.load(f)
    assert [a['frame_dir'] for a in data['annotations']] == good
    assert data['split']['xsub_train'] == good
    assert data['split']['xview_val'] == [good[0]]
    assert data['split']['xview_train'] == good[1:]
    assert data['split']['xsub_val'] == []
    assert [p.name for p in out.parent.iterdir()] == ['ntu60_3d.pkl']


def test_cli_subprocess_clean_run(tmp_path):
    raw = tmp_path / 'raw'
    raw.mkdir()
    names = ['S001C001P001R001A001', 'S002C002P003R001A002']
    for k, name in enumerate(names):
        single_body_file(raw / f'{name}.skeleton', seed=k)
    out = tmp_path / 'ntu120_3d.pkl'
    env = dict(os.environ, HF_HUB_OFFLINE='1')
    result = subprocess.run([
        sys.executable,
        str(CLI), '--dataset', 'ntu120', '--raw-dir',
        str(raw), '--out',
        str(out), '--no-missing-list', '--num-workers', '2'
    ],
                            capture_output=True,
                            text=True,
                            env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    with open(out, 'rb') as f:
        data = pickle.load(f)
    assert data['split'] == dict(xsub_train=[names[0]],
                                 xsub_val=[names[1]],
                                 xset_train=[names[1]],
                                 xset_val=[names[0]])
    assert [a['label'] for a in data['annotations']] == [0, 1]
    assert data['annotations'][0]['keypoint'].shape == (1, 20, 25, 3)


def test_cli_missing_list_absent_is_an_error(tmp_path, capsys):
    raw = tmp_path / 'raw'
    raw.mkdir()
    single_body_file(raw / 'S001C001P001R001A001.skeleton')
    status = run_cli([
        '--dataset', 'ntu60', '--raw-dir',
        str(raw), '--out',
        str(tmp_path / 'x.pkl'), '--missing-list',
        str(tmp_path / 'nope.txt')
    ])
    assert status == 1
    assert 'nope.txt' in capsys.readouterr().err
    assert not (tmp_path / 'x.pkl').exists()


@needs_real
def test_cli_default_missing_list_is_the_shared_copy():
    module = load_cli()
    assert module.default_missing_list('ntu60').resolve() == (
        NTU_DIR / 'NTU_RGBD_samples_with_missing_skeletons.txt').resolve()
