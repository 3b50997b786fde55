"""The output folders of ``tools/analysis/visualize_features.py``.

``features`` (one checkpoint on one split, see :func:`write_feature_report`)::

    features.npz   real, labels, real_scores[, generated, generated_scores],
                   tsne_points, tsne_index, tsne_generated
    tsne.png       t-SNE of the chosen classes; real 'o', generated 'x'
    confusion.png  confusion matrix of the model's predictions
    metrics.json   accuracy, DIV, class-mean distances, per-class accuracy,
                   confusion matrix, class names and the run's settings

``per-class`` (several ``tools/test.py --dump`` pickles, see
:func:`write_per_class_report`)::

    per_class_accuracy.png   grouped bars, one colour per model (Fig. 5)
    confusion_<name>.png     one per model
    per_class.json           per-class and overall accuracies, confusions
"""
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..utils import atomic_write_json
from ..utils.safe_pickle import UnreadablePickleError, safe_pickle_load
from ..utils.topk import check_finite_scores, top1_predictions
from .feature_plots import (confusion_matrix, per_class_accuracy,
                            plot_confusion_matrix, plot_per_class_accuracy,
                            plot_tsne, tsne_embedding)

PathLike = Union[str, Path]

#: Keys that may carry a sample's name in a dump (first found wins).
NAME_KEYS = ('frame_dir', 'filename')

#: Classes drawn in the t-SNE figure when none are chosen.
DEFAULT_TSNE_CLASSES = 10


class DumpError(ValueError):
    """A dump that cannot be read or compared; the message says why."""


@dataclass(frozen=True)
class DumpPredictions:
    """The predictions of one ``tools/test.py --dump`` pickle.

    Attributes:
        path (str): The file.
        scores (np.ndarray): Class scores (N, K), float64.
        labels (np.ndarray): True classes (N,), int64.
        names (tuple[str], optional): Sample names, when the dump has them.
    """
    path: str
    scores: np.ndarray
    labels: np.ndarray
    names: Optional[Tuple[str, ...]]

    @property
    def predictions(self) -> np.ndarray:
        """np.ndarray: Top-1 classes (N,); a true class tied for the best
        score counts as a miss (:func:`~cocodiff_mm.utils.topk.
        top1_predictions`)."""
        return top1_predictions(self.scores, self.labels)


