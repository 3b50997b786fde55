"""Figures of features and predictions: t-SNE, per-class accuracy, confusion.

Pure functions of NumPy arrays: the numbers (:func:`confusion_matrix`,
:func:`per_class_accuracy`, :func:`tsne_embedding`) and the figures that
draw them into PNG files. Used by ``tools/analysis/visualize_features.py``.

The figures are drawn on a bare Agg canvas (``matplotlib.figure.Figure``,
no ``pyplot``): nothing touches matplotlib's global backend or state, and
a PNG of ``figsize`` inches at ``dpi`` is exactly ``figsize * dpi`` pixels.
scikit-learn and matplotlib are imported inside the functions that need
them.
"""
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np

PathLike = Union[str, Path]

#: Markers of the real and the generated points of a t-SNE figure.
REAL_MARKER = 'o'
GENERATED_MARKER = 'x'


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray,
                     num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        predictions (np.ndarray): Predicted classes (N,).
        labels (np.ndarray): True classes (N,).
        num_classes (int): Number of classes K.

    Returns:
        np.ndarray: int64 (K, K); row = true class, column = prediction.
        It sums to N.

    Raises:
        ValueError: If the arrays differ in length or hold a class outside
            ``0 .. K-1``.
    """
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(predictions) != len(labels):
        raise ValueError(f'{len(predictions)} predictions but '
                         f'{len(labels)} labels')
    for name, values in (('predictions', predictions), ('labels', labels)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f'{name} must lie in 0..{num_classes - 1}, got '
                             f'{values.min()}..{values.max()}')
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Top-1 accuracy of every class from a confusion matrix.

    Args:
        matrix (np.ndarray): Counts (K, K) from :func:`confusion_matrix`.

    Returns:
        np.ndarray: float64 (K,): correct / samples of each true class, NaN
        for a class without samples.
    """
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1).astype(np.float64)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(totals > 0, np.diag(matrix) / totals, np.nan)


def tsne_embedding(features: np.ndarray,
                   perplexity: float = 30.0,
                   seed: int = 0) -> np.ndarray:
    """2-D t-SNE embedding (scikit-learn's ``TSNE``, PCA initialisation).

    Args:
        features (np.ndarray): Features (N, C), N >= 3.
        perplexity (float): t-SNE perplexity, lowered to ``(N - 1) / 3``
            for small N (scikit-learn needs it below N). Defaults to 30.0.
        seed (int): ``random_state``. Defaults to 0.

    Returns:
        np.ndarray: float64 (N, 2).
    """
    from sklearn.manifold import TSNE

    features = np.asarray(features, dtype=np.float64)
    count = len(features)
    if count < 3:
        raise ValueError(f't-SNE needs at least 3 points, got {count}')
    perplexity = min(float(perplexity), (count - 1) / 3.0)
    tsne = TSNE(n_components=2, perplexity=perplexity, init='pca',
                random_state=seed)
    return tsne.fit_transform(features)


def _new_figure(figsize: Tuple[float, float], dpi: int):
    """A figure on its own Agg canvas (no pyplot, no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, dpi=dpi, layout='constrained')
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: PathLike) -> Path:
    """Write ``figure`` as a PNG at its own size and dpi (parents made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format='png', dpi=figure.dpi)
    return path


def _class_colours(count: int) -> np.ndarray:
    """``count`` distinct RGBA colours (tab10, tab20, then a hue wheel)."""
    from matplotlib import colormaps

    if count <= 10:
        return colormaps['tab10'](np.arange(count))
    if count <= 20:
        return colormaps['tab20'](np.arange(count))
    return colormaps['hsv'](np.linspace(0, 1, count, endpoint=False))


def plot_tsne(points: np.ndarray,
              labels: np.ndarray,
              path: PathLike,
              generated: Optional[np.ndarray] = None,
              class_names: Optional[Sequence[str]] = None,
              title: Optional[str] = None,
              figsize: Tuple[float, float] = (8.0, 6.0),
              dpi: int = 100) -> Path:
    """Scatter plot of a 2-D embedding, coloured by class.

    Real points are drawn as :data:`REAL_MARKER`, generated ones as
    :data:`GENERATED_MARKER`, in their class's colour.

    Args:
        points (np.ndarray): Embedded points (N, 2).
        labels (np.ndarray): Class of each point (N,).
        path (str | Path): PNG to write.
        generated (np.ndarray, optional): Boolean mask (N,) of generated
            points. Defaults to None (all real).
        class_names (Sequence[str], optional): Name of every class index,
            for the legend. Defaults to None (the indices).
        title (str, optional): Figure title. Defaults to None.
        figsize (tuple[float, float]): Size in inches. Defaults to
            ``(8.0, 6.0)``.
        dpi (int): Pixels per inch. Defaults to 100.

    Returns:
        Path: The PNG.
    """
    from matplotlib.lines import Line2D

    points = np.asarray(points)
    labels = np.asarray(labels).reshape(-1)
    generated = (np.zeros(len(points), dtype=bool) if generated is None
                 else np.asarray(generated, dtype=bool))
    classes = sorted(set(labels.tolist()))
    colours = dict(zip(classes, _class_colours(len(classes))))
    figure = _new_figure(figsize, dpi)
    axes = figure.add_subplot()
    handles = []
    for label in classes:
        name = class_names[label] if class_names else str(label)
        for is_generated, marker in ((False, REAL_MARKER),
                                     (True, GENERATED_MARKER)):
            chosen = (labels == label) & (generated == is_generated)
            if chosen.any():
                axes.scatter(points[chosen, 0], points[chosen, 1], s=18,
                             marker=marker, color=colours[label],
                             linewidths=1.0)
        handles.append(Line2D([], [], linestyle='', marker='s',
                              color=colours[label], label=name))
    if generated.any():
        handles += [
            Line2D([], [], linestyle='', marker=REAL_MARKER, color='black',
                   label='real'),
            Line2D([], [], linestyle='', marker=GENERATED_MARKER,
                   color='black', label='generated')
        ]
    axes.legend(handles=handles, fontsize='x-small', loc='center left',
                bbox_to_anchor=(1.0, 0.5), frameon=False)
    axes.set_xticks([])
    axes.set_yticks([])
    if title:
        axes.set_title(title)
    return _save(figure, path)


