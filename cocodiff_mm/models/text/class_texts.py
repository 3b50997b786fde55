"""Per-class coarse and fine texts, loaded from the package's JSON files.

A class-text file (``cocodiff_mm/texts/<name>.json``) holds, for every class
in class-index order, the label, its *coarse* texts (the label and its
synonyms) and its *fine* texts (detailed descriptions of the body movement)::

    {"name": "ntu120", "source": "...",
     "classes": [{"label": "drink water",
                  "coarse": ["drink water", "drinking"],
                  "fine": ["A person lifts a cup to the mouth ..."]}, ...]}
"""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

from ...utils.checks import check_int

#: Folder of the class-text files shipped with the package.
TEXTS_DIR = Path(__file__).resolve().parents[2] / 'texts'

#: Text fields of one class entry, in the order they are validated.
TEXT_FIELDS = ('coarse', 'fine')


@dataclass(frozen=True)
class ClassTexts:
    """Coarse and fine texts of every class of a dataset.

    Args:
        name (str): Name of the text set, e.g. ``'ntu120'``.
        source (str): Where the texts come from (LLM, prompt, author).
        labels (tuple[str]): Class labels in class-index order.
        coarse (tuple[tuple[str]]): Coarse texts (label and synonyms) of
            every class; at least one per class.
        fine (tuple[tuple[str]]): Fine texts (movement descriptions) of every
            class; at least one per class.
        path (str): File the texts were read from; informative only, not part
            of :meth:`digest`. Defaults to ``''``.
    """

    name: str
    source: str
    labels: Tuple[str, ...]
    coarse: Tuple[Tuple[str, ...], ...]
    fine: Tuple[Tuple[str, ...], ...]
    path: str = ''

    def __post_init__(self) -> None:
        sizes = {len(self.labels), len(self.coarse), len(self.fine)}
        if len(sizes) != 1:
            raise ValueError(
                f'class texts {self.name!r}: labels, coarse and fine must '
                f'have one entry per class, got {len(self.labels)}, '
                f'{len(self.coarse)} and {len(self.fine)}')

    @property
    def num_classes(self) -> int:
        """int: Number of classes."""
        return len(self.labels)

    def subset(self, num_classes: int) -> 'ClassTexts':
        """The first ``num_classes`` classes (e.g. NTU-60 from NTU-120).

        Args:
            num_classes (int): Number of leading classes to keep.

        Returns:
            ClassTexts: The texts of classes ``0 .. num_classes - 1``.

        Raises:
            ValueError: If ``num_classes`` is not in ``1 .. self.num_classes``;
                the message names the file and the way out.
        """
        check_int(num_classes, 'num_classes', minimum=1)
        if num_classes > self.num_classes:
            where = f' ({self.path})' if self.path else ''
            raise ValueError(
                f'class texts {self.name!r}{where} have only '
                f'{self.num_classes} classes; cannot take the first '
                f'{num_classes} (num_classes={num_classes}): use a '
                f'class-text file with at least {num_classes} classes')
        if num_classes == self.num_classes:
            return self
        return ClassTexts(
            name=self.name,
            source=self.source,
            labels=self.labels[:num_classes],
            coarse=self.coarse[:num_classes],
            fine=self.fine[:num_classes],
            path=self.path)

    def digest(self) -> str:
        """SHA-256 of the labels, coarse and fine texts (canonical JSON).

        The name, source and path are left out: only what changes the
        embeddings changes the digest.

        Returns:
            str: 64 hexadecimal digits.
        """
        content = dict(
            labels=list(self.labels),
            coarse=[list(texts) for texts in self.coarse],
            fine=[list(texts) for texts in self.fine])
        canonical = json.dumps(
            content, sort_keys=True, ensure_ascii=False,
            separators=(',', ':'))
        return hashlib.sha256(canonical.encode('utf-8')).hexdigest()


def available_texts() -> List[str]:
    """Names of the class-text files shipped with the package.

    Returns:
        list[str]: Sorted names, e.g. ``['kinetics400', 'ntu120']``.
    """
    return sorted(path.stem for path in TEXTS_DIR.glob('*.json'))


