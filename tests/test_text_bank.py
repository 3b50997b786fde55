"""Tests of the class texts and the cached text-embedding bank.

Most bank tests use a small deterministic fake encoder that counts its calls;
the real MiniLM and random-CLIP encoders run end to end on tiny text sets.
Nothing is downloaded.
"""
import os

os.environ['HF_HUB_OFFLINE'] = '1'  # before anything imports huggingface_hub

import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import List  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import cocodiff_mm  # noqa: E402,F401  (runtime fixes before open_clip)
from cocodiff_mm.models.text import class_texts, text_bank  # noqa: E402
from cocodiff_mm.models.text.class_texts import (  # noqa: E402
    ClassTexts, load_class_texts, resolve_texts_path)
from cocodiff_mm.models.text.encoders import (  # noqa: E402
    MiniLMTextEncoder, TextEncoder)
from cocodiff_mm.models.text.text_bank import (  # noqa: E402
    UNTRAINED_MESSAGE, TextEmbeddingBank, load_bank_file, save_bank_file)

REPO = Path(__file__).resolve().parents[1]

TOY = {
    'name': 'toy',
    'source': 'written by hand for tests',
    'classes': [
        {'label': 'drink water',
         'coarse': ['drink water', 'drinking'],
         'fine': ['A person lifts a cup to the mouth and drinks.',
                  'drink water']},  # also a coarse text: encoded once
        {'label': 'reading',
         'coarse': ['reading'],
         'fine': ['A person holds a book and reads it.',
                  'Someone looks down at the pages in both hands.',
                  'A person turns a page of a book.']},
        {'label': 'kicking',
         'coarse': ['kicking', 'kick something'],
         'fine': ['A person swings one leg forward to kick.']},
    ],
}
TOY_FINE = tuple(tuple(entry['fine']) for entry in TOY['classes'])


def write_texts(folder: Path, content: dict = None,
                name: str = 'toy.json') -> Path:
    path = folder / name
    path.write_text(json.dumps(TOY if content is None else content))
    return path


