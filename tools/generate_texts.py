"""Generate the coarse and fine class texts of a dataset with an LLM.

CoCoDiff guides its latent diffusion with two kinds of text per class, written
by a large language model (paper Section IV-C, Figure 4):

* *fine* texts: detailed descriptions of the body movement of the action;
* *coarse* texts: the action label and its synonyms.

This tool asks any OpenAI-compatible chat endpoint (``POST
<base-url>/chat/completions``) for both, validates the answers and writes a
class-text file in the schema of ``cocodiff_mm/texts/<name>.json``::

    {"name": ..., "source": ...,
     "classes": [{"label": ..., "coarse": [label, ...], "fine": [...]}, ...]}

Every accepted answer is appended to a JSON-lines cache (keyed by model,
prompt kind and label), so an interrupted run resumes without asking again.
The API key is read from an environment variable, never from the command line.

Examples::

    export OPENAI_API_KEY=...
    python tools/generate_texts.py --labels labels.txt --out my_texts.json \\
        --model gpt-3.5-turbo
    # regenerate the texts of a packaged file with a local server
    python tools/generate_texts.py \\
        --from-json cocodiff_mm/texts/utd_mhad.json --out /tmp/utd_mhad.json \\
        --base-url http://127.0.0.1:8000/v1 --model my-model
"""
import argparse
import functools
import http.client
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import (Callable, Dict, List, Optional, Sequence, TextIO, Tuple)

#: Prompt for the fine texts (detailed descriptions of the body movement).
FINE_PROMPT = (
    'Describe in detail the body movement of a person performing the action '
    '"{label}". Write {count} different descriptions, each one or two '
    'sentences of at most {max_words} words. Say which joints and limbs move, '
    'in which direction and how fast, and give the starting and ending pose. '
    'Do not describe the scene, the camera or the person\'s appearance. '
    'Answer only with a JSON list of {count} strings.')

#: Prompt for the coarse texts (the action label and its synonyms).
COARSE_PROMPT = (
    'Give the action label "{label}" and its synonyms: short phrases of at '
    'most {max_words} words that name the same action in other words. '
    'Answer only with a JSON list of {count} strings: the first string is '
    'exactly "{label}", followed by {num_synonyms} different synonyms.')

#: System message sent with both prompts.
SYSTEM_PROMPT = (
    'You write short, precise English texts about human body movement for a '
    'skeleton-based action recognition dataset. You answer with valid JSON '
    'only, without any other text.')

#: The two prompt kinds, as used in the cache keys.
PROMPT_KINDS = ('fine', 'coarse')

#: Context length of the CLIP text encoder, start and end tokens included.
CLIP_CONTEXT_LENGTH = 77

#: Word limits written into the prompts.
MAX_WORDS = {'fine': 45, 'coarse': 8}

#: HTTP statuses that are retried (rate limit and server errors).
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class GenerationError(RuntimeError):
    """The texts of a class could not be obtained."""


class AnswerError(GenerationError):
    """The model's answer is malformed or has too few valid texts."""


class RequestError(GenerationError):
    """The endpoint could not be reached or kept failing."""


def build_prompt(kind: str, label: str, count: int) -> str:
    """The user prompt asking for ``count`` texts of one class.

    Args:
        kind (str): ``'fine'`` or ``'coarse'``.
        label (str): The class label.
        count (int): Number of texts to ask for; for ``'coarse'`` the label
            itself is the first of them.

    Returns:
        str: The prompt.
    """
    if kind == 'fine':
        return FINE_PROMPT.format(
            label=label, count=count, max_words=MAX_WORDS['fine'])
    if kind == 'coarse':
        return COARSE_PROMPT.format(
            label=label,
            count=count,
            num_synonyms=count - 1,
            max_words=MAX_WORDS['coarse'])
    raise ValueError(
        f'prompt kind must be one of {PROMPT_KINDS}, got {kind!r}')


@functools.lru_cache(maxsize=1)
def _clip_tokenizer():
    """CLIP's BPE tokenizer from open_clip, loaded once (lazily)."""
    import cocodiff_mm  # noqa: F401  (runtime fixes before open_clip)
    from open_clip.tokenizer import SimpleTokenizer
    return SimpleTokenizer()


