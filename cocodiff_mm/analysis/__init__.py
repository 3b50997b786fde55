"""Measurements of CoCoDiff runs: training cost against the baseline."""
from .training_cost import (TrainingCostBenchmark, whole_run_estimate,
                            format_report)

__all__ = ['TrainingCostBenchmark', 'whole_run_estimate', 'format_report']
