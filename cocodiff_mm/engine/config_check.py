"""Config keys checked like data: an unknown key stops the job at once.

mmengine passes a loop's or a module's config dict on as keyword arguments,
so a typo becomes a ``TypeError`` deep in a build, or, inside a nested
options dict such as ``train_cfg.stage1``, is silently ignored (``epoch=1``
for ``epochs`` ran the default 8 epochs). :func:`check_config_keys` runs in
``tools/train.py`` and ``tools/test.py`` before the Runner creates a work dir
and names the key, the allowed keys and the closest match.
"""
import contextlib
import copy
import logging
from typing import (Any, Callable, Iterable, Iterator, List, Mapping,
                    Optional, Sequence, Tuple)

from mmengine.config import Config

from ..utils.checks import check_int
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
    work dir); a missing or malformed text file, or one whose classes do
    not fit the head's (``text_bank.classes``), is caught here first, by the
    loader the bank uses
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
        load_class_texts(texts, num_classes, bank.get('classes'))
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


# --------------------------------------------------------------------------
# Building what the Runner builds, before it makes a work dir
# --------------------------------------------------------------------------
#: What a constructor raises for a value it refuses (a ``ConfigError`` is a
#: ``ValueError``).
REFUSALS = (ValueError, TypeError, KeyError, AssertionError)

#: The evaluator each dataloader is scored by.
EVALUATORS = {'val_dataloader': 'val_evaluator',
              'test_dataloader': 'test_evaluator'}


def _items(node) -> Iterable:
    if isinstance(node, Mapping):
        return ((f'.{key}', value) for key, value in node.items())
    if isinstance(node, (list, tuple)):
        return ((f'[{index}]', value) for index, value in enumerate(node))
    return ()


def _find_part(node, built: Mapping,
               key: str) -> Optional[Tuple[str, Mapping]]:
    """The dotted key of the dict in ``node`` that ``built`` was made from:
    the same ``type``, and every item of it in ``built`` (a builder may add
    items, e.g. the sizes the head gives its denoiser)."""
    if isinstance(node, Mapping) and 'type' in node and \
            node.get('type') == built.get('type') and all(
                name in built and built[name] == value
                for name, value in node.items()):
        return key, node
    for suffix, child in _items(node):
        found = _find_part(child, built, key + suffix)
        if found is not None:
            return found
    return None


def _failing_part(error: BaseException, root, key: str,
                  cls: Optional[type]) -> Tuple[str, Any, Optional[type]]:
    """Where under ``root`` (the config at ``key``) a build failed.

    The registry builds the error went through (mmengine's
    ``build_from_cfg`` frames in its traceback) are tried from the
    innermost out; the first whose config is found in ``root`` names the
    part. Otherwise ``root`` itself.

    Returns:
        tuple: The part's dotted key, its config and its class (or None).
    """
    from mmengine.registry.build_functions import build_from_cfg
    builds = []
    trace = error.__traceback__
    while trace is not None:
        frame = trace.tb_frame
        if frame.f_code is build_from_cfg.__code__:
            builds.append((frame.f_locals.get('cfg'),
                           frame.f_locals.get('obj_cls')))
        trace = trace.tb_next
    for built, built_cls in reversed(builds):
        if isinstance(built, Mapping):
            found = _find_part(root, built, key)
            if found is not None:
                return found[0], found[1], built_cls
    return key, root, cls


def _refusal(error: BaseException, root, key: str,
             cls: Optional[type] = None) -> ConfigError:
    """A constructor's refusal as one ConfigError line that starts with the
    dotted key of the part that refused (see :func:`_failing_part`).

    A ``TypeError`` for an argument the class does not take becomes
    :func:`refuse_unknown_keys`'s message (the allowed keys and the
    closest one).
    """
    part_key, part, part_cls = _failing_part(error, root, key, cls)
    if isinstance(error, TypeError) and isinstance(part, Mapping) and \
            isinstance(part_cls, type):
        allowed = accepted_arguments(part_cls)
        if allowed is not None:
            try:
                refuse_unknown_keys({k: v for k, v in part.items()
                                     if k != '_scope_'},
                                    allowed | {'type'}, part_key)
            except ConfigKeyError as unknown:
                return unknown
    message = error.args[0] if isinstance(error, KeyError) and error.args \
        else error
    message = ' '.join(str(message).split()) or type(error).__name__
    first = message.split(' ', 1)[0].rstrip(':,')
    if first == key or first.startswith((f'{key}.', f'{key}[')):
        return ConfigError(message)
    name = first.split('.')[0].split('[')[0]
    if isinstance(part, Mapping) and (name in part or (
            isinstance(part_cls, type)
            and name in (accepted_arguments(part_cls) or ()))):
        return ConfigError(f'{part_key}.{message}')
    return ConfigError(f'{part_key}: {message}')