def _as_array(value) -> np.ndarray:
    """A tensor or array-like as a NumPy array."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def read_dump(path: PathLike) -> DumpPredictions:
    """Read a ``tools/test.py --dump`` pickle (mmengine's ``DumpResults``).

    Args:
        path (str | Path): The pickle: a list of one dict per sample with
            ``pred_score`` (K,) and ``gt_label`` (one label).

    Returns:
        DumpPredictions: Scores, labels and (if every sample has one) names.

    Raises:
        DumpError: If the file is missing, asks the unpickler for anything
            but numpy, torch tensors and builtin containers (nothing in it
            runs), is not such a list, or holds a NaN or infinite score.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise DumpError(f'dump {path} does not exist (write it with '
                        'tools/test.py CONFIG CHECKPOINT --dump FILE.pkl)')
    try:
        records = safe_pickle_load(path, 'a tools/test.py --dump pickle')
    except UnreadablePickleError as error:
        raise DumpError(str(error)) from error
    if not isinstance(records, list) or not records or not all(
            isinstance(record, dict) and 'pred_score' in record
            and 'gt_label' in record for record in records):
        raise DumpError(f'{path} is not a tools/test.py --dump pickle (a '
                        'non-empty list of dicts with pred_score and '
                        'gt_label)')
    scores = [_as_array(record['pred_score']).reshape(-1)
              for record in records]
    labels = [_as_array(record['gt_label']).reshape(-1) for record in records]
    if len({score.shape for score in scores}) != 1 or any(
            label.size != 1 for label in labels):
        raise DumpError(f'{path}: samples must all have single-label scores '
                        'of one class count')
    names = [next((record[key] for key in NAME_KEYS if key in record), None)
             for record in records]
    scores = np.stack(scores).astype(np.float64)
    check_finite_scores(scores, [f'sample {i}' if n is None else n
                                 for i, n in enumerate(names)],
                        path, error=DumpError)
    return DumpPredictions(
        path=path,
        scores=scores,
        labels=np.concatenate(labels).astype(np.int64),
        names=None if None in names else tuple(str(n) for n in names))


def check_same_samples(dumps: Sequence[DumpPredictions]) -> None:
    """Refuse dumps that do not hold the same samples and classes.

    Samples are compared by name when every dump has names, else by
    position (the label sequences must be equal).

    Raises:
        DumpError: Naming the two dumps that differ.
    """
    first = dumps[0]
    for dump in dumps[1:]:
        if dump.scores.shape[1] != first.scores.shape[1]:
            raise DumpError(f'{dump.path} has {dump.scores.shape[1]} classes '
                            f'but {first.path} {first.scores.shape[1]}')
        if first.names is not None and dump.names is not None:
            same = sorted(zip(first.names, first.labels.tolist())) == \
                sorted(zip(dump.names, dump.labels.tolist()))
        else:
            same = np.array_equal(first.labels, dump.labels)
        if not same:
            raise DumpError(f'{dump.path} and {first.path} hold different '
                            'samples or labels: dump both on the same split')


def file_stem(name: str) -> str:
    """``name`` as a safe file-name part (other characters become ``_``)."""
    return re.sub(r'[^\w.-]+', '_', name).strip('._') or 'model'


def _nan_to_none(values: np.ndarray) -> List[Optional[float]]:
    return [None if np.isnan(value) else float(value) for value in values]


def write_per_class_report(dumps: Sequence[PathLike],
                           out_dir: PathLike,
                           names: Optional[Sequence[str]] = None,
                           class_names: Optional[Sequence[str]] = None,
                           classes: Optional[Sequence[int]] = None) -> Dict:
    """Per-class accuracies and confusion matrices of several dumps.

    Args:
        dumps (Sequence[str | Path]): ``tools/test.py --dump`` pickles of
            the same split (e.g. baseline and CoCoDiff).
        out_dir (str | Path): Output folder (created).
        names (Sequence[str], optional): One name per dump. Defaults to None
            (the file names without extension).
        class_names (Sequence[str], optional): Name of every class.
            Defaults to None (``class <i>``).
        classes (Sequence[int], optional): Classes drawn in the bar plot.
            Defaults to None (all).

    Returns:
        dict: What ``per_class.json`` holds: ``class_names``,
        ``classes_plotted`` and, per model name, ``dump``,
        ``num_samples``, ``accuracy``, ``mean_class_accuracy``,
        ``per_class_accuracy`` (None: no sample) and ``confusion_matrix``.

    Raises:
        DumpError: For unreadable or mismatching dumps, or bad names.
    """
    names = list(names) if names else [Path(d).stem for d in dumps]
    if len(names) != len(dumps) or len(set(names)) != len(names):
        raise DumpError(f'--names needs one distinct name per dump, got '
                        f'{len(names)} names for {len(dumps)} dumps')
    predictions = [read_dump(path) for path in dumps]
    check_same_samples(predictions)
    num_classes = predictions[0].scores.shape[1]
    class_names = _checked_class_names(class_names, num_classes)
    classes = _checked_classes(classes, num_classes, list(range(num_classes)))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = dict(class_names=class_names, classes_plotted=classes, models={})
    accuracies = {}
    for name, dump in zip(names, predictions):
        matrix = confusion_matrix(dump.predictions, dump.labels, num_classes)
        per_class = per_class_accuracy(matrix)
        accuracies[name] = per_class
        report['models'][name] = dict(
            dump=dump.path,
            num_samples=len(dump.labels),
            accuracy=float(np.trace(matrix) / matrix.sum()),
            mean_class_accuracy=float(np.nanmean(per_class)),
            per_class_accuracy=_nan_to_none(per_class),
            confusion_matrix=matrix.tolist())
        plot_confusion_matrix(matrix, out_dir / f'confusion_{file_stem(name)}'
                              '.png', class_names, title=name)
    plot_per_class_accuracy(accuracies, out_dir / 'per_class_accuracy.png',
                            class_names, classes,
                            title='per-class top-1 accuracy')
    atomic_write_json(out_dir / 'per_class.json', report)
    return report


def _checked_class_names(class_names: Optional[Sequence[str]],
                         num_classes: int) -> List[str]:
    """``class_names`` as a list of ``num_classes`` (or ``class <i>``)."""
    if class_names is None:
        return [f'class {index}' for index in range(num_classes)]
    if len(class_names) != num_classes:
        raise DumpError(f'{len(class_names)} class names for {num_classes} '
                        'classes')
    return list(class_names)


def _checked_classes(classes: Optional[Sequence[int]], num_classes: int,
                     default: List[int]) -> List[int]:
    """``classes`` as a list of valid, distinct indices (or ``default``)."""
    if classes is None:
        return default
    classes = [int(c) for c in classes]
    wrong = [c for c in classes if not 0 <= c < num_classes]
    if wrong or len(set(classes)) != len(classes) or not classes:
        raise ValueError(f'--classes must be distinct indices in '
                         f'0..{num_classes - 1}, got {classes}')
    return classes


def tsne_selection(labels: np.ndarray, classes: Sequence[int],
                   max_per_class: Optional[int] = None) -> np.ndarray:
    """Indices of the samples of ``classes`` (the first ``max_per_class``
    of each, in dataset order).

    Args:
        labels (np.ndarray): Labels (N,).
        classes (Sequence[int]): Classes to keep.
        max_per_class (int, optional): Samples kept per class. Defaults to
            None (all).

    Returns:
        np.ndarray: Sorted int64 indices.
    """
    labels = np.asarray(labels)
    chosen = [np.flatnonzero(labels == c)[:max_per_class] for c in classes]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def write_feature_report(features,
                         out_dir: PathLike,
                         num_classes: int,
                         class_names: Optional[Sequence[str]] = None,
                         classes: Optional[Sequence[int]] = None,
                         max_per_class: Optional[int] = 200,
                         div_pairs: int = 200,
                         seed: int = 0,
                         settings: Optional[Dict] = None) -> Dict:
    """Write the ``features`` output folder (see the module docstring).

    Args:
        features (FeatureSet): From :func:`.feature_extraction.
            extract_features`.
        out_dir (str | Path): Output folder (created).
        num_classes (int): Number of classes K of the classifier.
        class_names (Sequence[str], optional): Name of every class.
            Defaults to None (``class <i>``).
        classes (Sequence[int], optional): Classes of the t-SNE figure.
            Defaults to None (the first :data:`DEFAULT_TSNE_CLASSES`).
        max_per_class (int, optional): Real samples per class in the t-SNE
            (each with its generated one). Defaults to 200.
        div_pairs (int): Pairs of the DIV estimate. Defaults to 200.
        seed (int): Seed of the DIV pairs and of t-SNE. Defaults to 0.
        settings (dict, optional): Run settings stored in the JSON as
            ``settings`` (config, checkpoint, split, ...). Defaults to None.

    Returns:
        dict: What ``metrics.json`` holds: :func:`.feature_extraction.
        summarize_features` plus ``class_names``, ``tsne_classes``,
        ``div_pairs``, ``div_seed`` and ``settings``.
    """
    from .feature_extraction import summarize_features

    class_names = _checked_class_names(class_names, num_classes)
    classes = _checked_classes(
        classes, num_classes,
        list(range(min(DEFAULT_TSNE_CLASSES, num_classes))))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = features.arrays()
    labels = arrays['labels']

    index = tsne_selection(labels, classes, max_per_class)
    if len(index) == 0:
        raise ValueError(f'no sample of classes {classes} in the split')
    has_generated = 'generated' in arrays
    points = arrays['real'][index]
    is_generated = np.zeros(len(index), dtype=bool)
    if has_generated:
        points = np.concatenate([points, arrays['generated'][index]])
        is_generated = np.repeat([False, True], len(index))
    embedding = tsne_embedding(points, seed=seed)
    plot_labels = np.tile(labels[index], 2 if has_generated else 1)
    plot_tsne(embedding, plot_labels, out_dir / 'tsne.png', is_generated,
              class_names,
              title='t-SNE of pooled features' +
              (' (o real, x generated)' if has_generated else ''))

    summary = summarize_features(features, num_classes, div_pairs, seed)
    plot_confusion_matrix(np.asarray(summary['confusion_matrix']),
                          out_dir / 'confusion.png', class_names,
                          title='confusion matrix (real features)')
    np.savez(out_dir / 'features.npz', **arrays, tsne_points=embedding,
             tsne_index=index, tsne_generated=is_generated)
    report = dict(summary, class_names=class_names, tsne_classes=classes,
                  div_pairs=div_pairs, div_seed=seed,
                  settings=dict(settings or {}))
    atomic_write_json(out_dir / 'metrics.json', report)
    return report
