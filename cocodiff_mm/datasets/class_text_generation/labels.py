"""The class labels to generate texts for, from a text or class-text file."""
from pathlib import Path
from typing import List, Sequence, Tuple, Union

from ...models.text.class_texts import load_class_texts


def read_labels_file(path: Union[str, Path]) -> List[str]:
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


def read_labels_json(path: Union[str, Path]) -> Tuple[List[str], str]:
    """Labels and name of an existing class-text file.

    The file is read with :func:`~cocodiff_mm.models.text.class_texts.
    load_class_texts`, so it must be a class-text file training can load
    (a packaged name such as ``'ntu120'`` works too).

    Args:
        path (str | Path): A file in the class-text schema.

    Returns:
        tuple[list[str], str]: The labels (stripped of surrounding white
        space) in class-index order and the file's name field.

    Raises:
        FileNotFoundError: If the file cannot be found.
        ValueError: If ``load_class_texts`` rejects the file, or two labels
            are the same once stripped.
    """
    texts = load_class_texts(path)
    labels = [label.strip() for label in texts.labels]
    _check_labels(path, labels)
    return labels, texts.name


def _check_labels(path: Union[str, Path], labels: Sequence[str]) -> None:
    """Raise ``ValueError`` naming ``path`` if no label or one twice."""
    if not labels:
        raise ValueError(f'{path}: no class label found')
    seen = set()
    for label in labels:
        if label in seen:
            raise ValueError(f'{path}: label {label!r} appears twice')
        seen.add(label)
