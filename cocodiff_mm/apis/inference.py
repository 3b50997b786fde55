"""Classify one skeleton clip with a trained recognizer (``tools/infer.py``).

Inference is the stock GCN for plain and CoCoDiff checkpoints alike. For a
config whose head only adds training parts (``DiffusionAugmentedHead``:
denoiser, diffusion schedule, text bank, projection), :func:`init_inference
_model` builds a plain ``GCNHead`` with the same classifier arguments
instead, so none of those parts is ever built, and loads only the inference
weights of the checkpoint (:func:`~cocodiff_mm.engine.inference_export.
split_inference_state`), strictly.

The clip goes through the config's *test* pipeline
(``test_dataloader.dataset.pipeline``), as in ``tools/test.py``, and
mmaction2's :func:`~mmaction.apis.inference_recognizer` runs the model.
"""
import copy
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict

from ..engine.inference_export import load_inference_weights
from ..utils.config_keys import ConfigError
from .clip_inputs import ClipInputError

#: Heads whose extra parts serve training only: inference builds a stock
#: ``GCNHead`` in their place.
TRAINING_ONLY_HEADS = ('DiffusionAugmentedHead', )

#: ``GCNHead`` arguments that a training-only head passes on.
GCN_HEAD_ARGUMENTS = ('num_classes', 'in_channels', 'loss_cls', 'dropout',
                      'average_clips')


def default_device() -> str:
    """``'cuda:0'`` when CUDA is available, else ``'cpu'``."""
    return 'cuda:0' if torch.cuda.is_available() else 'cpu'


def inference_model_cfg(model_cfg: Dict) -> ConfigDict:
    """The model config inference builds: a plain ``GCNHead`` in place of a
    training-only head.

    Args:
        model_cfg (dict): ``cfg.model``; not modified.

    Returns:
        ConfigDict: A copy, with ``cls_head`` replaced by
        ``dict(type='GCNHead', ...)`` carrying the head's
        :data:`GCN_HEAD_ARGUMENTS` when its type is in
        :data:`TRAINING_ONLY_HEADS`.
    """
    model_cfg = ConfigDict(copy.deepcopy(dict(model_cfg)))
    head = model_cfg.get('cls_head')
    head_type = head.get('type') if isinstance(head, dict) else None
    if isinstance(head_type, str) and \
            head_type.split('.')[-1] in TRAINING_ONLY_HEADS:
        model_cfg['cls_head'] = ConfigDict(
            type='GCNHead',
            **{key: head[key] for key in GCN_HEAD_ARGUMENTS if key in head})
    return model_cfg


def config_test_pipeline(cfg: Config) -> List[Dict]:
    """``test_dataloader.dataset.pipeline``, through dataset wrappers.

    Raises:
        ConfigError: If the config has no test pipeline.
    """
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    field = 'test_dataloader.dataset'
    while 'pipeline' not in dataset and isinstance(dataset.get('dataset'),
                                                   dict):
        dataset, field = dataset['dataset'], f'{field}.dataset'
    pipeline = dataset.get('pipeline')
    if not pipeline:
        raise ConfigError(f'{field}.pipeline is missing or empty: inference '
                          'runs the config\'s test pipeline')
    return list(pipeline)


def init_inference_model(cfg: Config,
                         checkpoint: str,
                         device: Optional[str] = None) -> nn.Module:
    """Build the config's recognizer for inference and load ``checkpoint``.

    Args:
        cfg (Config): The full config (``model``, ``default_scope``); not
            modified.
        checkpoint (str): The checkpoint (see :func:`load_inference_weights`).
        device (str, optional): Where the model runs. Defaults to ``None``
            (:func:`default_device`).

    Returns:
        nn.Module: The recognizer in eval mode, with a plain ``GCNHead``
        whatever head the config trains with.

    Raises:
        ConfigError: If ``device`` is a CUDA device and CUDA is not
            available.
        FileNotFoundError, CorruptCheckpointError, CheckpointMismatchError:
            See :func:`load_inference_weights`; checked before the model
            moves to ``device``.
    """
    from mmaction.apis import init_recognizer
    device = device or default_device()
    if str(device).startswith('cuda') and not torch.cuda.is_available():
        raise ConfigError(f'device {device!r} asked for, but CUDA is not '
                          'available here (use --device cpu)')
    build_cfg = Config(dict(model=inference_model_cfg(cfg.model),
                            default_scope=cfg.get('default_scope',
                                                  'mmaction')))
    model = init_recognizer(build_cfg, checkpoint=None, device='cpu')
    load_inference_weights(model, checkpoint)
    model.cfg = cfg
    return model.to(device).eval()


