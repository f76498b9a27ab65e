"""Workloads: who sends requests, and how often."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from capsim.dists import Distribution, Exponential
from capsim.errors import check_int, check_number, fail
from capsim.model.profiles import Profile

PEAK_WINDOW_S = 300.0  # a time-varying load is judged at its busiest five minutes


@dataclass(frozen=True)
class OpenWorkload:
    """Requests arrive from outside at ``users x requests_per_user_s`` per second.

    ``interarrival`` gives only the shape of the gaps (Poisson by default); its mean is set by
    the rate, so a growth sweep changes ``users`` and keeps the shape. A ``profile`` makes the
    rate vary in time (``Diurnal() * Spike(...)``): a non-homogeneous Poisson process.
    """

    users: float
    requests_per_user_s: float
    interarrival: Distribution = field(default_factory=Exponential)
    profile: Profile | None = None

    def __post_init__(self) -> None:
        check_number("OpenWorkload", "users", self.users)
        check_number("OpenWorkload", "requests_per_user_s", self.requests_per_user_s)
        if not isinstance(self.interarrival, Distribution):
            raise fail("OpenWorkload", "interarrival", "must be a distribution", self.interarrival)
        if self.profile is not None:
            if not isinstance(self.profile, Profile):
                raise fail("OpenWorkload", "profile", "must be a Profile such as Diurnal()",
                           self.profile)
            if not isinstance(self.interarrival, Exponential):
                raise fail("OpenWorkload", "interarrival", "must be Exponential (Poisson) when "
                           "a time-varying profile is given", self.interarrival)

    def mean_rate_per_s(self, t0: float, t1: float) -> float:
        """Average arrival rate over [t0, t1] (the base rate without a profile)."""
        base = self.arrival_rate_per_s
        return base if self.profile is None else base * self.profile.mean(t0, t1)

    def judged_rate_per_s(self, duration_s: float | None = None) -> float:
        """The rate stability is judged at: the base rate, or with a profile the highest mean
        rate over any ``PEAK_WINDOW_S`` window of ``[0, duration_s]`` (a day when not given).

        A peak that outruns capacity for five minutes builds a queue users feel; a burst of a
        few seconds is absorbed. The simulation and the twin both judge at this rate.
        """
        base = self.arrival_rate_per_s
        if self.profile is None:
            return base
        horizon = 86_400.0 if duration_s is None else float(duration_s)
        window = min(PEAK_WINDOW_S, horizon)
        t = np.linspace(0.0, horizon, 20_001)
        m = self.profile.multiplier(t)
        area = np.concatenate(([0.0], np.cumsum(0.5 * (m[1:] + m[:-1]) * np.diff(t))))
        starts = t[t <= horizon - window + 1e-9]
        means = (np.interp(starts + window, t, area) - np.interp(starts, t, area)) / window
        return base * float(means.max())

    @property
    def arrival_rate_per_s(self) -> float:
        return self.users * self.requests_per_user_s

    def interarrival_time(self) -> Distribution:
        """The gap distribution with its mean set to 1 / arrival rate."""
        return self.interarrival.scaled(1.0 / self.arrival_rate_per_s)

    def with_users(self, users: float) -> OpenWorkload:
        return replace(self, users=users)


@dataclass(frozen=True)
class ClosedWorkload:
    """A fixed population: each user sends a request, waits for it, thinks, and repeats."""

    users: int
    think_time: Distribution = field(default_factory=lambda: Exponential(1.0))

    def __post_init__(self) -> None:
        check_int("ClosedWorkload", "users", self.users, minimum=1)
        if not isinstance(self.think_time, Distribution):
            raise fail(
                "ClosedWorkload", "think_time", "must be a distribution such as "
                "Exponential(mean=5.0) or Deterministic(0)", self.think_time,
            )

    def with_users(self, users: int) -> ClosedWorkload:
        return replace(self, users=users)


Workload = OpenWorkload | ClosedWorkload
