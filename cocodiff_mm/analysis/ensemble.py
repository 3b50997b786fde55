"""Late fusion of skeleton streams from ``tools/test.py --dump`` pickles.

Each stream (joint, bone, joint motion, bone motion) is tested on its own
with ``tools/test.py CONFIG CKPT --dump stream.pkl``. A dump is mmengine's
``DumpResults`` pickle: a list with one dict per sample holding
``pred_score`` (the class scores), ``gt_label`` and, because our
``tools/test.py --dump`` adds it to the test pipeline's ``PackActionInputs``
(:func:`keep_sample_names`), the sample's name ``frame_dir``. The fused
score of a sample is ``sum_i coefficient_i * score_i``, optionally on the
softmax of each stream's scores.

Samples are matched by name, never by position: dumps must hold the same
samples with the same labels, or they are refused with the names at fault.
A dump is unpickled without running anything in it
(:func:`~cocodiff_mm.utils.safe_pickle.safe_pickle_load`), and refused if a
score is NaN or infinite. A tie counts against the sample: its true class
is in the top ``k`` only when fewer than ``k`` other classes score at least
as much (:mod:`cocodiff_mm.utils.topk`), so equal scores are never right.

Coefficients come from the user, a named preset (:data:`PRESETS`), or a
grid search (:func:`search_coefficients`) that only sees *validation*
dumps, which must share no sample with the dumps being reported. Weights
must never be tuned on the test split: a search on test makes the fused
test number an optimistic, unpublishable one.
"""
import itertools
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.safe_pickle import UnreadablePickleError, safe_pickle_load
from ..utils.topk import check_finite_scores, top_k_hits

#: What a dump is, in messages.
DUMP = 'a tools/test.py --dump pickle'

#: Keys that may carry a sample's name in a dump, first found wins
#: (mmaction2's ``PoseDataset`` names samples by ``filename`` or
#: ``frame_dir``).
NAME_KEYS = ('frame_dir', 'filename')

#: Named coefficient sets; ``None`` means one per dump. The four-stream
#: presets expect the dumps in the order joint, bone, joint motion, bone
#: motion.
PRESETS: Dict[str, Optional[Tuple[float, ...]]] = {
    'ctrgcn': (0.6, 0.6, 0.4, 0.4),  # CTR-GCN's J/B/JM/BM fusion
    'pyskl': (2.0, 2.0, 1.0, 1.0),  # PYSKL's 2:2:1:1
    'equal': None,
}

#: Values each coefficient takes in :func:`search_coefficients`.
DEFAULT_SEARCH_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)

#: How many offending sample names an error message lists.
_SHOWN = 5


class EnsembleError(ValueError):
    """Dumps or arguments that cannot be fused; the message says which and
    what to do."""


@dataclass(frozen=True)
class StreamDump:
    """The scores of one stream, in the dump's own sample order.

    Attributes:
        path (str): The dump file.
        names (tuple[str]): Sample names.
        scores (np.ndarray): Class scores, float64 of shape (N, C).
        labels (np.ndarray): Ground-truth labels, int64 of shape (N, ).
    """
    path: str
    names: Tuple[str, ...]
    scores: np.ndarray
    labels: np.ndarray


def keep_sample_names(cfg: Any) -> int:
    """Add the sample-name keys to the test pipeline's ``PackActionInputs``.

    mmaction2's ``PackActionInputs`` keeps only its ``meta_keys`` in a data
    sample's metainfo, and its defaults hold no name, so a plain dump can
    only be matched by position. ``tools/test.py --dump`` calls this so each
    dumped sample carries ``frame_dir`` (or ``filename``); the scores are
    unchanged. Dataset wrappers (``dataset``/``datasets`` keys) are followed.

    Args:
        cfg (mmengine.Config): The test config; changed in place.

    Returns:
        int: How many ``PackActionInputs`` transforms were updated.
    """
    updated = 0
    pending = [cfg.test_dataloader.dataset]
    while pending:
        dataset = pending.pop()
        pending.extend([dataset['dataset']] if 'dataset' in dataset else [])
        pending.extend(dataset.get('datasets', []))
        for transform in dataset.get('pipeline', []):
            if transform.get('type') not in ('PackActionInputs',
                                             'mmaction.PackActionInputs'):
                continue
            keys = tuple(
                transform.get(
                    'meta_keys',
                    ('img_shape', 'img_key', 'video_id', 'timestamp')))
            transform['meta_keys'] = keys + tuple(
                key for key in NAME_KEYS if key not in keys)
            updated += 1
    return updated


