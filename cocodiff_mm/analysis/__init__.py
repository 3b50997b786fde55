"""Measurements of CoCoDiff runs: training cost against the baseline, and
diagnostics of generated features."""
from .feature_diagnostics import (accuracy, class_mean_distances,
                                  class_means, diversity)
from .training_cost import (TrainingCostBenchmark, whole_run_estimate,
                            format_report)

__all__ = [
    'TrainingCostBenchmark', 'whole_run_estimate', 'format_report',
    'accuracy', 'class_mean_distances', 'class_means', 'diversity'
]