def clip_token_length(text: str) -> int:
    """Number of CLIP tokens of ``text``, start and end tokens included.

    Args:
        text (str): Any text.

    Returns:
        int: The length the CLIP text encoder sees (must be at most 77).
    """
    return len(_clip_tokenizer().encode(text)) + 2


class ChatClient:
    """Minimal client of an OpenAI-compatible chat-completions endpoint.

    Only the standard library is used. Rate limits (HTTP 429), server errors
    (5xx) and network errors or timeouts are retried with exponential
    back-off; other HTTP errors fail at once.

    Args:
        base_url (str): URL up to and without ``/chat/completions``, e.g.
            ``'https://api.openai.com/v1'``.
        model (str): Model name sent with every request.
        api_key (str, optional): Bearer token; no ``Authorization`` header is
            sent when empty. Defaults to ``None``.
        timeout (float): Seconds to wait for one answer. Defaults to ``60.0``.
        retries (int): Retries after the first attempt of a request.
            Defaults to ``5``.
        backoff (float): Wait before the first retry in seconds; doubled at
            every further retry. Defaults to ``1.0``.
        max_backoff (float): Longest wait between two attempts in seconds.
            Defaults to ``60.0``.
        temperature (float): Sampling temperature. Defaults to ``0.7``.
        log (TextIO, optional): Stream for retry messages. Defaults to
            ``None`` (``sys.stderr``).
        sleep (Callable[[float], None]): Waits the given seconds. Defaults to
            ``time.sleep``.
    """

    def __init__(self,
                 base_url: str,
                 model: str,
                 api_key: Optional[str] = None,
                 timeout: float = 60.0,
                 retries: int = 5,
                 backoff: float = 1.0,
                 max_backoff: float = 60.0,
                 temperature: float = 0.7,
                 log: Optional[TextIO] = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not base_url.startswith(('http://', 'https://')):
            raise ValueError(
                f'base_url must start with http:// or https://, got '
                f'{base_url!r}')
        if retries < 0 or backoff < 0 or max_backoff < 0 or timeout <= 0:
            raise ValueError(
                f'retries, backoff and max_backoff must be >= 0 and timeout '
                f'> 0, got retries={retries}, backoff={backoff}, '
                f'max_backoff={max_backoff}, timeout={timeout}')
        self.url = base_url.rstrip('/') + '/chat/completions'
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.temperature = temperature
        self.log = log
        self.sleep = sleep
        self.num_requests = 0
        self._headers = {'Content-Type': 'application/json'}
        if api_key:
            self._headers['Authorization'] = f'Bearer {api_key}'

    def complete(self, prompt: str, system: str = SYSTEM_PROMPT) -> str:
        """Send one chat request and return the answer's text.

        Args:
            prompt (str): The user message.
            system (str): The system message. Defaults to
                :data:`SYSTEM_PROMPT`.

        Returns:
            str: ``choices[0].message.content`` of the response.

        Raises:
            RequestError: If the request fails with a non-retryable status,
                or still fails after all retries.
            AnswerError: If the response is not a chat-completion object.
        """
        body = json.dumps({
            'model': self.model,
            'messages': [{'role': 'system', 'content': system},
                         {'role': 'user', 'content': prompt}],
            'temperature': self.temperature,
        }).encode('utf-8')
        for attempt in range(self.retries + 1):
            retry_after = None
            request = urllib.request.Request(
                self.url, data=body, headers=self._headers, method='POST')
            self.num_requests += 1
            try:
                with urllib.request.urlopen(
                        request, timeout=self.timeout) as response:
                    payload = response.read()
                return self._content(payload)
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode('utf-8', 'replace')
                if exc.code not in RETRY_STATUSES:
                    raise RequestError(
                        f'{self.url}: HTTP {exc.code} {exc.reason}: '
                        f'{detail}') from exc
                reason = f'HTTP {exc.code} {exc.reason}'
                retry_after = exc.headers.get('Retry-After')
            except urllib.error.URLError as exc:
                if not isinstance(exc.reason, OSError):
                    raise RequestError(f'{self.url}: {exc.reason}') from exc
                reason = f'network error: {exc.reason}'
            except (OSError, http.client.HTTPException) as exc:
                # Timeouts while reading, reset or dropped connections.
                reason = f'network error: {type(exc).__name__}: {exc}'
            if attempt == self.retries:
                raise RequestError(
                    f'{self.url}: gave up after {attempt + 1} attempt(s); '
                    f'last error: {reason}')
            delay = self._delay(attempt, retry_after)
            print(f'  retry {attempt + 1}/{self.retries} in {delay:.3g} s '
                  f'({reason})', file=self.log or sys.stderr)
            self.sleep(delay)
        raise AssertionError('unreachable')

    def _delay(self, attempt: int, retry_after: Optional[str]) -> float:
        """Exponential back-off, raised to the server's Retry-After."""
        delay = self.backoff * 2**attempt
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                pass  # an HTTP date: keep the exponential back-off
        return min(delay, self.max_backoff)

    def _content(self, payload: bytes) -> str:
        """``choices[0].message.content`` of a response body."""
        try:
            content = json.loads(payload)['choices'][0]['message']['content']
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise AnswerError(
                f'{self.url}: response is not a chat completion with '
                f'choices[0].message.content: '
                f'{payload[:200].decode("utf-8", "replace")!r}') from exc
        if not isinstance(content, str):
            raise AnswerError(
                f'{self.url}: choices[0].message.content must be a string, '
                f'got {type(content).__name__}')
        return content


class AnswerCache:
    """Accepted answers in a JSON-lines file, keyed by model, kind, label.

    Every :meth:`put` appends one line and flushes it to disk, so the cache
    survives an interruption; a later line overrides an earlier one with the
    same key. Unreadable lines (e.g. one cut short by a kill) are skipped with
    a warning.

    Args:
        path (str | Path): The cache file; created on the first :meth:`put`.
        log (TextIO, optional): Stream for warnings. Defaults to ``None``
            (``sys.stderr``).
    """

    def __init__(self, path, log: Optional[TextIO] = None) -> None:
        self.path = Path(path)
        self.log = log
        self._entries: Dict[Tuple[str, str, str], List[str]] = {}
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        lines = self.path.read_text(encoding='utf-8').splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = (record['model'], record['kind'], record['label'])
                texts = record['texts']
                if not (all(isinstance(k, str) for k in key)
                        and isinstance(texts, list)
                        and all(isinstance(t, str) for t in texts)):
                    raise TypeError('wrong field types')
            except (ValueError, KeyError, TypeError) as exc:
                print(f'warning: {self.path}:{number}: skipping an unreadable '
                      f'cache line ({exc})', file=self.log or sys.stderr)
                continue
            self._entries[key] = texts

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, model: str, kind: str, label: str) -> Optional[List[str]]:
        """The cached texts, or ``None``.

        Args:
            model (str): Model name.
            kind (str): Prompt kind, ``'fine'`` or ``'coarse'``.
            label (str): Class label.

        Returns:
            list[str] | None: A copy of the cached texts.
        """
        texts = self._entries.get((model, kind, label))
        return None if texts is None else list(texts)

    def put(self, model: str, kind: str, label: str,
            texts: Sequence[str]) -> None:
        """Store texts and append them to the file at once.

        Args:
            model (str): Model name.
            kind (str): Prompt kind, ``'fine'`` or ``'coarse'``.
            label (str): Class label.
            texts (Sequence[str]): The accepted texts.
        """
        self._entries[(model, kind, label)] = list(texts)
        record = {'model': model, 'kind': kind, 'label': label,
                  'texts': list(texts)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Start on a fresh line if an interrupted write left half a line.
        needs_newline = False
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, 'rb') as handle:
                handle.seek(-1, os.SEEK_END)
                needs_newline = handle.read(1) != b'\n'
        with open(self.path, 'a', encoding='utf-8') as handle:
            if needs_newline:
                handle.write('\n')
            handle.write(json.dumps(record, ensure_ascii=False) + '\n')
            handle.flush()
            os.fsync(handle.fileno())