def _build(key: str, root, build: Callable, cls: Optional[type] = None):
    """``build()``, its refusal raised as a :func:`_refusal`."""
    try:
        return build()
    except REFUSALS as error:
        raise _refusal(error, root, key, cls) from error


def build_model(cfg: Config):
    """Build ``cfg.model`` on the CPU through the registry, as the Runner
    will: the constructors are the validators (a text bank is not encoded
    at build).

    Raises:
        ConfigError: ``model...: <the constructor's message>``.
    """
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.get('default_scope', 'mmaction'))
    model_cfg = cfg.model
    return _build('model', model_cfg,
                  lambda: MODELS.build(copy.deepcopy(model_cfg)))


def build_optim_wrapper(cfg: Config, model):
    """Build ``cfg.optim_wrapper`` over ``model``'s parameters, as
    ``Runner.build_optim_wrapper`` does (one wrapper, or a dict of them).

    Raises:
        ConfigError: ``optim_wrapper...: <the constructor's message>``.
    """
    from mmengine.optim import OptimWrapperDict
    from mmengine.optim import build_optim_wrapper as build

    options = cfg.optim_wrapper
    if 'constructor' in options or options.get('optimizer') is not None:
        return _build('optim_wrapper', options,
                      lambda: build(model, copy.deepcopy(options)))
    return OptimWrapperDict(**{
        name: _build(f'optim_wrapper.{name}', part,
                     lambda part=part: build(model, copy.deepcopy(part)))
        for name, part in options.items()})


def _scheduler_sources(cfg: Config
                       ) -> List[Tuple[str, Sequence, Sequence]]:
    """``(key, schedulers, as built)``: the ``param_scheduler`` lists the
    train loop uses, and the configs it builds from them (a
    ``TwoStageLoop`` shifts each stage's to the stage's epochs)."""
    from mmaction.registry import LOOPS

    from .stage_plan import shift_schedulers
    from .two_stage_loop import TwoStageLoop

    train_cfg = cfg.get('train_cfg') or {}
    default = cfg.get('param_scheduler') or []
    if isinstance(default, Mapping):
        default = [default]
    if _registered(LOOPS, train_cfg.get('type')) is not TwoStageLoop:
        return [('param_scheduler', default, default)]
    options = {name: train_cfg[name] for name in PLAN_KEYS
               if name in train_cfg}
    stages = TwoStageLoop.plan(train_cfg.get('stage2'),
                               default_scheduler=default, **options)
    sources = []
    for stage in stages:
        field = f'train_cfg.stage{stage.index}'
        own = 'param_scheduler' in (train_cfg.get(f'stage{stage.index}')
                                    or {})
        key = f'{field}.param_scheduler' if own else 'param_scheduler'
        shifted = _build(key, stage.param_scheduler,
                         lambda: shift_schedulers([stage]))
        sources.append((key, stage.param_scheduler, shifted))
    return sources


def check_param_schedulers(cfg: Config, optim_wrapper) -> None:
    """Build every ``param_scheduler`` the train loop uses on the
    optimizer (each stage's, for a ``TwoStageLoop``), as the Runner will.

    Raises:
        ConfigError: ``param_scheduler[i]...`` or
            ``train_cfg.stageN.param_scheduler[i]...``.
    """
    from mmengine.optim import OptimWrapperDict
    from mmengine.registry import PARAM_SCHEDULERS

    if isinstance(optim_wrapper, OptimWrapperDict):
        optim_wrapper = next(iter(optim_wrapper.optim_wrappers.values()))
    for key, schedulers, built in _scheduler_sources(cfg):
        for index, (given, scheduler) in enumerate(zip(schedulers, built)):
            if not isinstance(scheduler, Mapping):
                continue
            part = f'{key}[{index}]'
            scheduler = copy.deepcopy(dict(scheduler))
            cls = _registered(PARAM_SCHEDULERS, scheduler.get('type'))
            # One iteration per epoch: a stand-in for the loader's length.
            _build(part, given,
                   lambda s=scheduler: PARAM_SCHEDULERS.build(
                       s, default_args=dict(optimizer=optim_wrapper,
                                            epoch_length=1)), cls)


