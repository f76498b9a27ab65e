"""Experiments over many runs: replications with confidence intervals (sweeps come next)."""

from capsim.experiment.replications import Replications, replicate
from capsim.experiment.stats import ci_table, mean_ci
from capsim.experiment.twin import twin_gap

__all__ = ["Replications", "ci_table", "mean_ci", "replicate", "twin_gap"]
