"""Per-class coarse and fine texts, loaded from the package's JSON files.

A class-text file (``cocodiff_mm/texts/<name>.json``) holds, for every class
in class-index order, the label, its *coarse* texts (the label and its
synonyms) and its *fine* texts (detailed descriptions of the body movement)::

    {"name": "ntu120", "source": "...",
     "classes": [{"label": "drink water",
                  "coarse": ["drink water", "drinking"],
                  "fine": ["A person lifts a cup to the mouth ..."]}, ...]}

Labels, and each class's coarse and fine texts, must differ between classes
(compared after trimming whitespace, texts in any order). A head takes all of
a file's classes, or the ones its config names (``text_bank.classes``): a
file with more classes than the head is refused otherwise, so a config that
forgets its texts does not train on another dataset's first classes.
"""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

from ...utils.checks import check_int, is_int
from ...utils.config_keys import ConfigError

#: Folder of the class-text files shipped with the package.
TEXTS_DIR = Path(__file__).resolve().parents[2] / 'texts'

#: Text fields of one class entry, in the order they are validated.
TEXT_FIELDS = ('coarse', 'fine')

#: What ``text_bank.classes`` takes: the first ``n`` classes or listed ones.
ClassChoice = Union[None, int, Sequence[int]]


def check_class_choice(classes: ClassChoice
                       ) -> Union[None, int, Tuple[int, ...]]:
    """Check the form of ``text_bank.classes`` (the file is not read).

    Args:
        classes (int | Sequence[int] | None): ``n``: the first ``n`` classes
            of the file; a list: these class indices of the file, in this
            order; ``None``: all of them.

    Returns:
        int | tuple[int] | None: ``classes``, a list made a tuple.

    Raises:
        ConfigError: For any other value.
    """
    if classes is None or (is_int(classes) and classes >= 1):
        return classes
    if not isinstance(classes, (list, tuple)) or not classes:
        raise ConfigError(
            'text_bank.classes must be None, an int >= 1 or a list of class '
            f'indices, got {classes!r:.60}')
    for index, value in enumerate(classes):
        check_int(value, f'text_bank.classes[{index}]', minimum=0)
    return tuple(classes)


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

    def _describe(self) -> str:
        where = f' ({self.path})' if self.path else ''
        return f'class texts {self.name!r}{where}'

    def subset(self, num_classes: int,
               key: str = 'num_classes') -> 'ClassTexts':
        """The first ``num_classes`` classes (e.g. NTU-60 from NTU-120).

        Args:
            num_classes (int): Number of leading classes to keep.
            key (str): The option that asked for them, for the message.
                Defaults to ``'num_classes'``.

        Returns:
            ClassTexts: The texts of classes ``0 .. num_classes - 1``.

        Raises:
            ValueError: If ``num_classes`` is not in ``1 .. self.num_classes``;
                the message names the file and the way out.
        """
        check_int(num_classes, key, minimum=1)
        if num_classes > self.num_classes:
            raise ValueError(
                f'{self._describe()} have only {self.num_classes} classes; '
                f'cannot take the first {num_classes} ({key}='
                f'{num_classes}): use a class-text file with at least '
                f'{num_classes} classes')
        return self._take(range(num_classes))

    def _take(self, indices: Sequence[int]) -> 'ClassTexts':
        """The classes ``indices`` (valid), in that order."""
        indices = tuple(indices)
        if indices == tuple(range(self.num_classes)):
            return self
        return ClassTexts(
            name=self.name,
            source=self.source,
            labels=tuple(self.labels[i] for i in indices),
            coarse=tuple(self.coarse[i] for i in indices),
            fine=tuple(self.fine[i] for i in indices),
            path=self.path)

    def select(self, num_classes: Optional[int] = None,
               classes: ClassChoice = None) -> 'ClassTexts':
        """The texts of a head's classes: the one rule for every reader.

        Args:
            num_classes (int, optional): The head's class count; ``None``
                takes what ``classes`` says. Defaults to ``None``.
            classes (int | Sequence[int], optional): ``text_bank.classes``
                (:func:`check_class_choice`); ``None`` takes every class,
                and the file must then have exactly ``num_classes``.
                Defaults to ``None``.

        Returns:
            ClassTexts: One entry per class of the head, in its order.

        Raises:
            ValueError: If the file has another class count than the head
                and ``classes`` does not say which to take, or ``classes``
                does not fit the file or the head; the message names the
                file, both counts and the way out.
        """
        classes = check_class_choice(classes)
        check_int(num_classes, 'num_classes', minimum=1, allow_none=True)
        total = self.num_classes
        if classes is None:
            if num_classes is None or num_classes == total:
                return self
            if num_classes > total:
                raise ValueError(
                    f'{self._describe()} have only {total} classes; cannot '
                    f'take the first {num_classes} (num_classes='
                    f'{num_classes}): use a class-text file with '
                    f'{num_classes} classes')
            raise ValueError(
                f'{self._describe()} have {total} classes but the head has '
                f'{num_classes} (num_classes={num_classes}): use a '
                f'class-text file with {num_classes} classes, or say which '
                f'{num_classes} of the {total} the head takes: '
                f'text_bank.classes={num_classes} (the first {num_classes}) '
                f'or a list of {num_classes} class indices')
        if is_int(classes):
            taken = self.subset(classes, key='text_bank.classes')
        else:
            seen = {}
            for index, value in enumerate(classes):
                if value >= total:
                    raise ValueError(
                        f'text_bank.classes[{index}]={value} is not a class '
                        f'index of {self._describe()}: they have {total} '
                        f'classes (0..{total - 1})')
                if value in seen:
                    raise ValueError(
                        f'text_bank.classes[{index}]={value} repeats '
                        f'classes[{seen[value]}]: each class is taken once')
                seen[value] = index
            taken = self._take(classes)
        if num_classes is not None and taken.num_classes != num_classes:
            raise ValueError(
                f'text_bank.classes={_short(classes)} takes '
                f'{taken.num_classes} classes but the head has {num_classes} '
                f'(num_classes={num_classes})')
        return taken

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


