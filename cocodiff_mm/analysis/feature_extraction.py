"""Real and generated pooled features of a trained recognizer on one split.

The real features are the pooled backbone features the classifier sees
(:meth:`DiffusionAugmentedHead.pool_features`, extracted by
:meth:`PooledFeatureCache.extract`); the generated ones are made from them
exactly as training makes them (:meth:`DiffusionAugmentedHead.
generate_from_pooled`, eval mode, under a fixed seed). Their numbers (DIV,
class-mean distances, accuracy) come from :mod:`.feature_diagnostics`.
"""
import copy
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict

from ..utils.config_keys import ConfigError
from .feature_diagnostics import (accuracy, class_mean_distances,
                                  class_means, diversity)
from .feature_plots import confusion_matrix, per_class_accuracy

#: ``progress(iterable, total, description)`` wraps a loop for a progress
#: bar (e.g. ``lambda it, total, desc: tqdm(it, total=total, desc=desc)``).
Progress = Callable[[Iterable, int, str], Iterable]


@dataclass
class FeatureSet:
    """Pooled features of one split, and the classifier's scores on them.

    Attributes:
        real (Tensor): Real pooled features (N, C), float32 on the CPU.
        labels (Tensor): Their labels (N,), int64.
        real_scores (Tensor): Classifier logits ``fc(real)`` (N, K); their
            argmax is the stock model's prediction for one-clip inputs.
        generated (Tensor, optional): Generated features (N, C), one per
            real feature, of the same class; None without a diffusion.
        generated_scores (Tensor, optional): ``fc(generated)`` (N, K).
    """
    real: torch.Tensor
    labels: torch.Tensor
    real_scores: torch.Tensor
    generated: Optional[torch.Tensor] = None
    generated_scores: Optional[torch.Tensor] = None

    def arrays(self) -> Dict[str, np.ndarray]:
        """The tensors that are set, as NumPy arrays (for ``np.savez``)."""
        return {name: value.numpy() for name, value in vars(self).items()
                if value is not None}


def split_loader_cfg(cfg: Config,
                     loader: str = 'val_dataloader',
                     split: Optional[str] = None) -> ConfigDict:
    """A copy of ``cfg[loader]``, reading ``split`` if given.

    Args:
        cfg (Config): The full config.
        loader (str): Dataloader field, e.g. ``'val_dataloader'``. Defaults
            to ``'val_dataloader'``.
        split (str, optional): Value for the dataset's ``split`` (that of
            the dataset holding ``ann_file``, behind any wrapper). Defaults
            to None (the config's).

    Returns:
        ConfigDict: The dataloader config.

    Raises:
        ConfigError: If the config has no such dataloader.
    """
    if not cfg.get(loader):
        raise ConfigError(f'the config has no {loader}; choose another '
                          'with --loader (val_dataloader, test_dataloader)')
    loader_cfg = copy.deepcopy(cfg[loader])
    if split is not None:
        _annotated_dataset(loader_cfg).split = split
    return loader_cfg


def _annotated_dataset(loader_cfg: ConfigDict) -> ConfigDict:
    """The dataset config holding ``ann_file`` (behind any wrapper)."""
    dataset = loader_cfg.dataset
    while 'ann_file' not in dataset and 'dataset' in dataset:
        dataset = dataset.dataset
    return dataset


def dataset_split(loader_cfg: ConfigDict) -> Optional[str]:
    """The ``split`` a dataloader config reads (None: all samples)."""
    return _annotated_dataset(loader_cfg).get('split')


def build_split_dataloader(cfg: Config,
                           loader: str = 'val_dataloader',
                           split: Optional[str] = None,
                           seed: int = 0):
    """Build ``cfg[loader]`` with mmengine's ``Runner.build_dataloader``.

    Args:
        cfg (Config): The full config.
        loader (str): Dataloader field. Defaults to ``'val_dataloader'``.
        split (str, optional): Override of ``dataset.split``. Defaults to
            None.
        seed (int): Seed of the dataloader's workers. Defaults to 0.

    Returns:
        DataLoader: The dataloader.
    """
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    init_default_scope(cfg.get('default_scope', 'mmaction'))
    return Runner.build_dataloader(
        split_loader_cfg(cfg, loader, split), seed=seed)


