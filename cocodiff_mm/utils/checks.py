"""The value checks every constructor and the pre-run check share.

Each raises :class:`~cocodiff_mm.utils.config_keys.ConfigError` (a
``ValueError``) whose message starts with the dotted config key, so the
tools print it as one line whatever layer found it.
"""
from typing import Any, Iterable, Optional

from .config_keys import ConfigError


def is_int(value: Any) -> bool:
    """Whether ``value`` is an ``int`` and not a ``bool`` (which is one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(value: Any, key: str, minimum: int = 0,
              maximum: Optional[int] = None, allow_none: bool = False) -> Any:
    """Refuse anything but an int in ``[minimum, maximum]``.

    Args:
        value: The value to check.
        key (str): Its dotted config key, for the message.
        minimum (int): Smallest allowed value. Defaults to ``0``.
        maximum (int, optional): Largest allowed value. Defaults to ``None``
            (no upper bound).
        allow_none (bool): Whether ``None`` passes. Defaults to ``False``.

    Returns:
        The value, unchanged.

    Raises:
        ConfigError: ``<key> must be an int >= <minimum>..., got <value>``.
    """
    if value is None and allow_none:
        return value
    if is_int(value) and value >= minimum and (maximum is None
                                               or value <= maximum):
        return value
    bound = (f'in [{minimum}, {maximum}]' if maximum is not None else
             f'>= {minimum}')
    or_none = 'None or ' if allow_none else ''
    raise ConfigError(f'{key} must be {or_none}an int {bound}, got '
                      f'{value!r}')


def check_choice(value: Any, choices: Iterable, key: str) -> Any:
    """Refuse a value that is not one of ``choices``.

    Returns:
        The value, unchanged.

    Raises:
        ConfigError: ``<key> must be one of (...), got <value>``.
    """
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f'{key} must be one of {choices}, got {value!r}')
    return value


def check_number(value: Any, key: str, minimum: Optional[float] = None,
                 maximum: Optional[float] = None) -> Any:
    """Refuse anything but a real number (int or float, not bool) in
    ``[minimum, maximum]``.

    Returns:
        The value, unchanged.

    Raises:
        ConfigError: ``<key> must be a number >= <minimum>..., got <value>``.
    """
    if (is_int(value) or isinstance(value, float)) and value == value and (
            minimum is None or value >= minimum) and (
                maximum is None or value <= maximum):
        return value
    bounds = [f'>= {minimum}' if minimum is not None else '',
              f'<= {maximum}' if maximum is not None else '']
    bound = ' and '.join(b for b in bounds if b)
    raise ConfigError(f'{key} must be a number{" " + bound if bound else ""}'
                      f', got {value!r}')