def fake_vector(text: str, dim: int, salt: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(
        zlib.crc32(f'{salt}|{text}'.encode()))
    return torch.randn(dim, generator=generator)


class FakeEncoder(TextEncoder):
    """Deterministic text -> vector map that counts its encode calls."""

    def __init__(self, name: str = 'clip', model_name: str = 'ViT-B-32',
                 weights_id: str = 'openai', dim: int = 8,
                 untrained: bool = False) -> None:
        super().__init__('cpu')
        self.name, self.model_name = name, model_name
        self.weights_id, self.dim, self.untrained = weights_id, dim, untrained
        self.calls = 0
        self.encoded: List[str] = []

    def _load(self) -> None:
        pass

    def _encode_batch(self, texts: List[str]) -> torch.Tensor:
        self.encoded.extend(texts)
        return torch.stack([
            fake_vector(t, self.dim, self.weights_id) for t in texts])

    def encode(self, texts, batch_size=64):
        self.calls += 1
        return super().encode(texts, batch_size)

    def reference(self, text: str) -> torch.Tensor:
        return F.normalize(fake_vector(text, self.dim, self.weights_id),
                           dim=0)


@pytest.fixture
def fake_encoders(monkeypatch):
    """Replace the bank's encoder factory; returns the encoders built."""
    built = []

    def factory(encoder='clip', **kwargs):
        if encoder == 'minilm':
            fake = FakeEncoder('minilm', 'all-MiniLM-L6-v2', 'minilm-w', 6)
        elif encoder == 'random':
            fake = FakeEncoder('random', kwargs['model_name'], 'untrained',
                               untrained=True)
        else:
            fake = FakeEncoder('clip', kwargs['model_name'],
                               kwargs['pretrained'])
        built.append(fake)
        return fake

    monkeypatch.setattr(text_bank, 'build_text_encoder', factory)
    return built


# ----------------------------------------------------------------------
# Class texts
# ----------------------------------------------------------------------
def test_load_class_texts(tmp_path):
    texts = load_class_texts(write_texts(tmp_path))
    assert texts.name == 'toy' and texts.num_classes == 3
    assert texts.labels == ('drink water', 'reading', 'kicking')
    assert texts.coarse[2] == ('kicking', 'kick something')
    assert len(texts.fine[1]) == 3
    assert texts.path == str(tmp_path / 'toy.json')
    with pytest.raises(Exception):
        texts.name = 'other'  # frozen


def test_subset_and_digest(tmp_path):
    texts = load_class_texts(write_texts(tmp_path))
    first_two = texts.subset(2)
    assert first_two.labels == texts.labels[:2]
    assert first_two.fine == texts.fine[:2]
    assert first_two.num_classes == 2
    assert texts.subset(3) is texts
    with pytest.raises(ValueError, match='3 classes; cannot take the first 4'):
        texts.subset(4)
    assert first_two.digest() != texts.digest()
    assert len(texts.digest()) == 64
    # Same content, other name/source/path: same digest.
    renamed = ClassTexts('other', 'x', texts.labels, texts.coarse,
                         texts.fine)
    assert renamed.digest() == texts.digest()
    changed = json.loads(json.dumps(TOY))
    changed['classes'][2]['fine'][0] += ' Quickly.'
    other = load_class_texts(write_texts(tmp_path, changed, 'changed.json'))
    assert other.digest() != texts.digest()


def test_resolve_packaged_name(tmp_path, monkeypatch):
    monkeypatch.setattr(class_texts, 'TEXTS_DIR', tmp_path)
    write_texts(tmp_path)
    write_texts(tmp_path, name='other.json')
    assert resolve_texts_path('toy') == tmp_path / 'toy.json'
    assert load_class_texts('toy').num_classes == 3
    with pytest.raises(FileNotFoundError) as info:
        resolve_texts_path('ntu999')
    assert 'ntu999' in str(info.value)
    assert 'available: other, toy' in str(info.value)


@pytest.mark.parametrize('edit, expected', [
    (lambda d: d['classes'][1].pop('fine'),
     ["classes[1] (label 'reading')", "'fine'"]),
    (lambda d: d['classes'][2].update(coarse=[]),
     ["classes[2] (label 'kicking')", "'coarse'", 'non-empty list']),
    (lambda d: d['classes'][0]['fine'].append(7),
     ["classes[0] (label 'drink water')", "'fine'[2]"]),
    (lambda d: d['classes'][0]['coarse'].append('  '),
     ["classes[0] (label 'drink water')", "'coarse'[2]"]),
    (lambda d: d['classes'][1].update(label=''), ['classes[1]', "'label'"]),
    (lambda d: d['classes'][2].update(label='reading'),
     ["classes[2] (label 'reading')", 'duplicate label', 'classes[1]']),
    (lambda d: d.pop('name'), ['top level', "'name'"]),
    (lambda d: d.update(classes=[]), ['top level', "'classes'"]),
])
def test_schema_errors_name_file_class_and_field(tmp_path, edit, expected):
    content = json.loads(json.dumps(TOY))
    edit(content)
    path = write_texts(tmp_path, content)
    with pytest.raises(ValueError) as info:
        load_class_texts(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_invalid_json_names_file(tmp_path):
    path = tmp_path / 'broken.json'
    path.write_text('{"name": "x",')
    with pytest.raises(ValueError, match='broken.json: not valid JSON'):
        load_class_texts(path)


def test_packaged_ntu120_texts():
    path = class_texts.TEXTS_DIR / 'ntu120.json'
    if not path.is_file():
        pytest.skip(f'{path} not written yet')
    texts = load_class_texts('ntu120')
    assert texts.num_classes == 120
    assert texts.subset(60).num_classes == 60
    assert texts.subset(60).labels == texts.labels[:60]


def test_more_classes_than_the_head_are_refused_unless_chosen(tmp_path):
    """A file with more classes than the head (a config that forgot its
    texts) is refused; ``classes`` says which of them the head takes."""
    path = write_texts(tmp_path)
    with pytest.raises(ValueError) as info:
        load_class_texts(path, 2)
    message = str(info.value)
    assert str(path) in message and 'have 3 classes' in message
    assert 'the head has 2 (num_classes=2)' in message
    assert 'text_bank.classes=2' in message
    assert load_class_texts(path, 3) == load_class_texts(path)

    first_two = load_class_texts(path, 2, classes=2)
    assert first_two == load_class_texts(path).subset(2)
    assert load_class_texts(path, classes=2) == first_two
    picked = load_class_texts(path, 2, classes=[2, 0])
    assert picked.labels == ('kicking', 'drink water')
    assert picked.fine == (TOY_FINE[2], TOY_FINE[0])


@pytest.mark.parametrize('num_classes, classes, expected', [
    (3, 2, 'text_bank.classes=2 takes 2 classes but the head has 3'),
    (2, [0, 1, 2], 'takes 3 classes but the head has 2'),
    (None, 4, 'have only 3 classes; cannot take the first 4'),
    (2, [0, 3], 'text_bank.classes[1]=3 is not a class index of'),
    (2, [1, 1], 'text_bank.classes[1]=1 repeats classes[0]'),
    (2, 'first', 'must be None, an int >= 1 or a list of class indices'),
    (1, True, 'must be None, an int >= 1 or a list of class indices'),
    (1, [], 'must be None, an int >= 1 or a list of class indices'),
])
def test_bad_class_choices_are_refused(tmp_path, num_classes, classes,
                                       expected):
    path = write_texts(tmp_path)
    with pytest.raises(ValueError, match=re.escape(expected)):
        load_class_texts(path, num_classes, classes=classes)


@pytest.mark.parametrize('edit, expected', [
    (lambda d: d['classes'][2].update(label=' reading '),
     "classes[2] (label ' reading '): duplicate label, already used by "
     "classes[1] (label 'reading')"),
    (lambda d: d['classes'][2].update(
        fine=[f'  {t}' for t in reversed(TOY_FINE[1])]),
     "classes[2] (label 'kicking'): the same fine texts as classes[1] "
     "(label 'reading'): the texts must tell the classes apart"),
    (lambda d: d['classes'][1].update(coarse=['drinking ', 'drink water']),
     "classes[1] (label 'reading'): the same coarse texts as classes[0] "
     "(label 'drink water'): the texts must tell the classes apart"),
])
def test_classes_with_identical_texts_are_refused(tmp_path, edit, expected):
    """Labels and texts are compared after trimming whitespace; a class's
    texts are compared as a whole, in any order."""
    content = json.loads(json.dumps(TOY))
    edit(content)
    path = write_texts(tmp_path, content)
    with pytest.raises(ValueError) as info:
        load_class_texts(path)
    assert str(info.value) == f'{path}: {expected}'


# ----------------------------------------------------------------------
# Bank: laziness, build, cache
# ----------------------------------------------------------------------
def test_construction_is_lazy(tmp_path, fake_encoders):
    bank = TextEmbeddingBank(texts=str(tmp_path / 'missing.json'),
                             cache_dir=str(tmp_path / 'cache'))
    assert not bank.is_built
    assert fake_encoders == []  # no encoder built, no file read
    assert not (tmp_path / 'cache').exists()
    assert bank.state_dict() == {}
    with pytest.raises(FileNotFoundError, match='missing.json'):
        bank.build()


def test_dim_and_untrained_known_before_build(tmp_path, fake_encoders):
    missing = str(tmp_path / 'missing.json')
    assert TextEmbeddingBank(texts=missing).dim == 512
    assert TextEmbeddingBank(texts=missing, model_name='ViT-L-14').dim == 768
    assert TextEmbeddingBank(texts=missing, encoder='minilm').dim == 384
    assert TextEmbeddingBank(texts=missing, encoder='random').untrained
    assert not TextEmbeddingBank(texts=missing, encoder='clip').untrained
    assert fake_encoders == []  # no encoder constructed


def test_dim_reported_before_build_must_hold(tmp_path, fake_encoders):
    bank = TextEmbeddingBank(texts=str(write_texts(tmp_path)),
                             cache_dir=str(tmp_path))
    assert bank.dim == 512  # ViT-B-32; the fake encoder gives 8
    with pytest.raises(RuntimeError, match='8-d embeddings but 512'):
        bank.build()


def test_constructor_validates_options():
    with pytest.raises(ValueError, match='clip, minilm, random'):
        TextEmbeddingBank(encoder='bert')
    with pytest.raises(ValueError, match='sample_mode'):
        TextEmbeddingBank(sample_mode='max')
    with pytest.raises(ValueError, match='num_classes'):
        TextEmbeddingBank(num_classes=0)


#: A user's encoder module, as a config's ``custom_imports`` would load it.
PLUGIN_MODULE = '''
import torch

from cocodiff_mm.models.text import TEXT_ENCODERS, TextEncoder


@TEXT_ENCODERS.register_module(name='letter_counts')
class LetterCountEncoder(TextEncoder):
    """Counts of a, b, c, ... in the text: a tiny deterministic encoder."""

    def __init__(self, dim=4, device=None):
        super().__init__(device)
        self.name, self.model_name = 'letter_counts', f'letters-{dim}'
        self.weights_id, self.dim = 'none', dim

    def _load(self):
        pass

    def _encode_batch(self, texts):
        return torch.tensor(
            [[text.count(chr(97 + i)) + 0.5 for i in range(self.dim)]
             for text in texts])
'''


@pytest.fixture
def plugin_config(tmp_path, monkeypatch):
    """A config whose custom_imports registers the ``letter_counts``
    encoder from a module in ``tmp_path``; unregistered afterwards."""
    from cocodiff_mm.models.text import TEXT_ENCODERS

    (tmp_path / 'letter_encoder_plugin.py').write_text(PLUGIN_MODULE)
    texts = write_texts(tmp_path)
    config = tmp_path / 'plugin_config.py'
    config.write_text(
        "custom_imports = dict(imports=['letter_encoder_plugin'], "
        'allow_failed_imports=False)\n'
        f"by_name = dict(texts={str(texts)!r}, encoder='letter_counts', "
        f'cache_dir={str(tmp_path / "cache")!r})\n'
        'by_dict = dict(by_name, '
        "encoder=dict(type='letter_counts', dim=6))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, 'letter_encoder_plugin', raising=False)
    yield config
    TEXT_ENCODERS.module_dict.pop('letter_counts', None)
    sys.modules.pop('letter_encoder_plugin', None)


def test_encoder_added_through_custom_imports(plugin_config, tmp_path):
    from mmengine.config import Config

    with pytest.raises(ValueError, match='letter_counts'):
        TextEmbeddingBank(encoder='letter_counts')  # not imported yet
    cfg = Config.fromfile(str(plugin_config))  # runs custom_imports
    with pytest.raises(ValueError, match='clip, letter_counts, minilm'):
        TextEmbeddingBank(encoder='bert')  # the message lists it now

    bank = TextEmbeddingBank(**cfg.by_name)
    assert bank.dim == 4 and not bank.untrained  # before building
    bank.build()
    assert bank.fine_embeds.shape == (6, 4)
    expected = F.normalize(torch.tensor(
        [[text.count(c) + 0.5 for c in 'abcd']
         for text in load_class_texts(cfg.by_name.texts).fine[1]]), dim=-1)
    assert torch.allclose(bank.fine_embeds[2:5], expected)
    assert bank.metadata['encoder'] == 'letter_counts'
    assert bank.bank_path.is_file()

    by_dict = TextEmbeddingBank(**cfg.by_dict)
    assert by_dict.encoder_args == dict(dim=6)
    assert by_dict.dim == 6
    assert by_dict.build().fine_embeds.shape == (6, 6)
    assert by_dict.bank_path != bank.bank_path
    assert "encoder={'type': 'letter_counts', 'dim': 6}" in repr(by_dict)


def test_build_encodes_each_text_once_and_saves(tmp_path, fake_encoders):
    path = write_texts(tmp_path)
    cache = tmp_path / 'cache'
    bank = TextEmbeddingBank(texts=str(path), cache_dir=str(cache))
    assert bank.build() is bank
    assert bank.is_built and not bank.loaded_from_cache
    (encoder, ) = fake_encoders
    assert encoder.calls == 1
    assert sorted(encoder.encoded) == sorted(set(encoder.encoded))
    assert 'drink water' in encoder.encoded

    assert bank.num_classes == 3 and bank.dim == 8
    assert bank.fine_counts.tolist() == [2, 3, 1]
    assert bank.coarse_counts.tolist() == [2, 1, 2]
    assert bank.fine_offsets.tolist() == [0, 2, 5]
    assert bank.fine_embeds.shape == (6, 8)
    assert bank.fine_embeds.dtype == torch.float32
    texts = load_class_texts(path)
    flat_fine = [t for group in texts.fine for t in group]
    expected = torch.stack([encoder.reference(t) for t in flat_fine])
    torch.testing.assert_close(bank.fine_embeds, expected)
    assert bank.state_dict() == {}  # never in a checkpoint

    files = sorted(cache.iterdir())
    assert files == [bank.bank_path]
    assert bank.bank_path.name.startswith('toy-3c-clip-ViT-B-32-')
    assert bank.bank_path.suffix == '.safetensors'

    bank.build()  # idempotent
    assert encoder.calls == 1


def test_bank_file_is_safetensors_with_metadata(tmp_path, fake_encoders):
    from safetensors.torch import load_file

    path = write_texts(tmp_path)
    bank = TextEmbeddingBank(texts=str(path), pretrained='openai',
                             cache_dir=str(tmp_path)).build()
    raw = bank.bank_path.read_bytes()
    header_size = int.from_bytes(raw[:8], 'little')
    header = json.loads(raw[8:8 + header_size])  # plain JSON, no pickle
    assert set(header) - {'__metadata__'} == {
        'fine_embeds', 'fine_counts', 'coarse_embeds', 'coarse_counts'}
    tensors = load_file(str(bank.bank_path))
    torch.testing.assert_close(tensors['coarse_embeds'], bank.coarse_embeds)

    tensors, metadata = load_bank_file(bank.bank_path)
    assert metadata['format_version'] == '1'
    assert metadata['texts_name'] == 'toy'
    assert metadata['texts_digest'] == load_class_texts(path).digest()
    assert metadata['num_classes'] == '3'
    assert metadata['encoder'] == 'clip'
    assert metadata['model_name'] == 'ViT-B-32'
    assert metadata['weights_id'] == 'openai'
    assert metadata['untrained'] == 'false'
    assert metadata['dim'] == '8'
    assert metadata['texts_path'] == str(path)
    assert bank.metadata == metadata


def test_cache_hit_does_not_encode(tmp_path, fake_encoders):
    path = write_texts(tmp_path)
    first = TextEmbeddingBank(texts=str(path), cache_dir=str(tmp_path))
    first.build()
    second = TextEmbeddingBank(texts=str(path), cache_dir=str(tmp_path))
    second.build()
    assert [e.calls for e in fake_encoders] == [1, 0]
    assert second.loaded_from_cache
    assert second.bank_path == first.bank_path
    torch.testing.assert_close(second.fine_embeds, first.fine_embeds)
    torch.testing.assert_close(second.coarse_means, first.coarse_means)
    # rebuild=True encodes again.
    second.build(rebuild=True)
    assert [e.calls for e in fake_encoders] == [1, 0, 1]
    assert not second.loaded_from_cache


def test_rebuild_when_texts_change(tmp_path, fake_encoders):
    path = write_texts(tmp_path)
    first = TextEmbeddingBank(texts=str(path), cache_dir=str(tmp_path))
    first.build()
    changed = json.loads(json.dumps(TOY))
    changed['classes'][1]['fine'][0] = 'A person reads a newspaper.'
    write_texts(tmp_path, changed)
    second = TextEmbeddingBank(texts=str(path), cache_dir=str(tmp_path))
    second.build()
    assert [e.calls for e in fake_encoders] == [1, 1]
    assert second.bank_path != first.bank_path
    assert first.bank_path.is_file() and second.bank_path.is_file()
    assert not torch.allclose(second.fine_embeds, first.fine_embeds)


def test_rebuild_when_encoder_changes(tmp_path, fake_encoders):
    path = write_texts(tmp_path)
    paths = set()
    for kwargs in [dict(encoder='clip', pretrained='openai'),
                   dict(encoder='clip', pretrained='laion2b'),
                   dict(encoder='clip', model_name='ViT-B-16'),
                   dict(encoder='minilm')]:
        bank = TextEmbeddingBank(texts=str(path), cache_dir=str(tmp_path),
                                 **kwargs).build()
        assert not bank.loaded_from_cache
        paths.add(bank.bank_path)
    assert [e.calls for e in fake_encoders] == [1, 1, 1, 1]
    assert len(paths) == 4
    assert bank.dim == 6 and bank.metadata['encoder'] == 'minilm'


def test_stale_or_broken_file_is_rebuilt(tmp_path, fake_encoders):
    path = write_texts(tmp_path)
    bank = TextEmbeddingBank(texts=str(path), cache_dir=str(tmp_path))
    bank.build()
    tensors, metadata = load_bank_file(bank.bank_path)
    metadata['texts_digest'] = '0' * 64
    save_bank_file(bank.bank_path, tensors, metadata)
    again = TextEmbeddingBank(texts=str(path), cache_dir=str(tmp_path))
    again.build()
    assert fake_encoders[-1].calls == 1
    assert load_bank_file(bank.bank_path)[1]['texts_digest'] != '0' * 64

    bank.bank_path.write_bytes(b'not a safetensors file')
    third = TextEmbeddingBank(texts=str(path), cache_dir=str(tmp_path))
    third.build()
    assert fake_encoders[-1].calls == 1
    torch.testing.assert_close(third.fine_embeds, bank.fine_embeds)
    assert not list(tmp_path.glob('.*.tmp'))  # atomic writes leave nothing


def test_no_cache_dir_writes_nothing(tmp_path, fake_encoders):
    path = write_texts(tmp_path)
    bank = TextEmbeddingBank(texts=str(path), cache_dir=None).build()
    assert bank.bank_path is None and bank.is_built
    assert sorted(p.name for p in tmp_path.iterdir()) == ['toy.json']


def test_save_bank_file_rejects_inconsistent_tensors(tmp_path):
    tensors = dict(fine_embeds=torch.zeros(3, 4),
                   fine_counts=torch.tensor([1, 1]),
                   coarse_embeds=torch.zeros(2, 4),
                   coarse_counts=torch.tensor([1, 1]))
    with pytest.raises(ValueError, match='fine_counts sum to 2'):
        save_bank_file(tmp_path / 'bank.safetensors', tensors, {})
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------
# Bank: class counts
# ----------------------------------------------------------------------
def test_classes_subset(tmp_path, fake_encoders):
    path = write_texts(tmp_path)
    refused = TextEmbeddingBank(texts=str(path), num_classes=2,
                                cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match='have 3 classes but the head has 2'):
        refused.build()
    bank = TextEmbeddingBank(texts=str(path), num_classes=2, classes=2,
                             cache_dir=str(tmp_path))
    assert bank.num_classes == 2 and not bank.is_built
    assert 'classes=2' in repr(bank)
    bank.build()
    assert bank.num_classes == 2
    assert bank.fine_counts.tolist() == [2, 3]
    assert bank.bank_path.name.startswith('toy-2c-')
    assert bank.metadata['num_classes'] == '2'


def test_too_few_classes_in_file(tmp_path, fake_encoders):
    path = write_texts(tmp_path)
    bank = TextEmbeddingBank(texts=str(path), num_classes=60,
                             cache_dir=str(tmp_path))
    with pytest.raises(ValueError) as info:
        bank.build()
    message = str(info.value)
    assert 'num_classes=60' in message
    assert 'only 3 classes' in message
    assert str(path) in message


# ----------------------------------------------------------------------
# Bank: embed
# ----------------------------------------------------------------------
def test_embed_random_covers_texts_of_the_class(tmp_path, fake_encoders):
    path = write_texts(tmp_path)
    bank = TextEmbeddingBank(texts=str(path), cache_dir=str(tmp_path))
    labels = torch.tensor([1] * 600 + [0] * 400 + [2] * 10)
    generator = torch.Generator().manual_seed(0)
    out = bank.embed(labels, 'fine', generator=generator)  # builds
    assert bank.is_built
    assert out.shape == (1010, 8) and out.dtype == torch.float32
    # Every row is one of its own class's fine embeddings.
    rows = (out[:, None, :] == bank.fine_embeds[None]).all(-1)
    assert (rows.sum(1) == 1).all()
    picked = rows.float().argmax(1)
    owner = torch.repeat_interleave(torch.arange(3), bank.fine_counts)
    assert torch.equal(owner[picked], labels)
    # Uniform over the class's texts.
    counts = torch.bincount(picked[:600], minlength=6)[2:5]
    assert (counts > 150).all(), counts
    counts = torch.bincount(picked[600:1000], minlength=6)[0:2]
    assert (counts > 150).all(), counts
    # Reproducible with a seeded generator.
    again = bank.embed(labels, 'fine',
                       generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, out)
    # Coarse draws come from the coarse texts.
    coarse = bank.embed(torch.tensor([2] * 50), 'coarse')
    assert all(any(torch.equal(row, ref) for ref in bank.coarse_embeds[3:5])
               for row in coarse)


def test_embed_mean(tmp_path, fake_encoders):
    path = write_texts(tmp_path)
    bank = TextEmbeddingBank(texts=str(path), sample_mode='mean',
                             cache_dir=str(tmp_path))
    out = bank.embed(torch.tensor([1, 0, 1]), 'fine')
    encoder = fake_encoders[0]
    texts = load_class_texts(path)
    mean = torch.stack([encoder.reference(t) for t in texts.fine[1]]).mean(0)
    torch.testing.assert_close(out[0], F.normalize(mean, dim=0))
    torch.testing.assert_close(out[0], out[2])
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    coarse = bank.embed(torch.tensor([0]), 'coarse')
    mean = torch.stack([encoder.reference(t) for t in texts.coarse[0]])
    torch.testing.assert_close(coarse[0], F.normalize(mean.mean(0), dim=0))


def test_embed_rejects_bad_input(tmp_path, fake_encoders):
    path = write_texts(tmp_path)
    bank = TextEmbeddingBank(texts=str(path), cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r'0\.\.2 .*got min 0, max 3'):
        bank.embed(torch.tensor([0, 3]), 'fine')
    with pytest.raises(ValueError, match='min -1'):
        bank.embed(torch.tensor([-1]), 'coarse')
    with pytest.raises(ValueError, match='kind'):
        bank.embed(torch.tensor([0]), 'medium')
    with pytest.raises(ValueError, match='1-D integer'):
        bank.embed(torch.tensor([0.0]), 'fine')
    assert bank.embed(torch.tensor([], dtype=torch.long),
                      'fine').shape == (0, 8)


def test_embed_device_and_dtype(tmp_path, fake_encoders):
    path = write_texts(tmp_path)
    bank = TextEmbeddingBank(texts=str(path), cache_dir=str(tmp_path))
    labels = torch.tensor([0, 2], dtype=torch.int32)
    out = bank.embed(labels, 'coarse')
    assert out.device == labels.device and out.dtype == torch.float32
    if torch.cuda.is_available():
        cuda_labels = labels.cuda()
        out = bank.embed(cuda_labels, 'fine',
                         generator=torch.Generator().manual_seed(1))
        assert out.device == cuda_labels.device
        assert bank.fine_embeds.is_cuda
        bank.cuda()
        mean_bank = TextEmbeddingBank(texts=str(path), sample_mode='mean',
                                      cache_dir=str(tmp_path)).cuda()
        assert mean_bank.embed(cuda_labels, 'fine').is_cuda


def test_untrained_encoder_warns_loudly(tmp_path, fake_encoders,
                                        monkeypatch):
    logged = []
    monkeypatch.setattr(
        text_bank, 'print_log',
        lambda msg, logger=None, level=logging.INFO: logged.append(
            (msg, level)))
    path = write_texts(tmp_path)
    bank = TextEmbeddingBank(texts=str(path), encoder='random',
                             cache_dir=str(tmp_path))
    assert bank.untrained
    with pytest.warns(UserWarning, match='UNTRAINED'):
        bank.build()
    assert (UNTRAINED_MESSAGE, logging.WARNING) in logged
    assert 'UNTRAINED (random weights)' in UNTRAINED_MESSAGE
    assert bank.metadata['untrained'] == 'true'
    assert bank.metadata['weights_id'] == 'untrained'


# ----------------------------------------------------------------------
# Real encoders and the command line
# ----------------------------------------------------------------------
def test_minilm_bank_end_to_end(tmp_path, monkeypatch):
    path = write_texts(tmp_path)
    bank = TextEmbeddingBank(texts=str(path), encoder='minilm',
                             pretrained='ignored-for-minilm',
                             cache_dir=str(tmp_path), encode_device='cpu')
    bank.build()
    assert bank.dim == 384 and not bank.untrained
    texts = load_class_texts(path)
    direct = MiniLMTextEncoder(device='cpu').encode(
        [t for group in texts.coarse for t in group])
    np.testing.assert_allclose(bank.coarse_embeds.numpy(), direct,
                               atol=1e-5)

    def must_not_encode(self, texts, batch_size=64):
        raise AssertionError('a cache hit must not encode')

    monkeypatch.setattr(MiniLMTextEncoder, 'encode', must_not_encode)
    cached = TextEmbeddingBank(texts=str(path), encoder='minilm',
                               cache_dir=str(tmp_path)).build()
    assert cached.loaded_from_cache
    torch.testing.assert_close(cached.fine_embeds, bank.fine_embeds)


def load_cli():
    spec = importlib.util.spec_from_file_location(
        'encode_texts', REPO / 'tools' / 'encode_texts.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_random_encoder(tmp_path, capsys):
    path = write_texts(tmp_path)
    cache = tmp_path / 'banks'
    cli = load_cli()
    argv = ['--texts', str(path), '--encoder', 'random', '--num-classes',
            '2', '--cache-dir', str(cache), '--device', 'cpu']
    with pytest.warns(UserWarning, match='UNTRAINED'):
        assert cli.main(argv) == 0
    out = capsys.readouterr().out
    (bank_file, ) = cache.iterdir()
    assert f'bank file: {bank_file.resolve()}' in out
    assert 'status: encoded' in out
    assert 'classes: 2' in out
    assert 'fine texts: 5' in out and 'coarse texts: 3' in out
    assert 'dim: 512' in out
    assert 'UNTRAINED' in out
    _, metadata = load_bank_file(bank_file)
    assert metadata['encoder'] == 'random'
    assert metadata['untrained'] == 'true'

    with pytest.warns(UserWarning, match='UNTRAINED'):
        assert cli.main(argv) == 0
    assert 'status: loaded from cache' in capsys.readouterr().out


def test_cli_offers_every_registered_encoder(plugin_config, tmp_path,
                                            capsys):
    """An encoder registered by a module (as a config's custom_imports
    adds one) is offered by the tool, not only the built-in ones."""
    cli = load_cli()
    argv = ['--texts', str(write_texts(tmp_path)), '--encoder',
            'letter_counts', '--cache-dir', str(tmp_path / 'banks')]
    assert cli.main(argv) == 1  # not imported yet: the registry says so
    assert 'unknown text encoder' in capsys.readouterr().err
    assert cli.main(['--custom-imports', 'letter_encoder_plugin',
                     *argv]) == 0
    out = capsys.readouterr().out
    assert 'encoder: letter_counts letters-4' in out and 'dim: 4' in out
    with pytest.raises(SystemExit):
        cli.parse_args(['--help'])
    assert 'letter_counts' in capsys.readouterr().out


def test_cli_reports_errors(tmp_path, capsys):
    cli = load_cli()
    path = write_texts(tmp_path)
    assert cli.main(['--texts', str(path), '--encoder', 'minilm',
                     '--num-classes', '9', '--cache-dir',
                     str(tmp_path)]) == 1
    assert 'only 3 classes' in capsys.readouterr().err

