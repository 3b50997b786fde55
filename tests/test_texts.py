"""Checks of the packaged class-text files ``cocodiff_mm/texts/*.json``.

Every file must follow the schema read by
:func:`cocodiff_mm.models.text.class_texts.load_class_texts`, hold enough
coarse texts (label first, then synonyms) and fine texts (movement
descriptions) per class, fit CLIP's 77-token context, list its classes in the
dataset's official order, and contain real per-class descriptions rather than
one template filled with the label.
"""
import itertools
import json
import os
import re
from pathlib import Path
from typing import FrozenSet, List, Sequence, Tuple

import pytest

from cocodiff_mm.models.text.class_texts import load_class_texts

REPO = Path(__file__).resolve().parents[1]
TEXTS_DIR = REPO / 'cocodiff_mm' / 'texts'
TEXT_FILES = sorted(TEXTS_DIR.glob('*.json'))
EXPECTED_NAMES = ('ntu120', 'kinetics400', 'utd_mhad', 'demo')

MIN_COARSE = 6
MIN_FINE = 3
#: Word-Jaccard similarity (label words removed) from which two fine texts
#: of different classes count as one template. Distinct human-written
#: descriptions of similar actions stay below ~0.6.
TEMPLATE_JACCARD = 0.75

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def _shared_data() -> Path:
    default = REPO.parent / 'shared' / 'data'
    return Path(os.environ.get('COCODIFF_SHARED_DATA', default))


def _words(text: str) -> FrozenSet[str]:
    """Lower-case words of a text."""
    return frozenset(_WORD.findall(text.lower()))


def _normalise(text: str) -> str:
    return ' '.join(text.casefold().split())


def templated_pairs(labels: Sequence[str],
                    fine: Sequence[Sequence[str]],
                    threshold: float = TEMPLATE_JACCARD
                    ) -> List[Tuple[float, str, str]]:
    """Fine texts of two classes that are one template filled differently.

    Each text loses the words of its own class label; two texts of different
    classes whose remaining word sets have a Jaccard similarity of at least
    ``threshold`` are reported.

    Args:
        labels (Sequence[str]): Class labels.
        fine (Sequence[Sequence[str]]): Fine texts of every class.
        threshold (float): Smallest similarity reported. Defaults to
            ``TEMPLATE_JACCARD``.

    Returns:
        list[tuple[float, str, str]]: ``(similarity, 'label: text',
        'label: text')`` of every such pair.
    """
    items = []
    for index, (label, texts) in enumerate(zip(labels, fine)):
        label_words = _words(label)
        for text in texts:
            words = _words(text) - label_words
            items.append((index, f'{label}: {text}', words))
    found = []
    for (class_a, text_a, words_a), (class_b, text_b, words_b) in (
            itertools.combinations(items, 2)):
        if class_a == class_b:
            continue
        small, large = sorted((len(words_a), len(words_b)))
        if large == 0:
            found.append((1.0, text_a, text_b))
            continue
        if small < threshold * large:  # Jaccard <= small / large
            continue
        similarity = len(words_a & words_b) / len(words_a | words_b)
        if similarity >= threshold:
            found.append((similarity, text_a, text_b))
    return found


@pytest.fixture(scope='module')
def clip_tokenizer():
    """The CLIP text encoder's own tokenizer and context length (open_clip
    loads after cocodiff_mm's fixes)."""
    from cocodiff_mm.datasets.class_text_generation import clip_token_limit
    limit = clip_token_limit()
    assert limit.exact, 'open_clip is part of make install'
    return limit


def _report(problems: Sequence[str], limit: int = 10) -> str:
    shown = '\n  '.join(problems[:limit])
    more = len(problems) - limit
    return f'{len(problems)} problem(s):\n  {shown}' + (
        f'\n  ... and {more} more' if more > 0 else '')


def test_expected_files_present():
    missing = [name for name in EXPECTED_NAMES
               if not (TEXTS_DIR / f'{name}.json').is_file()]
    assert not missing, (
        f'class-text files missing from {TEXTS_DIR}: '
        f'{[f"{name}.json" for name in missing]}')


@pytest.mark.parametrize('path', TEXT_FILES, ids=lambda p: p.stem)
def test_schema(path):
    texts = load_class_texts(path)  # types and non-empty fields
    data = json.loads(path.read_text(encoding='utf-8'))
    assert set(data) == {'name', 'source', 'classes'}, (
        f'{path.name}: top-level keys must be name, source, classes; got '
        f'{sorted(data)}')
    assert texts.name == path.stem, (
        f'{path.name}: field name must be {path.stem!r}, got {texts.name!r}')
    extra = [(i, sorted(entry)) for i, entry in enumerate(data['classes'])
             if set(entry) != {'label', 'coarse', 'fine'}]
    assert not extra, (
        f'{path.name}: class entries must have exactly label, coarse, fine; '
        f'first offenders (index, keys): {extra[:3]}')


