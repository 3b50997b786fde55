"""Tests of the LLM class-text generation against a local fake chat endpoint.

A ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) answers
``/v1/chat/completions`` with canned answers chosen per request, so the full
path (HTTP, retries, validation, cache, atomic and validated output) runs
offline. The library (:mod:`cocodiff_mm.datasets.class_text_generation`) is
tested in this process; the command line ``tools/generate_texts.py`` runs as
a subprocess.
"""
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import pytest
from conftest import run_tool

from cocodiff_mm.datasets.class_text_generation import (
    COARSE_PROMPT, FALLBACK_CONTEXT_LENGTH, FINE_PROMPT, PROMPT_KINDS,
    AnswerCache, AnswerError, ChatClient, OutputError, RequestError,
    TextGenerator, build_prompt, class_text_document, clip_token_limit,
    estimate_token_count, generate_text_file, parse_text_list,
    read_labels_file, read_labels_json, write_class_texts)
from cocodiff_mm.models.text.class_texts import TEXTS_DIR, load_class_texts

TOOL = 'tools/generate_texts.py'
LABELS = ['wave hand', 'clap', 'jump up']
API_KEY = 'test-key-123'

#: (call index, kind, label) -> (HTTP status, message content); a ``None``
#: reply drops the connection without an answer.
Responder = Callable[[int, str, str], Optional[Tuple[int, str]]]


def fine_answer(label: str, tag: str = 'A', count: int = 3) -> str:
    return json.dumps([
        f'Answer {tag}{i} for {label}: the person lifts the right arm, turns '
        f'the torso to the left and then steps back to the start.'
        for i in range(count)])


def coarse_answer(label: str, tag: str = 'A', count: int = 6) -> str:
    return json.dumps(
        [label] + [f'{label} synonym {tag}{i}' for i in range(1, count)])


def good(tag: str = 'A') -> Responder:
    def respond(index, kind, label):
        answer = fine_answer if kind == 'fine' else coarse_answer
        return 200, answer(label, tag)
    return respond


class FakeChatServer:
    """Chat-completions endpoint on 127.0.0.1 answering through a responder.

    Args:
        responder (Responder): Picks each reply.
    """

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.requests: List[dict] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers['Content-Length']))
                if self.path != '/v1/chat/completions':
                    self.send_error(404)
                    return
                request = json.loads(body)
                prompt = request['messages'][-1]['content']
                label = re.search(r'"([^"]+)"', prompt).group(1)
                kind = 'coarse' if 'synonym' in prompt else 'fine'
                with owner.lock:
                    index = len(owner.requests)
                    owner.requests.append(dict(
                        kind=kind, label=label, request=request,
                        auth=self.headers.get('Authorization')))
                reply = owner.responder(index, kind, label)
                if reply is None:  # the server "dies": drop the connection
                    self.close_connection = True
                    return
                status, content = reply
                if status == 200:
                    payload = json.dumps({'choices': [{'index': 0, 'message': {
                        'role': 'assistant', 'content': content}}]})
                else:
                    payload = json.dumps({'error': {'message': content}})
                data = payload.encode()
                try:
                    self.send_response(status)
                    self.send_header('Content-Type', 'application/json')
                    self.send_header('Content-Length', str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout test)
                    pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={'poll_interval': 0.02},
            daemon=True)

    @property
    def base_url(self) -> str:
        return f'http://127.0.0.1:{self.server.server_address[1]}/v1'

    def count(self, kind: Optional[str] = None) -> int:
        return sum(1 for r in self.requests if kind in (None, r['kind']))

    def __enter__(self) -> 'FakeChatServer':
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv('OPENAI_API_KEY', API_KEY)


@pytest.fixture
def fresh_token_limit():
    """Forget cached token limits before and after a test that fakes them."""
    clip_token_limit.cache_clear()
    yield
    clip_token_limit.cache_clear()


def make_generator(server, cache, retries=5, timeout=5.0, max_asks=3,
                   **kwargs) -> TextGenerator:
    """A generator on the fake server, as the tool builds it."""
    client = ChatClient(server.base_url, 'fake-model', api_key=API_KEY,
                        timeout=timeout, retries=retries, backoff=0.001)
    return TextGenerator(client, AnswerCache(cache), max_asks=max_asks,
                         **kwargs)


def run_package(tmp_path, server, labels=LABELS, out='out.json',
                name='out', cache=None, **options):
    """Generate and write ``tmp_path / out`` in this process."""
    generator = make_generator(
        server, cache or tmp_path / 'out.cache.jsonl', **options)
    return generate_text_file(labels, tmp_path / out, generator, name)


