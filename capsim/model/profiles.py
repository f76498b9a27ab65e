"""Arrival-rate profiles: how traffic changes over time (a day, a launch spike, growth).

A profile is a multiplier ``m(t)`` of a workload's base rate ``users x requests_per_user_s``.
The engine draws a non-homogeneous Poisson process from it by thinning (Lewis & Shedler):
candidates at the profile's peak rate, each kept with probability m(t) / m_max.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capsim.errors import ModelError, check_number, fail

DAY_S = 86_400.0
MONTH_S = 30 * DAY_S


@dataclass(frozen=True)
class Profile:
    """Base class: ``multiplier(t)`` (vectorised) and an upper bound on it over a window."""

    def multiplier(self, t):
        raise NotImplementedError

    def peak(self, t0: float, t1: float) -> float:
        """An upper bound of the multiplier over [t0, t1] (thinning needs one)."""
        raise NotImplementedError

    def mean(self, t0: float, t1: float) -> float:
        """Time-average multiplier over [t0, t1] (numerically)."""
        t = np.linspace(t0, t1, 20_001)
        return float(np.trapezoid(self.multiplier(t), t) / (t1 - t0))

    def __mul__(self, other: Profile) -> Product:
        return Product((self, other))


@dataclass(frozen=True)
class Constant(Profile):
    level: float = 1.0

    def __post_init__(self) -> None:
        check_number("Constant", "level", self.level, strict=False)

    def multiplier(self, t):
        return np.full(np.shape(t), self.level, dtype=float)

    def peak(self, t0: float, t1: float) -> float:
        return self.level


@dataclass(frozen=True)
class Diurnal(Profile):
    """A daily cosine: 1 at ``peak_hour``, ``trough`` twelve hours later."""

    trough: float = 0.3
    peak_hour: float = 20.0
    period_s: float = DAY_S

    def __post_init__(self) -> None:
        t = check_number("Diurnal", "trough", self.trough, strict=False)
        if t > 1:
            raise fail("Diurnal", "trough", "must be <= 1 (the peak is 1)", self.trough)
        check_number("Diurnal", "period_s", self.period_s)

    def multiplier(self, t):
        phase = 2 * np.pi * (np.asarray(t, dtype=float) / self.period_s - self.peak_hour / 24)
        return self.trough + (1 - self.trough) * (1 + np.cos(phase)) / 2

    def peak(self, t0: float, t1: float) -> float:
        return 1.0

    def rising_time(self, level: float) -> float:
        """Seconds into the day when the multiplier, rising from the trough to the peak,
        first reaches ``level`` (when a morning ramp crosses an alarm line): the trough's time
        at or below the trough, the peak's for 1, ``inf`` above 1. The cosine inverts in
        closed form, so it is exact (divide users by the peak users to get a level)."""
        level = check_number("Diurnal.rising_time", "level", level, strict=False)
        hour = self.period_s / 24
        peak_s = self.peak_hour * hour
        if level > 1:
            return math.inf
        if level <= self.trough:
            return peak_s - 12 * hour
        cos = 2 * (level - self.trough) / (1 - self.trough) - 1
        return peak_s - math.acos(min(1.0, cos)) / (2 * math.pi) * self.period_s


@dataclass(frozen=True)
class Step(Profile):
    """1 before ``at_s``, ``level`` from then on."""

    at_s: float
    level: float

    def __post_init__(self) -> None:
        check_number("Step", "at_s", self.at_s, strict=False)
        check_number("Step", "level", self.level, strict=False)

    def multiplier(self, t):
        return np.where(np.asarray(t, dtype=float) >= self.at_s, self.level, 1.0)

    def peak(self, t0: float, t1: float) -> float:
        return max(1.0, self.level) if t1 >= self.at_s else 1.0


@dataclass(frozen=True)
class Spike(Profile):
    """A launch campaign: ``level`` x traffic from ``start_s`` for ``duration_s``."""

    start_s: float
    duration_s: float
    level: float

    def __post_init__(self) -> None:
        check_number("Spike", "start_s", self.start_s, strict=False)
        check_number("Spike", "duration_s", self.duration_s)
        check_number("Spike", "level", self.level, strict=False)

    def multiplier(self, t):
        t = np.asarray(t, dtype=float)
        inside = (t >= self.start_s) & (t < self.start_s + self.duration_s)
        return np.where(inside, self.level, 1.0)

    def peak(self, t0: float, t1: float) -> float:
        return max(1.0, self.level)


@dataclass(frozen=True)
class Growth(Profile):
    """Compound growth: ``(1 + monthly)`` per month of simulated time."""

    monthly: float = 0.08
    month_s: float = MONTH_S

    def __post_init__(self) -> None:
        check_number("Growth", "monthly", self.monthly, minimum=-1.0)
        check_number("Growth", "month_s", self.month_s)

    def multiplier(self, t):
        return (1 + self.monthly) ** (np.asarray(t, dtype=float) / self.month_s)

    def peak(self, t0: float, t1: float) -> float:
        return float(max(self.multiplier(t0), self.multiplier(t1)))


@dataclass(frozen=True)
class Piecewise(Profile):
    """Linear interpolation through (time, multiplier) points; flat outside them."""

    times_s: tuple[float, ...]
    levels: tuple[float, ...]

    def __post_init__(self) -> None:
        times = tuple(check_number("Piecewise", f"times_s[{i}]", t, strict=False)
                      for i, t in enumerate(self.times_s))
        levels = tuple(check_number("Piecewise", f"levels[{i}]", v, strict=False)
                       for i, v in enumerate(self.levels))
        if len(times) != len(levels) or not times:
            raise ModelError(f"Piecewise: times_s and levels must be non-empty and of equal "
                             f"length, got {len(times)} and {len(levels)}")
        if any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise fail("Piecewise", "times_s", "must be strictly increasing", list(times))
        object.__setattr__(self, "times_s", times)
        object.__setattr__(self, "levels", levels)

    def multiplier(self, t):
        return np.interp(np.asarray(t, dtype=float), self.times_s, self.levels)

    def peak(self, t0: float, t1: float) -> float:
        inside = [v for t, v in zip(self.times_s, self.levels, strict=True) if t0 <= t <= t1]
        return float(max([*inside, *self.multiplier([t0, t1])]))

    @classmethod
    def from_csv(cls, path: str | Path, time_column: str = "time_s",
                 rate_column: str = "rate_per_s") -> Piecewise:
        """A profile from a CSV of (time, rate): use with users=1, requests_per_user_s=1 so the
        multiplier is the rate itself."""
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or time_column not in rows[0] or rate_column not in rows[0]:
            raise ModelError(f"{path}: needs columns {time_column!r} and {rate_column!r}")
        return cls(tuple(float(r[time_column]) for r in rows),
                   tuple(float(r[rate_column]) for r in rows))


@dataclass(frozen=True)
class Product(Profile):
    """Profiles multiplied: a diurnal day with a launch spike on top."""

    parts: tuple[Profile, ...]

    def multiplier(self, t):
        out = np.ones(np.shape(t))
        for p in self.parts:
            out = out * p.multiplier(t)
        return out

    def peak(self, t0: float, t1: float) -> float:
        return math.prod(p.peak(t0, t1) for p in self.parts)