def check_dataloader(cfg: Config, name: str) -> None:
    """Check a dataloader's ``batch_size`` (>= 1) and ``num_workers``
    (>= 0), and build its datasets' pipelines (not the datasets: they read
    the data).

    Raises:
        ConfigError: ``<name>.batch_size ...`` and the like.
    """
    from mmaction.registry import TRANSFORMS

    loader = cfg.get(name)
    if not isinstance(loader, Mapping):
        return
    if 'batch_size' in loader:
        check_int(loader['batch_size'], f'{name}.batch_size', minimum=1)
    if 'num_workers' in loader:
        check_int(loader['num_workers'], f'{name}.num_workers', minimum=0)
    datasets = [(f'{name}.dataset', loader.get('dataset'))]
    while datasets:
        key, dataset = datasets.pop()
        if not isinstance(dataset, Mapping):
            continue
        for index, step in enumerate(dataset.get('pipeline') or []):
            if isinstance(step, Mapping):
                _build(f'{key}.pipeline[{index}]', step,
                       lambda step=step: TRANSFORMS.build(
                           copy.deepcopy(step)),
                       _registered(TRANSFORMS, step.get('type')))
        datasets += [(f'{key}.dataset', dataset.get('dataset'))]
        datasets += [(f'{key}.datasets[{index}]', part) for index, part in
                     enumerate(dataset.get('datasets') or [])]


def check_evaluator(cfg: Config, name: str) -> None:
    """Build the metrics of the evaluator ``name`` (``val_evaluator``...)."""
    from mmaction.registry import METRICS

    evaluator = cfg.get(name)
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [
        evaluator]
    for index, metric in enumerate(metrics):
        if isinstance(metric, Mapping) and 'type' in metric and \
                metric['type'] != 'Evaluator':
            key = f'{name}[{index}]' if metrics is evaluator else name
            _build(key, metric,
                   lambda m=metric: METRICS.build(copy.deepcopy(m)),
                   _registered(METRICS, metric['type']))


def check_hooks(cfg: Config) -> None:
    """Build ``default_hooks`` and ``custom_hooks`` as the Runner will.

    A hook that fails for another reason than a value (e.g. one that needs
    the Runner's visualizer) is left to the Runner.
    """
    from mmaction.registry import HOOKS

    hooks = [(f'default_hooks.{name}', hook)
             for name, hook in (cfg.get('default_hooks') or {}).items()]
    hooks += [(f'custom_hooks[{index}]', hook)
              for index, hook in enumerate(cfg.get('custom_hooks') or [])]
    for key, hook in hooks:
        if not isinstance(hook, Mapping) or 'type' not in hook:
            continue
        options = copy.deepcopy(dict(hook))
        options.pop('priority', None)
        try:
            _build(key, hook, lambda: HOOKS.build(options),
                   _registered(HOOKS, hook['type']))
        except ConfigError:
            raise
        except Exception:  # noqa: BLE001 - the Runner will say what it is
            continue


def check_buildable(cfg: Config, loaders: Tuple[str, ...]) -> None:
    """Build, on the CPU, what the Runner would build from ``cfg`` after
    it made a work dir: the model, and to train its optimizer wrapper and
    parameter schedulers; the hooks; each of ``loaders``'s settings and
    pipelines and its evaluator. Their constructors are the validators;
    their refusals become one :class:`ConfigError` line naming the config
    file and the part's dotted key.

    Raises:
        ConfigError: ``<config>: <key>...``.
    """
    try:
        with _quiet_logs():
            _check_buildable(cfg, loaders)
    except ConfigError as error:
        raise type(error)(f'{cfg.filename}: {error}') from error


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Keep mmengine's INFO lines (e.g. the optimizer's parameter-wise
    settings) for the Runner, which builds these again and logs them."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _check_buildable(cfg: Config, loaders: Tuple[str, ...]) -> None:
    model = None
    if isinstance(cfg.get('model'), Mapping) and 'type' in cfg.model:
        model = build_model(cfg)
    if 'train_dataloader' in loaders and model is not None and \
            cfg.get('optim_wrapper'):
        check_param_schedulers(cfg, build_optim_wrapper(cfg, model))
    check_hooks(cfg)
    for name in loaders:
        check_dataloader(cfg, name)
        if name in EVALUATORS:
            check_evaluator(cfg, EVALUATORS[name])
