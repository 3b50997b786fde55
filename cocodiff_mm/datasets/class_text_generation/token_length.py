"""How many tokens the CLIP text encoder sees in a text, and its limit.

The generated texts are encoded by :class:`~cocodiff_mm.models.text.encoders.
ClipTextEncoder`, which tokenizes with ``open_clip.get_tokenizer(model_name)``
and truncates everything past the tokenizer's ``context_length`` (start and
end tokens included). :func:`clip_token_limit` builds the same tokenizer, so
the generator rejects exactly the texts the encoder would truncate.

open_clip is imported only when :func:`clip_token_limit` is first called.
When it is not installed, the limit falls back, with a ``UserWarning``, to
:data:`FALLBACK_CONTEXT_LENGTH` and an *estimated* count
(:func:`estimate_token_count`).
"""
import functools
import re
import warnings
from dataclasses import dataclass
from typing import Callable

#: open_clip architecture whose tokenizer is used by default: the default of
#: ``ClipTextEncoder`` and of ``configs/_base_/cocodiff.py``.
DEFAULT_CLIP_MODEL = 'ViT-B-32'

#: Context length assumed when open_clip is not installed: CLIP's 77 tokens,
#: start and end tokens included.
FALLBACK_CONTEXT_LENGTH = 77

#: Close to CLIP's pre-tokenizer: contractions, letter runs, single digits,
#: runs of other non-space characters.
_PRE_TOKEN = re.compile(r"'(?:s|t|re|ve|m|ll|d)|[^\W\d_]+|\d|(?:[^\w\s]|_)+")


@dataclass(frozen=True)
class TokenLimit:
    """The token budget of a text encoder and how to count against it.

    Args:
        context_length (int): Longest text in tokens, start and end tokens
            included.
        count (Callable[[str], int]): Tokens of a text, start and end tokens
            included.
        exact (bool): ``True`` when ``count`` is the encoder's own tokenizer,
            ``False`` for the estimate used without open_clip.
        model_name (str): The open_clip architecture it was made for.
    """

    context_length: int
    count: Callable[[str], int]
    exact: bool
    model_name: str


def estimate_token_count(text: str) -> int:
    """Estimated CLIP tokens of ``text``, start and end tokens included.

    Counts one token per pre-token (word, digit or run of punctuation) of the
    lower-cased text, plus the start and end tokens. Ordinary English words
    are one CLIP token each, but the BPE splits rare or long words into
    several, so this is a lower bound: a text within the limit by this
    estimate can still be truncated by the encoder (which then warns).

    Args:
        text (str): Any text.

    Returns:
        int: The estimated length.
    """
    return len(_PRE_TOKEN.findall(text.lower())) + 2


@functools.lru_cache(maxsize=None)
def clip_token_limit(model_name: str = DEFAULT_CLIP_MODEL) -> TokenLimit:
    """Context length and token count of the CLIP text encoder's tokenizer.

    Uses ``open_clip.get_tokenizer(model_name)``, as ``ClipTextEncoder`` does,
    and counts like its truncation warning: the BPE tokens of the text plus
    the start and end tokens. The result is cached per ``model_name``.

    If open_clip cannot be imported, warns once (``UserWarning``) and returns
    :data:`FALLBACK_CONTEXT_LENGTH` with :func:`estimate_token_count`
    (``exact=False``).

    Args:
        model_name (str): open_clip architecture. Defaults to
            :data:`DEFAULT_CLIP_MODEL`.

    Returns:
        TokenLimit: The limit and the counting function.

    Raises:
        ValueError: If open_clip's tokenizer for ``model_name`` has no
            ``context_length`` or no ``encode`` method (e.g. a Hugging Face
            tokenizer), so its lengths cannot be counted.
    """
    try:
        import open_clip  # lazy: heavy, and imports torchvision
    except ImportError as exc:
        warnings.warn(
            f'open_clip is not installed ({exc}); counting the tokens of the '
            f'generated texts with an estimate (one per word or punctuation '
            f'run) against CLIP\'s {FALLBACK_CONTEXT_LENGTH}-token context. '
            'Install open_clip_torch (part of `make install`) for exact '
            'counts.',
            UserWarning,
            stacklevel=2)
        return TokenLimit(
            context_length=FALLBACK_CONTEXT_LENGTH,
            count=estimate_token_count,
            exact=False,
            model_name=model_name)
    tokenizer = open_clip.get_tokenizer(model_name)
    context_length = getattr(tokenizer, 'context_length', None)
    encode = getattr(tokenizer, 'encode', None)
    if not isinstance(context_length, int) or context_length < 1 or not (
            callable(encode)):
        raise ValueError(
            f'the open_clip tokenizer of {model_name!r} '
            f'({type(tokenizer).__name__}) has no integer context_length and '
            f'encode() method, so text lengths cannot be counted')

    def count(text: str) -> int:
        """Tokens of ``text``, start and end tokens included."""
        return len(encode(text)) + 2  # start and end tokens

    return TokenLimit(
        context_length=context_length,
        count=count,
        exact=True,
        model_name=model_name)
