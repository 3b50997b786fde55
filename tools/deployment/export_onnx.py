"""Export a baseline or CoCoDiff checkpoint's inference model to ONNX.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT \
        --output-file model.onnx [--num-frames 64] [--num-person 2] \
        [--opset 17] [--device cpu] [--cfg-options KEY=VALUE ...]

The graph is the stock GCN (backbone + GCNHead pooling and fc): input
``keypoints`` (N, M, T, V, C), output ``logits`` (N, num_classes), dynamic
batch and frames, and persons unless the backbone's data BN is per person
('MVC'). A CoCoDiff config exports a plain GCNHead; the diffusion is never
built. onnxruntime is then checked against PyTorch on two inputs.

Exit codes: 0 exported and checked; 1 onnxruntime differs from PyTorch by
more than --tolerance; 2 missing, corrupt or mismatched checkpoint, or a
config that cannot be exported (one line on stderr).
"""
import argparse
import sys

import cocodiff_mm  # noqa: F401  (runtime fixes, CTRGCN registration)
from mmengine.config import DictAction

from cocodiff_mm import runtime
from cocodiff_mm.deployment import export_checkpoint_to_onnx
from cocodiff_mm.utils.config_keys import ConfigError


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='baseline or CoCoDiff config')
    parser.add_argument('checkpoint', help='checkpoint of tools/train.py')
    parser.add_argument('--output-file', default='model.onnx',
                        help='ONNX file to write (default: model.onnx)')
    parser.add_argument('--num-frames', type=int, default=64,
                        help='frames of the dummy input (default: 64)')
    parser.add_argument(
        '--num-person', type=int, default=None,
        help="persons of the dummy input (default: the backbone's "
        'num_person, else 2)')
    parser.add_argument('--opset', type=int, default=17,
                        help='ONNX opset (default: 17)')
    parser.add_argument('--device', default='cpu',
                        help='device to trace on (default: cpu)')
    parser.add_argument(
        '--tolerance', type=float, default=1e-4,
        help='largest max-abs logit difference, onnxruntime vs PyTorch, '
        'that passes (default: 1e-4)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        runtime.setup()  # safe checkpoint loading (and the trust opt-in)
        report = export_checkpoint_to_onnx(
            args.config, args.checkpoint, args.output_file,
            num_frames=args.num_frames, num_person=args.num_person,
            opset=args.opset, device=args.device,
            cfg_options=args.cfg_options, tolerance=args.tolerance)
    except (FileNotFoundError, ConfigError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        if error.name not in ('onnx', 'onnxruntime'):
            raise
        print(f'error: {error.name} is not installed (make install installs '
              'requirements/onnx.txt)', file=sys.stderr)
        return 2
    shape = ', '.join(str(dim) for dim in report.input_shape)
    print(f'wrote {report.output_file} (opset {args.opset}): keypoints '
          f'({shape}) -> logits (batch, {report.num_classes}); '
          f'{report.dropped_keys} training-only tensors left out')
    checked = ', '.join(str(s) for s in report.checked_shapes)
    print(f'onnxruntime vs PyTorch: max |logit diff| {report.max_diff:.2e} '
          f'on inputs {checked}; logits up to {report.logit_scale:.3g} '
          f'(tolerance {report.tolerance:.0e})')
    if not report.passed:
        print(f'error: {report.output_file} differs from PyTorch by '
              f'{report.max_diff:.2e} > --tolerance {report.tolerance:.0e} '
              f'(the file is kept; with logits up to '
              f'{report.logit_scale:.3g}, float32 rounding alone gives about '
              f'{report.logit_scale * 1e-6:.0e})', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
