"""Tests of the UTD-MHAD converter, its graph layout and its CLI."""
import importlib.util
import os
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import cocodiff_mm  # noqa: F401  (runtime fixes before mmaction)
from cocodiff_mm.datasets.annotation_check import check_annotation_file
from cocodiff_mm.datasets.layouts import (UTD_MHAD_BONE_PAIRS,
                                          UTD_MHAD_JOINT_NAMES,
                                          UTD_MHAD_LAYOUT)
from cocodiff_mm.datasets.utd_mhad import (build_utd_splits, list_utd_files,
                                           load_utd_sample, parse_utd_name)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(
    os.environ.get('COCODIFF_SHARED_DATA', REPO.parent / 'shared' / 'data'))
UTD_DIR = SHARED / 'utd_mhad'
CLI = REPO / 'tools' / 'data' / 'utd_mhad_to_pkl.py'

needs_real = pytest.mark.skipif(
    not (UTD_DIR / 'skeleton').is_dir(),
    reason=f'UTD-MHAD not found at {UTD_DIR} (set COCODIFF_SHARED_DATA to '
    f'the shared data folder)')


def load_cli():
    """Import tools/data/utd_mhad_to_pkl.py as a module."""
    spec = importlib.util.spec_from_file_location('utd_mhad_to_pkl', CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """The whole dataset converted once through the CLI."""
    if not (UTD_DIR / 'skeleton').is_dir():
        pytest.skip(f'UTD-MHAD not found at {UTD_DIR}')
    out = tmp_path_factory.mktemp('utd') / 'utd_mhad_3d.pkl'
    argv = ['--data-dir', str(UTD_DIR), '--out', str(out)]
    assert load_cli().main(argv) == 0
    with open(out, 'rb') as f:
        return out, pickle.load(f)


@needs_real
def test_cli_whole_folder_splits_and_classes(converted):
    _, data = converted
    annotations = data['annotations']
    assert len(annotations) == 861
    assert len(data['split']['xsub_train']) == 431
    assert len(data['split']['xsub_val']) == 430
    assert set(data['split']) == {
        'xsub_train', 'xsub_val', 'xsub_dev_train', 'xsub_dev_val',
        'xsub_dev_train_s1', 'xsub_dev_train_s13'}
    # The smaller training sets: 1 and 2 of the 3 subjects, nested.
    sizes = [len(data['split'][k]) for k in
             ('xsub_dev_train_s1', 'xsub_dev_train_s13', 'xsub_dev_train')]
    assert sizes[0] < sizes[1] < sizes[2] == 323
    assert set(data['split']['xsub_dev_train_s1']) < set(
        data['split']['xsub_dev_train_s13']) < set(
        data['split']['xsub_dev_train'])
    # The carve-out: subject 7 of the training subjects, nothing else.
    dev_train, dev_val = (set(data['split'][k])
                          for k in ('xsub_dev_train', 'xsub_dev_val'))
    assert dev_train | dev_val == set(data['split']['xsub_train'])
    assert not dev_train & dev_val
    assert {parse_utd_name(n)[1] for n in dev_val} == {7}
    assert sorted({a['label'] for a in annotations}) == list(range(27))
    by_name = {a['frame_dir']: a for a in annotations}
    for name in data['split']['xsub_train']:
        assert parse_utd_name(name)[1] in (1, 3, 5, 7)
    for name in data['split']['xsub_val']:
        assert parse_utd_name(name)[1] in (2, 4, 6, 8)
    assert not set(data['split']['xsub_train']) & set(
        data['split']['xsub_val'])
    # every class on every side
    for split in data['split']:
        counts = Counter(by_name[n]['label'] for n in data['split'][split])
        assert len(counts) == 27


@needs_real
def test_shapes_and_values(converted):
    _, data = converted
    lengths = []
    for sample in data['annotations']:
        kp = sample['keypoint']
        assert kp.dtype == np.float32 and kp.ndim == 4
        assert kp.shape[0] == 1 and kp.shape[2:] == (20, 3)
        assert kp.shape[1] == sample['total_frames']
        lengths.append(kp.shape[1])
    assert min(lengths) == 41 and max(lengths) == 125
    sample = next(a for a in data['annotations']
                  if a['frame_dir'] == 'a1_s1_t1')
    assert sample['label'] == 0 and sample['total_frames'] == 48
    # d_skel[:, :, 0] of a1_s1_t1_skeleton.mat, read with scipy.io.loadmat
    np.testing.assert_allclose(sample['keypoint'][0, 0, 0],
                               [-0.04576265, 0.48398542, 2.83018947],
                               rtol=1e-6)
    np.testing.assert_allclose(sample['keypoint'][0, 0, 19],
                               [0.09826498, -1.08133364, 2.92298913],
                               rtol=1e-6)


@needs_real
def test_matches_d_skel_transposed():
    from scipy.io import loadmat
    path = UTD_DIR / 'skeleton' / 'a27_s8_t3_skeleton.mat'
    sample = load_utd_sample(path)
    skel = loadmat(str(path))['d_skel']
    assert sample['frame_dir'] == 'a27_s8_t3' and sample['label'] == 26
    np.testing.assert_allclose(sample['keypoint'][0],
                               skel.transpose(2, 0, 1).astype(np.float32))


@needs_real
def test_pickle_passes_check_and_mmaction2_pipeline(converted):
    path, _ = converted
    assert check_annotation_file(path,
                                 num_joints=20,
                                 num_coords=3,
                                 num_classes=27) == []
    from mmaction.datasets import PoseDataset
    from mmaction.utils import register_all_modules
    register_all_modules()
    pipeline = [
        dict(type='PreNormalize3D', zaxis=[3, 2], xaxis=[8, 4]),
        dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
        dict(type='UniformSampleFrames', clip_len=16),
        dict(type='PoseDecode'),
        dict(type='FormatGCNInput', num_person=2),
        dict(type='PackActionInputs')
    ]
    dataset = PoseDataset(str(path), pipeline, split='xsub_val')
    assert len(dataset) == 430
    out = dataset[0]
    assert tuple(out['inputs'].shape) == (1, 2, 16, 20, 3)
    assert 0 <= out['data_samples'].gt_label.item() < 27


def test_layout_builds_mmaction2_graph():
    from mmaction.models.utils import Graph
    assert UTD_MHAD_LAYOUT['num_node'] == 20
    assert UTD_MHAD_JOINT_NAMES[UTD_MHAD_LAYOUT['center']] == 'spine'
    edges = UTD_MHAD_LAYOUT['inward']
    assert len(edges) == 19 and len(set(edges)) == 19
    graph = Graph(layout=UTD_MHAD_LAYOUT, mode='spatial', max_hop=25)
    assert graph.A.shape == (3, 20, 20)
    assert np.isfinite(graph.hop_dis).all()  # connected tree
    hop_to_center = graph.hop_dis[:, UTD_MHAD_LAYOUT['center']]
    for child, parent in edges:  # inward edges point towards the centre
        assert hop_to_center[parent] == hop_to_center[child] - 1
    names = UTD_MHAD_JOINT_NAMES
    named = {(names[i], names[j]) for i, j in edges}
    assert ('head', 'shoulder_center') in named
    assert ('right_hand', 'right_wrist') in named
    assert ('left_hip', 'hip_center') in named
    assert ('right_foot', 'right_ankle') in named
    assert len(UTD_MHAD_BONE_PAIRS) == 20
    assert sorted(j for j, _ in UTD_MHAD_BONE_PAIRS) == list(range(20))
    Graph(layout=UTD_MHAD_LAYOUT, mode='stgcn_spatial')


def test_names_and_splits():
    assert parse_utd_name('a12_s3_t4_skeleton.mat') == (12, 3, 4)
    assert parse_utd_name('a12_s3_t4') == (12, 3, 4)
    with pytest.raises(ValueError, match='aA_sS_tT'):
        parse_utd_name('a12_s3.mat')
    assert build_utd_splits([
        'a1_s1_t1', 'a1_s2_t1', 'a5_s7_t2', 'a2_s3_t1', 'a3_s5_t1'
    ]) == dict(xsub_train=['a1_s1_t1', 'a5_s7_t2', 'a2_s3_t1', 'a3_s5_t1'],
               xsub_val=['a1_s2_t1'],
               xsub_dev_train=['a1_s1_t1', 'a2_s3_t1', 'a3_s5_t1'],
               xsub_dev_val=['a5_s7_t2'],
               xsub_dev_train_s1=['a1_s1_t1'],
               xsub_dev_train_s13=['a1_s1_t1', 'a2_s3_t1'])
    with pytest.raises(ValueError, match='subject 9'):
        build_utd_splits(['a1_s9_t1'])


def test_bad_files_are_reported_and_cli_exits_1(tmp_path, capsys):
    from scipy.io import savemat
    rng = np.random.default_rng(0)
    savemat(tmp_path / 'a2_s1_t1_skeleton.mat',
            dict(d_skel=rng.normal(size=(20, 3, 30))))
    savemat(tmp_path / 'a3_s2_t1_skeleton.mat',
            dict(d_skel=rng.normal(size=(25, 3, 30))))
    savemat(tmp_path / 'a4_s2_t1_skeleton.mat',
            dict(other=np.zeros((20, 3, 5))))
    (tmp_path / 'a5_s2_t1_skeleton.mat').write_bytes(b'not a mat file')
    assert len(list_utd_files(tmp_path)) == 4
    with pytest.raises(ValueError, match=r'a3_s2_t1.*\(20, 3, T\)'):
        load_utd_sample(tmp_path / 'a3_s2_t1_skeleton.mat')
    with pytest.raises(ValueError, match=r'a4_s2_t1.*d_skel'):
        load_utd_sample(tmp_path / 'a4_s2_t1_skeleton.mat')
    with pytest.raises(FileNotFoundError, match='a9_s1_t1'):
        load_utd_sample(tmp_path / 'a9_s1_t1_skeleton.mat')
    out = tmp_path / 'out.pkl'
    # --mat-dir is an alias of --data-dir
    argv = ['--mat-dir', str(tmp_path), '--out', str(out)]
    assert load_cli().main(argv) == 1
    err = capsys.readouterr().err
    assert '3 file(s) failed' in err
    for name in ('a3_s2_t1', 'a4_s2_t1', 'a5_s2_t1'):
        assert name in err
    with open(out, 'rb') as f:
        data = pickle.load(f)
    assert [a['frame_dir'] for a in data['annotations']] == ['a2_s1_t1']
    assert data['annotations'][0]['label'] == 1
    assert data['split'] == dict(xsub_train=['a2_s1_t1'], xsub_val=[],
                                 xsub_dev_train=['a2_s1_t1'], xsub_dev_val=[],
                                 xsub_dev_train_s1=['a2_s1_t1'],
                                 xsub_dev_train_s13=['a2_s1_t1'])