def load_model(cfg: Config,
               checkpoint: str,
               device: str = 'cpu') -> Tuple[nn.Module, bool]:
    """Build the config's recognizer and load a checkpoint into it.

    The config must train with :class:`DiffusionAugmentedHead` (its
    ``pool_features`` gives the features). A checkpoint without the
    diffusion (a baseline's, or one made by
    ``tools/export_inference_ckpt.py``) loads too: it gives real features
    only.

    Args:
        cfg (Config): The full config.
        checkpoint (str): Checkpoint path.
        device (str): Where the model runs. Defaults to ``'cpu'``.

    Returns:
        tuple: The recognizer in eval mode, and whether the checkpoint holds
        the diffusion (so features can be generated).

    Raises:
        ConfigError: If the head is not a ``DiffusionAugmentedHead``, or
            the checkpoint is corrupt or does not fit the model.
    """
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    from ..engine.checkpoint_match import (check_checkpoint_matches,
                                           is_training_only, state_dict_of)
    from ..models.heads import DiffusionAugmentedHead

    init_default_scope(cfg.get('default_scope', 'mmaction'))
    model = MODELS.build(cfg.model)
    if not isinstance(model.cls_head, DiffusionAugmentedHead):
        raise ConfigError(
            f'model.cls_head is {type(model.cls_head).__name__}, but '
            'features are read through DiffusionAugmentedHead: use the '
            'CoCoDiff config of the same model (a baseline checkpoint loads '
            'into it, e.g. configs/ctrgcn_cocodiff_ntu60_xsub.py for '
            'configs/ctrgcn_ntu60_xsub.py)')
    state = state_dict_of(check_checkpoint_matches(model, checkpoint))
    model.load_state_dict(state, strict=False)
    can_generate = all(key in state for key in model.state_dict()
                       if is_training_only(key))
    return model.to(device).eval(), can_generate


class _Batches:
    """A dataloader seen through a progress bar (keeps ``batch_size`` and
    ``len`` for :meth:`PooledFeatureCache.extract`)."""

    def __init__(self, dataloader, progress: Optional[Progress]) -> None:
        self.dataloader = dataloader
        self.progress = progress
        self.batch_size = dataloader.batch_size

    def __len__(self) -> int:
        return len(self.dataloader)

    def __iter__(self):
        batches = iter(self.dataloader)
        if self.progress is not None:
            batches = self.progress(batches, len(self.dataloader),
                                    'features')
        return iter(batches)


@torch.no_grad()
def extract_features(model: nn.Module,
                     dataloader,
                     generate: bool = True,
                     seed: int = 0,
                     chunk_size: int = 512,
                     progress: Optional[Progress] = None) -> FeatureSet:
    """Real (and generated) pooled features and the classifier's scores.

    Args:
        model (nn.Module): Recognizer with a :class:`DiffusionAugmentedHead`
            (e.g. from :func:`load_model`); run in eval mode, left as found.
        dataloader (DataLoader): One clip per sample (a multi-clip test
            pipeline gives several features per label and is refused).
        generate (bool): Also generate one feature per real one. Defaults
            to True.
        seed (int): Seed of the generation noise (and the text draws).
            Everything runs in a forked RNG: the global random state is
            left unchanged. Defaults to 0.
        chunk_size (int): Real features per generation call. Defaults to
            512.
        progress (Progress, optional): Progress-bar wrapper of the
            extraction and generation loops. Defaults to None.

    Returns:
        FeatureSet: Everything on the CPU.

    Raises:
        ConfigError: If the dataloader yields several clips per sample.
    """
    from ..engine.feature_cache import PooledFeatureCache

    was_training = model.training
    head = model.cls_head
    device = next(model.parameters()).device
    # The dataloader draws from the global RNG too: fork it for all of it.
    with torch.random.fork_rng(
            devices=[device] if device.type == 'cuda' else []):
        model.eval()
        try:
            try:
                cache = PooledFeatureCache.extract(
                    model, _Batches(dataloader, progress))
            except ValueError as error:
                raise ConfigError(
                    f'{error}: the dataloader gives several clips per '
                    'sample (a multi-clip test pipeline); use --loader '
                    'val_dataloader or set its UniformSampleFrames '
                    'num_clips=1') from None
            real, labels = cache.pooled, cache.labels
            generated = None
            if generate:
                torch.manual_seed(seed)
                generated = _generate(head, real, labels, chunk_size,
                                      progress)
        finally:
            model.train(was_training)
    features = FeatureSet(
        real=real.float().cpu(),
        labels=labels.cpu(),
        real_scores=head.fc(real).float().cpu())
    if generated is not None:
        features.generated = generated.float().cpu()
        features.generated_scores = head.fc(generated).float().cpu()
    return features


