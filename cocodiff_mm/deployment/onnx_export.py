"""Export the inference model of a baseline or CoCoDiff checkpoint to ONNX.

Inference in CoCoDiff is the stock GCN: the backbone, then ``GCNHead``'s
pooling and ``fc``. :func:`build_inference_model` builds exactly that from
either config: a CoCoDiff head (any ``GCNHead`` subclass) is replaced by a
plain ``GCNHead`` with the same ``num_classes`` and ``in_channels``, so the
diffusion, the text bank and the projection are never built, let alone
exported. :func:`load_inference_weights` loads only the inference weights
of the checkpoint, strictly: every other key is refused in one line.

The ONNX model takes one clip of raw skeletons, ``keypoints`` of shape
``(N, M, T, V, C)`` (batch, persons, frames, joints, coordinates: the layout
``RecognizerGCN`` hands its backbone after folding clips into the batch),
and returns the class ``logits`` ``(N, num_classes)`` before any softmax.
Batch and frames are always dynamic. Persons are dynamic unless the
backbone's data BN is ``'MVC'`` (one BN channel per person, joint and
coordinate: CTR-GCN's default), which only works with the ``num_person`` it
was built for; that axis is then fixed in the graph. Multi-clip averaging
(``average_clips``) stays with the caller.

The graph is traced with torch's TorchScript-based exporter
(``dynamo=False``), which needs no package beyond torch; ``onnx`` and
``onnxruntime`` are imported only to check the result.
"""
import copy
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config

from ..engine.inference_export import load_inference_weights
from ..utils.atomic_write import atomic_path
from ..utils.config_keys import ConfigError

#: Names of the graph's input and output.
INPUT_NAME = 'keypoints'
OUTPUT_NAME = 'logits'


def _registered(registry, type_) -> type:
    """The class a config ``type`` names (a class passes through)."""
    if isinstance(type_, type):
        return type_
    found = registry.get(type_)
    if found is None:
        raise ConfigError(f'{type_!r} is not a registered model type')
    return found


def inference_head_cfg(head_cfg: Dict) -> Dict:
    """The config of the plain ``GCNHead`` that inference uses.

    Args:
        head_cfg (dict): ``model.cls_head`` of a baseline (``GCNHead``) or a
            CoCoDiff (``DiffusionAugmentedHead``) config.

    Returns:
        dict: ``dict(type='GCNHead', ...)`` with the same ``num_classes``,
        ``in_channels``, ``dropout`` and ``average_clips``; nothing of the
        training-only parts.

    Raises:
        ConfigError: If the head is not a ``GCNHead`` (or a subclass).
    """
    from mmaction.models.heads import GCNHead
    from mmaction.registry import MODELS

    head_cls = _registered(MODELS, head_cfg['type'])
    if not issubclass(head_cls, GCNHead):
        raise ConfigError(
            f'model.cls_head.type={head_cls.__name__} is not a GCNHead: the '
            'ONNX export covers GCN recognizers (backbone + GCNHead) only')
    return dict(
        type='GCNHead',
        num_classes=head_cfg['num_classes'],
        in_channels=head_cfg['in_channels'],
        dropout=head_cfg.get('dropout', 0.0),
        average_clips=head_cfg.get('average_clips', 'prob'))


def build_inference_model(config: Union[str, Config],
                          cfg_options: Optional[Dict] = None) -> nn.Module:
    """Build the recognizer of ``config`` with a plain ``GCNHead``.

    Args:
        config (str | Config): A baseline or CoCoDiff config.
        cfg_options (dict, optional): Overrides merged into the config
            (``--cfg-options``). Defaults to None.

    Returns:
        nn.Module: The ``RecognizerGCN``, in eval mode, with random weights.

    Raises:
        ConfigError: If the model is not a ``RecognizerGCN`` with a
            ``GCNHead``, or its data preprocessor normalises the inputs
            (the ONNX graph takes raw keypoints).
    """
    from mmaction.models import RecognizerGCN
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    cfg = copy.deepcopy(config) if isinstance(config, Config) \
        else Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    model_cfg = cfg.model.to_dict()
    if not issubclass(_registered(MODELS, model_cfg['type']), RecognizerGCN):
        raise ConfigError(
            f'model.type={model_cfg["type"]} is not a RecognizerGCN: the ONNX '
            'export covers skeleton GCN recognizers only')
    model_cfg['cls_head'] = inference_head_cfg(model_cfg['cls_head'])
    model = MODELS.build(model_cfg)
    if getattr(model.data_preprocessor, '_enable_normalize', False):
        raise ConfigError(
            'model.data_preprocessor normalises the inputs (mean/std), which '
            'the ONNX graph would not do: remove it or normalise the '
            'keypoints before the exported model')
    return model.eval()


