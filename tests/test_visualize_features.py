"""tools/analysis/visualize_features.py: features, t-SNE, DIV, per-class
accuracy and confusion matrices, checked against hand-computed values.

The end-to-end tests train a tiny CoCoDiff model once (three one-epoch
stages on generated NTU-60 data), dump its test predictions with
tools/test.py, and check the tool's numbers against the features it saves
and against the dump.
"""
import json
import math
import pickle

import numpy as np
import pytest
import torch
from conftest import REPO, run_ok, tiny_options

from cocodiff_mm.analysis.feature_diagnostics import (class_mean_distances,
                                                      class_means, diversity)
from cocodiff_mm.analysis.feature_extraction import (FeatureSet,
                                                     summarize_features)
from cocodiff_mm.analysis.feature_plots import (confusion_matrix,
                                                per_class_accuracy,
                                                plot_confusion_matrix,
                                                plot_per_class_accuracy,
                                                plot_tsne, tsne_embedding)
from cocodiff_mm.analysis.feature_report import (DumpError,
                                                 write_per_class_report)


CONFIG = 'configs/ctrgcn_cocodiff_ntu60_xsub.py'
TOOL = 'tools/analysis/visualize_features.py'


def load_tool():
    """The tool's module, imported from its file."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('visualize_features',
                                                  REPO / TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_png(path) -> np.ndarray:
    """The PNG as an (H, W, 3) float array in [0, 1] (it must decode)."""
    import matplotlib.image as mpimg
    return mpimg.imread(str(path))[..., :3]


def has_colour(image: np.ndarray, hex_colour: str, tol: float = 0.02
               ) -> bool:
    """Whether some pixel has (about) this colour."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return bool((np.abs(image - rgb).max(axis=-1) < tol).any())


def plot_area(image: np.ndarray) -> np.ndarray:
    """The inside of the axes frame (legend, ticks and title cut off)."""
    dark = image.max(axis=-1) < 0.2
    columns = np.flatnonzero(dark.mean(axis=0) > 0.5)  # left, right spine
    rows = np.flatnonzero(dark.mean(axis=1) > 0.5)  # top, bottom spine
    return image[rows.min() + 2:rows.max() - 1,
                 columns.min() + 2:columns.max() - 1]


def assert_nontrivial(image: np.ndarray, height: int, width: int) -> None:
    """Expected pixel size, and not one flat colour."""
    assert image.shape[:2] == (height, width)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20


# ----------------------------------------------------------------------
# Pure functions on constructed data
# ----------------------------------------------------------------------
def simplex(count: int, side: float, dim: int) -> torch.Tensor:
    """``count`` points whose pairwise distances are all ``side``."""
    points = torch.zeros(count, dim)
    points[range(count), range(count)] = side / math.sqrt(2)
    return points


def test_summary_matches_closed_form():
    # Classes 0-3 have one sample each, class 4 none. Real features are a
    # regular simplex of side 2 (so DIV is exactly 2 for any pairs), the
    # generated ones the same directions at side 3.
    labels = torch.arange(4)
    real = simplex(4, 2.0, 6)
    generated = simplex(4, 3.0, 6)
    real_scores = torch.eye(5)[labels] * 3  # all correct
    gen_scores = torch.eye(5)[[0, 0, 2, 0]]  # classes 0 and 2 correct
    summary = summarize_features(
        FeatureSet(real, labels, real_scores, generated, gen_scores),
        num_classes=5, div_pairs=50)
    assert summary['div_real'] == pytest.approx(2.0, rel=1e-6)
    assert summary['div_generated'] == pytest.approx(3.0, rel=1e-6)
    assert summary['accuracy'] == 1.0
    assert summary['accuracy_generated'] == 0.5
    # Real means are the real points: own distance 0, other classes at 2.
    assert summary['class_mean_distances']['real'] == pytest.approx(
        dict(own=0.0, nearest_other=2.0, ratio=0.0), abs=1e-6)
    # |3/√2 e_i - 2/√2 e_i| = 1/√2; |3/√2 e_i - 2/√2 e_j| = √(9/2 + 4/2).
    own, other = 1 / math.sqrt(2), math.sqrt(6.5)
    assert summary['class_mean_distances']['generated'] == pytest.approx(
        dict(own=own, nearest_other=other, ratio=own / other), rel=1e-5)
    assert summary['per_class_accuracy'] == dict(
        real=[1.0, 1.0, 1.0, 1.0, None],
        generated=[1.0, 0.0, 1.0, 0.0, None])
    expected = np.zeros((5, 5), dtype=int)
    expected[range(4), range(4)] = 1
    assert summary['confusion_matrix'] == expected.tolist()
    assert summary['num_samples'] == 4 and summary['feature_dim'] == 6


