"""Asking an LLM for the coarse and fine texts of classes, validated.

:class:`TextGenerator` asks for the texts of one class and kind, keeps the
valid, distinct ones that fit the CLIP text encoder's context, and caches
what it accepts; :func:`generate` runs it over all classes.
"""
import sys
from typing import Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from .errors import AnswerError
from .llm_client import ChatClient
from .prompts import build_prompt
from .response_cache import AnswerCache
from .response_parser import parse_text_list
from .token_length import clip_token_limit


class TextGenerator:
    """Ask for, validate and cache the texts of single classes.

    Args:
        client (ChatClient): The chat endpoint.
        cache (AnswerCache): The answer cache.
        num_fine (int): Fine texts per class. Defaults to ``3``.
        num_coarse (int): Coarse texts per class, the label included.
            Defaults to ``6``.
        max_asks (int): Prompts per class and kind before giving up on
            malformed, too short or too long answers. Defaults to ``3``.
        context_length (int, optional): Longest text in tokens, start and end
            tokens included. Defaults to ``None``: the context length of the
            CLIP text encoder's tokenizer (:func:`clip_token_limit`).
        token_length (Callable[[str], int], optional): Counts the tokens of a
            text, start and end included. Defaults to ``None``: the CLIP text
            encoder's tokenizer (:func:`clip_token_limit`).
    """

    def __init__(self,
                 client: ChatClient,
                 cache: AnswerCache,
                 num_fine: int = 3,
                 num_coarse: int = 6,
                 max_asks: int = 3,
                 context_length: Optional[int] = None,
                 token_length: Optional[Callable[[str], int]] = None
                 ) -> None:
        if num_fine < 1 or num_coarse < 2 or max_asks < 1:
            raise ValueError(
                f'num_fine must be >= 1, num_coarse >= 2 (the label and a '
                f'synonym) and max_asks >= 1, got {num_fine}, {num_coarse} '
                f'and {max_asks}')
        self.client = client
        self.cache = cache
        self.counts = {'fine': num_fine, 'coarse': num_coarse}
        self.max_asks = max_asks
        if context_length is None or token_length is None:
            limit = clip_token_limit()
            if context_length is None:
                context_length = limit.context_length
            if token_length is None:
                token_length = limit.count
        self.context_length = context_length
        self.token_length = token_length

    def class_entry(self, label: str) -> Tuple[Dict, Dict[str, str]]:
        """The schema entry of one class.

        Args:
            label (str): The class label.

        Returns:
            tuple[dict, dict]: ``{'label', 'coarse', 'fine'}`` and, per kind,
            where the texts came from (``'cache'`` or ``'asked'``).

        Raises:
            GenerationError: If the texts cannot be obtained.
        """
        entry, origins = {'label': label}, {}
        for kind in ('coarse', 'fine'):
            entry[kind], origins[kind] = self.texts(kind, label)
        return entry, origins

    def texts(self, kind: str, label: str) -> Tuple[List[str], str]:
        """Validated texts of one kind for one class, cached or asked for.

        Args:
            kind (str): ``'fine'`` or ``'coarse'``.
            label (str): The class label.

        Returns:
            tuple[list[str], str]: The texts and ``'cache'`` or ``'asked'``.

        Raises:
            AnswerError: If ``max_asks`` answers did not give enough valid
                texts; the message names the label and the problems.
            RequestError: If the endpoint fails.
        """
        need = self.counts[kind]
        model = self.client.model
        kept: List[str] = []
        problems: List[str] = []
        cached = self.cache.get(model, kind, label)
        if cached is not None:
            kept = self._accept(kind, label, cached, kept, problems)
            if len(kept) >= need:
                return kept[:need], 'cache'
        prompt = build_prompt(kind, label, need)
        for _ in range(self.max_asks):
            try:
                content = self.client.complete(prompt)
            except AnswerError as exc:  # not a chat-completion response
                problems.append(f'label {label!r}: {exc}')
                continue
            try:
                items = parse_text_list(content, label, kind)
            except AnswerError as exc:
                problems.append(str(exc))
                continue
            kept = self._accept(kind, label, items, kept, problems)
            if len(kept) >= need:
                self.cache.put(model, kind, label, kept[:need])
                return kept[:need], 'asked'
        details = '; '.join(problems[-3:]) or 'too few distinct texts'
        raise AnswerError(
            f'label {label!r}: got {len(kept)} of {need} valid {kind} texts '
            f'after {self.max_asks} request(s): {details}')

    def _accept(self, kind: str, label: str, items: Sequence[str],
                kept: List[str], problems: List[str]) -> List[str]:
        """``kept`` extended by the new valid, distinct ``items``.

        Coarse lists always start with the label itself; too-long texts are
        dropped and reported in ``problems``.
        """
        result = list(kept)
        if kind == 'coarse' and not result:
            result.append(label)
        seen = {' '.join(text.casefold().split()) for text in result}
        for item in items:
            text = ' '.join(item.split())
            key = text.casefold()
            if not text or key in seen:
                continue
            length = self.token_length(text)
            if length > self.context_length:
                problems.append(
                    f'label {label!r}: {kind} text of {length} tokens exceeds '
                    f'the {self.context_length}-token context: {text[:60]!r}')
                continue
            seen.add(key)
            result.append(text)
        return result


def generate(labels: Sequence[str],
             generator: TextGenerator,
             log: Optional[TextIO] = None) -> List[Dict]:
    """Texts of every class, with a progress line per class.

    Args:
        labels (Sequence[str]): Class labels in class-index order.
        generator (TextGenerator): Asks for and caches the texts.
        log (TextIO, optional): Stream for progress lines. Defaults to
            ``None`` (``sys.stderr``).

    Returns:
        list[dict]: One ``{'label', 'coarse', 'fine'}`` entry per class.
    """
    stream = log or sys.stderr
    classes = []
    for index, label in enumerate(labels, start=1):
        entry, origins = generator.class_entry(label)
        classes.append(entry)
        print(f'[{index}/{len(labels)}] {label}: '
              f'{len(entry["coarse"])} coarse ({origins["coarse"]}), '
              f'{len(entry["fine"])} fine ({origins["fine"]})',
              file=stream, flush=True)
    return classes
