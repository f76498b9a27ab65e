"""Experiments over many runs: replications, sweeps, saturation search, the result store, and
the load test planned by simulating it first."""

from capsim.experiment.growth import growth, growth_curve
from capsim.experiment.loadtest import LoadTestPlan, plan_load_test
from capsim.experiment.replications import Replications, replicate
from capsim.experiment.retry_storm import retry_storm
from capsim.experiment.saturation import Saturation, SaturationSearch, find_saturation
from capsim.experiment.stats import ci_table, mean_ci
from capsim.experiment.store import NullStore, ResultStore, fingerprint
from capsim.experiment.sweep import SweepResult, sweep
from capsim.experiment.twin import twin_breaks_on, twin_gap, twin_saturation
from capsim.experiment.warmup import detect_warmup, mser

__all__ = [
    "LoadTestPlan",
    "NullStore",
    "Replications",
    "ResultStore",
    "Saturation",
    "SaturationSearch",
    "SweepResult",
    "ci_table",
    "detect_warmup",
    "find_saturation",
    "fingerprint",
    "growth",
    "growth_curve",
    "mean_ci",
    "mser",
    "plan_load_test",
    "replicate",
    "retry_storm",
    "sweep",
    "twin_breaks_on",
    "twin_gap",
    "twin_saturation",
]
