"""Per-epoch diagnostics of the generated features (issue: why it helps)."""
import json
import os
from typing import Dict, Optional, Tuple

import torch
from mmaction.registry import HOOKS
from mmengine.hooks import Hook

from ...analysis.feature_diagnostics import (accuracy, class_mean_distances,
                                             class_means, diversity, margin)
from ...utils.checks import check_int
from ..feature_cache import PooledFeatureCache
from ..model_utils import unwrap_model
from .rank_mean import mean_over_ranks

#: Runtime-info key of the message hub (saved in every checkpoint): the
#: class faithfulness of the latest stage-1 measurement, over all ranks.
#: ``TwoStageLoop`` ends stage 1 early on it (``faithfulness_target``).
FAITHFULNESS_INFO = 'stage1_faithfulness'

#: Training outputs whose means over the measured epochs the hook records
#: (as ``train_<key>``): mmengine's log shows the accuracies and
#: ``ce_generated`` of the last batch only. ``top1_acc`` is the accuracy on
#: the real clips of the same batches.
TRAINING_KEYS = ('loss_con', 'acc_generated', 'ce_generated', 'top1_acc')


@HOOKS.register_module()
class GenerationDiagnosticsHook(Hook):
    """Logs how class-faithful and diverse the generated features are.

    After every ``interval``-th training epoch in which the head trains its
    diffusion (stages 1 and 2), the hook takes the real pooled features of
    up to ``max_samples`` validation clips, generates features for them
    exactly as training does, and records:

    * ``real_acc`` and ``gen_acc``: the classifier's accuracy on the real
      and on the generated features. In stage 1 the classifier is the
      frozen pretrained one, so ``gen_acc`` is the class faithfulness of
      the diffusion;
    * ``margin_real`` and ``margin_gen``: the classifier's mean margin
      (own class's score minus the best other's) on both: how hard the
      generated features are against the real ones (the frozen classifier
      in stage 1, the one being trained in stage 2);
    * ``div_real`` and ``div_gen``: DIV (Action2Motion) of both sets;
    * ``dist_own_gen``, ``dist_other_gen`` and ``dist_ratio_gen``: mean
      distance of generated features to their own class's real mean and to
      the nearest other class's; ``dist_ratio_real`` is the same ratio for
      the real features;
    * ``train_loss_con``, ``train_acc_generated``, ``train_ce_generated``
      and ``train_top1_acc``: the means of these training outputs over every
      iteration since the last measurement (those the objective has), over
      all ranks. ``ce_generated`` is the CE on generated features before
      its weight and ramp, ``top1_acc`` the accuracy on the real clips.

    The values go to the log, the visualizer (``diag/*``) and one JSON line
    per epoch in ``<work_dir>/generation_diagnostics.jsonl``. In stage 1,
    ``gen_acc`` over all ranks also goes to the message hub's runtime info
    (:data:`FAITHFULNESS_INFO`), where the loop reads its
    ``train_cfg.stage1.faithfulness_target``. The work runs
    under its own random seed, so adding the hook leaves training's random
    stream (and hence its result) unchanged. In stage 1 the real features
    are extracted once (the GCN is frozen). Under DDP each rank measures
    its share of the validation set; rank 0 writes.

    Args:
        interval (int): Every how many epochs. Defaults to 1.
        max_samples (int): Validation clips used. Defaults to 512.
        num_div_pairs (int): Pairs of DIV's estimate. Defaults to 200.
        seed (int): Seed of the generation noise and the DIV pairs.
            Defaults to 0.
        file_name (str): JSON-lines file in the work dir. Defaults to
            ``'generation_diagnostics.jsonl'``.
    """

    priority = 'LOW'

    def __init__(self,
                 interval: int = 1,
                 max_samples: int = 512,
                 num_div_pairs: int = 200,
                 seed: int = 0,
                 file_name: str = 'generation_diagnostics.jsonl') -> None:
        check_int(interval, 'GenerationDiagnosticsHook.interval', minimum=1)
        check_int(max_samples, 'GenerationDiagnosticsHook.max_samples',
                  minimum=2)
        check_int(num_div_pairs, 'GenerationDiagnosticsHook.num_div_pairs',
                  minimum=1)
        self.interval = interval
        self.max_samples = max_samples
        self.num_div_pairs = num_div_pairs
        self.seed = seed
        self.file_name = file_name
        # Real features of the frozen GCN (stage 1) do not change: kept.
        self._frozen_features: Optional[Tuple[torch.Tensor,
                                              torch.Tensor]] = None
        # Sum and count of each training output since the last measurement.
        self._training_sums: Dict[str, Tuple[float, int]] = {}

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[Dict] = None) -> None:
        for key in TRAINING_KEYS:
            if outputs and key in outputs:
                total, count = self._training_sums.get(key, (0.0, 0))
                self._training_sums[key] = (total + float(outputs[key]),
                                            count + 1)

    def after_train_epoch(self, runner) -> None:
        model = unwrap_model(runner.model)
        head = model.cls_head
        if getattr(head, 'objective', 'classify') == 'classify':
            self._training_sums = {}
            return
        if not self.every_n_epochs(runner, self.interval):
            return
        devices = [torch.cuda.current_device()
                   ] if torch.cuda.is_available() else []
        was_training = model.training
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed + runner.epoch)
            model.eval()
            try:
                values = self.measure(model, runner.val_loop.dataloader)
            finally:
                model.train(was_training)
        if head.objective == 'diffusion':
            runner.message_hub.update_info(
                FAITHFULNESS_INFO,
                mean_over_ranks(values['gen_acc'], values['num_samples']))
        for key in TRAINING_KEYS:  # every rank has the same keys
            if key in self._training_sums:
                total, count = self._training_sums[key]
                values[f'train_{key}'] = mean_over_ranks(total / count,
                                                          count)
        self._training_sums = {}
        values = dict(epoch=runner.epoch + 1, objective=head.objective,
                      **values)
        runner.logger.info('Generation diagnostics: ' + ', '.join(
            f'{key} {value:.4f}' for key, value in values.items()
            if isinstance(value, float)))
        runner.visualizer.add_scalars(
            {f'diag/{key}': value
             for key, value in values.items() if isinstance(value, float)},
            step=runner.epoch + 1)
        if runner.rank == 0:
            path = os.path.join(runner.work_dir, self.file_name)
            with open(path, 'a') as file:
                file.write(json.dumps(values) + '\n')

    @torch.no_grad()
    def measure(self, model: torch.nn.Module,
                dataloader) -> Dict[str, float]:
        """The diagnostics of ``model`` on (a part of) ``dataloader``.

        Args:
            model (nn.Module): Unwrapped recognizer in eval mode with a
                :class:`DiffusionAugmentedHead`.
            dataloader (DataLoader): Validation data.

        Returns:
            dict[str, float]: The values described in the class docstring,
            and ``num_samples`` (int), the clips they were measured on.
        """
        head = model.cls_head
        if head.objective == 'diffusion' and self._frozen_features:
            pooled, labels = self._frozen_features
        else:
            pooled, labels = self._real_features(model, dataloader)
        self._frozen_features = ((pooled, labels)
                                 if head.objective == 'diffusion' else None)
        generated = head.generate_from_pooled(pooled, labels)
        generator = torch.Generator().manual_seed(self.seed)
        means = class_means(pooled, labels, head.num_classes)
        gen_dist = class_mean_distances(generated, labels, means)
        real_dist = class_mean_distances(pooled, labels, means)
        real_scores, gen_scores = head.fc(pooled), head.fc(generated)
        return dict(
            num_samples=len(labels),
            real_acc=accuracy(real_scores, labels),
            gen_acc=accuracy(gen_scores, labels),
            margin_real=margin(real_scores, labels),
            margin_gen=margin(gen_scores, labels),
            div_real=diversity(pooled, self.num_div_pairs, generator),
            div_gen=diversity(generated, self.num_div_pairs, generator),
            dist_own_gen=gen_dist['own'],
            dist_other_gen=gen_dist['nearest_other'],
            dist_ratio_gen=gen_dist['ratio'],
            dist_ratio_real=real_dist['ratio'])

    def _real_features(self, model: torch.nn.Module, dataloader
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pooled features and labels of the first ``max_samples`` clips."""
        batches = _FirstBatches(dataloader, self.max_samples)
        cache = PooledFeatureCache.extract(model, batches)
        return cache.pooled[:self.max_samples], cache.labels[:self.max_samples]


class _FirstBatches:
    """The first batches of a dataloader that hold ``count`` samples."""

    def __init__(self, dataloader, count: int) -> None:
        self.dataloader = dataloader
        self.count = count
        self.batch_size: Optional[int] = dataloader.batch_size

    def __len__(self) -> int:
        return min(len(self.dataloader),
                   -(-self.count // (self.batch_size or 1)))

    def __iter__(self):
        seen = 0
        for batch in self.dataloader:
            yield batch
            seen += len(batch['data_samples'])
            if seen >= self.count:
                return