def _first(names: Sequence[str]) -> str:
    """The first few ``names`` for an error message."""
    shown = ', '.join(str(name) for name in list(names)[:_SHOWN])
    return shown + (', ...' if len(names) > _SHOWN else '')


def _as_array(value: Any) -> np.ndarray:
    """A tensor or array-like as a NumPy array (no torch import needed)."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def load_dump(path: str) -> StreamDump:
    """Read one ``tools/test.py --dump`` pickle.

    Args:
        path (str): The ``.pkl`` file.

    Returns:
        StreamDump: Its scores, labels and sample names.

    Raises:
        EnsembleError: If the file is missing, asks the unpickler for
            anything but numpy, torch tensors and builtin containers
            (nothing in it runs), is not a dump of single-label class
            scores with sample names, names repeat or a score is NaN or
            infinite.
    """
    if not os.path.isfile(path):
        raise EnsembleError(f'dump {path} does not exist')
    try:
        records = safe_pickle_load(path, DUMP)
    except UnreadablePickleError as error:
        raise EnsembleError(str(error)) from error
    if not isinstance(records, list) or not records or not all(
            isinstance(record, dict) for record in records):
        raise EnsembleError(
            f'{path} is not a tools/test.py --dump pickle (a non-empty list '
            'of one dict per sample)')
    names, scores, labels = [], [], []
    for index, record in enumerate(records):
        name = next((record[key] for key in NAME_KEYS if key in record), None)
        if name is None:
            raise EnsembleError(
                f'{path}: sample {index} has no name (none of '
                f'{", ".join(NAME_KEYS)}), so it cannot be matched across '
                'streams; dump again with this project\'s tools/test.py '
                '--dump, which keeps frame_dir')
        if 'pred_score' not in record or 'gt_label' not in record:
            raise EnsembleError(
                f'{path}: sample {name} lacks pred_score or gt_label')
        score = _as_array(record['pred_score'])
        label = _as_array(record['gt_label']).reshape(-1)
        if score.ndim != 1 or label.size != 1:
            raise EnsembleError(
                f'{path}: sample {name} is not single-label class scores '
                f'(pred_score shape {score.shape}, {label.size} labels)')
        names.append(str(name))
        scores.append(score)
        labels.append(int(label[0]))
    if len({score.shape for score in scores}) != 1:
        raise EnsembleError(f'{path}: samples have different class counts')
    if len(set(names)) != len(names):
        seen, repeated = set(), []
        for name in names:
            if name in seen and name not in repeated:
                repeated.append(name)
            seen.add(name)
        raise EnsembleError(
            f'{path}: {len(repeated)} sample names repeat ({_first(repeated)})'
            '; a dump must hold each sample once')
    scores = np.stack(scores).astype(np.float64)
    check_finite_scores(scores, names, path, error=EnsembleError)
    return StreamDump(path, tuple(names), scores,
                      np.asarray(labels, dtype=np.int64))


def align(
    dumps: Sequence[StreamDump]
) -> Tuple[Tuple[str, ...], List[np.ndarray], np.ndarray]:
    """Match the samples of several dumps by name.

    Args:
        dumps (Sequence[StreamDump]): One dump per stream.

    Returns:
        tuple: ``(names, scores, labels)``: the names in the first dump's
        order, each dump's (N, C) scores in that order, and the labels.

    Raises:
        EnsembleError: If the dumps hold different samples or classes, or
            disagree on a label.
    """
    if not dumps:
        raise EnsembleError('no dumps to fuse')
    reference = dumps[0]
    aligned = [reference.scores]
    for dump in dumps[1:]:
        in_dump, in_reference = set(dump.names), set(reference.names)
        if in_dump != in_reference:
            only_ref = [n for n in reference.names if n not in in_dump]
            only_dump = [n for n in dump.names if n not in in_reference]
            raise EnsembleError(
                f'{dump.path} and {reference.path} hold different samples: '
                f'{len(only_ref)} only in {reference.path} '
                f'({_first(only_ref)}), {len(only_dump)} only in {dump.path} '
                f'({_first(only_dump)}); dump every stream on the same split')
        if dump.scores.shape[1] != reference.scores.shape[1]:
            raise EnsembleError(
                f'{dump.path} has {dump.scores.shape[1]} classes, '
                f'{reference.path} {reference.scores.shape[1]}')
        position = {name: index for index, name in enumerate(dump.names)}
        order = np.asarray([position[name] for name in reference.names])
        wrong = np.flatnonzero(dump.labels[order] != reference.labels)
        if wrong.size:
            details = [
                f'{reference.names[i]} ({reference.labels[i]} vs '
                f'{dump.labels[order[i]]})' for i in wrong
            ]
            raise EnsembleError(
                f'{dump.path} and {reference.path} disagree on {wrong.size} '
                f'labels: {_first(details)}; were they made from the same '
                'annotation file?')
        aligned.append(dump.scores[order])
    return reference.names, aligned, reference.labels


def load_aligned(
    paths: Sequence[str]
) -> Tuple[Tuple[str, ...], List[np.ndarray], np.ndarray]:
    """:func:`load_dump` each path, then :func:`align` them by name."""
    return align([load_dump(path) for path in paths])


def softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, computed stably."""
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _check_coefficients(coefficients: Sequence[float], what: str) -> None:
    """Refuse negative, non-finite or all-zero coefficients."""
    if any(not math.isfinite(c) or c < 0 for c in coefficients):
        raise EnsembleError(
            f'{what} must be finite and >= 0, got {list(coefficients)}')
    if not any(c > 0 for c in coefficients):
        raise EnsembleError(f'{what} are all zero: nothing would be fused')