def run_cli(tmp_path, server, *extra, labels=LABELS, out='out.json',
            env=None):
    """Run ``tools/generate_texts.py`` in a subprocess."""
    labels_file = tmp_path / 'labels.txt'
    labels_file.write_text('# test classes\n' + '\n'.join(labels) + '\n\n')
    args = ['--out', str(tmp_path / out), '--base-url', server.base_url,
            '--model', 'fake-model', '--backoff', '0.001', '--timeout', '5']
    if '--from-json' not in extra:
        args += ['--labels', str(labels_file)]
    return run_tool(TOOL, *args, *extra, timeout=300,
                    env=dict({'OPENAI_API_KEY': API_KEY}, **(env or {})))


def check_output(path, labels=LABELS, num_fine=3, num_coarse=6):
    texts = load_class_texts(path)
    assert texts.labels == tuple(labels)
    limit = clip_token_limit()
    for label, coarse, fine in zip(texts.labels, texts.coarse, texts.fine):
        assert coarse[0] == label
        assert len(coarse) == num_coarse and len(set(coarse)) == num_coarse
        assert len(fine) == num_fine and len(set(fine)) == num_fine
        for text in coarse + fine:
            assert limit.count(text) <= limit.context_length
    return texts


def test_prompts_name_the_label_and_ask_for_a_json_list():
    for kind in PROMPT_KINDS:
        prompt = build_prompt(kind, 'drink water', 4)
        assert '"drink water"' in prompt and 'JSON list of 4 strings' in prompt
    assert 'body movement' in FINE_PROMPT
    assert 'synonyms' in COARSE_PROMPT
    with pytest.raises(ValueError, match='prompt kind'):
        build_prompt('medium', 'x', 3)


@pytest.fixture(scope='module')
def full_cli_run(tmp_path_factory):
    """One successful command-line run with the default cache location."""
    tmp_path = tmp_path_factory.mktemp('full_run')
    with FakeChatServer(good()) as server:
        result = run_cli(tmp_path, server, '--name', 'toy')
    return tmp_path, server, result


def test_full_run_writes_valid_file(full_cli_run):
    tmp_path, server, result = full_cli_run
    assert result.returncode == 0, result.stderr[-3000:]
    texts = check_output(tmp_path / 'out.json')
    assert texts.name == 'toy'
    assert 'fake-model' in texts.source
    assert texts.fine[0][0].startswith('Answer A0 for wave hand')
    assert server.count('fine') == 3 and server.count('coarse') == 3
    assert {r['auth'] for r in server.requests} == {f'Bearer {API_KEY}'}
    assert {r['request']['model'] for r in server.requests} == {'fake-model'}
    err = result.stderr
    assert '[1/3] wave hand: 6 coarse (asked), 3 fine (asked)' in err
    assert '[3/3] jump up' in err
    assert 'wrote 3 classes to' in err and '(6 request(s))' in err
    assert API_KEY not in err + result.stdout
    assert not list(tmp_path.glob('.out.json.*'))  # no temporary file left


def test_default_cache_lies_beside_out(full_cli_run):
    tmp_path, _, result = full_cli_run
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (tmp_path / 'out.cache.jsonl').read_text().splitlines()
    keys = {(r['model'], r['kind'], r['label'])
            for r in map(json.loads, lines)}
    assert keys == {('fake-model', kind, label)
                    for kind in ('fine', 'coarse') for label in LABELS}


def test_cache_makes_second_run_send_no_request(tmp_path):
    cache = str(tmp_path / 'answers.jsonl')
    with FakeChatServer(good()) as server:
        first_run = run_cli(tmp_path, server, '--cache', cache)
        assert first_run.returncode == 0, first_run.stderr[-3000:]
        first = server.count()
        assert first == 6
        second_run = run_cli(tmp_path, server, '--cache', cache,
                             '--from-json', str(tmp_path / 'out.json'),
                             out='again.json')
        assert second_run.returncode == 0, second_run.stderr[-3000:]
        assert server.count() == first
    one = json.loads((tmp_path / 'out.json').read_text())
    two = json.loads((tmp_path / 'again.json').read_text())
    assert two['classes'] == one['classes']
    assert two['name'] == one['name'] == 'out'
    assert '[2/3] clap: 6 coarse (cache), 3 fine (cache)' in second_run.stderr
    assert not (tmp_path / 'out.cache.jsonl').exists()  # --cache was used


