"""What a checkpoint records of its run, so ``--resume`` knows its plan.

A resumed run finds its stage from the epoch alone (:class:`TwoStageLoop`),
on the epoch axis of the *config*. With other stage lengths that epoch lies
in another stage: a run whose stage 1 had ended went back to stage 0 and
overwrote ``stage0_final.pth`` and ``stage1_final.pth``, with exit 0. So
every checkpoint records the resolved stage plan and the model's identity
in ``meta['cocodiff_run']`` (:class:`~cocodiff_mm.engine.hooks.
RunRecordHook`), and ``tools/train.py --resume`` compares them with the
config's before the Runner starts (``--replan`` is the explicit way on).
mmengine's own resume only warns about another seed or dataset.
"""
import inspect
from typing import Any, Callable, Dict, List, Mapping, Optional

from ..utils.config_keys import ConfigError
from .stage_plan import plan_stages

#: Key of the record in a checkpoint's ``meta``.
META_KEY = 'cocodiff_run'

#: Options that fix a backbone's layers and widths (those its class takes).
BACKBONE_KEYS = ('graph_cfg', 'in_channels', 'base_channels', 'num_stages',
                 'inflate_stages', 'down_stages', 'num_person')

#: Options that fix a head's classifier.
HEAD_KEYS = ('num_classes', 'in_channels')

#: How many differences a message lists.
LISTED = 5

_ABSENT = object()


class ResumePlanError(ConfigError):
    """A checkpoint of another stage plan or model given to ``--resume``."""


def _plain(value: Any) -> Any:
    """Config values as plain containers (tuples as lists), for comparing
    and for ``torch.load(weights_only=True)``."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _registered(type_: Any, registry_name: str = 'MODELS') -> Optional[type]:
    """The class a config's ``type`` names in mmaction's ``MODELS`` or
    ``LOOPS``."""
    from mmaction import registry
    if isinstance(type_, type):
        return type_
    if not isinstance(type_, str):
        return None
    return getattr(registry, registry_name).get(type_)


def _module_record(options: Any, keys: tuple) -> Optional[Dict]:
    """``type`` and ``keys`` of a module config, with the class's defaults
    for keys the config leaves out (so ``base_channels`` unset and set to
    its default are the same model)."""
    if not isinstance(options, Mapping):
        return None
    cls = _registered(options.get('type'))
    defaults = {}
    if cls is not None:
        defaults = {
            name: p.default
            for name, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
    record = dict(type=cls.__name__ if cls else str(options.get('type')))
    for key in keys:
        value = options.get(key, defaults.get(key, _ABSENT))
        if value is not _ABSENT:
            record[key] = _plain(value)
    return record


def model_record(model: Any) -> Optional[Dict]:
    """The model's identity: its type, the backbone's type and widths, the
    head's type, classes and input width."""
    if not isinstance(model, Mapping):
        return None
    return dict(type=_module_record(model, ())['type'],
                backbone=_module_record(model.get('backbone'), BACKBONE_KEYS),
                cls_head=_module_record(model.get('cls_head'), HEAD_KEYS))


def plan_record(train_cfg: Mapping) -> Dict:
    """The training loop, and for a :class:`TwoStageLoop` its resolved
    stages (what :meth:`TwoStageLoop.plan` lays out): each one's first and
    end epoch, objective and faithfulness target."""
    from .two_stage_loop import TwoStageLoop
    loop = _registered(train_cfg.get('type'), 'LOOPS')
    record: Dict[str, Any] = dict(
        loop=loop.__name__ if loop else str(train_cfg.get('type')))
    if loop is None or not issubclass(loop, TwoStageLoop):
        return record  # max_epochs may grow on resume, as in mmaction2
    source = train_cfg.get('stage1_source', 'pretrained')
    record['stage1_source'] = source
    stages = plan_stages(
        train_cfg.get('stage0') or dict(epochs=0),
        train_cfg.get('stage1') or dict(epochs=0),
        train_cfg.get('stage2'), source,
        has_pretrained=train_cfg.get('pretrained') is not None)
    for stage in stages:
        record[f'stage{stage.index}'] = dict(
            begin=stage.begin, end=stage.end, objective=stage.objective,
            faithfulness_target=stage.faithfulness_target)
    return record


def run_record(cfg: Mapping) -> Dict:
    """What checkpoints of a run of ``cfg`` record: ``plan`` and ``model``.

    Args:
        cfg (Mapping): The merged config.

    Returns:
        dict: Plain containers, safe for ``torch.load(weights_only=True)``.
    """
    return dict(plan=plan_record(cfg.get('train_cfg') or {}),
                model=model_record(cfg.get('model')))


def _shown(value: Any) -> str:
    if value is _ABSENT:
        return 'absent'
    if isinstance(value, dict):
        return '{' + ', '.join(f'{k}={_shown(v)}'
                               for k, v in value.items()) + '}'
    return str(value)


def record_differences(old: Mapping, new: Mapping,
                       prefix: str = '') -> List[str]:
    """``key: old (checkpoint) vs new (config)`` for each difference, with
    dotted keys (``plan.stage0.end``), in the records' order."""
    found = []
    for key in [*old, *(k for k in new if k not in old)]:
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            found += record_differences(a, b, f'{prefix}{key}.')
        elif a != b:
            found.append(f'{prefix}{key}: {_shown(a)} (checkpoint) vs '
                         f'{_shown(b)} (config)')
    return found


def check_resume_record(checkpoint: Mapping, path: str, cfg: Mapping,
                        warn: Callable[[str], Any]) -> None:
    """Refuse to resume ``checkpoint`` under another plan or model.

    Args:
        checkpoint (Mapping): The loaded checkpoint.
        path (str): Its file, for the message.
        cfg (Mapping): The config the run resumes with.
        warn (callable): Gets one line for a checkpoint that records
            nothing (written before the record existed): it resumes
            unchecked.

    Raises:
        ResumePlanError: Naming each difference (``key: old vs new``, the
            first :data:`LISTED`) and the ways on.
    """
    old = (checkpoint.get('meta') or {}).get(META_KEY)
    if old is None:
        warn(f'warning: --resume {path} records no plan or model (written '
             'before they were recorded): not checked against the config')
        return
    found = record_differences(old, run_record(cfg))
    if found:
        more = f'; ... ({len(found)} in all)' if len(found) > LISTED else ''
        raise ResumePlanError(
            f'--resume {path}: the checkpoint was trained with another plan '
            f'or model: {"; ".join(found[:LISTED])}{more}. Resume with the '
            'config it was trained with, or add --replan to continue it '
            'under the new plan (its stage follows from the epoch)')
