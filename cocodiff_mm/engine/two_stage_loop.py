"""CoCoDiff's multi-stage training loop (stage 0, 1 and 2 on one epoch axis)."""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from mmaction.registry import LOOPS
from mmengine.hooks import ParamSchedulerHook
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import DataLoader

from ..models.heads import is_cocodiff_head
from ..utils.config_keys import ConfigError
from .epoch_seed import FEATURE_STREAM, epoch_seed, seed_epoch, seeded_rng
from .feature_cache import PooledFeatureCache
from .gradient_sync import CrossRankGradientMean
from .hooks.generation_diagnostics_hook import (FAITHFULNESS_INFO,
                                                GenerationDiagnosticsHook)
from .model_utils import unwrap_model
from .pretrained_gcn import load_gcn_weights, read_gcn_checkpoint
from .reinit import reinitialize
from .stage_plan import (FAITHFULNESS_NEEDS_HOOK, Stage, plan_stages,
                         shift_schedulers, stage_at)


@LOOPS.register_module()
class TwoStageLoop(EpochBasedTrainLoop):
    """CoCoDiff's two-stage training, with an optional stage 0 before it.

    * **Stage 0** (only when stage 1 needs a pretrained GCN and
      ``pretrained`` is ``None``): the GCN trains with the baseline recipe,
      so one ``tools/train.py`` command runs the whole method.
    * **Stage 1**: the GCN (pretrained, or untrained for
      ``stage1_source='untrained'``) is frozen; only the diffusion part
      (denoiser, projection, temperature) trains with ``L_rec + λ·L_con``,
      on features extracted once when ``cache_features``.
    * **Stage 2**: the backbone and classifier are re-initialised and
      everything trains with the full objective; validation runs here only,
      so the best checkpoint is a stage-2 model.

    The stages share one global epoch counter, and the stage of an epoch
    is derived from it at the start of every epoch, so ``--resume`` from any
    checkpoint lands in the right stage. For the same reason the random
    generators are seeded at the start of every epoch from the run's seed
    and the epoch (:mod:`~cocodiff_mm.engine.epoch_seed`): a resumed run
    draws what the uninterrupted run drew and ends with the same weights
    (with ``num_workers=0`` or workers that are not persistent; persistent
    workers keep their own generators across epochs). Each stage has its
    own epochs and learning-rate schedule (epochs relative to the stage;
    the config's ``param_scheduler`` is the default); the learning rate
    restarts from the optimizer's base value and the optimizer state is
    cleared at each stage's start. A checkpoint ``stage{k}_final.pth`` is
    written at the end of each stage.

    Stage 1 can end early: with ``stage1=dict(epochs=60,
    faithfulness_target=0.8)`` it trains until the frozen classifier puts
    80 % of generated validation features in their class (measured by
    :class:`GenerationDiagnosticsHook` after each epoch, kept in the
    message hub and so in every checkpoint), for at most 60 epochs. Its
    remaining epochs are skipped, not removed: the schedulers still step
    through them, so stage 2 starts at the same global epoch with the same
    schedule whenever stage 1 ended, and a resumed run skips what the
    uninterrupted run skipped.

    The loop keeps the stages and the switching of the model between them.
    Per-iteration and per-epoch jobs are hooks that CoCoDiff configs add in
    ``custom_hooks`` (``configs/_base_/cocodiff.py``):
    :class:`GeneratedLossRampHook` (the stage-2 warm-up of CE on generated
    features), :class:`StageTimerHook` (``stage_times.json``) and
    :class:`StageLogResetHook` (per-stage smoothed logs).

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The training dataloader.
        stage2 (dict): ``dict(epochs=..., param_scheduler=[...])``.
        stage1 (dict, optional): Same, for stage 1, which also takes
            ``faithfulness_target`` (a fraction, see above; needs a
            ``GenerationDiagnosticsHook``). Defaults to ``dict(epochs=0)``.
        stage0 (dict, optional): Same, for stage 0. Defaults to
            ``dict(epochs=0)``.
        pretrained (str, optional): Checkpoint of a trained GCN for stage 1
            (e.g. from ``tools/train.py configs/ctrgcn_ntu60_xsub.py``);
            ``None`` trains it as stage 0. Defaults to ``None``.
        stage1_source (str): ``'pretrained'``, ``'untrained'`` or ``'none'``
            (no stage 1), the paper's Table V. Defaults to ``'pretrained'``.
        cache_features (bool): Extract the frozen GCN's pooled features once
            per stage-1 run instead of every iteration. Defaults to True.
        val_interval (int): Validation interval (epochs) in stage 2.
            Defaults to 1.
        dynamic_intervals (list[tuple[int, int]], optional): As in
            ``EpochBasedTrainLoop``. Defaults to None.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 stage2: Dict,
                 stage1: Optional[Dict] = None,
                 stage0: Optional[Dict] = None,
                 pretrained: Optional[str] = None,
                 stage1_source: str = 'pretrained',
                 cache_features: bool = True,
                 val_interval: int = 1,
                 dynamic_intervals: Optional[List[Tuple[int, int]]] = None
                 ) -> None:
        self.stages: List[Stage] = self.plan(
            stage2, stage1, stage0, pretrained, stage1_source,
            hooks=[type(hook) for hook in runner.hooks],
            default_scheduler=runner.param_schedulers or [])
        super().__init__(
            runner,
            dataloader,
            max_epochs=self.stages[-1].end,
            val_begin=self.stages[-1].begin + 1,
            val_interval=val_interval,
            dynamic_intervals=dynamic_intervals)
        self.pretrained = pretrained
        self.stage1_source = stage1_source
        self.cache_features = cache_features
        # Each stage's schedulers on the global epoch axis. mmengine's
        # Runner.train() builds the train loop and then the schedulers from
        # runner.param_schedulers (still configs at this point); a loop has
        # no other way to give them stage-relative bounds. The per-stage lr
        # restarts in tests/test_stage_hooks.py fail if that order changes.
        runner.param_schedulers = shift_schedulers(self.stages)
        self._pretrained_state: Optional[Dict[str, torch.Tensor]] = None
        self._feature_cache: Optional[PooledFeatureCache] = None
        self._gradient_mean: Optional[CrossRankGradientMean] = None
        self._active: Optional[Stage] = None
        self._skipping: Optional[int] = None  # the stage ended early
        self._check_model()

    # ------------------------------------------------------------------
    # Set-up checks (before any training)
    # ------------------------------------------------------------------
    @staticmethod
    def plan(stage2: Dict,
             stage1: Optional[Dict] = None,
             stage0: Optional[Dict] = None,
             pretrained: Optional[str] = None,
             stage1_source: str = 'pretrained',
             hooks: Iterable[type] = (),
             default_scheduler: Sequence[Dict] = ()) -> List[Stage]:
        """The stages a loop with these arguments runs, validated.

        The loop plans with it when built; ``tools/`` call it first
        (:func:`~cocodiff_mm.engine.config_check.check_stage_plan`), so a
        plan that cannot run stops before the Runner makes a work dir.

        Args:
            stage2, stage1, stage0, pretrained, stage1_source: As the loop's.
            hooks (Iterable[type]): Classes of the runner's hooks. Defaults
                to ``()``.
            default_scheduler (Sequence[dict]): See :func:`plan_stages`.
                Defaults to ``()``.

        Returns:
            list[Stage]: The stages that run, in order.

        Raises:
            ConfigError: For a stage option that cannot work, or a
                ``faithfulness_target`` without the hook that measures it.
        """
        stages = plan_stages(
            stage0 or dict(epochs=0),
            stage1 or dict(epochs=0),
            stage2,
            stage1_source,
            has_pretrained=pretrained is not None,
            default_scheduler=default_scheduler)
        measured = any(issubclass(hook, GenerationDiagnosticsHook)
                       for hook in hooks)
        if any(stage.faithfulness_target for stage in stages) and not measured:
            raise ConfigError(FAITHFULNESS_NEEDS_HOOK)
        return stages

    @property
    def model(self) -> torch.nn.Module:
        """The unwrapped recognizer."""
        return unwrap_model(self.runner.model)

    def _check_model(self) -> None:
        """Refuse a model or checkpoint that cannot run the planned stages."""
        head = getattr(self.model, 'cls_head', None)
        if not is_cocodiff_head(head):
            raise TypeError(
                'TwoStageLoop needs model.cls_head of type '
                'DiffusionAugmentedHead, got '
                f'{type(head).__name__}')
        if self.pretrained is not None and self.stage1_source == 'pretrained':
            # tools/train.py has read and checked it already, before the
            # Runner made a work dir (mmengine's Runner.__init__ makes the
            # work dir, log and config dump; Runner.train() builds this
            # loop): the read is handed over, not repeated. Built from
            # Python, the loop reads it here, before any training.
            self._pretrained_state = read_gcn_checkpoint(
                self.pretrained, self.model)

    # ------------------------------------------------------------------
    # The loop
    # ------------------------------------------------------------------
    @property
    def stage(self) -> Stage:
        """Stage: The stage of the current epoch."""
        return stage_at(self.stages, self._epoch)

    def run(self) -> torch.nn.Module:
        """Train every stage; prepare the text bank first (fails fast)."""
        head = self.model.cls_head
        if head.text_mode != 'none':
            head.text_bank.build()
            head.text_bank.to(next(head.parameters()).device)
        plan = ', '.join(f'stage {s.index} ({s.name}): epochs '
                         f'{s.begin + 1}-{s.end}' for s in self.stages)
        self.runner.logger.info(f'TwoStageLoop plan: {plan}')
        return super().run()

    def run_epoch(self) -> None:
        """One epoch of the stage the epoch counter is in."""
        stage = self.stage
        # mmengine keeps no random state in checkpoints: seed per epoch, so
        # a resumed run draws what the uninterrupted one drew.
        seed_epoch(self.runner.seed, self._epoch)
        if self._reached_faithfulness(stage):
            self._skip_epoch(stage)
            return
        if self._active != stage:
            self._enter_stage(stage, fresh=self._epoch == stage.begin)
        self.runner.logger.info(
            f'Stage {stage.index} ({stage.name}): epoch '
            f'{self._epoch - stage.begin + 1}/{stage.epochs} '
            f'(global epoch {self._epoch + 1}/{self._max_epochs})')
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        if stage.freezes_gcn:
            self.model.backbone.eval()  # frozen: BN statistics too
        for idx, data_batch in enumerate(self._epoch_batches()):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._end_epoch(stage)

    def _end_epoch(self, stage: Stage) -> None:
        """Move the epoch counter on; save the stage's final checkpoint."""
        if self._epoch + 1 == stage.end and stage is not self.stages[-1]:
            # Before the counter moves on, like CheckpointHook: the saved
            # epoch is the next one to run, the first of the next stage.
            self.runner.save_checkpoint(
                self.runner.work_dir, f'stage{stage.index}_final.pth')
        self._epoch += 1

    # ------------------------------------------------------------------
    # Ending stage 1 early (faithfulness_target)
    # ------------------------------------------------------------------
    def _reached_faithfulness(self, stage: Stage) -> bool:
        """Whether ``stage`` has met its faithfulness target already."""
        if not stage.faithfulness_target or self._epoch == stage.begin:
            return False
        faithfulness = self.runner.message_hub.get_info(FAITHFULNESS_INFO)
        reached = (faithfulness is not None
                   and faithfulness >= stage.faithfulness_target)
        if reached and self._skipping != stage.index:
            self._skipping = stage.index
            self.runner.logger.info(
                f'Stage {stage.index}: the frozen classifier recognises '
                f'{faithfulness:.1%} of the generated validation features '
                f'(target {stage.faithfulness_target:.1%}); skipping its '
                f'epochs {self._epoch - stage.begin + 1}-{stage.epochs}')
        return reached

    def _skip_epoch(self, stage: Stage) -> None:
        """Pass an epoch of a stage that has ended early without training.

        The schedulers step as if the epoch had trained (per iteration and
        per epoch), through mmengine's own ``ParamSchedulerHook``, so the
        next stage's schedule starts where the config puts it.
        """
        scheduler_hooks = [hook for hook in self.runner.hooks
                           if isinstance(hook, ParamSchedulerHook)]
        for idx in range(len(self.dataloader)):
            self._reset_lr_if_stage_ends(stage)
            for hook in scheduler_hooks:
                hook.after_train_iter(self.runner, idx)
            self._iter += 1
        for hook in scheduler_hooks:
            hook.after_train_epoch(self.runner)
        self._end_epoch(stage)

    def run_iter(self, idx: int, data_batch: Union[Sequence[dict],
                                                    Dict]) -> None:
        """One training iteration: through the model, or on cached features
        in stage 1 (``data_batch`` is then ``dict(inputs=..., labels=...)``).
        """
        self.runner.call_hook(
            'before_train_iter', batch_idx=idx, data_batch=data_batch)
        if self._feature_cache is not None:
            outputs = self._cached_train_step(data_batch)
        else:
            outputs = self.runner.model.train_step(
                data_batch, optim_wrapper=self.runner.optim_wrapper)
        self._reset_lr_if_stage_ends(self._active)
        self.runner.call_hook(
            'after_train_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs)
        self._iter += 1

    def _epoch_batches(self):
        """The training dataloader, or the stage-1 feature cache's batches."""
        if self._feature_cache is None:
            return self.dataloader
        return (dict(inputs=pooled, labels=labels)
                for pooled, labels in self._feature_cache.batches(
                    seed=self._epoch))

    # ------------------------------------------------------------------
    # Switching the model between stages
    # ------------------------------------------------------------------
    def _enter_stage(self, stage: Stage, fresh: bool) -> None:
        """Configure the model for ``stage``.

        Args:
            stage (Stage): The stage.
            fresh (bool): The stage starts now (not a resume into its middle):
                load or re-initialise weights and clear optimizer state.
        """
        model, head = self.model, self.model.cls_head
        self._active = stage
        self._feature_cache = None
        if self._gradient_mean is not None:
            self._gradient_mean.detach()
            self._gradient_mean = None
        head.set_objective(stage.objective)
        for param in model.backbone.parameters():
            param.requires_grad_(not stage.freezes_gcn)
        for param in head.fc.parameters():
            param.requires_grad_(not stage.freezes_gcn)
        if fresh:
            if stage.index == 1 and self._pretrained_state is not None:
                load_gcn_weights(model, self._pretrained_state)
                self.runner.logger.info(
                    f'Stage 1 uses the pretrained GCN {self.pretrained}')
            elif stage.index == 1 and self.stage1_source == 'untrained':
                reinitialize(model.backbone)
            elif stage.index == 2:
                reinitialize(model.backbone)
                head.init_weights()
            if stage.begin > 0:
                self._restart_optimizer()
        if stage.freezes_gcn and self.cache_features:
            self.runner.logger.info(
                'Stage 1: extracting pooled features of the frozen GCN once')
            self._feature_cache = self._extract_features(stage)
            self._gradient_mean = CrossRankGradientMean(
                param for module in head.diffusion_modules()
                for param in module.parameters()).attach()

    def _extract_features(self, stage: Stage) -> PooledFeatureCache:
        """The frozen GCN's features, the same whichever epoch of the stage
        the run starts in (its first, or a later one after ``--resume``).

        The training pipeline samples frames at random and the sampler
        shuffles by epoch: both are fixed to the stage's first epoch here,
        or a resumed run would cache other features in another order.
        """
        for sampler in (getattr(self.dataloader, 'sampler', None),
                        getattr(getattr(self.dataloader, 'batch_sampler',
                                        None), 'sampler', None)):
            if hasattr(sampler, 'set_epoch'):
                sampler.set_epoch(stage.begin)
                break
        with seeded_rng(
                epoch_seed(self.runner.seed, stage.begin, FEATURE_STREAM)):
            return PooledFeatureCache.extract(self.model, self.dataloader)

    def _restart_optimizer(self) -> None:
        """Clear momentum state; the learning rate restarts from its base."""
        for optimizer in self._optimizers():
            optimizer.state.clear()

    def _optimizers(self) -> Sequence[torch.optim.Optimizer]:
        """The torch optimizers behind the runner's optim wrapper(s)."""
        wrapper = self.runner.optim_wrapper
        if hasattr(wrapper, 'optim_wrappers'):
            return [w.optimizer for w in wrapper.optim_wrappers.values()]
        return [wrapper.optimizer]

    def _reset_lr_if_stage_ends(self, stage: Stage) -> None:
        """At ``stage``'s last iteration, put every lr back to its base.

        Runs before the scheduler hook steps, so the next stage's first
        scheduler value (e.g. a warm-up start) is computed from the base lr
        and not from the previous stage's decayed one.
        """
        last_epoch = self._epoch + 1 == stage.end
        last_iter = (self._iter + 1) % len(self.dataloader) == 0
        if not (last_epoch and last_iter) or stage is self.stages[-1]:
            return
        wrapper = self.runner.optim_wrapper
        wrappers = (wrapper.optim_wrappers.values() if hasattr(
            wrapper, 'optim_wrappers') else [wrapper])
        for inner in wrappers:
            # The wrapper's groups: the optimizer's, plus the base lr that
            # mmengine tracks (and schedules) beside them.
            for group in inner.param_groups:
                group['lr'] = group.get('initial_lr', group['lr'])

    def _cached_train_step(self, batch: Dict) -> Dict[str, torch.Tensor]:
        """A stage-1 optimisation step on cached pooled features.

        Like ``train_step``: the losses go through the optim wrapper's
        ``update_params`` (loss scaling, ``accumulative_counts``,
        ``clip_grad``). The backbone is skipped, so DDP's hooks do not fire;
        :class:`CrossRankGradientMean` averages the diffusion gradients.

        Returns:
            dict: The logged values, as ``train_step`` returns them.
        """
        wrapper = self.runner.optim_wrapper
        model = self.model
        with wrapper.optim_context(self.runner.model):
            losses = model.cls_head.loss_from_pooled(batch['inputs'],
                                                     batch['labels'])
        parsed, outputs = model.parse_losses(losses)
        wrapper.update_params(parsed)
        return outputs
