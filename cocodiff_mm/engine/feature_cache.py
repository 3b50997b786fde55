"""Pooled features of a frozen GCN, extracted once for stage 1."""
from typing import Iterator, Tuple

import torch
import torch.nn as nn
from torch.utils.data import DataLoader


class PooledFeatureCache:
    """Pooled (N, C) features and labels, served in shuffled batches.

    Stage 1 trains only the diffusion part on a frozen GCN, so the GCN's
    features do not change: one pass over the training data replaces one
    backbone pass per iteration. The cache serves as many batches per epoch
    as the training dataloader, so iteration-based schedules and logs line
    up.

    Args:
        pooled (Tensor): Pooled features (N, C).
        labels (Tensor): Labels (N,).
        batch_size (int): Samples per batch.
        num_batches (int): Batches per epoch (the dataloader's length).
    """

    def __init__(self, pooled: torch.Tensor, labels: torch.Tensor,
                 batch_size: int, num_batches: int) -> None:
        if len(pooled) != len(labels) or len(pooled) == 0:
            raise ValueError('feature cache needs as many labels as '
                             f'features (> 0), got {len(pooled)} and '
                             f'{len(labels)}')
        self.pooled = pooled
        self.labels = labels
        self.batch_size = batch_size
        self.num_batches = num_batches

    def __len__(self) -> int:
        return self.num_batches

    @classmethod
    @torch.no_grad()
    def extract(cls, model: nn.Module,
                dataloader: DataLoader) -> 'PooledFeatureCache':
        """Run the (frozen, eval-mode) backbone once over ``dataloader``.

        Args:
            model (nn.Module): Unwrapped ``RecognizerGCN`` with a
                :class:`DiffusionAugmentedHead`.
            dataloader (DataLoader): The training dataloader.

        Returns:
            PooledFeatureCache: The cache.
        """
        was_training = model.training
        model.eval()
        pooled, labels = [], []
        head = model.cls_head
        for data_batch in dataloader:
            data = model.data_preprocessor(data_batch, training=False)
            feats, _ = model.extract_feat(data['inputs'])
            pooled.append(head.pool_features(feats))
            labels.append(head.labels_of(data['data_samples'], feats.device))
        model.train(was_training)
        return cls(
            torch.cat(pooled),
            torch.cat(labels),
            batch_size=dataloader.batch_size or len(pooled[0]),
            num_batches=len(dataloader))

    def batches(self, seed: int) -> Iterator[Tuple[torch.Tensor,
                                                   torch.Tensor]]:
        """Shuffled batches for one epoch, reproducible from ``seed``."""
        generator = torch.Generator().manual_seed(seed)
        count = len(self.pooled)
        order = torch.cat([
            torch.randperm(count, generator=generator)
            for _ in range(-(-self.num_batches * self.batch_size // count))
        ]).to(self.pooled.device)
        for index in range(self.num_batches):
            chosen = order[index * self.batch_size:(index + 1) *
                           self.batch_size]
            yield self.pooled[chosen], self.labels[chosen]
