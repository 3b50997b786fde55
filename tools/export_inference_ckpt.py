"""Write a CoCoDiff checkpoint as a stock-GCN checkpoint (zero extra cost).

    python tools/export_inference_ckpt.py IN.pth OUT.pth [--config BASELINE]

Drops the diffusion and text weights; the result loads with strict=True into
the baseline config (plain GCNHead). With --config, that is checked before
anything is written: a checkpoint that does not fit leaves no file (exit 2).
"""
import argparse
import sys

import cocodiff_mm  # noqa: F401  (runtime fixes, CTRGCN registration)
from cocodiff_mm import runtime
from cocodiff_mm.engine.inference_export import export_inference_checkpoint
from cocodiff_mm.utils.config_keys import ConfigError


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='checkpoint written by tools/train.py')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--config',
        help='baseline config to check a strict load against, e.g. '
        'configs/ctrgcn_ntu60_xsub.py')
    return parser.parse_args(argv)


def build_model(config: str):
    """The model of ``config`` (the baseline the export must load into)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmaction.registry import MODELS

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    return MODELS.build(cfg.model)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        runtime.setup()  # safe checkpoint loading (and the trust opt-in)
        model = build_model(args.config) if args.config else None
        dropped = export_inference_checkpoint(args.src, args.dst, model)
    except (FileNotFoundError, ConfigError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(f'wrote {args.dst}: dropped {len(dropped)} training-only tensors')
    if args.config:
        print(f'{args.dst} loads strictly into {args.config} (checked before '
              'writing)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