def test_503_twice_then_success_is_retried(tmp_path, capsys):
    def flaky(index, kind, label):
        return (503, 'overloaded') if index < 2 else good()(index, kind,
                                                             label)

    with FakeChatServer(flaky) as server:
        run_package(tmp_path, server, retries=3)
    check_output(tmp_path / 'out.json')
    assert server.count() == 2 + 6
    err = capsys.readouterr().err
    assert 'retry 1/3' in err and 'retry 2/3' in err and 'HTTP 503' in err


def test_backoff_doubles_and_is_capped():
    delays = []

    def always_busy(index, kind, label):
        return 429, 'slow down'

    with FakeChatServer(always_busy) as server:
        client = ChatClient(server.base_url, 'm', retries=4, backoff=0.5,
                            max_backoff=2.0, sleep=delays.append)
        with pytest.raises(RequestError,
                           match=r'gave up after 5 attempt\(s\).*HTTP 429'):
            client.complete(build_prompt('fine', 'wave', 3))
    assert delays == [0.5, 1.0, 2.0, 2.0]
    assert server.count() == 5 and client.num_requests == 5


def test_client_error_is_not_retried_and_exits_1(tmp_path):
    with FakeChatServer(lambda *a: (400, 'bad model')) as server:
        result = run_cli(tmp_path, server, '--retries', '3')
    assert result.returncode == 1, result.stderr[-3000:]
    assert server.count() == 1
    assert 'error: ' in result.stderr and 'HTTP 400' in result.stderr
    assert not (tmp_path / 'out.json').exists()


def test_timeout_is_retried(tmp_path):
    def slow_first(index, kind, label):
        if index == 0:
            time.sleep(1.0)
        return good()(index, kind, label)

    with FakeChatServer(slow_first) as server:
        run_package(tmp_path, server, labels=LABELS[:1], timeout=0.3,
                    retries=2)
    check_output(tmp_path / 'out.json', labels=LABELS[:1])
    assert server.count() == 3  # timed out, retried, then the other kind


@pytest.mark.parametrize('content, problem', [
    ('Sure! The person waves the hand.', 'not a JSON list'),
    ('[1, 2, 3]', 'not a string'),
    ('[]', 'empty list'),
    ('["a wave", "  "]', 'empty string'),
    ('{"a": [1], "b": ["x"]}', 'JSON object'),
    ('"one string"', 'JSON str'),
])
def test_parse_rejects_malformed_answers(content, problem):
    with pytest.raises(AnswerError) as info:
        parse_text_list(content, 'wave hand', 'fine')
    assert "label 'wave hand'" in str(info.value)
    assert problem in str(info.value)


@pytest.mark.parametrize('content', [
    '["first  text", "second"]',
    '```json\n["first text", "second"]\n```',
    'Here you are: ["first text", "second"] Enjoy!',
    '{"descriptions": ["first text", "second"]}',
])
def test_parse_accepts_usual_answer_forms(content):
    assert parse_text_list(content, 'x', 'fine') == ['first text', 'second']


def test_malformed_answer_fails_naming_the_label(tmp_path):
    def chatty(index, kind, label):
        if kind == 'fine' and label == 'clap':
            return 200, 'Sure! Here are three descriptions of clapping.'
        return good()(index, kind, label)

    with FakeChatServer(chatty) as server:
        with pytest.raises(AnswerError) as info:
            run_package(tmp_path, server, max_asks=2)
    message = str(info.value)
    assert message.startswith("label 'clap'")
    assert 'not a JSON list' in message
    assert '0 of 3 valid fine texts' in message
    assert sum(r['label'] == 'clap' and r['kind'] == 'fine'
               for r in server.requests) == 2
    assert not (tmp_path / 'out.json').exists()


def test_too_long_fine_text_is_asked_again(tmp_path):
    too_long = 'The person ' + 'slowly and carefully ' * 30 + 'waves.'

    def one_too_long(index, kind, label):
        if kind == 'fine':
            asked = sum(r['kind'] == 'fine' and r['label'] == label
                        for r in server.requests)
            texts = json.loads(fine_answer(label, tag=f'try{asked}'))
            if asked == 1:
                texts[1] = too_long
            return 200, json.dumps(texts)
        return good()(index, kind, label)

    with FakeChatServer(one_too_long) as server:
        run_package(tmp_path, server, labels=LABELS[:1])
    fine = check_output(tmp_path / 'out.json', labels=LABELS[:1]).fine[0]
    assert server.count('fine') == 2
    assert too_long not in fine
    assert [t.split(':')[0] for t in fine] == [
        'Answer try10 for wave hand', 'Answer try12 for wave hand',
        'Answer try20 for wave hand']


