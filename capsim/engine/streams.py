"""Random streams: one numpy Generator per stochastic input, derived from a SeedSequence.

Each stream is keyed by a stable name (``"service:db"``, ``"arrivals"``), not by position, so
adding a component to a model leaves every other stream unchanged: what-if variants of a model
see common random numbers, and their differences are the model's, not the dice's.
"""

from __future__ import annotations

import zlib

import numpy as np

from capsim.dists import Distribution

BATCH = 4096


def seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"simulate.seed: must be an int >= 0 or a SeedSequence, got {seed!r}")
    return np.random.SeedSequence(int(seed))


def stream(root: np.random.SeedSequence, key: str) -> np.random.Generator:
    """The generator for input ``key`` under ``root`` (independent of every other key)."""
    child = np.random.SeedSequence(
        entropy=root.entropy, spawn_key=(*root.spawn_key, zlib.crc32(key.encode()))
    )
    return np.random.Generator(np.random.PCG64(child))


class Draws:
    """A refillable buffer of draws: the hot path pops from a list, numpy fills it in bulk."""

    __slots__ = ("buf", "dist", "rng", "size")

    def __init__(self, dist: Distribution, rng: np.random.Generator, size: int = BATCH):
        self.dist, self.rng, self.size = dist, rng, size
        self.buf: list[float] = []

    def refill(self) -> list[float]:
        # reversed so that pop() hands out draws in the order numpy made them
        self.buf.extend(self.dist.sample(self.rng, self.size)[::-1].tolist())
        return self.buf


class Choices:
    """Buffered categorical draws (route picks), same pop-from-a-list trick."""

    __slots__ = ("buf", "p", "rng", "size")

    def __init__(self, probabilities, rng: np.random.Generator, size: int = BATCH):
        p = np.asarray(probabilities, dtype=float)
        self.p, self.rng, self.size = p / p.sum(), rng, size
        self.buf: list[int] = []

    def refill(self) -> list[int]:
        self.buf.extend(self.rng.choice(self.p.size, self.size, p=self.p)[::-1].tolist())
        return self.buf


class ThinnedGaps:
    """Gaps of a non-homogeneous Poisson process by thinning, in batches (same interface as
    ``Draws``): candidates at the peak rate, each kept with probability rate(t) / peak."""

    __slots__ = ("base", "profile", "rng", "horizon", "peak", "t", "last", "buf")

    def __init__(self, base_rate: float, profile, rng: np.random.Generator,
                 horizon_s: float) -> None:
        self.base, self.profile, self.rng, self.horizon = base_rate, profile, rng, horizon_s
        self.peak = base_rate * profile.peak(0.0, horizon_s)
        self.t = 0.0  # last candidate time
        self.last = 0.0  # last accepted time
        self.buf: list[float] = []

    def refill(self) -> list[float]:
        while not self.buf:
            if self.t > self.horizon or self.peak <= 0:
                self.buf.append(float("inf"))  # no more arrivals in this run
                break
            cand = self.t + np.cumsum(self.rng.exponential(1.0 / self.peak, BATCH))
            self.t = float(cand[-1])
            keep = self.rng.random(BATCH) * self.peak < self.base * self.profile.multiplier(cand)
            times = cand[keep]
            if times.size:
                gaps = np.diff(times, prepend=self.last)
                self.last = float(times[-1])
                self.buf.extend(gaps[::-1].tolist())
        return self.buf
