"""Checks run by ``tools/train.py`` and ``tools/test.py`` before the Runner.

A missing or mismatching annotation file should stop a job within seconds,
with a message that names the file, the config field and the expected
value, not after the model is built or an epoch has run. Data that is valid
but suspect (empty or one-frame clips) is one ``warning:`` line per file on
stderr; the tools run this check on rank 0 only. The config's
``data_check=dict(fail_on_empty=True)`` makes empty clips an error.
"""
import os
import sys
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

from mmengine.config import Config

from cocodiff_mm.datasets.annotation_check import (EmptyClipWarning,
                                                   check_annotations)
from cocodiff_mm.datasets.pickle_io import read_annotations
from cocodiff_mm.utils.config_keys import (ConfigError, ConfigKeyError,
                                           refuse_unknown_keys)

#: How to prepare each known annotation file, keyed by a name fragment.
PREPARE_HINTS: Tuple[Tuple[str, str], ...] = (
    ('ntu60', 'python tools/data/ntu_raw_to_pkl.py --dataset ntu60 '
     '--raw-dir PATH/TO/nturgb+d_skeletons --out {path}'),
    ('ntu120', 'python tools/data/ntu_raw_to_pkl.py --dataset ntu120 '
     '--raw-dir PATH/TO/nturgb+d_skeletons --out {path}'),
    ('kinetics', 'python tools/data/kinetics_json_to_pkl.py --json-dir '
     'PATH/TO/kinetics-skeleton/kinetics_train --split-name train '
     '--label-names PATH/TO/kinetics400_label_names.txt --out {path} '
     '(then again with kinetics_val, --split-name val and --append)'),
    ('utd', 'python tools/data/utd_mhad_to_pkl.py --data-dir '
     'PATH/TO/UTD-MHAD/Skeleton --out {path}'),
    ('demo', 'python tools/data/make_demo_data.py --out {path}'),
)

#: How many problems an error message lists before summarising the rest.
MAX_LISTED = 10

#: Options of the config's ``data_check`` dict, with their defaults.
DATA_CHECK_DEFAULTS = dict(fail_on_empty=False)


class PreflightError(RuntimeError):
    """A config or its data cannot work; raised before training starts."""


def prepare_hint(path: str) -> str:
    """The command that creates the annotation file ``path``."""
    name = Path(path).name.lower()
    for fragment, command in PREPARE_HINTS:
        if fragment in name:
            return command.format(path=path)
    return ('convert your skeletons with one of the scripts in tools/data '
            '(see README, "Data")')


def _dataset_leaf(dataset: Dict, field: str) -> Tuple[Dict, str]:
    """Follow dataset wrappers (RepeatDataset, ...) to the one with a file."""
    while 'ann_file' not in dataset and isinstance(dataset.get('dataset'),
                                                    dict):
        dataset = dataset['dataset']
        field += '.dataset'
    return dataset, field


def iter_annotation_fields(cfg: Config,
                           loaders: Tuple[str, ...]) -> Iterator[
                               Tuple[str, str, Optional[str]]]:
    """Yield ``(config field, annotation path, split)`` of each dataloader."""
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg or 'dataset' not in loader_cfg:
            continue
        dataset, field = _dataset_leaf(loader_cfg['dataset'],
                                       f'{loader}.dataset')
        ann_file = dataset.get('ann_file')
        if not ann_file:
            continue
        data_root = dataset.get('data_root') or ''
        path = os.path.join(data_root, ann_file) if data_root else ann_file
        yield f'{field}.ann_file', path, dataset.get('split')


def expected_shape(cfg: Config) -> Dict[str, Optional[int]]:
    """Joints, input channels and classes the config's model expects."""
    from mmaction.models.utils import Graph

    model = cfg.get('model', {})
    backbone = model.get('backbone', {})
    head = model.get('cls_head', {})
    num_joints = None
    if 'graph_cfg' in backbone:
        graph_cfg = dict(backbone['graph_cfg'])
        num_joints = Graph(**graph_cfg).num_node
    return dict(
        num_joints=num_joints,
        in_channels=backbone.get('in_channels', 3),
        num_classes=head.get('num_classes'))


def warn(message: str) -> None:
    """Print one ``warning:`` line on stderr.

    Printed rather than left to :mod:`warnings`, whose filters may hide it
    (``PYTHONWARNINGS=ignore``) and whose format adds a source line.
    """
    print(f'warning: {message}', file=sys.stderr, flush=True)


def data_check_options(cfg: Config) -> Dict[str, bool]:
    """The config's ``data_check`` options, checked, with their defaults.

    Returns:
        dict: ``fail_on_empty`` (bool): refuse all-zero and near-constant
        clips instead of one warning line per file.

    Raises:
        ConfigError: ``<config>: data_check...`` for an unknown key or a
            value that is not a bool.
    """
    options = cfg.get('data_check')
    if options is None:
        return dict(DATA_CHECK_DEFAULTS)
    try:
        if not isinstance(options, Mapping):
            raise ConfigError(
                'data_check must be a dict, e.g. dict(fail_on_empty=True), '
                f'got {options!r:.60}')
        refuse_unknown_keys(options, DATA_CHECK_DEFAULTS, 'data_check')
        merged = dict(DATA_CHECK_DEFAULTS, **options)
        for key, value in merged.items():
            if not isinstance(value, bool):
                raise ConfigError(f'data_check.{key} must be True or False, '
                                  f'got {value!r:.60}')
    except ConfigKeyError as error:
        raise ConfigKeyError(f'{cfg.filename}: {error}') from None
    except ConfigError as error:
        raise ConfigError(f'{cfg.filename}: {error}') from None
    return merged