def resolve_texts_path(name_or_path: Union[str, Path]) -> Path:
    """Find a class-text file by package name or by path.

    Args:
        name_or_path (str | Path): A name of a file shipped in
            ``cocodiff_mm/texts`` (``'ntu120'``) or a path to a JSON file.

    Returns:
        Path: The file.

    Raises:
        FileNotFoundError: If it is neither; the message lists the names
            available in the package.
    """
    text = str(name_or_path)
    if not text:
        raise ValueError('texts must be a name or a path, got an empty string')
    if '/' not in text and '\\' not in text:
        packaged = TEXTS_DIR / f'{text}.json'
        if packaged.is_file():
            return packaged
    path = Path(text).expanduser()
    if path.is_file():
        return path
    names = ', '.join(available_texts()) or 'none'
    raise FileNotFoundError(
        f'class texts {text!r} not found: it is neither a name of a file in '
        f'{TEXTS_DIR} (available: {names}) nor an existing file path')


def _fail(path: Path, where: str, message: str) -> None:
    raise ValueError(f'{path}: {where}: {message}')


def _check_text_list(path: Path, where: str, field: str, value: Any) -> None:
    if not isinstance(value, list) or not value:
        _fail(path, where,
              f'field {field!r} must be a non-empty list of strings, got '
              f'{type(value).__name__} {value!r:.60}')
    for j, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            _fail(path, where,
                  f'field {field!r}[{j}] must be a non-empty string, got '
                  f'{item!r:.60}')


def load_class_texts(name_or_path: Union[str, Path],
                     num_classes: Optional[int] = None) -> ClassTexts:
    """Load and validate a class-text JSON file.

    The text bank reads its texts with it, and ``tools/`` check a config's
    texts with it before training.

    Args:
        name_or_path (str | Path): A packaged name (``'ntu120'``) or a path;
            see :func:`resolve_texts_path`.
        num_classes (int, optional): Keep the first ``num_classes`` classes
            (:meth:`ClassTexts.subset`); ``None`` keeps all. Defaults to
            ``None``.

    Returns:
        ClassTexts: The texts, in class-index order.

    Raises:
        FileNotFoundError: If the file cannot be found.
        ValueError: If the file is not valid JSON, breaks the schema (the
            message names the file, the class index and label, and the
            field) or has fewer than ``num_classes`` classes.
    """
    path = resolve_texts_path(name_or_path)
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except json.JSONDecodeError as exc:
        raise ValueError(f'{path}: not valid JSON: {exc}') from exc
    if not isinstance(data, dict):
        _fail(path, 'top level',
              f'expected an object with keys name, source, classes, got '
              f'{type(data).__name__}')
    for field in ('name', 'source'):
        if not isinstance(data.get(field), str) or not data[field].strip():
            _fail(path, 'top level',
                  f'field {field!r} must be a non-empty string, got '
                  f'{data.get(field)!r:.60}')
    classes = data.get('classes')
    if not isinstance(classes, list) or not classes:
        _fail(path, 'top level',
              "field 'classes' must be a non-empty list of "
              '{label, coarse, fine} objects')

    labels, coarse, fine = [], [], []
    first_index = {}
    for index, entry in enumerate(classes):
        where = f'classes[{index}]'
        if not isinstance(entry, dict):
            _fail(path, where,
                  f'expected an object with keys label, coarse, fine, got '
                  f'{type(entry).__name__}')
        label = entry.get('label')
        if not isinstance(label, str) or not label.strip():
            _fail(path, where,
                  f"field 'label' must be a non-empty string, got "
                  f'{label!r:.60}')
        where = f'classes[{index}] (label {label!r})'
        if label in first_index:
            _fail(path, where,
                  f"duplicate label, already used by classes"
                  f'[{first_index[label]}]')
        first_index[label] = index
        for field in TEXT_FIELDS:
            _check_text_list(path, where, field, entry.get(field))
        labels.append(label)
        coarse.append(tuple(entry['coarse']))
        fine.append(tuple(entry['fine']))
    texts = ClassTexts(
        name=data['name'],
        source=data['source'],
        labels=tuple(labels),
        coarse=tuple(coarse),
        fine=tuple(fine),
        path=str(path))
    return texts if num_classes is None else texts.subset(num_classes)
