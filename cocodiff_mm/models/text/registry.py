"""The registry of text encoders.

The built-in encoders (``'clip'``, ``'minilm'``, ``'random'``) are registered
in :mod:`cocodiff_mm.models.text.encoders`. Add one from a config by putting
a module that registers a :class:`~cocodiff_mm.models.text.encoders.
TextEncoder` subclass in ``custom_imports``::

    # my_project/my_encoder.py
    from cocodiff_mm.models.text import TEXT_ENCODERS, TextEncoder

    @TEXT_ENCODERS.register_module(name='my_encoder')
    class MyEncoder(TextEncoder):
        ...

    # config
    custom_imports = dict(imports=['cocodiff_mm', 'my_project.my_encoder'],
                          allow_failed_imports=False)
    model = dict(cls_head=dict(text_bank=dict(encoder='my_encoder')))
"""
from typing import Any, Mapping, Type

from mmengine.registry import Registry


def registered_name(registry: Registry, name: str) -> str:
    """The name under which ``name`` is registered (exact, else lower-case).

    Args:
        registry (Registry): :data:`TEXT_ENCODERS`.
        name (str): Encoder name, e.g. ``'minilm'`` or ``'MiniLM'``.

    Returns:
        str: The registered name.

    Raises:
        ValueError: For an unknown name; the message lists the registered
            names and says how to add one.
    """
    registry.import_from_location()  # registers the built-in encoders
    # Not Registry.get: it also tries the name as an import path ('json' is
    # a module), and only registered names are encoders.
    names = registry.module_dict
    for key in (name, str(name).lower()):
        if key in names:
            return key
    raise ValueError(
        f'unknown text encoder {name!r}; registered: '
        f'{", ".join(sorted(names))}. Set model.cls_head.text_bank.encoder '
        'to one of them, or register your own TextEncoder subclass with '
        '@TEXT_ENCODERS.register_module() in a module listed in the '
        "config's custom_imports")


def build_encoder_from_cfg(cfg: Mapping[str, Any],
                           registry: Registry) -> Any:
    """``build_func`` of :data:`TEXT_ENCODERS`: look the type up, construct.

    Args:
        cfg (Mapping): ``type`` (a registered name or a class) and the
            encoder's arguments.
        registry (Registry): :data:`TEXT_ENCODERS`.

    Returns:
        TextEncoder: The encoder (weights not loaded).
    """
    # mmengine's build_from_cfg switches to the runner's default scope
    # ('mmaction'), which this registry is not part of, and logs a warning on
    # every build; the lookup here stays in this registry.
    args = dict(cfg)
    if 'type' not in args:
        raise KeyError(f'a text encoder config needs a "type", got {cfg}')
    encoder_type = args.pop('type')
    if isinstance(encoder_type, str):
        encoder_type = registry.module_dict[registered_name(
            registry, encoder_type)]
    return encoder_type(**args)


#: Text encoders by name; :func:`~cocodiff_mm.models.text.encoders.
#: build_text_encoder` and :class:`~cocodiff_mm.models.text.text_bank.
#: TextEmbeddingBank` build through it.
TEXT_ENCODERS = Registry(
    'text encoder',
    build_func=build_encoder_from_cfg,
    scope='cocodiff_mm',
    locations=['cocodiff_mm.models.text.encoders'])
