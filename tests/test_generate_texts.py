"""Tests of tools/generate_texts.py against a local fake chat endpoint.

A ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) answers
``/v1/chat/completions`` with canned answers chosen per request, so the tool's
full path (HTTP, retries, validation, cache, atomic output) runs offline.
"""
import importlib.util
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import pytest

from cocodiff_mm.models.text.class_texts import load_class_texts

REPO = Path(__file__).resolve().parents[1]
LABELS = ['wave hand', 'clap', 'jump up']
API_KEY = 'test-key-123'


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'generate_texts', REPO / 'tools' / 'generate_texts.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load_tool()

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


def run_tool(tmp_path, server, *extra, labels=LABELS, out='out.json'):
    labels_file = tmp_path / 'labels.txt'
    labels_file.write_text('# test classes\n' + '\n'.join(labels) + '\n\n')
    args = ['--out', str(tmp_path / out), '--base-url', server.base_url,
            '--model', 'fake-model', '--backoff', '0.001', '--timeout', '5']
    if '--from-json' not in extra:
        args += ['--labels', str(labels_file)]
    return gen.main(args + list(extra))


def check_output(path, labels=LABELS, num_fine=3, num_coarse=6):
    texts = load_class_texts(path)
    assert texts.labels == tuple(labels)
    for label, coarse, fine in zip(texts.labels, texts.coarse, texts.fine):
        assert coarse[0] == label
        assert len(coarse) == num_coarse and len(set(coarse)) == num_coarse
        assert len(fine) == num_fine and len(set(fine)) == num_fine
        for text in coarse + fine:
            assert gen.clip_token_length(text) <= gen.CLIP_CONTEXT_LENGTH
    return texts


def test_prompts_name_the_label_and_ask_for_a_json_list():
    for kind in gen.PROMPT_KINDS:
        prompt = gen.build_prompt(kind, 'drink water', 4)
        assert '"drink water"' in prompt and 'JSON list of 4 strings' in prompt
    assert 'body movement' in gen.FINE_PROMPT
    assert 'synonyms' in gen.COARSE_PROMPT
    with pytest.raises(ValueError, match='prompt kind'):
        gen.build_prompt('medium', 'x', 3)


def test_full_run_writes_valid_file(tmp_path, capsys):
    with FakeChatServer(good()) as server:
        assert run_tool(tmp_path, server, '--name', 'toy') == 0
    texts = check_output(tmp_path / 'out.json')
    assert texts.name == 'toy'
    assert 'fake-model' in texts.source
    assert texts.fine[0][0].startswith('Answer A0 for wave hand')
    assert server.count('fine') == 3 and server.count('coarse') == 3
    assert {r['auth'] for r in server.requests} == {f'Bearer {API_KEY}'}
    assert {r['request']['model'] for r in server.requests} == {'fake-model'}
    err = capsys.readouterr().err
    assert '[1/3] wave hand: 6 coarse (asked), 3 fine (asked)' in err
    assert '[3/3] jump up' in err
    assert API_KEY not in err
    assert not list(tmp_path.glob('.out.json.*'))  # no temporary file left


def test_cache_makes_second_run_send_no_request(tmp_path, capsys):
    cache = str(tmp_path / 'answers.jsonl')
    with FakeChatServer(good()) as server:
        assert run_tool(tmp_path, server, '--cache', cache) == 0
        first = server.count()
        assert first == 6
        assert run_tool(tmp_path, server, '--cache', cache, '--from-json',
                        str(tmp_path / 'out.json'), out='again.json') == 0
        assert server.count() == first
    one = json.loads((tmp_path / 'out.json').read_text())
    two = json.loads((tmp_path / 'again.json').read_text())
    assert two['classes'] == one['classes']
    assert two['name'] == one['name'] == 'out'
    assert '[2/3] clap: 6 coarse (cache), 3 fine (cache)' in (
        capsys.readouterr().err)


def test_default_cache_lies_beside_out(tmp_path):
    with FakeChatServer(good()) as server:
        assert run_tool(tmp_path, server) == 0
    lines = (tmp_path / 'out.cache.jsonl').read_text().splitlines()
    keys = {(r['model'], r['kind'], r['label'])
            for r in map(json.loads, lines)}
    assert keys == {('fake-model', kind, label)
                    for kind in ('fine', 'coarse') for label in LABELS}


def test_503_twice_then_success_is_retried(tmp_path, capsys):
    def flaky(index, kind, label):
        return (503, 'overloaded') if index < 2 else good()(index, kind,
                                                             label)

    with FakeChatServer(flaky) as server:
        assert run_tool(tmp_path, server, '--retries', '3') == 0
    check_output(tmp_path / 'out.json')
    assert server.count() == 2 + 6
    err = capsys.readouterr().err
    assert 'retry 1/3' in err and 'retry 2/3' in err and 'HTTP 503' in err


def test_backoff_doubles_and_is_capped():
    delays = []

    def always_busy(index, kind, label):
        return 429, 'slow down'

    with FakeChatServer(always_busy) as server:
        client = gen.ChatClient(server.base_url, 'm', retries=4, backoff=0.5,
                                max_backoff=2.0, sleep=delays.append)
        with pytest.raises(gen.RequestError,
                           match=r'gave up after 5 attempt\(s\).*HTTP 429'):
            client.complete(gen.build_prompt('fine', 'wave', 3))
    assert delays == [0.5, 1.0, 2.0, 2.0]
    assert server.count() == 5 and client.num_requests == 5


