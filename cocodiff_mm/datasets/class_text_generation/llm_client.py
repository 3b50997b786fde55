"""A minimal client of an OpenAI-compatible chat-completions endpoint.

It sends ``POST <base-url>/chat/completions`` requests and reads
``choices[0].message.content``, with retries and exponential back-off. Only
the standard library is used.
"""
import http.client
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Callable, Optional, TextIO

from .errors import AnswerError, RequestError
from .prompts import SYSTEM_PROMPT

#: HTTP statuses that are retried (rate limit and server errors).
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


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