def test_confusion_matrix_and_per_class_accuracy_by_hand():
    predictions = np.array([0, 1, 1, 2, 0, 2, 3])
    labels = np.array([0, 1, 2, 2, 1, 2, 1])
    matrix = confusion_matrix(predictions, labels, 5)
    expected = np.zeros((5, 5), dtype=int)
    for label, prediction in zip(labels, predictions):
        expected[label, prediction] += 1
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.sum() == len(labels)
    np.testing.assert_allclose(per_class_accuracy(matrix),
                               [1.0, 1 / 3, 2 / 3, np.nan, np.nan])
    with pytest.raises(ValueError, match='0..4'):
        confusion_matrix([5], [0], 5)


def test_tsne_keeps_clusters_and_plots_them(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=10.0, size=(3, 16))
    labels = np.repeat(np.arange(3), 8)
    features = centres[labels] + rng.normal(size=(24, 16))
    points = tsne_embedding(features, seed=0)
    assert points.shape == (24, 2)
    # Each point's nearest neighbour in the embedding is of its class.
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert (labels[distances.argmin(axis=1)] == labels).all()

    # Names longer than 'generated': both figures get the same axes box.
    names = ['first class', 'second class', 'third class']
    image = read_png(plot_tsne(points, labels, tmp_path / 'tsne.png',
                               generated=np.arange(24) % 2 == 1,
                               class_names=names, figsize=(6.4, 4.8)))
    assert_nontrivial(image, 480, 640)
    # The points of the three classes in tab10's first three colours.
    inside = plot_area(image)
    for colour in ('#1f77b4', '#ff7f0e', '#2ca02c'):
        assert has_colour(inside, colour)
    assert not has_colour(image, '#d62728')  # no fourth class
    # Generated points have their own marker: all-real points look other.
    all_real = plot_area(read_png(plot_tsne(
        points, labels, tmp_path / 'real.png', class_names=names,
        figsize=(6.4, 4.8))))
    assert all_real.shape == inside.shape
    assert not np.array_equal(all_real, inside)


def test_per_class_bars_and_confusion_figures(tmp_path):
    accuracies = dict(baseline=np.array([0.2, 0.5, 1.0, np.nan, 0.4]),
                      cocodiff=np.array([0.6, 0.1, 0.9, np.nan, 0.8]))
    image = read_png(plot_per_class_accuracy(accuracies,
                                             tmp_path / 'bars.png'))
    assert_nontrivial(image, 450, 600)  # default (max(6, 0.3*5+2), 4.5)
    assert has_colour(image, '#1f77b4') and has_colour(image, '#ff7f0e')

    matrix = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
    image = read_png(plot_confusion_matrix(matrix, tmp_path / 'cm.png',
                                           figsize=(4.0, 3.0), dpi=50))
    assert_nontrivial(image, 150, 200)
    assert has_colour(image, '#08306b', tol=0.03)  # 'Blues' at 1.0


def test_per_class_refuses_dumps_of_other_samples(tmp_path):
    def dump(path, labels):
        records = [dict(pred_score=torch.eye(3)[label], gt_label=
                        torch.tensor([label])) for label in labels]
        with open(path, 'wb') as file:
            pickle.dump(records, file)
        return path

    first = dump(tmp_path / 'a.pkl', [0, 1, 2])
    other = dump(tmp_path / 'b.pkl', [0, 2, 1])
    with pytest.raises(DumpError, match='different samples'):
        write_per_class_report([first, other], tmp_path / 'out')
    with pytest.raises(DumpError, match='one distinct name per dump'):
        write_per_class_report([first, first], tmp_path / 'out',
                               names=['x', 'x'])


