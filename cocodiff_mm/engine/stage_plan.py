"""Which stage an epoch belongs to, and each stage's learning-rate schedule.

Pure bookkeeping for :class:`TwoStageLoop`, kept apart so it can be tested
without a Runner. Stages are laid end to end on one global epoch counter,
so the stage of any epoch (and hence of any checkpoint) follows from the
epoch alone.
"""
import copy
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..utils.checks import check_choice, check_int, is_int
from ..utils.config_keys import ConfigError, refuse_unknown_keys

#: Where stage 1 gets its GCN (the paper's Table V).
STAGE1_SOURCES = ('pretrained', 'untrained', 'none')

#: Keys of each stage in ``train_cfg.stage{0,1,2}``; stage 1 may end
#: early, once its generated features are class-faithful enough.
STAGE_KEYS = {
    0: ('epochs', 'param_scheduler'),
    1: ('epochs', 'param_scheduler', 'faithfulness_target'),
    2: ('epochs', 'param_scheduler'),
}


@dataclass(frozen=True)
class Stage:
    """One training stage on the global epoch axis.

    Attributes:
        index (int): 0 (baseline GCN), 1 (diffusion on a frozen GCN) or 2
            (fresh GCN with the full objective); see
            :data:`STAGE_OBJECTIVES`.
        name (str): Human-readable name for logs.
        begin (int): First global epoch (0-based) of the stage.
        epochs (int): Number of epochs.
        param_scheduler (list): The stage's schedulers, epochs relative to
            the stage's start.
        faithfulness_target (float, optional): Stage 1 only: the stage
            ends after the first epoch at which the frozen classifier puts
            at least this fraction of generated validation features in
            their class (``GenerationDiagnosticsHook``); ``epochs`` is
            then the most it runs. None: always ``epochs``.
    """

    index: int
    name: str
    begin: int
    epochs: int
    param_scheduler: Tuple[Dict, ...] = field(default_factory=tuple)
    faithfulness_target: Optional[float] = None

    @property
    def end(self) -> int:
        """int: One past the last global epoch of the stage."""
        return self.begin + self.epochs

    @property
    def objective(self) -> str:
        """str: What the head trains (``DiffusionAugmentedHead.OBJECTIVES``)."""
        return STAGE_OBJECTIVES[self.index]

    @property
    def freezes_gcn(self) -> bool:
        """bool: Whether the backbone and classifier stay frozen."""
        return self.objective == 'diffusion'


#: The one vocabulary of stages: index -> the head's objective in it.
#: ``classify``: stock cross-entropy (stage 0, the baseline GCN);
#: ``diffusion``: L_rec + λ·L_con on the frozen GCN (stage 1);
#: ``joint``: CE(real) + CE(generated) + L_rec + λ·L_con (stage 2).
STAGE_OBJECTIVES = {0: 'classify', 1: 'diffusion', 2: 'joint'}

#: Stage names in logs.
STAGE_NAMES = {
    0: 'baseline GCN',
    1: 'diffusion on the frozen GCN',
    2: 'fresh GCN + fine-tuned diffusion',
}


#: Why a faithfulness target without its measuring hook is refused.
FAITHFULNESS_NEEDS_HOOK = (
    'train_cfg.stage1.faithfulness_target needs '
    "dict(type='GenerationDiagnosticsHook') in custom_hooks: it measures "
    'the class faithfulness the target is checked on')


def faithfulness_target(cfg: Optional[Dict]) -> Optional[float]:
    """Stage 1's ``faithfulness_target``, validated."""
    target = (cfg or {}).get('faithfulness_target')
    if target is None:
        return None
    if not (is_int(target) or isinstance(target, float)) or \
            not 0 < target <= 1:
        raise ConfigError(
            'train_cfg.stage1.faithfulness_target must be a fraction in '
            f'(0, 1] (e.g. 0.8) or None, got {target!r}')
    return float(target)