def test_always_too_long_is_reported(tmp_path):
    too_long = json.dumps(['word ' * 100] * 3)

    def verbose(index, kind, label):
        return (200, too_long) if kind == 'fine' else good()(index, kind,
                                                             label)

    with FakeChatServer(verbose) as server:
        with pytest.raises(AnswerError) as info:
            run_package(tmp_path, server, labels=LABELS[:1], max_asks=2)
    message = str(info.value)
    assert "label 'wave hand'" in message
    assert 'fine text of 102 tokens exceeds the 77-token context' in message
    assert not (tmp_path / 'out.json').exists()


def test_token_limit_is_the_clip_encoders_tokenizer():
    import open_clip

    # The tokenizer ClipTextEncoder builds for its default architecture.
    tokenizer = open_clip.get_tokenizer('ViT-B-32')
    limit = clip_token_limit()
    assert limit.exact and limit.model_name == 'ViT-B-32'
    assert limit.context_length == tokenizer.context_length == 77
    for text in ('wave hand', 'The person raises both arms overhead, '
                 'then lowers them sideways.', 'flip-flop 123'):
        assert limit.count(text) == len(tokenizer.encode(text)) + 2
    assert limit.count('wave hand') == 4
    with FakeChatServer(good()) as server:
        generator = make_generator(server, 'unused.jsonl')
    assert generator.context_length == limit.context_length
    assert generator.token_length is limit.count


class ShortContextTokenizer:
    """A tokenizer with a 12-token context and one token per word."""

    context_length = 12

    def encode(self, text: str) -> List[int]:
        return list(range(len(text.split())))


def test_generator_takes_the_limit_from_the_tokenizer(
        tmp_path, monkeypatch, fresh_token_limit):
    import open_clip

    asked_for = []

    def get_tokenizer(model_name):
        asked_for.append(model_name)
        return ShortContextTokenizer()

    monkeypatch.setattr(open_clip, 'get_tokenizer', get_tokenizer)
    limit = clip_token_limit()
    assert (limit.context_length, limit.exact) == (12, True)
    assert limit.count('one two three') == 3 + 2
    with FakeChatServer(good()) as server:
        generator = make_generator(server, tmp_path / 'c.jsonl', max_asks=1)
        assert generator.context_length == 12
        # The coarse texts have at most 4 words (6 tokens), every fine
        # answer has 23 words (25 tokens).
        assert generator.texts('coarse', 'clap')[1] == 'asked'
        with pytest.raises(AnswerError,
                           match='fine text of 25 tokens exceeds the '
                           '12-token context'):
            generator.texts('fine', 'clap')
    assert asked_for == ['ViT-B-32']


def test_without_open_clip_the_limit_falls_back_with_a_warning(
        monkeypatch, fresh_token_limit):
    monkeypatch.setitem(sys.modules, 'open_clip', None)  # import fails
    with pytest.warns(UserWarning, match='open_clip is not installed'):
        limit = clip_token_limit()
    assert not limit.exact
    assert limit.context_length == FALLBACK_CONTEXT_LENGTH == 77
    assert limit.count is estimate_token_count
    assert estimate_token_count("The person's arm, bent 90 degrees.") == (
        len(['the', 'person', "'s", 'arm', ',', 'bent', '9', '0', 'degrees',
             '.']) + 2)


def test_token_estimate_never_exceeds_the_exact_count():
    exact = clip_token_limit()
    texts = load_class_texts('demo')
    for text in [t for group in texts.coarse + texts.fine for t in group]:
        assert estimate_token_count(text) <= exact.count(text), text


def test_resume_after_server_dies_keeps_finished_classes(tmp_path, capsys):
    cache = tmp_path / 'out.cache.jsonl'

    def dies_after_three(index, kind, label):
        return good('A')(index, kind, label) if index < 3 else None

    with FakeChatServer(dies_after_three) as server:
        with pytest.raises(RequestError, match='gave up after 2 attempt'):
            run_package(tmp_path, server, retries=1)
    assert server.count() == 5  # 3 answers, then 2 attempts of the 4th
    assert not (tmp_path / 'out.json').exists()
    assert len(cache.read_text().splitlines()) == 3
    # A kill in the middle of a cache write leaves half a line.
    with open(cache, 'a') as handle:
        handle.write('{"model": "fake-model", "kind": "fi')
    capsys.readouterr()

    with FakeChatServer(good('B')) as server:
        run_package(tmp_path, server)
    # Only the unfinished work is asked for: clap fine, jump up both kinds.
    assert [(r['label'], r['kind']) for r in server.requests] == [
        ('clap', 'fine'), ('jump up', 'coarse'), ('jump up', 'fine')]
    texts = check_output(tmp_path / 'out.json')
    assert texts.fine[0][0].startswith('Answer A0')  # from the first server
    assert texts.coarse[1][1] == 'clap synonym A1'
    assert texts.fine[1][0].startswith('Answer B0')
    assert 'skipping an unreadable cache line' in capsys.readouterr().err
    assert len(AnswerCache(cache)) == 6