# ----------------------------------------------------------------------
# End to end on a tiny trained CoCoDiff model
# ----------------------------------------------------------------------
@pytest.fixture(scope='module')
def trained(tmp_path_factory, ntu60_pickle, text_bank_cache,
            tiny_cocodiff_run):
    """Checkpoints of a tiny CoCoDiff run and a one-clip test dump."""
    work = tmp_path_factory.mktemp('vis_test')
    options = tiny_options(ntu60_pickle, text_bank_cache)
    checkpoint = tiny_cocodiff_run / 'epoch_3.pth'
    dump = work / 'cocodiff.pkl'
    # One clip, as the tool's val_dataloader reads: same predictions.
    run_ok('tools/test.py', CONFIG, str(checkpoint), '--work-dir',
           str(work / 'test'), '--dump', str(dump), '--cfg-options', *options,
           'test_dataloader.dataset.pipeline.2.num_clips=1')
    with open(ntu60_pickle, 'rb') as file:
        data = pickle.load(file)
    by_name = {ann['frame_dir']: ann['label'] for ann in data['annotations']}
    return dict(options=options, checkpoint=checkpoint, dump=dump,
                val_names=data['split']['xsub_val'],
                train_names=data['split']['xsub_train'],
                val_labels=[by_name[n] for n in data['split']['xsub_val']])


def test_features_command(trained, tmp_path):
    out = tmp_path / 'vis'
    run_ok(TOOL, 'features', CONFIG, str(trained['checkpoint']), '--out-dir',
           str(out), '--classes', '0', '1', '2', '3', '4', '--cfg-options',
           *trained['options'])
    metrics = json.loads((out / 'metrics.json').read_text())
    data = np.load(out / 'features.npz')
    real, labels = data['real'], data['labels']
    generated, scores = data['generated'], data['real_scores']

    np.testing.assert_array_equal(labels, trained['val_labels'])
    assert real.shape == generated.shape == (60, 32)
    assert not np.allclose(real, generated)
    # DIV and class-mean distances are those of the saved features.
    for key, values in (('div_real', real), ('div_generated', generated)):
        assert metrics[key] == pytest.approx(diversity(
            torch.from_numpy(values), 200,
            torch.Generator().manual_seed(0)), rel=1e-6)
    labels_t = torch.from_numpy(labels)
    means = class_means(torch.from_numpy(real), labels_t, 60)
    assert metrics['class_mean_distances']['generated'] == pytest.approx(
        class_mean_distances(torch.from_numpy(generated), labels_t, means))
    predictions = scores.argmax(axis=1)
    assert metrics['accuracy'] == pytest.approx(
        (predictions == labels).mean())
    assert metrics['accuracy_generated'] == pytest.approx(
        (data['generated_scores'].argmax(axis=1) == labels).mean())
    # Confusion matrix: every sample counted once, where the model put it.
    matrix = np.array(metrics['confusion_matrix'])
    assert matrix.shape == (60, 60) and matrix.sum() == 60
    for label, prediction in zip(labels, predictions):
        assert matrix[label, prediction] == 1  # one sample per class
    # The scores are the stock model's: tools/test.py dumped their softmax
    # (GCNHead's average_clips='prob', one clip).
    with open(trained['dump'], 'rb') as file:
        dumped = {r['frame_dir']: r['pred_score'].numpy()
                  for r in pickle.load(file)}
    np.testing.assert_allclose(
        torch.from_numpy(scores).softmax(dim=1).numpy(),
        np.stack([dumped[n] for n in trained['val_names']]),
        rtol=1e-4, atol=1e-6)

    from cocodiff_mm.models.text.class_texts import load_class_texts
    assert metrics['class_names'] == list(
        load_class_texts('ntu120').labels[:60])
    assert metrics['tsne_classes'] == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(labels[data['tsne_index']], range(5))
    assert data['tsne_generated'].sum() == 5
    assert data['tsne_points'].shape == (10, 2)
    assert metrics['settings']['split'] == 'xsub_val'

    image = read_png(out / 'tsne.png')
    assert_nontrivial(image, 600, 800)
    for colour in ('#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd'):
        assert has_colour(image, colour)
    assert_nontrivial(read_png(out / 'confusion.png'), 1200, 1350)