def _generate(head: nn.Module, real: torch.Tensor, labels: torch.Tensor,
              chunk_size: int, progress: Optional[Progress]) -> torch.Tensor:
    """Generated features for ``real``, chunk by chunk (global RNG)."""
    head.text_bank.build()
    starts = range(0, len(real), chunk_size)
    if progress is not None:
        starts = progress(starts, len(starts), 'generation')
    return torch.cat([
        head.generate_from_pooled(real[start:start + chunk_size],
                                  labels[start:start + chunk_size])
        for start in starts
    ])


def _nan_to_none(values: np.ndarray) -> list:
    """A float array as a JSON list (NaN: ``None``)."""
    return [None if np.isnan(value) else float(value) for value in values]


def summarize_features(features: FeatureSet,
                       num_classes: int,
                       div_pairs: int = 200,
                       seed: int = 0) -> Dict:
    """The numbers of a feature set (for the JSON report).

    DIV (:func:`~.feature_diagnostics.diversity`) of the real and of the
    generated features each draw their pairs from a fresh
    ``torch.Generator().manual_seed(seed)``, so the value can be recomputed
    from the features alone, and both sets use the same pairs of indices.

    Args:
        features (FeatureSet): The features and scores.
        num_classes (int): Number of classes K.
        div_pairs (int): Pairs of the DIV estimate. Defaults to 200.
        seed (int): Seed of the DIV pairs. Defaults to 0.

    Returns:
        dict: ``num_samples``, ``accuracy``, ``div_real``,
        ``class_mean_distances`` (``real``: own, nearest_other, ratio),
        ``per_class_accuracy`` (``real``; a list with None for classes
        without samples) and ``confusion_matrix`` (K x K counts of the
        real features' predictions; rows: true class); with generated
        features also ``accuracy_generated`` (class faithfulness),
        ``div_generated``, and ``generated`` entries in the two dicts.
    """
    real, labels = features.real, features.labels
    means = class_means(real, labels, num_classes)
    matrix = confusion_matrix(features.real_scores.argmax(1).numpy(),
                              labels.numpy(), num_classes)
    summary = dict(
        num_samples=len(real),
        feature_dim=int(real.shape[1]),
        accuracy=accuracy(features.real_scores, labels),
        div_real=diversity(real, div_pairs,
                           torch.Generator().manual_seed(seed)),
        class_mean_distances=dict(
            real=class_mean_distances(real, labels, means)),
        per_class_accuracy=dict(real=_nan_to_none(per_class_accuracy(matrix))),
        confusion_matrix=matrix.tolist())
    if features.generated is not None:
        generated = features.generated
        gen_matrix = confusion_matrix(
            features.generated_scores.argmax(1).numpy(), labels.numpy(),
            num_classes)
        summary['accuracy_generated'] = accuracy(features.generated_scores,
                                                 labels)
        summary['div_generated'] = diversity(
            generated, div_pairs, torch.Generator().manual_seed(seed))
        summary['class_mean_distances']['generated'] = class_mean_distances(
            generated, labels, means)
        summary['per_class_accuracy']['generated'] = _nan_to_none(
            per_class_accuracy(gen_matrix))
    return summary
