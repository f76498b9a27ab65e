"""Workloads: who sends requests, and how often."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from capsim.dists import Distribution, Exponential
from capsim.errors import check_int, check_number, fail
from capsim.model.profiles import Profile


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