def test_extraction_split_override_and_seed(trained, tmp_path):
    import argparse

    from mmengine.config import Config, DictAction

    from cocodiff_mm.analysis.feature_extraction import (
        build_split_dataloader, extract_features, load_model)
    from cocodiff_mm.engine.checkpoint_match import is_training_only

    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(parser.parse_args(
        ['--cfg-options', *trained['options']]).cfg_options)
    model, can_generate = load_model(cfg, str(trained['checkpoint']))
    assert can_generate
    loader = build_split_dataloader(cfg, 'val_dataloader', 'xsub_train')
    dataset = loader.dataset
    names = [dataset.get_data_info(i)['frame_dir']
             for i in range(len(dataset))]
    assert names == trained['train_names']

    state = torch.get_rng_state()
    first = extract_features(model, loader, seed=3)
    again = extract_features(model, loader, seed=3)
    other = extract_features(model, loader, seed=4)
    assert torch.equal(torch.get_rng_state(), state)  # forked RNG
    assert torch.equal(first.generated, again.generated)
    assert not torch.allclose(first.generated, other.generated)
    assert torch.equal(first.real, other.real)
    assert model.training is False

    # Without the diffusion (an inference export): real features only.
    checkpoint = torch.load(trained['checkpoint'], map_location='cpu',
                            weights_only=False)
    checkpoint['state_dict'] = {
        key: value for key, value in checkpoint['state_dict'].items()
        if not is_training_only(key)}
    exported = tmp_path / 'inference.pth'
    torch.save(checkpoint, exported)
    _, can_generate = load_model(cfg, str(exported))
    assert not can_generate


def test_per_class_command(trained, tmp_path):
    with open(trained['dump'], 'rb') as file:
        records = pickle.load(file)
    # A second model: right on even classes, one class off on odd ones.
    second = []
    for record in records:
        label = int(record['gt_label'][0])
        target = label if label % 2 == 0 else (label + 1) % 60
        second.append(dict(record, pred_score=torch.eye(60)[target]))
    other = tmp_path / 'other.pkl'
    with open(other, 'wb') as file:
        pickle.dump(second, file)
    out = tmp_path / 'fig5'
    names_file = tmp_path / 'names.txt'
    names_file.write_text(''.join(f'action {i}\n' for i in range(60)))
    # In this process (the CLI's main, arguments included): saves the
    # start-up of a second interpreter.
    assert load_tool().main([
        'per-class', '--dumps', str(trained['dump']), str(other), '--names',
        'baseline', 'cocodiff', '--label-names', str(names_file),
        '--out-dir', str(out)]) == 0
    report = json.loads((out / 'per_class.json').read_text())
    assert report['class_names'][7] == 'action 7'

    for name, dump in (('baseline', records), ('cocodiff', second)):
        hits, counts = np.zeros(60), np.zeros(60)
        matrix = np.zeros((60, 60), dtype=int)
        for record in dump:
            label = int(record['gt_label'][0])
            prediction = int(np.argmax(np.asarray(record['pred_score'])))
            counts[label] += 1
            hits[label] += prediction == label
            matrix[label, prediction] += 1
        model = report['models'][name]
        assert model['per_class_accuracy'] == pytest.approx(
            list(hits / counts))
        assert model['accuracy'] == pytest.approx(hits.sum() / counts.sum())
        assert model['confusion_matrix'] == matrix.tolist()
        assert np.sum(model['confusion_matrix']) == len(dump) == 60
        assert_nontrivial(read_png(out / f'confusion_{name}.png'), 1200,
                          1350)
    assert report['models']['cocodiff']['per_class_accuracy'] == [
        float(c % 2 == 0) for c in range(60)]
    image = read_png(out / 'per_class_accuracy.png')
    assert_nontrivial(image, 450, 2000)  # (0.3 * 60 + 2, 4.5) inches
    assert has_colour(image, '#ff7f0e')  # the second model's bars