def resolve_coefficients(num_streams: int,
                         coefficients: Optional[Sequence[float]] = None,
                         preset: Optional[str] = None) -> Tuple[float, ...]:
    """The coefficients to fuse ``num_streams`` dumps with.

    Args:
        num_streams (int): Number of dumps.
        coefficients (Sequence[float], optional): One per dump. Defaults to
            None.
        preset (str, optional): A key of :data:`PRESETS`. Defaults to None;
            with neither argument every dump weighs 1.

    Returns:
        tuple[float]: One coefficient per dump.

    Raises:
        EnsembleError: If both or an unknown preset are given, or the count
            does not match ``num_streams``.
    """
    if coefficients is not None and preset is not None:
        raise EnsembleError('give --coefficients or --preset, not both')
    if preset is not None:
        if preset not in PRESETS:
            raise EnsembleError(f'unknown preset {preset!r}; choose one of '
                                f'{", ".join(PRESETS)}')
        coefficients = PRESETS[preset]
        if coefficients is not None and len(coefficients) != num_streams:
            raise EnsembleError(
                f'preset {preset} weighs {len(coefficients)} streams '
                f'(joint, bone, joint motion, bone motion, in that order), '
                f'got {num_streams} --preds')
    if coefficients is None:
        coefficients = (1.0, ) * num_streams
    if len(coefficients) != num_streams:
        raise EnsembleError(
            f'{len(coefficients)} --coefficients for {num_streams} --preds; '
            'give one coefficient per dump')
    coefficients = tuple(float(c) for c in coefficients)
    _check_coefficients(coefficients, 'coefficients')
    return coefficients


def fuse(scores: Sequence[np.ndarray],
         coefficients: Sequence[float],
         apply_softmax: bool = False) -> np.ndarray:
    """Weighted sum of aligned stream scores.

    Args:
        scores (Sequence[np.ndarray]): (N, C) scores per stream, aligned.
        coefficients (Sequence[float]): One weight per stream.
        apply_softmax (bool): Softmax each stream's scores first. Defaults
            to False.

    Returns:
        np.ndarray: The (N, C) fused scores.
    """
    if len(scores) != len(coefficients):
        raise EnsembleError(f'{len(coefficients)} coefficients for '
                            f'{len(scores)} streams')
    fused = np.zeros_like(scores[0], dtype=np.float64)
    for stream, weight in zip(scores, coefficients):
        fused += weight * (softmax(stream) if apply_softmax else stream)
    return fused


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of samples whose label is in the top ``k``: fewer than
    ``k`` other classes score at least as much (ties count against the
    sample, :func:`~cocodiff_mm.utils.topk.top_k_hits`)."""
    return float(top_k_hits(scores, labels, k).mean())


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 recall averaged over the classes present in ``labels`` (as
    mmaction2's ``mean_class_accuracy``; ties count against the sample)."""
    hits = top_k_hits(scores, labels, 1)
    return float(np.mean([hits[labels == c].mean()
                          for c in np.unique(labels)]))


