"""Class texts, frozen text encoders and the cached text-embedding bank.

Nothing here imports open_clip or transformers at import time: the encoders
load them when they first encode.
"""
from .class_texts import (ClassTexts, available_texts, load_class_texts,
                          resolve_texts_path)
from .encoders import (ClipTextEncoder, MiniLMTextEncoder,
                       RandomClipTextEncoder, TextEncoder, build_text_encoder,
                       file_fingerprint, text_encoder_class, text_encoder_dim)
from .registry import TEXT_ENCODERS
from .text_bank import (UNTRAINED_MESSAGE, TextEmbeddingBank,
                        encode_class_texts, load_bank_file, save_bank_file)

__all__ = [
    'ClassTexts', 'available_texts', 'load_class_texts', 'resolve_texts_path',
    'TEXT_ENCODERS', 'TextEncoder', 'ClipTextEncoder',
    'MiniLMTextEncoder', 'RandomClipTextEncoder', 'build_text_encoder',
    'file_fingerprint', 'text_encoder_class', 'text_encoder_dim',
    'TextEmbeddingBank', 'UNTRAINED_MESSAGE', 'encode_class_texts',
    'load_bank_file', 'save_bank_file'
]
