"""Diagnostics of generated features against real ones (pure tensor maths).

Used by :class:`~cocodiff_mm.engine.hooks.GenerationDiagnosticsHook` during
training and by the study runner's table. The three numbers say whether
generated features can help a classifier:

* **class faithfulness**: how often a classifier assigns a generated feature
  to the class it was generated for;
* **diversity** (DIV, as in Action2Motion, Guo et al. 2020): the mean
  distance between random pairs of features; generated features that
  collapse onto a few points have a DIV far below the real one;
* **class-mean distances**: how far a feature lies from its own class's
  real mean, against the nearest other class's real mean. A ratio near or
  above 1 means generated features sit between classes;
* **hardness**: the classifier's margin on a feature, its own class's
  score minus the best other class's. Generated features with a larger
  margin than real ones are easier than the data; they may teach the
  classifier little that the real clips do not.
"""
from typing import Dict, Optional

import torch


def diversity(features: torch.Tensor,
              num_pairs: int = 200,
              generator: Optional[torch.Generator] = None) -> float:
    """DIV: the mean L2 distance of ``num_pairs`` random feature pairs.

    Action2Motion draws two random subsets of size ``S_d`` (200) and
    averages the distances of their paired members; here each pair is two
    distinct features, drawn with replacement across pairs.

    Args:
        features (Tensor): Features (N, C), N >= 2.
        num_pairs (int): Number of pairs ``S_d``. Defaults to 200.
        generator (torch.Generator, optional): Random source (CPU), for
            reproducible values. Defaults to None.

    Returns:
        float: The diversity.
    """
    count = len(features)
    if count < 2:
        raise ValueError(f'diversity needs at least 2 features, got {count}')
    first = torch.randint(count, (num_pairs, ), generator=generator)
    # An offset in 1..N-1 makes the second member always a different one.
    second = (first + torch.randint(1, count, (num_pairs, ),
                                    generator=generator)) % count
    features = features.float()
    pairs = features[first.to(features.device)] - \
        features[second.to(features.device)]
    return pairs.norm(dim=1).mean().item()


def class_means(features: torch.Tensor, labels: torch.Tensor,
                num_classes: int) -> torch.Tensor:
    """Per-class means (num_classes, C); NaN rows for absent classes."""
    features = features.float()
    sums = torch.zeros(num_classes, features.size(1),
                       device=features.device).index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=num_classes).float()
    return sums / counts[:, None]  # 0/0 = NaN marks an absent class


def class_mean_distances(features: torch.Tensor, labels: torch.Tensor,
                         means: torch.Tensor) -> Dict[str, float]:
    """Distance of each feature to its class's mean and to the nearest
    other class's mean (classes without a mean are ignored).

    Args:
        features (Tensor): Features (N, C).
        labels (Tensor): Their classes (N,).
        means (Tensor): Real class means (num_classes, C), from
            :func:`class_means`.

    Returns:
        dict: ``own`` and ``nearest_other`` (mean distances), and
        ``ratio`` = own / nearest_other.
    """
    distances = torch.cdist(features.float(), means.nan_to_num(0.0))
    distances[:, means.isnan().any(dim=1)] = float('inf')
    own = distances.gather(1, labels[:, None])[:, 0]
    others = distances.scatter(1, labels[:, None], float('inf'))
    nearest_other = others.min(dim=1).values
    own_mean, other_mean = own.mean().item(), nearest_other.mean().item()
    return dict(own=own_mean, nearest_other=other_mean,
                ratio=own_mean / other_mean)


def accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of class scores (N, K)."""
    return (scores.argmax(dim=1) == labels).float().mean().item()


def margin(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean margin of class scores (N, K): each sample's own class's score
    minus the highest score of the other classes (negative: misclassified;
    small: a hard sample)."""
    own = scores.gather(1, labels[:, None]).squeeze(1)
    others = scores.scatter(1, labels[:, None], float('-inf'))
    return (own - others.amax(dim=1)).mean().item()