def plot_per_class_accuracy(accuracies: Mapping[str, np.ndarray],
                            path: PathLike,
                            class_names: Optional[Sequence[str]] = None,
                            classes: Optional[Sequence[int]] = None,
                            title: Optional[str] = None,
                            figsize: Optional[Tuple[float, float]] = None,
                            dpi: int = 100) -> Path:
    """Grouped bars of per-class accuracies of several models (Fig. 5).

    Args:
        accuracies (Mapping[str, np.ndarray]): Model name to its per-class
            accuracies (K,) in [0, 1] (NaN: no sample; drawn as no bar).
        path (str | Path): PNG to write.
        class_names (Sequence[str], optional): Name of every class index,
            for the x ticks. Defaults to None (the indices).
        classes (Sequence[int], optional): Classes to draw, in this order.
            Defaults to None (all).
        title (str, optional): Figure title. Defaults to None.
        figsize (tuple[float, float], optional): Size in inches. Defaults to
            None: ``(max(6, 0.3 * classes + 2), 4.5)``.
        dpi (int): Pixels per inch. Defaults to 100.

    Returns:
        Path: The PNG.
    """
    if not accuracies:
        raise ValueError('plot_per_class_accuracy needs at least one model')
    names = list(accuracies)
    values = np.stack([np.asarray(accuracies[n], dtype=np.float64)
                       for n in names])
    classes = list(range(values.shape[1])) if classes is None else list(
        classes)
    values = values[:, classes]
    if figsize is None:
        figsize = (max(6.0, 0.3 * len(classes) + 2.0), 4.5)
    figure = _new_figure(figsize, dpi)
    axes = figure.add_subplot()
    width = 0.8 / len(names)
    positions = np.arange(len(classes))
    for index, name in enumerate(names):
        axes.bar(positions + (index - (len(names) - 1) / 2) * width,
                 np.nan_to_num(values[index], nan=0.0), width,
                 label=f'{name} (mean {np.nanmean(values[index]):.3f})')
    axes.set_xticks(positions)
    axes.set_xticklabels(
        [class_names[c] if class_names else str(c) for c in classes],
        rotation=90, fontsize='x-small')
    axes.set_xlim(-0.5, len(classes) - 0.5)
    axes.set_ylim(0.0, 1.0)
    axes.set_ylabel('top-1 accuracy')
    axes.legend(fontsize='small')
    if title:
        axes.set_title(title)
    return _save(figure, path)


def plot_confusion_matrix(matrix: np.ndarray,
                          path: PathLike,
                          class_names: Optional[Sequence[str]] = None,
                          normalize: bool = True,
                          title: Optional[str] = None,
                          figsize: Optional[Tuple[float, float]] = None,
                          dpi: int = 100) -> Path:
    """Heat map of a confusion matrix (rows: true class, columns: predicted).

    Args:
        matrix (np.ndarray): Counts (K, K) from :func:`confusion_matrix`.
        path (str | Path): PNG to write.
        class_names (Sequence[str], optional): Tick labels (drawn up to 60
            classes). Defaults to None (the indices).
        normalize (bool): Draw each row as fractions of its class's samples
            (a class without samples stays 0). Defaults to True.
        title (str, optional): Figure title. Defaults to None.
        figsize (tuple[float, float], optional): Size in inches. Defaults to
            None: ``(s + 1.5, s)`` with ``s = min(max(5, 0.15 * K + 3),
            20)``.
        dpi (int): Pixels per inch. Defaults to 100.

    Returns:
        Path: The PNG.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    count = len(matrix)
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix),
                           where=totals > 0)
    if figsize is None:
        side = min(max(5.0, 0.15 * count + 3.0), 20.0)
        figsize = (side + 1.5, side)
    figure = _new_figure(figsize, dpi)
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap='Blues', interpolation='nearest',
                        vmin=0.0, vmax=1.0 if normalize else None)
    figure.colorbar(image, ax=axes,
                    label='fraction of the class' if normalize else 'count')
    if count <= 60:
        ticks = [class_names[c] if class_names else str(c)
                 for c in range(count)]
        axes.set_xticks(range(count))
        axes.set_yticks(range(count))
        axes.set_xticklabels(ticks, rotation=90, fontsize='xx-small')
        axes.set_yticklabels(ticks, fontsize='xx-small')
    axes.set_xlabel('predicted class')
    axes.set_ylabel('true class')
    if title:
        axes.set_title(title)
    return _save(figure, path)
