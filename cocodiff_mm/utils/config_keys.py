"""Config errors, and refusing keys that nothing reads (closest match)."""
import difflib
import inspect
from typing import Iterable, Mapping, Optional


class ConfigError(ValueError):
    """A config value that cannot work, found before training starts.

    ``tools/train.py`` and ``tools/test.py`` print it as one line and exit 2
    (the traceback only with ``--debug``), as they do for bad data.
    """


class ConfigKeyError(ConfigError):
    """A config dict with a key nothing reads (names key and field)."""


def refuse_unknown_keys(options: Optional[Mapping], allowed: Iterable[str],
                        field: str) -> None:
    """Raise for the first key of ``options`` that is not ``allowed``.

    Args:
        options (Mapping, optional): The dict from the config.
        allowed (Iterable[str]): The keys its reader takes.
        field (str): Where ``options`` sits in the config, for the message.

    Raises:
        ConfigKeyError: ``'<field>.<key>' is not an option; allowed: [...]``
            with the closest allowed key when there is one.
    """
    allowed = sorted(set(allowed))
    for key in options or {}:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f' (did you mean {close[0]!r}?)' if close else ''
            raise ConfigKeyError(f'{field}.{key} is not an option{hint}; '
                                 f'allowed: {allowed}')


def accepted_arguments(cls: type,
                       skip: Iterable[str] = ('self', )) -> Optional[set]:
    """Keyword arguments ``cls`` takes, through its ``**kwargs`` parents.

    Returns:
        set | None: The names, or None when some class in the chain takes
        ``**kwargs`` that end nowhere we can see (no check is possible).
    """
    names, skip = set(), set(skip)
    for klass in cls.__mro__:
        if klass is object or '__init__' not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in parameters
                  if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            return names - skip
    return None