def test_api_key_comes_only_from_the_environment(tmp_path):
    with FakeChatServer(good()) as server:
        rejected = run_cli(tmp_path, server, '--api-key', 'secret')
        assert rejected.returncode == 2
        assert 'unrecognized arguments: --api-key' in rejected.stderr
        assert server.count() == 0
        result = run_cli(tmp_path, server, '--api-key-env', 'MY_KEY',
                         labels=LABELS[:1], env={'MY_KEY': 'other-key'})
    assert result.returncode == 0, result.stderr[-3000:]
    assert {r['auth'] for r in server.requests} == {'Bearer other-key'}


def test_labels_file_errors_name_the_file(tmp_path):
    path = tmp_path / 'labels.txt'
    path.write_text('wave\nclap\nwave\n')
    with pytest.raises(ValueError, match="labels.txt: label 'wave' appears"):
        read_labels_file(path)


def test_from_json_reads_labels_with_load_class_texts(tmp_path):
    path = tmp_path / 'texts.json'
    entry = {'label': ' wave ', 'coarse': ['wave'], 'fine': ['Arm moves.']}
    path.write_text(json.dumps({'name': 'mine', 'source': 'test',
                                'classes': [entry]}))
    assert read_labels_json(path) == (['wave'], 'mine')
    # A file training cannot load is refused, with load_class_texts' reason.
    del entry['fine']
    path.write_text(json.dumps({'name': 'mine', 'source': 'test',
                                'classes': [entry]}))
    with pytest.raises(ValueError) as info:
        read_labels_json(path)
    assert str(info.value).startswith(f'{path}: classes[0]')
    assert "field 'fine' must be a non-empty list" in str(info.value)
    assert read_labels_json(TEXTS_DIR / 'utd_mhad.json')[1] == 'utd_mhad'


def test_write_class_texts_replaces_the_file(tmp_path):
    path = tmp_path / 'sub' / 'x.json'
    classes = [{'label': 'wave', 'coarse': ['wave'], 'fine': ['Arm moves.']}]
    write_class_texts(path, class_text_document('one', 'm', classes))
    texts = write_class_texts(path, class_text_document('two', 'm', classes))
    assert json.loads(path.read_text())['name'] == 'two'
    assert path.read_text().endswith('}\n')
    assert texts == load_class_texts(path)
    assert texts.path == str(path)
    assert [p.name for p in path.parent.iterdir()] == ['x.json']


@pytest.mark.parametrize('name, entry, problem', [
    ('toy', {'label': 'wave', 'coarse': ['wave'], 'fine': []},
     "classes[0] (label 'wave'): field 'fine' must be a non-empty list"),
    ('toy', {'label': 'wave', 'coarse': ['wave', ' '], 'fine': ['Arm.']},
     "field 'coarse'[1] must be a non-empty string"),
    ('  ', {'label': 'wave', 'coarse': ['wave'], 'fine': ['Arm.']},
     "top level: field 'name' must be a non-empty string"),
])
def test_output_rejected_by_load_class_texts_is_not_written(
        tmp_path, name, entry, problem):
    path = tmp_path / 'x.json'
    path.write_text('previous content\n')
    with pytest.raises(OutputError) as info:
        write_class_texts(path, class_text_document(name, 'm', [entry]))
    message = str(info.value)
    assert message.startswith('not writing class texts that '
                              'load_class_texts rejects: ')
    assert f'{path}: ' in message and problem in message
    assert path.read_text() == 'previous content\n'
    assert [p.name for p in tmp_path.iterdir()] == ['x.json']


def test_generator_refuses_a_file_training_cannot_load(tmp_path):
    with FakeChatServer(good()) as server:
        with pytest.raises(OutputError, match="field 'name' must be"):
            run_package(tmp_path, server, labels=LABELS[:1], name=' ')
    assert not (tmp_path / 'out.json').exists()
    assert not list(tmp_path.glob('.out.json.*'))
    # The answers stay cached: a rerun with a valid name asks nothing more.
    with FakeChatServer(good('B')) as server:
        texts = run_package(tmp_path, server, labels=LABELS[:1], name='ok')
    assert server.count() == 0 and texts.name == 'ok'
    assert texts.fine[0][0].startswith('Answer A0')
