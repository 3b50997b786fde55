"""tools/deployment/export_onnx.py: the stock-GCN inference model as ONNX.

Tiny baseline and CoCoDiff models are trained for one epoch (per stage),
exported by the CLI, and run with onnxruntime on inputs of another batch,
person count and frame count than the export's dummy input; the reference
logits come from the trained recognizer as mmaction2 builds it from the
training config (for CoCoDiff: with its DiffusionAugmentedHead), not from
the export code. The persons axis is only dynamic for a backbone whose data
BN is shared over persons ('VC'), so the trained models use that; the
default per-person BN ('MVC') is checked on a random-weight model.
"""
import argparse
import importlib.util
from collections import Counter

import numpy as np
import pytest
import torch

from conftest import ONE_EPOCH_PER_STAGE, REPO, run_ok, run_tool, tiny_options


BASELINE = 'configs/ctrgcn_ntu60_xsub.py'
COCODIFF = 'configs/ctrgcn_cocodiff_ntu60_xsub.py'
EXPORT = 'tools/deployment/export_onnx.py'
#: The tiny architecture of ``tiny_options``, with the persons-shared BN.
MODEL_OPTIONS = ('model.backbone.base_channels=8',
                 'model.cls_head.in_channels=32',
                 'model.backbone.data_bn_type=VC')
#: Export dummy input: (1, 2, 16, 25, 3). Checks use other N, M and T.
EXPORT_ARGS = ('--num-frames', '16', '--num-person', '2')
OTHER_SHAPES = ((3, 1, 40, 25, 3), (2, 3, 9, 25, 3))
#: ``MODEL_OPTIONS`` without the BN change, for in-process builds.
TINY = {'model.backbone.base_channels': 8, 'model.cls_head.in_channels': 32}


def _train(config, work_dir, *options):
    run_ok('tools/train.py', config, '--work-dir', str(work_dir),
           '--cfg-options', *options, 'model.backbone.data_bn_type=VC')
    return work_dir / (work_dir / 'last_checkpoint').read_text().strip()


@pytest.fixture(scope='module')
def baseline_checkpoint(tmp_path_factory, ntu60_pickle):
    work_dir = tmp_path_factory.mktemp('onnx_baseline')
    return _train(BASELINE, work_dir, *tiny_options(ntu60_pickle),
                  'train_cfg.max_epochs=1')


@pytest.fixture(scope='module')
def cocodiff_checkpoint(tmp_path_factory, ntu60_pickle, text_bank_cache):
    work_dir = tmp_path_factory.mktemp('onnx_cocodiff')
    return _train(COCODIFF, work_dir,
                  *tiny_options(ntu60_pickle, text_bank_cache),
                  *ONE_EPOCH_PER_STAGE)


def _export(config, checkpoint, output_file):
    """Run the CLI; return its result (asserting exit 0)."""
    return run_ok(EXPORT, config, str(checkpoint), '--output-file',
                  str(output_file), *EXPORT_ARGS, '--cfg-options',
                  *MODEL_OPTIONS)


@pytest.fixture(scope='module')
def baseline_onnx(tmp_path_factory, baseline_checkpoint):
    output = tmp_path_factory.mktemp('onnx_files') / 'baseline.onnx'
    return output, _export(BASELINE, baseline_checkpoint, output)


def _trained_recognizer(config, checkpoint, options):
    """The recognizer as trained (full head), weights loaded strictly."""
    from mmaction.registry import MODELS
    from mmengine.config import Config, DictAction
    from mmengine.registry import init_default_scope

    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = Config.fromfile(str(REPO / config))
    cfg.merge_from_dict(
        parser.parse_args(['--cfg-options', *options]).cfg_options)
    init_default_scope('mmaction')
    model = MODELS.build(cfg.model)
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    model.load_state_dict(state['state_dict'], strict=True)
    return model.eval()


def _max_diff_on_other_shapes(onnx_file, recognizer):
    """Max |logit diff| of onnxruntime vs ``recognizer`` per other shape."""
    import onnxruntime

    session = onnxruntime.InferenceSession(
        str(onnx_file), providers=['CPUExecutionProvider'])
    generator = torch.Generator().manual_seed(3)
    diffs = []
    for shape in OTHER_SHAPES:
        keypoints = torch.randn(*shape, generator=generator)
        with torch.no_grad():
            expected = recognizer(keypoints[:, None], mode='tensor',
                                  stage='head').numpy()
        (logits, ) = session.run(['logits'], {'keypoints': keypoints.numpy()})
        assert logits.shape == (shape[0], 60)
        diffs.append(float(np.abs(logits - expected).max()))
    return diffs


def _dims(onnx_file):
    """The input's dims: names of dynamic axes, sizes of fixed ones."""
    import onnx

    (value, ) = onnx.load(str(onnx_file)).graph.input
    dims = value.type.tensor_type.shape.dim
    return [dim.dim_param or dim.dim_value for dim in dims]


def _graph_summary(onnx_file):
    """Op-type counts, initializer names and the number of weights."""
    import onnx

    graph = onnx.load(str(onnx_file)).graph
    return (Counter(node.op_type for node in graph.node),
            [init.name for init in graph.initializer],
            sum(int(np.prod(init.dims)) for init in graph.initializer))


def test_baseline_matches_pytorch_on_other_batch_persons_frames(
        baseline_onnx, baseline_checkpoint, ntu60_pickle):
    output, result = baseline_onnx
    assert 'max |logit diff|' in result.stdout
    assert _dims(output) == ['batch', 'persons', 'frames', 25, 3]
    recognizer = _trained_recognizer(
        BASELINE, baseline_checkpoint,
        [*tiny_options(ntu60_pickle), 'model.backbone.data_bn_type=VC'])
    diffs = _max_diff_on_other_shapes(output, recognizer)
    assert max(diffs) < 1e-4, diffs