def parse_text_list(content: str, label: str, kind: str) -> List[str]:
    """Read the JSON list of strings in a model's answer.

    Accepted: a bare JSON list, one inside a Markdown code fence, one
    surrounded by other text, or an object with exactly one list value.

    Args:
        content (str): The answer's text.
        label (str): Class label, for error messages.
        kind (str): Prompt kind, for error messages.

    Returns:
        list[str]: The strings, stripped of surrounding white space.

    Raises:
        AnswerError: If no list of non-empty strings can be read; the message
            names the label and kind and quotes the start of the answer.
    """
    def fail(problem: str) -> AnswerError:
        return AnswerError(
            f'label {label!r}: {kind} answer {problem}; answer starts with '
            f'{content.strip()[:120]!r}')

    text = content.strip()
    if text.startswith('```'):
        text = text.split('\n', 1)[1] if '\n' in text else ''
        text = text.rsplit('```', 1)[0]
    try:
        value = json.loads(text)
    except ValueError:
        start, end = text.find('['), text.rfind(']')
        if start < 0 or end <= start:
            raise fail('is not a JSON list of strings') from None
        try:
            value = json.loads(text[start:end + 1])
        except ValueError:
            raise fail('is not a JSON list of strings') from None
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise fail('is a JSON object, not a list of strings')
        value = lists[0]
    if not isinstance(value, list):
        raise fail(f'is a JSON {type(value).__name__}, not a list of strings')
    if not value:
        raise fail('is an empty list')
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise fail(f'item {index} is {type(item).__name__} {item!r:.40}, '
                       f'not a string')
        if not item.strip():
            raise fail(f'item {index} is an empty string')
    return [' '.join(item.split()) for item in value]


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
        context_length (int): Longest text in tokens, start and end tokens
            included. Defaults to ``77`` (CLIP).
        token_length (Callable[[str], int]): Counts the tokens of a text, start
            and end included. Defaults to :func:`clip_token_length`.
    """

    def __init__(self,
                 client: ChatClient,
                 cache: AnswerCache,
                 num_fine: int = 3,
                 num_coarse: int = 6,
                 max_asks: int = 3,
                 context_length: int = CLIP_CONTEXT_LENGTH,
                 token_length: Callable[[str], int] = clip_token_length
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


def write_json_atomic(path, document: Dict) -> None:
    """Write JSON to a temporary file beside ``path``, then rename it.

    Readers never see a half-written file, and an interrupted run leaves an
    existing ``path`` untouched.

    Args:
        path (str | Path): Destination file.
        document (dict): JSON-serialisable content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        'w', encoding='utf-8', dir=path.parent, prefix=f'.{path.name}.',
        suffix='.tmp', delete=False)
    try:
        with handle:
            json.dump(document, handle, indent=1, ensure_ascii=False)
            handle.write('\n')
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def read_labels_file(path) -> List[str]:
    """Labels from a text file, one per line.

    Blank lines and lines starting with ``#`` are skipped.

    Args:
        path (str | Path): The file.

    Returns:
        list[str]: The labels in file order.

    Raises:
        ValueError: If the file has no label or a label twice.
    """
    labels = []
    for line in Path(path).read_text(encoding='utf-8').splitlines():
        label = line.strip()
        if label and not label.startswith('#'):
            labels.append(label)
    _check_labels(path, labels)
    return labels


