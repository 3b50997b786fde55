"""One mean over every rank's samples, for decisions all ranks must share."""
import torch
from mmengine.dist import all_reduce


def mean_over_ranks(value: float, count: int) -> float:
    """The mean of a per-rank mean ``value`` of ``count`` samples over every
    rank's samples, so that all ranks take the same decision from it
    (identity without DDP)."""
    totals = torch.tensor([value * count, float(count)], dtype=torch.float64)
    all_reduce(totals, op='sum')
    return float(totals[0] / totals[1])