def _short(value: Any) -> str:
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 40 else text[:37] + '...'


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
                     num_classes: Optional[int] = None,
                     classes: ClassChoice = None) -> ClassTexts:
    """Load and validate a class-text JSON file.

    The text bank reads its texts with it, and ``tools/`` check a config's
    texts with it before training.

    Args:
        name_or_path (str | Path): A packaged name (``'ntu120'``) or a path;
            see :func:`resolve_texts_path`.
        num_classes (int, optional): The head's class count
            (:meth:`ClassTexts.select`); ``None`` takes what ``classes``
            says. Defaults to ``None``.
        classes (int | Sequence[int], optional): Which classes of the file
            the head takes: the first ``n``, or these indices; ``None``:
            all, and the file must have ``num_classes``. Defaults to
            ``None``.

    Returns:
        ClassTexts: The texts, in the head's class order.

    Raises:
        FileNotFoundError: If the file cannot be found.
        ValueError: If the file is not valid JSON, breaks the schema (the
            message names the file, the class index and label, and the
            field), gives two classes the same label or texts (naming
            both), or does not fit ``num_classes`` and ``classes``.
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
    entries = data.get('classes')
    if not isinstance(entries, list) or not entries:
        _fail(path, 'top level',
              "field 'classes' must be a non-empty list of "
              '{label, coarse, fine} objects')

    labels, coarse, fine = [], [], []
    # Trimmed label, and each field's trimmed texts in any order -> class.
    first_index = {field: {} for field in ('label', *TEXT_FIELDS)}
    for index, entry in enumerate(entries):
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
        other = first_index['label'].setdefault(label.strip(), index)
        if other != index:
            _fail(path, where,
                  f'duplicate label, already used by classes[{other}] '
                  f'(label {labels[other]!r})')
        for field in TEXT_FIELDS:
            _check_text_list(path, where, field, entry.get(field))
            key = tuple(sorted(text.strip() for text in entry[field]))
            other = first_index[field].setdefault(key, index)
            if other != index:
                _fail(path, where,
                      f'the same {field} texts as classes[{other}] (label '
                      f'{labels[other]!r}): the texts must tell the classes '
                      'apart')
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
    return texts.select(num_classes, classes)