class InferenceGCN(nn.Module):
    """What the ONNX graph computes: ``cls_head(backbone(keypoints))``.

    Args:
        recognizer (nn.Module): A ``RecognizerGCN`` with a ``GCNHead``.
    """

    def __init__(self, recognizer: nn.Module) -> None:
        super().__init__()
        self.backbone = recognizer.backbone
        self.cls_head = recognizer.cls_head

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        """(N, M, T, V, C) skeletons -> (N, num_classes) logits."""
        return self.cls_head(self.backbone(keypoints))


@dataclass
class InputLayout:
    """Shape facts of the backbone's input ``(N, M, T, V, C)``.

    Args:
        num_joints (int): ``V``.
        in_channels (int): ``C``.
        fixed_persons (int, optional): ``M`` the backbone requires (``'MVC'``
            data BN), or None when any ``M`` works.
    """
    num_joints: int
    in_channels: int
    fixed_persons: Optional[int] = None


def input_layout(model: nn.Module) -> InputLayout:
    """Read joints, coordinates and a required person count off the backbone.

    Args:
        model (nn.Module): A ``RecognizerGCN`` (CTRGCN, STGCN or AAGCN
            backbone: anything with a ``graph`` and ``in_channels``).

    Returns:
        InputLayout: The layout.
    """
    backbone = model.backbone
    num_joints = int(backbone.graph.num_node)
    in_channels = int(backbone.in_channels)
    fixed = None
    if getattr(backbone, 'data_bn_type', None) == 'MVC':
        fixed = backbone.data_bn.num_features // (num_joints * in_channels)
    return InputLayout(num_joints, in_channels, fixed)


def _torch_logits(model: nn.Module, keypoints: torch.Tensor) -> np.ndarray:
    """Logits of the recognizer's own test path (one clip per sample)."""
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(keypoints[:, None].to(device), mode='tensor',
                       stage='head')
    return logits.float().cpu().numpy()


def export_onnx(model: nn.Module,
                output_file: str,
                num_frames: int = 64,
                num_person: Optional[int] = None,
                opset: int = 17) -> torch.Tensor:
    """Trace ``model`` into ``output_file`` with dynamic batch/persons/frames.

    Args:
        model (nn.Module): From :func:`build_inference_model`, weights
            loaded, on the device to trace on.
        output_file (str): The ``.onnx`` file; written atomically.
        num_frames (int): Frames ``T`` of the dummy input. Defaults to 64.
        num_person (int, optional): Persons ``M`` of the dummy input.
            Defaults to None (the backbone's, else 2).
        opset (int): ONNX opset. Defaults to 17.

    Returns:
        Tensor: The dummy input ``(1, M, T, V, C)`` (on the CPU).

    Raises:
        ConfigError: If ``num_person`` or ``num_frames`` cannot work.
    """
    layout = input_layout(model)
    if num_person is None:
        num_person = layout.fixed_persons or 2
    if layout.fixed_persons and num_person != layout.fixed_persons:
        raise ConfigError(
            f'--num-person {num_person}: the backbone was built for '
            f'num_person={layout.fixed_persons} with the per-person '
            "data BN (data_bn_type='MVC'), which fixes the persons axis; "
            f'use --num-person {layout.fixed_persons}')
    if num_person < 1 or num_frames < 1:
        raise ConfigError(f'--num-person ({num_person}) and --num-frames '
                          f'({num_frames}) must be at least 1')
    generator = torch.Generator().manual_seed(0)
    dummy = torch.randn(1, num_person, num_frames, layout.num_joints,
                        layout.in_channels, generator=generator)
    axes = {0: 'batch', 2: 'frames'}
    if layout.fixed_persons is None:
        axes[1] = 'persons'
    net = InferenceGCN(model).eval()
    device = next(model.parameters()).device
    with atomic_path(output_file) as tmp_name, warnings.catch_warnings():
        # The legacy-exporter notice, and the tracer's notes on the shape
        # checks in the backbone's forward (constants at trace time).
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        with torch.no_grad():
            torch.onnx.export(
                net, (dummy.to(device), ),
                tmp_name,
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: {0: 'batch'}})
    return dummy


