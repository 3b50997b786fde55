"""Encode a class-text file into a cached text-embedding bank.

Training builds the bank on first use; this tool builds it ahead of time
(e.g. on a machine with network access for ``--pretrained openai``) and
reports what the bank holds::

    python tools/encode_texts.py --texts ntu120 --encoder clip \\
        --pretrained /path/to/open_clip_model.bin --cache-dir data/text_banks
    python tools/encode_texts.py --texts ntu120 --num-classes 60 \\
        --encoder minilm
    python tools/encode_texts.py --custom-imports my_project.my_encoder \\
        --encoder my_encoder
"""
import argparse
import importlib
import sys
from typing import List, Optional

import cocodiff_mm  # noqa: F401  (runtime fixes before open_clip/torchvision)
from cocodiff_mm.models.text import (TEXT_ENCODERS, UNTRAINED_MESSAGE,
                                     TextEmbeddingBank)


def registered_encoders() -> List[str]:
    """Names registered in ``TEXT_ENCODERS`` (built-in and imported)."""
    TEXT_ENCODERS.import_from_location()
    return sorted(TEXT_ENCODERS.module_dict)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments; ``None`` reads ``sys.argv``.
            Defaults to ``None``.

    Returns:
        argparse.Namespace: The options.
    """
    parser = argparse.ArgumentParser(
        description='Encode class texts into a cached text-embedding bank.')
    parser.add_argument(
        '--texts', default='ntu120',
        help='class-text name in cocodiff_mm/texts or a JSON path '
        '(default: ntu120)')
    parser.add_argument(
        '--encoder', default='clip',
        help='a text encoder registered in TEXT_ENCODERS (now: '
        f'{", ".join(registered_encoders())}; random = untrained, testing '
        'only; more with --custom-imports) (default: clip)')
    parser.add_argument(
        '--custom-imports', nargs='+', default=[], metavar='MODULE',
        help="modules that register more encoders, as a config's "
        'custom_imports')
    parser.add_argument(
        '--pretrained', default='openai',
        help="open_clip tag or local weights file for --encoder clip; 'none' "
        'for random weights (default: openai)')
    parser.add_argument(
        '--model-name', default='ViT-B-32',
        help='open_clip architecture for clip/random (default: ViT-B-32)')
    parser.add_argument(
        '--num-classes', type=int, default=None,
        help='keep only the first N classes (default: all)')
    parser.add_argument(
        '--cache-dir', default='data/text_banks',
        help='folder of the bank files (default: data/text_banks)')
    parser.add_argument(
        '--device', default=None,
        help='device to encode on (default: cuda if available, else cpu)')
    parser.add_argument(
        '--batch-size', type=int, default=64,
        help='texts per encoder forward pass (default: 64)')
    parser.add_argument(
        '--force', action='store_true',
        help='encode again even if a matching bank file exists')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Build the bank and print its file, counts and size.

    Args:
        argv (list[str], optional): Arguments; ``None`` reads ``sys.argv``.
            Defaults to ``None``.

    Returns:
        int: Exit status.
    """
    args = parse_args(argv)
    pretrained = args.pretrained
    if pretrained is not None and pretrained.lower() == 'none':
        pretrained = None
    encoder = args.encoder
    if encoder == 'clip' and pretrained is None:
        encoder = 'random'
    try:
        for module in args.custom_imports:
            importlib.import_module(module)
        bank = TextEmbeddingBank(
            texts=args.texts,
            encoder=encoder,
            model_name=args.model_name,
            pretrained=pretrained,
            classes=args.num_classes,
            cache_dir=args.cache_dir,
            encode_device=args.device,
            batch_size=args.batch_size)
        bank.build(rebuild=args.force)
    except (FileNotFoundError, ImportError, RuntimeError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    meta = bank.metadata
    print(f'bank file: {bank.bank_path.resolve()}')
    status = 'loaded from cache' if bank.loaded_from_cache else 'encoded'
    print(f'status: {status}')
    print(f'texts: {meta["texts_name"]} ({meta["texts_path"]}), '
          f'digest {meta["texts_digest"][:12]}')
    print(f'classes: {bank.num_classes}')
    print(f'fine texts: {int(bank.fine_counts.sum())}')
    print(f'coarse texts: {int(bank.coarse_counts.sum())}')
    print(f'encoder: {meta["encoder"]} {meta["model_name"]} '
          f'(weights {meta["weights_id"]})')
    print(f'dim: {bank.dim}')
    if bank.untrained:
        print(f'WARNING: {UNTRAINED_MESSAGE}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