def expected_clip_shape(cfg: Config) -> Tuple[Optional[int], Optional[int]]:
    """Joints ``V`` and channels ``C`` the config's model reads."""
    from ..engine.preflight import expected_shape
    expected = expected_shape(cfg)
    return expected['num_joints'], expected['in_channels']


def check_clip_fits(clip: Dict, cfg: Config, source: str = '') -> None:
    """Refuse a clip the config's model cannot read.

    Checks the keypoint shape against the model (joints of the backbone's
    graph, channels ``in_channels``: for 2D clips with ``keypoint_score``,
    two coordinates plus the score), a non-empty sequence, finite values
    and some motion: an all-zero or near-constant clip has nothing to
    classify (:func:`~cocodiff_mm.datasets.annotation_check.
    check_annotations` with ``fail_on_empty=True``).

    Args:
        clip (dict): From :func:`~.clip_inputs.load_clip`.
        cfg (Config): The config.
        source (str): The input, for the message. Defaults to ``''``.

    Raises:
        ClipInputError: One line with every problem and what the config
            expects.
    """
    from ..datasets.annotation_check import check_annotations
    num_joints, channels = expected_clip_shape(cfg)
    num_coords = None if channels is None else \
        channels - int('keypoint_score' in clip)
    name = str(clip.get('frame_dir') or 'clip')
    problems = check_annotations(
        dict(split={'infer': [name]}, annotations=[dict(clip,
                                                        frame_dir=name)]),
        num_joints=num_joints, num_coords=num_coords, fail_on_empty=True)
    # The class of an inference clip may be unknown (label -1), and a
    # keypoint problem (T = 0) makes one of total_frames redundant.
    fields = {problem.field for problem in problems}
    messages = list(dict.fromkeys(
        problem.message for problem in problems
        if problem.field != 'label' and not (
            problem.field == 'total_frames' and 'keypoint' in fields)))
    if messages:
        raise ClipInputError(
            f'{source or name}: {"; ".join(messages)}; the config\'s model '
            f'reads {num_joints} joints x {channels} channels')


def predict_scores(model: nn.Module, clip: Dict,
                   pipeline: Sequence[Dict]) -> np.ndarray:
    """Class scores of one clip (the config's test-time clip averaging).

    Args:
        model (nn.Module): From :func:`init_inference_model`.
        clip (dict): From :func:`~.clip_inputs.load_clip`; the pipeline
            changes it in place.
        pipeline (Sequence[dict]): The test pipeline
            (:func:`config_test_pipeline`).

    Returns:
        np.ndarray: float32 ``(num_classes, )``, as ``tools/test.py --dump``
        writes ``pred_score``.
    """
    from mmaction.apis import inference_recognizer
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    init_default_scope(model.cfg.get('default_scope', 'mmaction'))
    result = inference_recognizer(model, clip, Compose(list(pipeline)))
    return result.pred_score.detach().float().cpu().numpy()


def top_k(scores: np.ndarray, k: int = 5) -> List[Tuple[int, float]]:
    """``(class index, score)`` of the ``k`` best classes, best first.

    Ties keep the lower index first (like ``argmax``).
    """
    order = np.argsort(-scores, kind='stable')[:k]
    return [(int(i), float(scores[i])) for i in order]