def evaluate(scores: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """Top-1, top-5 and mean-class accuracy (fractions in [0, 1])."""
    return dict(top1=top_k_accuracy(scores, labels, 1),
                top5=top_k_accuracy(scores, labels, 5),
                mean_class=mean_class_accuracy(scores, labels))


def _rank_key(metrics: Dict[str, float]) -> Tuple[float, float, float]:
    """What a search maximises: top-1, then mean-class, then top-5."""
    return metrics['top1'], metrics['mean_class'], metrics['top5']


def search_coefficients(
        scores: Sequence[np.ndarray],
        labels: np.ndarray,
        grid: Sequence[float] = DEFAULT_SEARCH_GRID,
        apply_softmax: bool = False
) -> Tuple[Tuple[float, ...], Dict[str, float]]:
    """Grid search of the fusion coefficients on *validation* scores.

    Every combination of ``grid`` values (one per stream, not all zero) is
    tried; the best top-1 wins, ties broken by mean-class then top-5
    accuracy, then by the first combination in grid order. Never call this
    on test-split scores.

    Args:
        scores (Sequence[np.ndarray]): Aligned (N, C) validation scores per
            stream.
        labels (np.ndarray): Their (N, ) labels.
        grid (Sequence[float]): Values each coefficient takes. Defaults to
            ``(0.0, 0.25, 0.5, 0.75, 1.0)``.
        apply_softmax (bool): As in :func:`fuse`. Defaults to False.

    Returns:
        tuple: The chosen coefficients and their validation metrics.
    """
    grid = tuple(float(value) for value in grid)
    _check_coefficients(grid, 'search grid values')
    if apply_softmax:
        scores = [softmax(stream) for stream in scores]
    best, best_metrics = None, None
    for combination in itertools.product(grid, repeat=len(scores)):
        if not any(combination):
            continue
        metrics = evaluate(fuse(scores, combination), labels)
        if best is None or _rank_key(metrics) > _rank_key(best_metrics):
            best, best_metrics = combination, metrics
    return best, best_metrics


def _stream_names(paths: Sequence[str]) -> List[str]:
    """Short display names: file stems, or the paths if stems repeat."""
    stems = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    return stems if len(set(stems)) == len(stems) else list(paths)


def _per_stream(paths: Sequence[str], scores: Sequence[np.ndarray],
                labels: np.ndarray) -> List[Dict[str, Any]]:
    """Metrics of each stream alone."""
    return [
        dict(path=path, name=name, **evaluate(stream, labels))
        for path, name, stream in zip(paths, _stream_names(paths), scores)
    ]


def ensemble_report(
        preds: Sequence[str],
        coefficients: Optional[Sequence[float]] = None,
        preset: Optional[str] = None,
        apply_softmax: bool = False,
        search_preds: Optional[Sequence[str]] = None,
        search_grid: Sequence[float] = DEFAULT_SEARCH_GRID) -> Dict[str, Any]:
    """Fuse test dumps and measure every stream and the fusion.

    Args:
        preds (Sequence[str]): One dump per stream (the split reported).
        coefficients (Sequence[float], optional): One per dump. Defaults to
            None.
        preset (str, optional): A key of :data:`PRESETS`. Defaults to None.
        apply_softmax (bool): Softmax each stream before fusing. Defaults to
            False.
        search_preds (Sequence[str], optional): Validation dumps, one per
            stream in the order of ``preds``, to choose the coefficients on
            (:func:`search_coefficients`). They must share no sample with
            ``preds``. Defaults to None (no search).
        search_grid (Sequence[float]): Values tried per coefficient.
            Defaults to ``(0.0, 0.25, 0.5, 0.75, 1.0)``.

    Returns:
        dict: ``num_samples``, ``num_classes``, ``apply_softmax``,
        ``coefficients``, ``coefficients_from``, ``streams`` (per-stream
        metrics), ``fused`` and ``search`` (None, or the validation
        dumps, grid and metrics). Accuracies are fractions.

    Raises:
        EnsembleError: On any dump or argument that cannot be fused.
    """
    preds = list(preds)
    if not preds:
        raise EnsembleError('give at least one dump with --preds')
    names, scores, labels = load_aligned(preds)
    search = None
    if search_preds is not None:
        if coefficients is not None or preset is not None:
            raise EnsembleError(
                '--search-preds chooses the coefficients; drop '
                '--coefficients/--preset')
        search_preds = list(search_preds)
        if len(search_preds) != len(preds):
            raise EnsembleError(
                f'{len(search_preds)} --search-preds for {len(preds)} '
                '--preds; give one validation dump per stream, same order')
        val_names, val_scores, val_labels = load_aligned(search_preds)
        if val_scores[0].shape[1] != scores[0].shape[1]:
            raise EnsembleError(
                f'--search-preds have {val_scores[0].shape[1]} classes, '
                f'--preds {scores[0].shape[1]}')
        reported = set(names)
        shared = [name for name in val_names if name in reported]
        if shared:
            raise EnsembleError(
                f'--search-preds share {len(shared)} samples with --preds '
                f'({_first(shared)}): weights must be tuned on a validation '
                'split held out from the reported one, never on the test '
                'split')
        chosen, val_fused = search_coefficients(val_scores, val_labels,
                                                search_grid, apply_softmax)
        search = dict(preds=search_preds,
                      grid=[float(value) for value in search_grid],
                      num_samples=len(val_names),
                      streams=_per_stream(search_preds, val_scores,
                                          val_labels),
                      fused=val_fused)
        coefficients, source = chosen, 'search'
    else:
        source = (f'preset {preset}' if preset is not None else
                  'given' if coefficients is not None else 'equal (default)')
    coefficients = resolve_coefficients(len(preds), coefficients, preset)
    fused = fuse(scores, coefficients, apply_softmax)
    return dict(num_samples=len(names),
                num_classes=int(scores[0].shape[1]),
                apply_softmax=bool(apply_softmax),
                coefficients=list(coefficients),
                coefficients_from=source,
                streams=_per_stream(preds, scores, labels),
                fused=evaluate(fused, labels),
                search=search)


def _table(rows: Sequence[Tuple[str, Dict[str, float], str]]) -> List[str]:
    """Aligned lines of name, accuracies in percent and a last column."""
    width = max([len(name) for name, _, _ in rows] + [6])
    lines = [
        f'{"stream":<{width}}  {"top1":>6}  {"top5":>6}  '
        f'{"mean_cls":>8}  coefficient'
    ]
    for name, metrics, last in rows:
        lines.append(f'{name:<{width}}  {100 * metrics["top1"]:6.2f}  '
                     f'{100 * metrics["top5"]:6.2f}  '
                     f'{100 * metrics["mean_class"]:8.2f}  {last}')
    return lines


def format_report(report: Dict[str, Any]) -> str:
    """The report of :func:`ensemble_report` as text (accuracies in %)."""
    weights = report['coefficients']
    lines = []
    search = report['search']
    if search is not None:
        lines.append(
            f'coefficients searched on {search["num_samples"]} validation '
            f'samples over grid {" ".join(f"{v:g}" for v in search["grid"])}'
            f': {" ".join(f"{w:g}" for w in weights)}')
        lines += _table([(s['name'], s, f'{w:g}')
                         for s, w in zip(search['streams'], weights)] +
                        [('fused', search['fused'], '')])
        lines.append('')
    scores = ('softmax of each stream'
              if report['apply_softmax'] else 'scores as dumped')
    lines.append(f'{len(weights)} streams on {report["num_samples"]} samples '
                 f'({report["num_classes"]} classes), {scores}, coefficients: '
                 f'{report["coefficients_from"]}')
    lines += _table([(s['name'], s, f'{w:g}')
                     for s, w in zip(report['streams'], weights)] +
                    [('fused', report['fused'], '')])
    return '\n'.join(lines)