def check_file_against_config(path: str, field: str,
                              splits: Dict[str, str],
                              expected: Dict[str, Optional[int]],
                              fail_on_empty: bool = False) -> None:
    """Validate one annotation file against the model config.

    Args:
        path (str): The annotation pickle.
        field (str): The config field that names it (for messages).
        splits (dict): Split names the config reads from it, mapped to the
            config field that names each.
        expected (dict): What :func:`expected_shape` returns.
        fail_on_empty (bool): Refuse all-zero and near-constant clips;
            otherwise they are one warning line. Defaults to ``False``.

    Raises:
        PreflightError: Naming the file, the config field, the sample and
            the expected value of everything that does not match.
    """
    if not os.path.isfile(path):
        raise PreflightError(
            f'annotation file {path} ({field}) does not exist.\n'
            f'Prepare it with:\n  {prepare_hint(path)}\n'
            'or point the config at it, e.g. --cfg-options '
            f'{field}=/path/to/file.pkl')
    try:
        data = read_annotations(path)
    except (OSError, ValueError) as error:
        raise PreflightError(f'{field}: {error}') from error

    annotations = data.get('annotations') or []
    has_score = bool(annotations) and 'keypoint_score' in annotations[0]
    num_coords = None
    if expected['in_channels'] is not None:
        # GenSkeFeat appends the score channel to 2D keypoints.
        num_coords = expected['in_channels'] - int(has_score)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', EmptyClipWarning)
        problems = check_annotations(
            data,
            source=path,
            num_joints=expected['num_joints'],
            num_coords=num_coords,
            num_classes=expected['num_classes'],
            fail_on_empty=fail_on_empty)
    for warning in caught:
        if issubclass(warning.category, EmptyClipWarning):
            warn(f'{warning.message}; data_check.fail_on_empty=True makes '
                 'them an error')
        else:
            warnings.warn_explicit(warning.message, warning.category,
                                   warning.filename, warning.lineno)
    messages: List[str] = [str(problem) for problem in problems]
    known = sorted(data.get('split') or {})
    for split, split_field in splits.items():
        if split not in known:
            messages.insert(
                0, f'split {split!r} ({split_field}) is not in the file; '
                f'it has {known}')
    warn_short_clips(data, path)
    if messages:
        listed = '\n  '.join(messages[:MAX_LISTED])
        more = len(messages) - MAX_LISTED
        tail = f'\n  ... and {more} more' if more > 0 else ''
        raise PreflightError(
            f'annotation file {path} ({field}) does not match the config '
            f'(expects {expected["num_joints"]} joints, {num_coords} '
            f'coordinates per joint, labels in [0, '
            f'{expected["num_classes"]})):\n  {listed}{tail}\n'
            f'{_empty_hint(problems, fail_on_empty)}'
            'Run python tools/data/check_annotations.py on it for the full '
            'report.')


def _empty_hint(problems, fail_on_empty: bool) -> str:
    """Why empty clips are errors, when some are among ``problems``."""
    kinds = ('all-zero clip', 'near-constant clip')  # empty_clip_kind's
    if fail_on_empty and any(problem.message.startswith(kinds)
                             for problem in problems):
        return ('All-zero and near-constant clips are refused by '
                'data_check.fail_on_empty=True: drop them, or set it to '
                'False for one warning line instead.\n')
    return ''


def warn_short_clips(data: Dict, path: str) -> List[str]:
    """Warn (once per file) about one-frame clips: valid, but a temporal
    model sees a still pose, usually a conversion problem.

    Returns:
        list[str]: The names of the one-frame clips.
    """
    short = [sample.get('frame_dir', '?')
             for sample in data.get('annotations') or []
             if isinstance(sample, dict) and sample.get('total_frames') == 1]
    if short:
        listed = ', '.join(map(str, short[:MAX_LISTED]))
        more = f' (+{len(short) - MAX_LISTED} more)' \
            if len(short) > MAX_LISTED else ''
        warn(f'{path}: {len(short)} clip(s) have a single frame '
             f'(total_frames=1): {listed}{more}; the model sees a still '
             'pose for them')
    return short


def check_data(cfg: Config, loaders: Tuple[str, ...]) -> None:
    """Check every annotation file the given dataloaders read.

    Args:
        cfg (Config): The full config.
        loaders (tuple[str]): Dataloader fields, e.g.
            ``('train_dataloader', 'val_dataloader')``.

    Raises:
        ConfigError: If the config's ``data_check`` options are wrong
            (:func:`data_check_options`).
        PreflightError: On the first file that is missing or mismatching.
    """
    options = data_check_options(cfg)
    expected = expected_shape(cfg)
    files: Dict[str, Tuple[str, Dict[str, str]]] = {}
    for field, path, split in iter_annotation_fields(cfg, loaders):
        _, splits = files.setdefault(path, (field, {}))
        if split is not None:
            splits.setdefault(split, field[:-len('ann_file')] + 'split')
    for path, (field, splits) in files.items():
        check_file_against_config(path, field, splits, expected,
                                  options['fail_on_empty'])