def test_client_error_is_not_retried(tmp_path, capsys):
    with FakeChatServer(lambda *a: (400, 'bad model')) as server:
        assert run_tool(tmp_path, server, '--retries', '3') == 1
    assert server.count() == 1
    assert 'HTTP 400' in capsys.readouterr().err
    assert not (tmp_path / 'out.json').exists()


def test_timeout_is_retried(tmp_path):
    def slow_first(index, kind, label):
        if index == 0:
            time.sleep(1.0)
        return good()(index, kind, label)

    with FakeChatServer(slow_first) as server:
        assert run_tool(tmp_path, server, '--timeout', '0.3',
                        '--retries', '2', labels=LABELS[:1]) == 0
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
    with pytest.raises(gen.AnswerError) as info:
        gen.parse_text_list(content, 'wave hand', 'fine')
    assert "label 'wave hand'" in str(info.value)
    assert problem in str(info.value)


@pytest.mark.parametrize('content', [
    '["first  text", "second"]',
    '```json\n["first text", "second"]\n```',
    'Here you are: ["first text", "second"] Enjoy!',
    '{"descriptions": ["first text", "second"]}',
])
def test_parse_accepts_usual_answer_forms(content):
    assert gen.parse_text_list(content, 'x', 'fine') == ['first text',
                                                         'second']


def test_malformed_answer_fails_naming_the_label(tmp_path, capsys):
    def chatty(index, kind, label):
        if kind == 'fine' and label == 'clap':
            return 200, 'Sure! Here are three descriptions of clapping.'
        return good()(index, kind, label)

    with FakeChatServer(chatty) as server:
        assert run_tool(tmp_path, server, '--max-asks', '2') == 1
    err = capsys.readouterr().err
    assert "error: label 'clap'" in err
    assert 'not a JSON list' in err and '0 of 3 valid fine texts' in err
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
        assert run_tool(tmp_path, server, labels=LABELS[:1]) == 0
    fine = check_output(tmp_path / 'out.json', labels=LABELS[:1]).fine[0]
    assert server.count('fine') == 2
    assert too_long not in fine
    assert [t.split(':')[0] for t in fine] == [
        'Answer try10 for wave hand', 'Answer try12 for wave hand',
        'Answer try20 for wave hand']


def test_always_too_long_is_reported(tmp_path, capsys):
    too_long = json.dumps(['word ' * 100] * 3)

    def verbose(index, kind, label):
        return (200, too_long) if kind == 'fine' else good()(index, kind,
                                                             label)

    with FakeChatServer(verbose) as server:
        assert run_tool(tmp_path, server, '--max-asks', '2',
                        labels=LABELS[:1]) == 1
    err = capsys.readouterr().err
    assert "label 'wave hand'" in err and 'exceeds the 77-token context' in err


def test_resume_after_server_dies_keeps_finished_classes(tmp_path, capsys):
    cache = tmp_path / 'out.cache.jsonl'

    def dies_after_three(index, kind, label):
        return good('A')(index, kind, label) if index < 3 else None

    with FakeChatServer(dies_after_three) as server:
        assert run_tool(tmp_path, server, '--retries', '1') == 1
    assert server.count() == 5  # 3 answers, then 2 attempts of the 4th
    assert not (tmp_path / 'out.json').exists()
    assert len(cache.read_text().splitlines()) == 3
    # A kill in the middle of a cache write leaves half a line.
    with open(cache, 'a') as handle:
        handle.write('{"model": "fake-model", "kind": "fi')
    capsys.readouterr()

    with FakeChatServer(good('B')) as server:
        assert run_tool(tmp_path, server) == 0
    # Only the unfinished work is asked for: clap fine, jump up both kinds.
    assert [(r['label'], r['kind']) for r in server.requests] == [
        ('clap', 'fine'), ('jump up', 'coarse'), ('jump up', 'fine')]
    texts = check_output(tmp_path / 'out.json')
    assert texts.fine[0][0].startswith('Answer A0')  # from the first server
    assert texts.coarse[1][1] == 'clap synonym A1'
    assert texts.fine[1][0].startswith('Answer B0')
    assert 'skipping an unreadable cache line' in capsys.readouterr().err
    assert len(gen.AnswerCache(cache)) == 6


def test_api_key_comes_only_from_the_environment(tmp_path, monkeypatch,
                                                 capsys):
    with pytest.raises(SystemExit):
        gen.parse_args(['--labels', 'l.txt', '--out', 'o.json',
                        '--api-key', 'secret'])
    monkeypatch.setenv('MY_KEY', 'other-key')
    with FakeChatServer(good()) as server:
        assert run_tool(tmp_path, server, '--api-key-env', 'MY_KEY',
                        labels=LABELS[:1]) == 0
    assert {r['auth'] for r in server.requests} == {'Bearer other-key'}


def test_labels_file_errors_name_the_file(tmp_path):
    path = tmp_path / 'labels.txt'
    path.write_text('wave\nclap\nwave\n')
    with pytest.raises(ValueError, match="labels.txt: label 'wave' appears"):
        gen.read_labels_file(path)


def test_write_json_atomic_replaces_the_file(tmp_path):
    path = tmp_path / 'sub' / 'x.json'
    gen.write_json_atomic(path, {'a': 1})
    gen.write_json_atomic(path, {'a': 2})
    assert json.loads(path.read_text()) == {'a': 2}
    assert [p.name for p in path.parent.iterdir()] == ['x.json']