def read_labels_json(path) -> Tuple[List[str], str]:
    """Labels and name of an existing class-text file.

    Args:
        path (str | Path): A file in the class-text schema.

    Returns:
        tuple[list[str], str]: The labels in class-index order and the name.

    Raises:
        ValueError: If the file does not hold ``classes[*].label`` strings.
    """
    try:
        data = json.loads(Path(path).read_text(encoding='utf-8'))
    except ValueError as exc:
        raise ValueError(f'{path}: not valid JSON: {exc}') from exc
    classes = data.get('classes') if isinstance(data, dict) else None
    if not isinstance(classes, list):
        raise ValueError(f"{path}: expected an object with a 'classes' list")
    labels = []
    for index, entry in enumerate(classes):
        label = entry.get('label') if isinstance(entry, dict) else None
        if not isinstance(label, str) or not label.strip():
            raise ValueError(
                f"{path}: classes[{index}]: field 'label' must be a non-empty "
                f'string, got {label!r:.60}')
        labels.append(label.strip())
    _check_labels(path, labels)
    name = data.get('name')
    return labels, name if isinstance(name, str) and name else Path(path).stem


def _check_labels(path, labels: Sequence[str]) -> None:
    if not labels:
        raise ValueError(f'{path}: no class label found')
    seen = set()
    for label in labels:
        if label in seen:
            raise ValueError(f'{path}: label {label!r} appears twice')
        seen.add(label)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` when
            ``None``. Defaults to ``None``.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    # No abbreviations: a mistyped '--api-key SECRET' must fail, not be read
    # as '--api-key-env SECRET'.
    parser = argparse.ArgumentParser(
        description='Generate CoCoDiff coarse and fine class texts with an '
        'OpenAI-compatible chat endpoint.',
        allow_abbrev=False)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--labels', help='text file, one class label a line')
    source.add_argument(
        '--from-json', help='existing class-text JSON whose labels (and name) '
        'to use')
    parser.add_argument('--out', required=True, help='output JSON file')
    parser.add_argument(
        '--name', help='name field of the output (default: the name in '
        '--from-json, else the stem of --out)')
    parser.add_argument(
        '--cache', help='JSON-lines answer cache (default: <out stem>'
        '.cache.jsonl beside --out)')
    parser.add_argument(
        '--base-url', default='https://api.openai.com/v1',
        help='endpoint URL without /chat/completions '
        '(default: %(default)s)')
    parser.add_argument('--model', default='gpt-3.5-turbo',
                        help='model name (default: %(default)s)')
    parser.add_argument(
        '--api-key-env', default='OPENAI_API_KEY',
        help='environment variable holding the API key (default: '
        '%(default)s)')
    parser.add_argument('--num-fine', type=int, default=3,
                        help='fine texts per class (default: %(default)s)')
    parser.add_argument(
        '--num-coarse', type=int, default=6,
        help='coarse texts per class, the label included (default: '
        '%(default)s)')
    parser.add_argument(
        '--retries', type=int, default=5,
        help='retries of a failed request (default: %(default)s)')
    parser.add_argument(
        '--backoff', type=float, default=1.0,
        help='seconds before the first retry, doubled each time (default: '
        '%(default)s)')
    parser.add_argument(
        '--max-backoff', type=float, default=60.0,
        help='longest wait between retries in seconds (default: '
        '%(default)s)')
    parser.add_argument('--timeout', type=float, default=60.0,
                        help='seconds per request (default: %(default)s)')
    parser.add_argument(
        '--max-asks', type=int, default=3,
        help='prompts per class and kind before giving up on bad answers '
        '(default: %(default)s)')
    parser.add_argument('--temperature', type=float, default=0.7,
                        help='sampling temperature (default: %(default)s)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the tool.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` when
            ``None``. Defaults to ``None``.

    Returns:
        int: ``0`` on success, ``1`` when the texts could not be generated
        (the reason is printed to stderr; finished classes stay cached).
    """
    args = parse_args(argv)
    out = Path(args.out)
    try:
        if args.labels:
            labels, name = read_labels_file(args.labels), out.stem
        else:
            labels, name = read_labels_json(args.from_json)
        name = args.name or name
        api_key = os.environ.get(args.api_key_env, '')
        if not api_key:
            print(f'warning: ${args.api_key_env} is not set; sending requests '
                  f'without an API key', file=sys.stderr)
        client = ChatClient(
            args.base_url, args.model, api_key=api_key,
            timeout=args.timeout, retries=args.retries,
            backoff=args.backoff, max_backoff=args.max_backoff,
            temperature=args.temperature)
        cache = AnswerCache(
            args.cache or out.with_name(f'{out.stem}.cache.jsonl'))
        generator = TextGenerator(
            client, cache, num_fine=args.num_fine,
            num_coarse=args.num_coarse, max_asks=args.max_asks)
        classes = generate(labels, generator)
    except (GenerationError, ValueError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    document = {
        'name': name,
        'source': (f'generated by tools/generate_texts.py with model '
                   f'{args.model!r} (OpenAI-compatible chat endpoint) from '
                   f'the CoCoDiff fine prompt (detailed body-movement '
                   f'description) and coarse prompt (label and synonyms)'),
        'classes': classes,
    }
    write_json_atomic(out, document)
    print(f'wrote {len(classes)} classes to {out} ({client.num_requests} '
          f'request(s))', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
