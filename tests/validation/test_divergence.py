"""The run-side divergence check: its false-alarm rate on stable systems near saturation and
its detection rate on systems that diverge where the model's lower bound cannot see it.

A false alarm turns a stable system's finite answer into inf; a miss reports a finite mean
for a queue that grows without bound. Both are measured over independent seeds.
"""

from __future__ import annotations

import warnings

import pytest

import capsim as cs
from tests.test_stability import DIVERGING

SEEDS = 20


def _queue(rho: float, servers: int = 1, service=None):
    st = service or cs.Exponential(mean=1.0)
    system = cs.System([cs.Service("q", servers=servers, service_time=st)],
                       flows=[cs.Flow("f", weight=1.0, steps=[cs.Call("q")])])
    return system, cs.OpenWorkload(users=rho * servers, requests_per_user_s=1.0)


STABLE = {
    "M/M/1 rho .9": _queue(0.9),
    "M/M/1 rho .95": _queue(0.95),
    "M/M/4 rho .9": _queue(0.9, 4),
    "M/LN/1 cv 2 rho .9": _queue(0.9, 1, cs.LogNormal(mean=1.0, cv=2.0)),
}


@pytest.mark.parametrize("name", list(STABLE))
@pytest.mark.parametrize("duration_s", [1_000, 4_000])
def test_no_false_alarm_on_stable_systems_near_saturation(name, duration_s):
    """1,000 s is under three relaxation times at rho .9 (the tail rows are inadequate), and
    still no run may be called diverging."""
    system, load = STABLE[name]
    flagged = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cs.RunLengthWarning)
        for seed in range(SEEDS):
            run = cs.simulate(system, load, duration_s=duration_s,
                              warmup_s=duration_s / 10, seed=seed)
            if not run.stable:
                flagged.append((seed, run.components()["instability"].iloc[0]))
    assert not flagged, f"{name}: {len(flagged)}/{SEEDS} stable runs flagged: {flagged}"


@pytest.mark.parametrize("make", DIVERGING, ids=lambda f: f.__name__)
def test_every_diverging_run_is_detected(make):
    system, load, culprit = make()
    missed = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cs.RunLengthWarning)
        for seed in range(5):
            run = cs.simulate(system, load, duration_s=240, warmup_s=24, seed=100 + seed)
            if culprit not in run.unstable_components:
                missed.append(seed)
    assert not missed, f"{make.__name__}: diverging runs called stable for seeds {missed}"
