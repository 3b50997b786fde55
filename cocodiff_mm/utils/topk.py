"""Top-k hits of class scores, with ties counted against the sample.

A class ties the true one when it scores the same. Counting such ties as
hits makes a stream whose scores are all equal (or NaN, which compares
false with everything) 100 % accurate; here the true class is in the top
``k`` only when fewer than ``k`` other classes score *at least* as much,
so an all-equal stream scores 0 % below ``k = C``. Non-finite scores are
refused: the callers name the file they came from.
"""
from typing import Sequence, Type

import numpy as np


def non_finite_rows(scores: np.ndarray) -> np.ndarray:
    """Indices of the samples (rows of ``scores`` (N, C)) with a NaN or
    infinite score."""
    return np.flatnonzero(~np.isfinite(scores).all(axis=1))


def _check_finite(scores: np.ndarray) -> None:
    bad = non_finite_rows(scores)
    if bad.size:
        raise ValueError(f'{bad.size} of {len(scores)} samples have '
                         'non-finite class scores (NaN/inf); a top-k of '
                         'them means nothing')


def rivals(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """How many other classes score at least as much as the true one.

    Args:
        scores (np.ndarray): Finite class scores (N, C).
        labels (np.ndarray): True classes (N, ).

    Returns:
        np.ndarray: int64 (N, ); 0 means the true class alone scores best.

    Raises:
        ValueError: If a score is NaN or infinite.
    """
    scores, labels = np.asarray(scores), np.asarray(labels)
    _check_finite(scores)
    label_scores = scores[np.arange(len(labels)), labels]
    return (scores >= label_scores[:, None]).sum(axis=1) - 1


def top_k_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Whether each true class is in the top ``k``: fewer than ``k`` other
    classes score at least as much (ties count against the sample).

    Raises:
        ValueError: If a score is NaN or infinite.
    """
    return rivals(scores, labels) < k


def top1_predictions(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Top-1 classes for a confusion matrix, consistent with
    :func:`top_k_hits`: ``argmax``, except that a true class tied for the
    best score with another loses to the first such other class.

    Args:
        scores (np.ndarray): Finite class scores (N, C).
        labels (np.ndarray): True classes (N, ).

    Returns:
        np.ndarray: int64 (N, ).

    Raises:
        ValueError: If a score is NaN or infinite.
    """
    scores, labels = np.asarray(scores), np.asarray(labels)
    predictions = scores.argmax(axis=1)
    tied = np.flatnonzero((predictions == labels) & (rivals(scores, labels)
                                                     > 0))
    for index in tied:
        best = np.flatnonzero(scores[index] == scores[index].max())
        predictions[index] = best[best != labels[index]][0]
    return predictions.astype(np.int64)


def check_finite_scores(scores: np.ndarray,
                        names: Sequence[str],
                        source: str,
                        field: str = 'pred_score',
                        error: Type[Exception] = ValueError,
                        shown: int = 5) -> None:
    """Refuse scores with a NaN or infinite value, naming where they are.

    Args:
        scores (np.ndarray): Class scores (N, C).
        names (Sequence[str]): The N sample names.
        source (str): The file they came from.
        field (str): Their field in that file. Defaults to
            ``'pred_score'``.
        error (type): The exception raised. Defaults to ``ValueError``.
        shown (int): Names listed. Defaults to 5.

    Raises:
        error: ``<source>: <n> of <N> samples have non-finite <field>
            (NaN/inf): <names>; ...``.
    """
    bad = non_finite_rows(scores)
    if bad.size:
        listed = ', '.join(str(names[i]) for i in bad[:shown])
        more = ', ...' if bad.size > shown else ''
        raise error(f'{source}: {bad.size} of {len(scores)} samples have '
                    f'non-finite {field} (NaN/inf): {listed}{more}; they '
                    'cannot be ranked, test the checkpoint again')