def test_cocodiff_exports_the_stock_gcn_without_diffusion(
        baseline_onnx, cocodiff_checkpoint, tmp_path, ntu60_pickle,
        text_bank_cache):
    output = tmp_path / 'cocodiff.onnx'
    # No text-bank options: the head with its CLIP text bank is never built.
    result = _export(COCODIFF, cocodiff_checkpoint, output)
    left_out = int(result.stdout.split(' training-only tensors left out')[0]
                   .rsplit(' ', 1)[-1])
    assert left_out > 0
    ops, names, numel = _graph_summary(output)
    base_ops, base_names, base_numel = _graph_summary(baseline_onnx[0])
    assert (ops, len(names), numel) == (base_ops, len(base_names),
                                        base_numel)
    assert not [n for n in names
                if any(part in n for part in ('denoiser', 'projection',
                                              'text_bank', 'feature_'))]
    recognizer = _trained_recognizer(
        COCODIFF, cocodiff_checkpoint,
        [*tiny_options(ntu60_pickle, text_bank_cache),
         'model.backbone.data_bn_type=VC'])
    assert any(k.startswith('cls_head.denoiser.')
               for k in recognizer.state_dict())
    diffs = _max_diff_on_other_shapes(output, recognizer)
    assert max(diffs) < 1e-4, diffs


def test_mismatched_checkpoint_exits_2_in_one_line(baseline_checkpoint,
                                                   tmp_path):
    output = tmp_path / 'mismatch.onnx'
    # The checkpoint has the persons-shared data BN; the config's is 'MVC'.
    result = run_tool(EXPORT, BASELINE, str(baseline_checkpoint),
                      '--output-file', str(output), *EXPORT_ARGS,
                      '--cfg-options', *MODEL_OPTIONS[:2])
    assert result.returncode == 2, result.stderr[-2000:]
    (line, ) = [text for text in result.stderr.splitlines()
                if text.startswith('error:')]
    assert 'does not match the config' in line and 'backbone.data_bn' in line
    assert 'Likely cause' in line
    assert not output.exists()


# A default (per-person 'MVC' data BN) model, random weights: no training.


@pytest.fixture(scope='module')
def mvc_checkpoint(tmp_path_factory):
    from cocodiff_mm.deployment import build_inference_model

    model = build_inference_model(str(REPO / BASELINE), TINY)
    model.init_weights()
    path = tmp_path_factory.mktemp('onnx_mvc') / 'random.pth'
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def test_mvc_backbone_fixes_the_persons_axis(mvc_checkpoint, tmp_path):
    import onnxruntime

    from cocodiff_mm.deployment import export_checkpoint_to_onnx
    from cocodiff_mm.utils.config_keys import ConfigError

    output = tmp_path / 'mvc.onnx'
    report = export_checkpoint_to_onnx(
        str(REPO / COCODIFF), str(mvc_checkpoint), str(output),
        num_frames=12, cfg_options=TINY)
    assert report.passed, report
    assert report.checked_shapes == [(1, 2, 12, 25, 3), (2, 2, 6, 25, 3)]
    assert _dims(output) == ['batch', 2, 'frames', 25, 3]
    session = onnxruntime.InferenceSession(
        str(output), providers=['CPUExecutionProvider'])
    (logits, ) = session.run(
        ['logits'], {'keypoints': np.zeros((3, 2, 20, 25, 3), np.float32)})
    assert logits.shape == (3, 60)
    with pytest.raises(ConfigError, match="--num-person 2"):
        export_checkpoint_to_onnx(
            str(REPO / BASELINE), str(mvc_checkpoint),
            str(tmp_path / 'three.onnx'), num_person=3, cfg_options=TINY)
    assert not (tmp_path / 'three.onnx').exists()


def test_cocodiff_config_builds_a_plain_gcn_head():
    from mmaction.models.heads import GCNHead

    from cocodiff_mm.deployment import build_inference_model
    from cocodiff_mm.models.heads import DiffusionAugmentedHead

    built = []
    original = DiffusionAugmentedHead.__init__

    def spy(self, *args, **kwargs):
        built.append(self)
        original(self, *args, **kwargs)

    DiffusionAugmentedHead.__init__ = spy
    try:
        model = build_inference_model(str(REPO / COCODIFF), TINY)
    finally:
        DiffusionAugmentedHead.__init__ = original
    assert not built
    assert type(model.cls_head) is GCNHead
    assert (model.cls_head.num_classes, model.cls_head.in_channels) == (60,
                                                                       32)
    baseline = build_inference_model(str(REPO / BASELINE), TINY)
    assert model.state_dict().keys() == baseline.state_dict().keys()


def _cli_module():
    spec = importlib.util.spec_from_file_location('export_onnx_cli',
                                                  REPO / EXPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_difference_above_tolerance_exits_1(mvc_checkpoint, tmp_path,
                                            monkeypatch, capsys):
    from cocodiff_mm.deployment import onnx_export

    cli = _cli_module()
    args = [str(REPO / BASELINE), str(mvc_checkpoint), '--output-file',
            str(tmp_path / 'm.onnx'), '--num-frames', '8', '--cfg-options',
            'model.backbone.base_channels=8', 'model.cls_head.in_channels=32']
    assert cli.main(args) == 0
    assert 'max |logit diff|' in capsys.readouterr().out
    monkeypatch.setattr(onnx_export, 'check_onnx_against_torch',
                        lambda *_: [(2e-4, 5.0), (1e-6, 5.0)])
    assert cli.main(args) == 1
    assert 'differs from PyTorch by 2.00e-04' in capsys.readouterr().err
