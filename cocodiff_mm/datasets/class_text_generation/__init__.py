"""Generate the coarse and fine class texts of a dataset with an LLM.

CoCoDiff guides its latent diffusion with two kinds of text per class, written
by a large language model (paper Section IV-C, Figure 4): *fine* texts
(detailed descriptions of the body movement) and *coarse* texts (the label
and its synonyms). The pieces, one per module:

- :mod:`.prompts`: the prompts;
- :mod:`.llm_client`: :class:`ChatClient`, a standard-library client of any
  OpenAI-compatible chat endpoint, with retries and back-off;
- :mod:`.response_cache`: :class:`AnswerCache`, accepted answers in a
  JSON-lines file so an interrupted run resumes;
- :mod:`.response_parser`: :func:`parse_text_list`, the JSON list in an
  answer;
- :mod:`.token_length`: :func:`clip_token_limit`, the CLIP text encoder's
  tokenizer and context length (open_clip, imported lazily);
- :mod:`.generator`: :class:`TextGenerator` and :func:`generate`, which ask,
  validate and cache;
- :mod:`.labels`: the labels to generate for;
- :mod:`.output`: :func:`write_class_texts`, which writes a file only once
  ``load_class_texts`` accepts it.

``tools/generate_texts.py`` is the command line.
"""
from .errors import AnswerError, GenerationError, OutputError, RequestError
from .generator import TextGenerator, generate
from .labels import read_labels_file, read_labels_json
from .llm_client import RETRY_STATUSES, ChatClient
from .output import class_text_document, generate_text_file, write_class_texts
from .prompts import (COARSE_PROMPT, FINE_PROMPT, MAX_WORDS, PROMPT_KINDS,
                      SYSTEM_PROMPT, build_prompt)
from .response_cache import AnswerCache, default_cache_path
from .response_parser import parse_text_list
from .token_length import (DEFAULT_CLIP_MODEL, FALLBACK_CONTEXT_LENGTH,
                           TokenLimit, clip_token_limit, estimate_token_count)

__all__ = [
    'AnswerError', 'GenerationError', 'OutputError', 'RequestError',
    'TextGenerator', 'generate', 'read_labels_file', 'read_labels_json',
    'RETRY_STATUSES', 'ChatClient', 'class_text_document',
    'generate_text_file', 'write_class_texts', 'COARSE_PROMPT', 'FINE_PROMPT',
    'MAX_WORDS', 'PROMPT_KINDS', 'SYSTEM_PROMPT', 'build_prompt',
    'AnswerCache', 'default_cache_path', 'parse_text_list',
    'DEFAULT_CLIP_MODEL', 'FALLBACK_CONTEXT_LENGTH', 'TokenLimit',
    'clip_token_limit', 'estimate_token_count'
]