def check_onnx_against_torch(onnx_file: str, model: nn.Module,
                             inputs: Sequence[torch.Tensor]
                             ) -> List[Tuple[float, float]]:
    """Compare onnxruntime's logits with the recognizer's, input by input.

    Args:
        onnx_file (str): An exported model.
        model (nn.Module): The recognizer it was exported from.
        inputs (Sequence[Tensor]): Skeletons ``(N, M, T, V, C)``.

    Returns:
        list[tuple[float, float]]: Per input, the max absolute logit
        difference and the max absolute PyTorch logit (its scale: float32
        rounding grows with it).
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(
        onnx_file, providers=['CPUExecutionProvider'])
    results = []
    for keypoints in inputs:
        (logits, ) = session.run([OUTPUT_NAME],
                                 {INPUT_NAME: keypoints.cpu().numpy()})
        reference = _torch_logits(model, keypoints)
        results.append((float(np.abs(logits - reference).max()),
                        float(np.abs(reference).max())))
    return results


@dataclass
class OnnxExportReport:
    """What :func:`export_checkpoint_to_onnx` did.

    Args:
        output_file (str): The ``.onnx`` file.
        input_shape (tuple): Input dims, names for dynamic axes.
        num_classes (int): Logits per sample.
        dropped_keys (int): Training-only tensors left out.
        checked_shapes (list[tuple]): Inputs of the onnxruntime check.
        max_diffs (list[float]): Max absolute logit difference per input.
        logit_scale (float): Max absolute PyTorch logit over those inputs.
        tolerance (float): Largest difference that passes.
    """
    output_file: str
    input_shape: Tuple
    num_classes: int
    dropped_keys: int
    checked_shapes: List[Tuple[int, ...]] = field(default_factory=list)
    max_diffs: List[float] = field(default_factory=list)
    logit_scale: float = 0.0
    tolerance: float = 1e-4

    @property
    def max_diff(self) -> float:
        """The largest difference over all checked inputs."""
        return max(self.max_diffs)

    @property
    def passed(self) -> bool:
        """Whether onnxruntime matched PyTorch within the tolerance."""
        return self.max_diff <= self.tolerance


def _check_inputs(dummy: torch.Tensor,
                  persons_dynamic: bool) -> List[torch.Tensor]:
    """The dummy input, and one of another batch, frames (and persons)."""
    _, persons, frames, joints, coords = dummy.shape
    generator = torch.Generator().manual_seed(1)
    other = torch.randn(2, persons + 1 if persons_dynamic else persons,
                        max(frames // 2, 1), joints, coords,
                        generator=generator)
    return [dummy, other]


def export_checkpoint_to_onnx(config: Union[str, Config],
                              checkpoint: str,
                              output_file: str,
                              num_frames: int = 64,
                              num_person: Optional[int] = None,
                              opset: int = 17,
                              device: str = 'cpu',
                              cfg_options: Optional[Dict] = None,
                              tolerance: float = 1e-4) -> OnnxExportReport:
    """Export a checkpoint's inference model and check it with onnxruntime.

    Args:
        config (str | Config): Its baseline or CoCoDiff config.
        checkpoint (str): The checkpoint.
        output_file (str): The ``.onnx`` file to write.
        num_frames (int): Frames of the dummy input. Defaults to 64.
        num_person (int, optional): Persons of the dummy input. Defaults to
            None (the backbone's ``num_person``, else 2).
        opset (int): ONNX opset. Defaults to 17.
        device (str): Device to trace on (onnxruntime checks on the CPU).
            Defaults to ``'cpu'``.
        cfg_options (dict, optional): Config overrides. Defaults to None.
        tolerance (float): Largest max-abs logit difference that passes.
            Defaults to ``1e-4``.

    Returns:
        OnnxExportReport: Shapes and differences; ``passed`` tells the
        verdict (the file is written either way).

    Raises:
        FileNotFoundError, ConfigError: For a missing, unreadable or
            mismatched checkpoint, or a config that cannot be exported.
    """
    model = build_inference_model(config, cfg_options)
    dropped = load_inference_weights(model, checkpoint)
    model.to(device)
    dummy = export_onnx(model, output_file, num_frames, num_person, opset)
    persons_dynamic = input_layout(model).fixed_persons is None
    inputs = _check_inputs(dummy, persons_dynamic)
    shape = ('batch', 'persons' if persons_dynamic else dummy.shape[1],
             'frames', *dummy.shape[3:])
    compared = check_onnx_against_torch(str(output_file), model, inputs)
    return OnnxExportReport(
        output_file=str(output_file),
        input_shape=shape,
        num_classes=model.cls_head.num_classes,
        dropped_keys=len(dropped),
        checked_shapes=[tuple(x.shape) for x in inputs],
        max_diffs=[diff for diff, _ in compared],
        logit_scale=max(scale for _, scale in compared),
        tolerance=tolerance)
