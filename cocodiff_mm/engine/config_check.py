"""Config keys checked like data: an unknown key stops the job at once.

mmengine passes a loop's or a module's config dict on as keyword arguments,
so a typo becomes a ``TypeError`` deep in a build, or, inside a nested
options dict such as ``train_cfg.stage1``, is silently ignored (``epoch=1``
for ``epochs`` ran the default 8 epochs). :func:`check_config_keys` runs in
``tools/train.py`` and ``tools/test.py`` before the Runner creates a work dir
and names the key, the allowed keys and the closest match.
"""
from typing import Iterable, Mapping, Optional

from mmengine.config import Config

from ..utils.config_keys import (ConfigError, ConfigKeyError,
                                 accepted_arguments, refuse_unknown_keys)
from .stage_plan import STAGE_KEYS

#: The ``train_cfg`` keys :meth:`TwoStageLoop.plan` takes besides ``stage2``.
PLAN_KEYS = ('stage1', 'stage0', 'pretrained', 'stage1_source')


def _registered(registry, type_name):
    """The class registered as ``type_name`` (or the class itself), else
    None."""
    if isinstance(type_name, str):
        return registry.get(type_name)
    return type_name if isinstance(type_name, type) else None


def _check_registered(options: Optional[Mapping], registry,
                      field: str, default_type: Optional[str] = None,
                      fixed: Iterable[str] = ()) -> None:
    """Check a ``dict(type=..., ...)`` against the registered class."""
    if not isinstance(options, Mapping):
        return
    cls = _registered(registry, options.get('type', default_type))
    if cls is None:
        return  # an unknown type is the registry's error, with its message
    allowed = accepted_arguments(cls)
    if allowed is not None:
        refuse_unknown_keys(options, allowed | {'type', *fixed}, field)


def check_config_keys(cfg: Config) -> None:
    """Refuse unknown keys in the parts of ``cfg`` CoCoDiff reads; the
    message starts with the config file (see :func:`find_unknown_keys`)."""
    try:
        find_unknown_keys(cfg)
    except ConfigKeyError as error:
        raise ConfigKeyError(f'{cfg.filename}: {error}') from None


def find_unknown_keys(cfg: Config) -> None:
    """Refuse unknown keys in the parts of ``cfg`` CoCoDiff reads.

    Checked: ``train_cfg`` of a ``TwoStageLoop`` and its
    ``stage{0,1,2}``; ``model.cls_head`` of a ``DiffusionAugmentedHead``
    with its ``generation``, ``text_bank``, ``diffusion``, ``denoiser`` and
    ``loss_text``; and registered custom hooks.

    Raises:
        ConfigKeyError: For the first unknown key.
    """
    from mmaction.registry import HOOKS, LOOPS, MODELS
    from mmengine.registry import init_default_scope

    from ..models.heads import is_cocodiff_head
    from ..models.heads.diffusion_augmented_head import GENERATION_DEFAULTS
    from ..models.text.text_bank import TextEmbeddingBank
    from .two_stage_loop import TwoStageLoop

    init_default_scope(cfg.get('default_scope', 'mmaction'))
    train_cfg = cfg.get('train_cfg') or {}
    if _registered(LOOPS, train_cfg.get('type')) is TwoStageLoop:
        refuse_unknown_keys(
            train_cfg,
            accepted_arguments(TwoStageLoop, ('self', 'runner',
                                              'dataloader')) | {'type'},
            'train_cfg')
        for index in range(3):
            refuse_unknown_keys(train_cfg.get(f'stage{index}'),
                                STAGE_KEYS[index], f'train_cfg.stage{index}')
    head = (cfg.get('model') or {}).get('cls_head') or {}
    if is_cocodiff_head(head.get('type')):
        field = 'model.cls_head'
        _check_registered(head, MODELS, field)
        refuse_unknown_keys(head.get('generation'), GENERATION_DEFAULTS,
                            f'{field}.generation')
        allowed_bank = accepted_arguments(TextEmbeddingBank)
        if allowed_bank is not None:
            refuse_unknown_keys(head.get('text_bank'), allowed_bank,
                                f'{field}.text_bank')
        _check_registered(head.get('diffusion'), MODELS,
                          f'{field}.diffusion', 'GaussianDiffusion')
        # The head fills in the denoiser's sizes itself.
        _check_registered(head.get('denoiser'), MODELS, f'{field}.denoiser',
                          'ConditionalUNet1D')
        _check_registered(head.get('loss_text'), MODELS,
                          f'{field}.loss_text', 'TextGuidanceLoss')
    for index, hook in enumerate(cfg.get('custom_hooks') or []):
        _check_registered(hook, HOOKS, f'custom_hooks[{index}]',
                          fixed=('priority', ))


def check_class_texts(cfg: Config) -> None:
    """Read the head's class texts as its text bank will.

    The text bank is built when training starts (after the Runner made a
    work dir); a missing or malformed text file, or one with fewer classes
    than the head, is caught here first, by the loader the bank uses
    (:func:`~cocodiff_mm.models.text.class_texts.load_class_texts`). Texts
    are only read, not encoded.

    Raises:
        ConfigError: ``<config>: model.cls_head.text_bank.texts: ...``.
    """
    from ..models.heads import is_cocodiff_head
    from ..models.text.class_texts import load_class_texts

    head = (cfg.get('model') or {}).get('cls_head') or {}
    if not is_cocodiff_head(head.get('type')) \
            or head.get('text_mode', 'both') == 'none':
        return
    bank = head.get('text_bank') or {}
    texts = bank.get('texts')
    # The head gives its bank its own num_classes (and refuses another).
    num_classes = bank.get('num_classes', head.get('num_classes'))
    try:
        load_class_texts(texts, num_classes)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise ConfigError(f'{cfg.filename}: model.cls_head.text_bank.texts='
                          f'{texts!r}: {error}') from None


def check_stage_plan(cfg: Config) -> None:
    """Plan a ``TwoStageLoop``'s stages as the loop will, before training.

    Calls the loop's own validator (:meth:`TwoStageLoop.plan`) with the
    config's ``train_cfg`` and hook classes: stage epochs, ``stage1_source``
    and ``stage1.faithfulness_target`` (a fraction, measured by a
    ``GenerationDiagnosticsHook``), before the Runner makes a work dir.

    Raises:
        ConfigError: ``<config>: train_cfg...``.
    """
    from mmaction.registry import HOOKS, LOOPS
    from mmengine.registry import init_default_scope

    from .two_stage_loop import TwoStageLoop

    init_default_scope(cfg.get('default_scope', 'mmaction'))
    train_cfg = cfg.get('train_cfg') or {}
    if _registered(LOOPS, train_cfg.get('type')) is not TwoStageLoop:
        return
    hooks = [*(cfg.get('default_hooks') or {}).values(),
             *(cfg.get('custom_hooks') or [])]
    classes = [_registered(HOOKS, hook.get('type')) for hook in hooks
               if isinstance(hook, Mapping)]
    options = {key: train_cfg[key] for key in PLAN_KEYS if key in train_cfg}
    try:
        TwoStageLoop.plan(train_cfg.get('stage2'),
                          hooks=[cls for cls in classes if cls is not None],
                          **options)
    except ConfigError as error:
        raise ConfigError(f'{cfg.filename}: {error}') from None