def plan_stages(stage0: Optional[Dict],
                stage1: Optional[Dict],
                stage2: Optional[Dict],
                stage1_source: str,
                has_pretrained: bool,
                default_scheduler: Sequence[Dict] = ()) -> List[Stage]:
    """Lay the stages that will run on the global epoch axis.

    Stage 0 runs only when stage 1 needs a pretrained GCN and none is given;
    stage 1 is skipped for ``stage1_source='none'``.

    Args:
        stage0 (dict, optional): ``dict(epochs=..., param_scheduler=[...])``.
        stage1 (dict, optional): Same, for the diffusion stage.
        stage2 (dict, optional): Same, for the joint stage.
        stage1_source (str): One of :data:`STAGE1_SOURCES`.
        has_pretrained (bool): Whether a pretrained GCN checkpoint is given.
        default_scheduler (Sequence[dict]): Schedulers for a stage that
            names none (the config's ``param_scheduler``, the baseline
            recipe). Defaults to ``()``.

    Returns:
        list[Stage]: The stages that run, in order.
    """
    check_choice(stage1_source, STAGE1_SOURCES, 'train_cfg.stage1_source')
    for index, cfg in enumerate((stage0, stage1, stage2)):
        refuse_unknown_keys(cfg, STAGE_KEYS[index],
                            f'train_cfg.stage{index}')
    wanted = []
    if stage1_source == 'pretrained' and not has_pretrained:
        wanted.append((0, stage0))
    if stage1_source != 'none':
        wanted.append((1, stage1))
    wanted.append((2, stage2))

    stages, begin = [], 0
    for index, cfg in wanted:
        epochs = check_int((cfg or {}).get('epochs'),
                           f'train_cfg.stage{index}.epochs')
        if epochs == 0:
            continue
        schedulers = (cfg or {}).get('param_scheduler')
        if schedulers is None:
            schedulers = default_scheduler
        if isinstance(schedulers, dict):
            schedulers = [schedulers]
        stages.append(
            Stage(index, STAGE_NAMES[index], begin, epochs,
                  tuple(copy.deepcopy(list(schedulers))),
                  faithfulness_target(cfg) if index == 1 else None))
        begin += epochs
    if not stages or stages[-1].index != 2:
        raise ConfigError('train_cfg.stage2.epochs must be > 0: stage 2 '
                          'trains the model that is evaluated')
    return stages


def stage_at(stages: Sequence[Stage], epoch: int) -> Stage:
    """The stage that global epoch ``epoch`` (0-based) belongs to."""
    for stage in stages:
        if stage.begin <= epoch < stage.end:
            return stage
    return stages[-1]


def shift_schedulers(stages: Sequence[Stage]) -> List[Dict]:
    """Every stage's schedulers on the global epoch axis.

    ``begin``/``end`` (in epochs, relative to the stage) are shifted by the
    stage's first epoch and clipped to the stage, so each scheduler acts
    only inside its stage. Milestones stay relative: mmengine counts them
    from ``begin``.

    Returns:
        list[dict]: Scheduler configs for ``runner.param_schedulers``.
    """
    shifted = []
    for stage in stages:
        for scheduler in stage.param_scheduler:
            scheduler = copy.deepcopy(dict(scheduler))
            if not scheduler.get('by_epoch', True):
                raise ValueError(
                    f'stage{stage.index} scheduler {scheduler.get("type")} '
                    'must be by_epoch=True (use convert_to_iter_based=True '
                    'for per-iteration updates)')
            begin = scheduler.get('begin', 0)
            end = min(scheduler.get('end', stage.epochs), stage.epochs)
            if not 0 <= begin < end:
                raise ValueError(
                    f'stage{stage.index} scheduler {scheduler.get("type")} '
                    f'has begin={begin}, end={end}; need 0 <= begin < end '
                    f'<= {stage.epochs} (epochs relative to the stage)')
            scheduler['begin'] = stage.begin + begin
            scheduler['end'] = stage.begin + end
            if scheduler.get('type') == 'CosineAnnealingLR' and \
                    'T_max' not in scheduler:
                scheduler['T_max'] = end - begin
            shifted.append(scheduler)
    return shifted
