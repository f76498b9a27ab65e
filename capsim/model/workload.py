"""Workloads: who sends requests, and how often."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from capsim.dists import Distribution, Exponential
from capsim.errors import ModelError, check_int, check_name, check_number, did_you_mean, fail
from capsim.model.profiles import Profile

PEAK_WINDOW_S = 300.0  # a time-varying load is judged at its busiest five minutes


@dataclass(frozen=True)
class OpenWorkload:
    """Requests arrive from outside at ``users x requests_per_user_s`` per second.

    ``interarrival`` gives only the shape of the gaps (Poisson by default); its mean is set by
    the rate, so a growth sweep changes ``users`` and keeps the shape. A ``profile`` makes the
    rate vary in time (``Diurnal() * Spike(...)``): a non-homogeneous Poisson process.
    ``flows`` names the flows these users run, by their relative weights (all when None).
    """

    users: float
    requests_per_user_s: float
    interarrival: Distribution = field(default_factory=Exponential)
    profile: Profile | None = None
    flows: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_number("OpenWorkload", "users", self.users)
        check_number("OpenWorkload", "requests_per_user_s", self.requests_per_user_s)
        _check_flow_names(self, "OpenWorkload")
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
    """A fixed population: each user sends a request, waits for it, thinks, and repeats.
    ``flows`` names the flows these users run, by their relative weights (all when None)."""

    users: int
    think_time: Distribution = field(default_factory=lambda: Exponential(1.0))
    flows: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_int("ClosedWorkload", "users", self.users, minimum=1)
        _check_flow_names(self, "ClosedWorkload")
        if not isinstance(self.think_time, Distribution):
            raise fail(
                "ClosedWorkload", "think_time", "must be a distribution such as "
                "Exponential(mean=5.0) or Deterministic(0)", self.think_time,
            )

    def with_users(self, users: int) -> ClosedWorkload:
        return replace(self, users=users)


Population = OpenWorkload | ClosedWorkload


@dataclass(frozen=True)
class MixedWorkload:
    """Several user populations on one system at once: browsing users (closed, with think
    time), API clients (open), a batch job (closed, no think time), each running its own
    ``flows``. Results come per flow and per population (``names``; by default each
    population's flows joined with ``+``, or ``open``/``closed``).

    ``with_users(n)`` scales every population together (``n`` is the new total);
    ``with_users(n, population="api")`` changes one, so a growth sweep can grow one class.
    """

    populations: tuple[Population, ...]
    names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        pops = self.populations
        if isinstance(pops, (OpenWorkload, ClosedWorkload)):
            pops = (pops,)
        try:
            pops = tuple(pops)
        except TypeError as exc:
            raise fail("MixedWorkload", "populations", "must be a list of Open/ClosedWorkload",
                       pops) from exc
        if not pops:
            raise fail("MixedWorkload", "populations", "must hold at least one workload", [])
        for i, w in enumerate(pops):
            if not isinstance(w, (OpenWorkload, ClosedWorkload)):
                raise fail("MixedWorkload", f"populations[{i}]", "must be an OpenWorkload or "
                           "ClosedWorkload", w)
        object.__setattr__(self, "populations", pops)
        names = self.names if self.names is not None else _default_names(pops)
        names = tuple(names)
        if len(names) != len(pops):
            raise fail("MixedWorkload", "names", f"must hold {len(pops)} names (one per "
                       "population)", list(names))
        for i, n in enumerate(names):
            check_name("MixedWorkload", f"names[{i}]", n)
        if len(set(names)) != len(names):
            raise fail("MixedWorkload", "names", "must be unique", list(names))
        object.__setattr__(self, "names", names)

    @property
    def users(self) -> float:
        """All users of all populations."""
        return sum(w.users for w in self.populations)

    @property
    def open(self) -> tuple[OpenWorkload, ...]:
        return tuple(w for w in self.populations if isinstance(w, OpenWorkload))

    @property
    def closed(self) -> tuple[ClosedWorkload, ...]:
        return tuple(w for w in self.populations if isinstance(w, ClosedWorkload))

    @property
    def arrival_rate_per_s(self) -> float:
        """Request rate of the open populations (closed ones offer what they complete)."""
        return sum(w.arrival_rate_per_s for w in self.open)

    def judged_rate_per_s(self, duration_s: float | None = None) -> float:
        """The open populations' rates, each at its busiest five minutes (an upper bound of
        their sum's busiest five minutes)."""
        return sum(w.judged_rate_per_s(duration_s) for w in self.open)

    def population(self, name: str) -> Population:
        if name not in self.names:
            did_you = did_you_mean(name, self.names)
            raise ModelError(f"MixedWorkload.population: no population named {name!r}"
                             f"{did_you}; populations: {', '.join(self.names)}")
        return self.populations[self.names.index(name)]

    def with_users(self, users: float, population: str | None = None) -> MixedWorkload:
        """Every population scaled by ``users / self.users`` (closed ones rounded, at least
        1 user), or only ``population`` set to ``users``."""
        if population is not None:
            w = self.population(population)  # an unknown name fails here, with a hint
            i = self.names.index(population)
            new = w.with_users(_users_for(w, users))
            return replace(self, populations=self.populations[:i] + (new,)
                           + self.populations[i + 1:])
        factor = check_number("MixedWorkload", "users", users) / self.users
        return replace(self, populations=tuple(w.with_users(_users_for(w, w.users * factor))
                                               for w in self.populations))


Workload = OpenWorkload | ClosedWorkload | MixedWorkload


@dataclass(frozen=True)
class Share:
    """One population of a workload as the engine and the twin run it: its name, its own
    workload, and the flows it runs with their probabilities (summing to 1)."""

    name: str
    workload: Population
    flows: tuple[str, ...]
    probabilities: tuple[float, ...]


def shares(system, workload: Workload) -> tuple[Share, ...]:
    """The populations of ``workload`` on ``system``, each with the flows it runs (checked
    against the system's flows: an unknown name is an error naming it)."""
    pops = workload.populations if isinstance(workload, MixedWorkload) else (workload,)
    names = workload.names if isinstance(workload, MixedWorkload) else (
        "all" if workload.flows is None else "+".join(workload.flows),)
    owner = "MixedWorkload" if isinstance(workload, MixedWorkload) else type(workload).__name__
    weights = {f.name: f.weight for f in system.flows}
    out = []
    for i, (name, w) in enumerate(zip(names, pops, strict=True)):
        where = f"{owner}.populations[{i}].flows" if isinstance(workload, MixedWorkload) \
            else f"{owner}.flows"
        chosen = tuple(weights) if w.flows is None else w.flows
        for flow in chosen:
            if flow not in weights:
                did_you = did_you_mean(flow, weights)
                raise ModelError(f"{where}: unknown flow {flow!r}{did_you}; the system's "
                                 f"flows: {', '.join(weights)}")
        total = math.fsum(weights[f] for f in chosen)
        out.append(Share(name, w, chosen, tuple(weights[f] / total for f in chosen)))
    return tuple(out)


def weighted_system(system, parts: tuple[Share, ...], rates: list[float]):
    """(system with each flow weighted by the requests all populations send it at these
    request rates, total rate): one population mix as the single workload that offered
    loads, hit ratios and the twin's single-class formulas are judged on."""
    total = math.fsum(rates)
    if total <= 0:
        return system, total
    weight = {f.name: 0.0 for f in system.flows}
    for sh, rate in zip(parts, rates, strict=True):
        for name, q in zip(sh.flows, sh.probabilities, strict=True):
            weight[name] += rate * q / total
    used = tuple(n for n, w in weight.items() if w > 0)
    return system.with_flows(used, tuple(weight[n] for n in used)), total


def open_view(system, workload: Workload, duration_s: float | None = None):
    """(system weighted by the open populations' flows, their judged request rate): the load
    a workload certainly offers (closed populations add to it what they complete)."""
    parts = shares(system, workload)
    rates = [sh.workload.judged_rate_per_s(duration_s) if isinstance(sh.workload, OpenWorkload)
             else 0.0 for sh in parts]
    return weighted_system(system, parts, rates)


def _check_flow_names(w, owner: str) -> None:
    if w.flows is None:
        return
    flows = (w.flows,) if isinstance(w.flows, str) else w.flows
    try:
        flows = tuple(flows)
    except TypeError as exc:
        raise fail(owner, "flows", "must be a list of flow names", w.flows) from exc
    if not flows:
        raise fail(owner, "flows", "must name at least one flow (None runs them all)", [])
    for i, f in enumerate(flows):
        check_name(owner, f"flows[{i}]", f)
    if len(set(flows)) != len(flows):
        raise fail(owner, "flows", "must not repeat a flow", list(flows))
    object.__setattr__(w, "flows", flows)


def _default_names(pops) -> tuple[str, ...]:
    base = ["+".join(w.flows) if w.flows else
            ("open" if isinstance(w, OpenWorkload) else "closed") for w in pops]
    out = []
    for i, b in enumerate(base):
        out.append(b if base.count(b) == 1 else f"{b}#{base[:i + 1].count(b)}")
    return tuple(out)


def _users_for(w: Population, users: float):
    if isinstance(w, ClosedWorkload):
        return max(1, int(round(users)))
    return users