@pytest.mark.parametrize('path', TEXT_FILES, ids=lambda p: p.stem)
def test_counts_and_label_first(path):
    texts = load_class_texts(path)
    problems = []
    for label, coarse, fine in zip(texts.labels, texts.coarse, texts.fine):
        if coarse[0] != label:
            problems.append(
                f'{label!r}: coarse[0] must be the label, got {coarse[0]!r}')
        if len(coarse) < MIN_COARSE:
            problems.append(f'{label!r}: {len(coarse)} coarse texts, '
                            f'expected >= {MIN_COARSE}')
        if len(fine) < MIN_FINE:
            problems.append(
                f'{label!r}: {len(fine)} fine texts, expected >= {MIN_FINE}')
        for field, values in (('coarse', coarse), ('fine', fine)):
            if len({_normalise(v) for v in values}) != len(values):
                problems.append(f'{label!r}: repeated {field} text')
    assert not problems, f'{path.name}: {_report(problems)}'


@pytest.mark.parametrize('path', TEXT_FILES, ids=lambda p: p.stem)
def test_texts_fit_clip_context(path, clip_tokenizer):
    texts = load_class_texts(path)
    problems = []
    for label, coarse, fine in zip(texts.labels, texts.coarse, texts.fine):
        for field, values in (('coarse', coarse), ('fine', fine)):
            for text in values:
                length = clip_tokenizer.count(text)
                if length > clip_tokenizer.context_length:
                    problems.append(f'{label!r} {field}: {length} tokens > '
                                    f'{clip_tokenizer.context_length}: '
                                    f'{text[:60]!r}')
    assert not problems, f'{path.name}: {_report(problems)}'


@pytest.mark.parametrize('path', TEXT_FILES, ids=lambda p: p.stem)
def test_fine_texts_not_shared_between_classes(path):
    texts = load_class_texts(path)
    owner = {}
    problems = []
    for label, fine in zip(texts.labels, texts.fine):
        for text in fine:
            key = _normalise(text)
            if key in owner and owner[key] != label:
                problems.append(f'{owner[key]!r} and {label!r} share '
                                f'{text[:60]!r}')
            owner.setdefault(key, label)
    assert not problems, f'{path.name}: {_report(problems)}'


@pytest.mark.parametrize('path', TEXT_FILES, ids=lambda p: p.stem)
def test_fine_texts_not_templated(path):
    texts = load_class_texts(path)
    found = templated_pairs(texts.labels, texts.fine)
    problems = [f'{s:.2f}: {a[:70]!r} ~ {b[:70]!r}' for s, a, b in found]
    assert not problems, (
        f'{path.name}: near-identical fine texts once the labels are '
        f'removed (word Jaccard >= {TEMPLATE_JACCARD}); '
        f'{_report(problems)}')


def test_template_check_flags_templated_pair():
    labels = ['brushing teeth', 'kicking something']
    template = ('A person performs {} with a smooth, natural motion of the '
                'arms and body, keeping a steady rhythm from start to end.')
    fine = [[template.format(label)] for label in labels]
    found = templated_pairs(labels, fine)
    assert len(found) == 1 and found[0][0] == pytest.approx(1.0)

    # A template with one word swapped is still caught.
    fine[1] = [fine[1][0].replace('steady', 'quick')]
    assert templated_pairs(labels, fine)

    # Distinct descriptions of two related actions pass.
    distinct = [
        ['The right hand holds a brush at the mouth and scrubs the teeth with '
         'short, fast side-to-side strokes while the head stays still.'],
        ['Standing on the left leg, the person swings the right foot back '
         'and then forward hard, striking an object on the floor ahead.'],
    ]
    assert templated_pairs(labels, distinct) == []


def test_template_check_ignores_pairs_within_a_class():
    text = 'The person raises both arms above the head and lowers them.'
    assert templated_pairs(['a', 'b'], [[text, text + ' Twice.'], ['x y z']]
                           ) == []


