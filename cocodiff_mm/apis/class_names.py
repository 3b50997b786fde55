"""Class names for a config's predictions.

In order of preference:

1. a file the user names (one class name per line, line order = index);
2. the class texts of a CoCoDiff config (``model.cls_head.text_bank.texts``):
   the labels of the classes its head takes (``text_bank.classes``);
3. the one known list with exactly ``num_classes`` names: the official
   lists of :mod:`cocodiff_mm.datasets.label_names` (NTU RGB+D 60/120,
   UTD-MHAD) and the labels of the packaged class texts
   (``cocodiff_mm/texts/*.json``: Kinetics-400, the demo);
4. otherwise ``class 0``, ``class 1``, ...

Every choice comes with a short description of where the names came from,
which ``tools/infer.py`` prints.
"""
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from mmengine.config import Config

from ..utils.checks import is_int
from ..utils.config_keys import ConfigError

Names = Tuple[str, ...]


def _known_lists() -> List[Tuple[Names, str]]:
    """Every list of class names the package ships, with its source."""
    from ..datasets import label_names
    from ..models.text.class_texts import available_texts, load_class_texts
    found = [(label_names.NTU60_CLASSES, 'NTU RGB+D 60 class list'),
             (label_names.NTU120_CLASSES, 'NTU RGB+D 120 class list'),
             (label_names.UTD_MHAD_CLASSES, 'UTD-MHAD class list')]
    for name in available_texts():
        texts = load_class_texts(name)
        found.append((texts.labels, f'class texts {name!r}'))
    return found


def read_name_file(path: Union[str, Path]) -> Names:
    """Class names of a text file, one per line in class order.

    Raises:
        ConfigError: If the file is missing, empty, or has an empty or
            repeated name.
    """
    from ..datasets.kinetics_json import read_label_names
    try:
        index = read_label_names(path)
    except (OSError, ValueError) as error:
        raise ConfigError(f'--label-names: {error}') from None
    return tuple(sorted(index, key=index.__getitem__))


def _texts_of_head(head: Dict) -> Optional[str]:
    """The class-text set a CoCoDiff head is configured with, if any."""
    bank = head.get('text_bank') if isinstance(head, dict) else None
    texts = bank.get('texts') if isinstance(bank, dict) else None
    return texts if isinstance(texts, str) and texts else None


def choose_class_names(cfg: Config,
                       name_file: Optional[Union[str, Path]] = None
                       ) -> Tuple[Names, str]:
    """Class names of ``cfg``'s classifier and where they came from.

    Args:
        cfg (Config): The config; ``model.cls_head.num_classes`` is the
            number of names needed.
        name_file (str | Path, optional): A file of names, one per line
            (``--label-names``); it wins over everything else. Defaults to
            ``None``.

    Returns:
        tuple: The names (``num_classes`` of them) and a description of
        their source.

    Raises:
        ConfigError: If ``name_file`` cannot be read or has another number
            of names than the config's classes, or the config's class texts
            cannot be loaded.
    """
    head = cfg.model.get('cls_head', {})
    num_classes = head.get('num_classes')
    if not is_int(num_classes) or num_classes < 1:
        raise ConfigError(f'model.cls_head.num_classes is {num_classes!r} '
                          '(expected a positive int)')
    if name_file is not None:
        names = read_name_file(name_file)
        if len(names) != num_classes:
            raise ConfigError(
                f'--label-names {name_file}: {len(names)} names, but the '
                f'config has {num_classes} classes '
                '(model.cls_head.num_classes)')
        return names, str(name_file)

    texts = _texts_of_head(head)
    if texts is not None:
        from ..models.text.class_texts import load_class_texts
        try:
            labels = load_class_texts(
                texts, num_classes, head['text_bank'].get('classes')).labels
        except (OSError, ValueError) as error:
            raise ConfigError(f'model.cls_head.text_bank.texts: {error}'
                              ) from None
        return labels, f'class texts {texts!r} of the config'

    matches: Dict[Names, str] = {}
    for names, source in _known_lists():
        if len(names) == num_classes:
            matches.setdefault(names, source)
    if len(matches) == 1:
        (names, source), = matches.items()
        return names, f'{source}, matched by its {num_classes} classes'
    return (tuple(f'class {i}' for i in range(num_classes)),
            f'none known for {num_classes} classes; use --label-names FILE')