@dataclass(frozen=True)
class ClipPrediction:
    """The scores of one clip, with what is needed to report them.

    Args:
        source (str): The input (file, and sample of a pickle).
        description (str): Its shape (:func:`~.clip_inputs.describe_clip`).
        label (int): Its known class, or ``-1``.
        scores (np.ndarray): ``(num_classes, )`` class scores.
        class_names (tuple[str]): Name of every class.
        names_source (str): Where the names came from.
    """

    source: str
    description: str
    label: int
    scores: np.ndarray
    class_names: Tuple[str, ...]
    names_source: str

    def top(self, k: int = 5) -> List[Tuple[int, str, float]]:
        """``(index, name, score)`` of the ``k`` best classes, best first."""
        return [(index, self.class_names[index], score)
                for index, score in top_k(self.scores, k)]

    def to_dict(self, k: int = 5) -> Dict:
        """JSON-ready: the input, its label, the top ``k`` and every score.
        """
        return dict(
            input=self.source, description=self.description,
            label=self.label, class_names_source=self.names_source,
            top=[dict(index=index, name=name, score=score)
                 for index, name, score in self.top(k)],
            scores=[float(score) for score in self.scores])

    def report(self, k: int = 5) -> List[str]:
        """Lines for the terminal: the input, then one line per class,
        ``  1. drink water [0]: 0.9120``."""
        head = f'{self.source}: {self.description}'
        if 0 <= self.label < len(self.class_names):
            head += (f'; labelled {self.class_names[self.label]} '
                     f'[{self.label}]')
        lines = [head,
                 f'top-{min(k, len(self.scores))} classes (names: '
                 f'{self.names_source}):']
        lines += [f'{rank:3d}. {name} [{index}]: {score:.4f}'
                  for rank, (index, name, score) in
                  enumerate(self.top(k), start=1)]
        return lines


def classify_clip(cfg: Config,
                  checkpoint: str,
                  path: str,
                  sample: Optional[str] = None,
                  label_names: Optional[str] = None,
                  device: Optional[str] = None,
                  model: Optional[nn.Module] = None) -> ClipPrediction:
    """Read, check and classify one clip: what ``tools/infer.py`` does.

    The input is checked against the config before the model is built.

    Args:
        cfg (Config): The full config (``--cfg-options`` merged).
        checkpoint (str): The checkpoint (plain or CoCoDiff).
        path (str): The clip (see :func:`~.clip_inputs.load_clip`).
        sample (str, optional): The ``frame_dir`` of a pickle's sample.
            Defaults to ``None``.
        label_names (str, optional): A file of class names, one per line.
            Defaults to ``None`` (see :func:`~.class_names.
            choose_class_names`).
        device (str, optional): Defaults to ``None`` (CUDA when
            available).
        model (nn.Module, optional): A model from
            :func:`init_inference_model` to reuse (``checkpoint`` and
            ``device`` are then ignored). Defaults to ``None``.

    Returns:
        ClipPrediction: The scores and their report.

    Raises:
        ClipInputError: For an input that cannot be read or does not fit,
            or NaN or infinite scores from the model.
        ConfigError: For unusable class names, a checkpoint that cannot be
            read or does not fit (:class:`CheckpointMismatchError`).
        FileNotFoundError: If the checkpoint does not exist.
    """
    from .class_names import choose_class_names
    from .clip_inputs import describe_clip, load_clip
    names, names_source = choose_class_names(cfg, label_names)
    clip = load_clip(path, sample=sample, class_names=names)
    source = path if sample is None else f'{path} [{sample}]'
    check_clip_fits(clip, cfg, source)
    description = describe_clip(clip)
    label = clip.get('label', -1)
    label = int(label) if isinstance(label, (int, np.integer)) else -1
    pipeline = config_test_pipeline(cfg)
    if model is None:
        model = init_inference_model(cfg, checkpoint, device)
    scores = predict_scores(model, clip, pipeline)
    bad = int((~np.isfinite(scores)).sum())
    if bad:
        raise ClipInputError(
            f'{source}: {checkpoint or "the model"} gave {bad} non-finite '
            f'class scores (NaN/inf) of {scores.size}; the classes cannot be '
            'ranked')
    return ClipPrediction(source=source, description=description,
                          label=label, scores=scores, class_names=names,
                          names_source=names_source)