def _official_labels(name: str) -> Tuple[str, ...]:
    if name == 'ntu120':
        from cocodiff_mm.datasets.label_names import NTU120_CLASSES
        return tuple(NTU120_CLASSES)
    if name == 'utd_mhad':
        from cocodiff_mm.datasets.label_names import UTD_MHAD_CLASSES
        return tuple(UTD_MHAD_CLASSES)
    if name == 'kinetics400':
        names = (_shared_data() / 'kinetics_skeleton_sample' /
                 'kinetics400_label_names.txt')
        if not names.is_file():
            pytest.skip(f'official Kinetics-400 label list not found at '
                        f'{names} (set COCODIFF_SHARED_DATA)')
        labels = tuple(line.strip() for line in
                       names.read_text(encoding='utf-8').splitlines()
                       if line.strip())
        assert len(labels) == 400, f'{names}: {len(labels)} labels, not 400'
        return labels
    if name == 'demo':
        from cocodiff_mm.datasets.demo.generator import DEMO_CLASSES
        return tuple(DEMO_CLASSES)
    raise AssertionError(f'no official class list known for {name!r}')


@pytest.mark.parametrize('name', EXPECTED_NAMES)
def test_class_order_matches_official_list(name):
    path = TEXTS_DIR / f'{name}.json'
    if not path.is_file():
        pytest.skip(f'{path.name} not present (test_expected_files_present '
                    f'reports it)')
    labels = load_class_texts(path).labels
    if name == 'kinetics400':
        assert len(labels) == 400, f'{path.name}: {len(labels)} classes'
    official = _official_labels(name)
    assert len(labels) == len(official), (
        f'{path.name}: {len(labels)} classes, official list has '
        f'{len(official)}')
    wrong = [(i, got, want) for i, (got, want) in
             enumerate(zip(labels, official)) if got != want]
    assert not wrong, (
        f'{path.name}: labels differ from the official order at (index, '
        f'got, expected): {wrong[:5]}')



# --------------------------------------------------------------------------
# Which classes of a text file a config's head takes
# --------------------------------------------------------------------------
COCODIFF_CONFIGS = sorted((REPO / 'configs').glob('*cocodiff*.py'))


def _raw_classes(name: str) -> list:
    """A packaged file's classes read as plain JSON, not by the loader."""
    path = TEXTS_DIR / f'{name}.json'
    return json.loads(path.read_text(encoding='utf-8'))['classes']


def test_a_config_without_texts_is_refused_for_a_smaller_head(tmp_path):
    """A dataset config that forgets ``text_bank.texts`` inherits the
    base's ``'ntu120'``: its 120 classes are refused for a 10-class head
    instead of training on NTU-120's first 10 classes' texts."""
    from mmengine.config import Config

    from cocodiff_mm.engine.config_check import check_class_texts
    from cocodiff_mm.utils.config_keys import ConfigError

    leaf = tmp_path / 'mine_cocodiff.py'
    leaf.write_text(
        f"_base_ = ['{REPO}/configs/ctrgcn_demo.py',\n"
        f"          '{REPO}/configs/_base_/cocodiff.py']\n"
        'model = dict(cls_head={{_base_.cocodiff_head}})\n')
    cfg = Config.fromfile(str(leaf))
    cfg.model.cls_head.num_classes = 10
    assert cfg.model.cls_head.text_bank.texts == 'ntu120'
    with pytest.raises(ConfigError) as info:
        check_class_texts(cfg)
    message = str(info.value)
    assert message.startswith(
        f"{leaf}: model.cls_head.text_bank.texts='ntu120': ")
    assert 'have 120 classes but the head has 10' in message
    assert 'text_bank.classes=10' in message and '\n' not in message


@pytest.mark.parametrize('path', COCODIFF_CONFIGS, ids=lambda p: p.stem)
def test_shipped_configs_take_the_classes_they_mean(path):
    """Every shipped CoCoDiff config passes the pre-run check, and its bank
    holds the file's first ``num_classes`` classes, in file order, with the
    file's texts: all of them, or (NTU-60) NTU-120's first 60, said in the
    config with ``text_bank.classes=60``."""
    from mmengine.config import Config

    from cocodiff_mm.engine.config_check import check_class_texts
    from cocodiff_mm.models.text.text_bank import TextEmbeddingBank

    cfg = Config.fromfile(str(path))
    check_class_texts(cfg)
    head = cfg.model.cls_head
    bank = TextEmbeddingBank(**dict(head.text_bank,
                                    num_classes=head.num_classes))
    raw = _raw_classes(bank.texts)
    if head.num_classes < len(raw):
        assert (bank.texts, head.num_classes, head.text_bank.classes) == (
            'ntu120', 60, 60)
    else:
        assert head.text_bank.get('classes') is None
    taken = raw[:head.num_classes]
    texts = bank.load_texts()
    assert texts.labels == tuple(entry['label'] for entry in taken)
    assert texts.coarse == tuple(tuple(entry['coarse']) for entry in taken)
    assert texts.fine == tuple(tuple(entry['fine']) for entry in taken)
