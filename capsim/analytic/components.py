"""The web components in the analytic twin: cache hit ratios, step counts, topic consumers.

* **Hit ratios.** A fixed ``hit_ratio`` (Cache or CDN) is a routing probability: exact. An LRU
  over Zipf-popular keys uses Che's approximation (``popularity.che_hit_ratio``). The engine's
  TTL counts from insertion (a hit does not renew it) and an ``invalidate_on_write`` Write drops
  the key, so neither is a cap on Che's characteristic time: each key's stay in the cache is
  taken as the shortest of its LRU lifetime (an exponential with Che's mean
  ``(exp(p T) - 1) / p`` requests), its TTL and the next write to it, and the key's hit
  probability is ``n / (1 + n)`` with ``n`` the hits per stay; ``T`` again fills the cache.
  Without TTL and writes this is Che's formula exactly. The TTL (in requests) depends on the
  cache's read rate, which depends on the hit ratios upstream: a fixed point.
* **Consumers with retention.** A consumer is one server fed by its partitions; a message that
  would wait longer than ``retention_s`` is lost unread. That is M/M/1 with deterministic
  impatience (Barrer): the virtual waiting time ``V`` has an atom ``P0`` at 0, density
  ``lambda P0 exp(-(mu - lambda) v)`` below the patience ``D`` and
  ``lambda P0 exp(lambda D - mu v)`` above; messages arriving at ``V > D`` are lost. Exact for
  exponential service (an approximation with the mean otherwise) and stable at any load.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from capsim.model import Database, MessageQueue, Service
from capsim.model import lowering as low
from capsim.model.lowering import StepRates, hit_ratios
from capsim.model.popularity import lru_hit_ratio

__all__ = [
    "Retention",
    "StepRates",
    "hit_ratios",
    "lru_hit_ratio",
    "mm1_retention",
    "round_robin_groups",
    "step_rates",
]


# ------------------------------------------------------------------------------ step counts


def step_rates(system, hit: dict[str, float]) -> StepRates:
    """The model's step counts with the twin's hit ratios (Che, TTL, invalidation)."""
    return low.step_rates(system, lambda c: hit[c.name])


# ------------------------------------------------------------------------------- hit ratios


# ------------------------------------------------------------------------------- balancing


def round_robin_groups(system) -> dict[str, int]:
    """Stations fed by a round-robin pick among ``n`` (instances, a shard's replicas): n."""
    out: dict[str, int] = {}
    for c in system.components:
        if isinstance(c, Service) and c.instances > 1 and c.balancing == "round_robin":
            out.update(dict.fromkeys(low.instance_names(c), c.instances))
        elif isinstance(c, Database) and c.read_replicas > 1 and c.read_policy == "round_robin":
            for shard in low.database_names(c):
                out.update(dict.fromkeys(shard[1:], c.read_replicas))
    return out


def even_split_policies(system) -> list[str]:
    """Components whose state-dependent balancing the twin treats as an even random split."""
    out = []
    for c in system.components:
        if isinstance(c, Service) and c.instances > 1 and c.balancing in (
                "least_connections", "power_of_two"):
            out.append(f"{c.name} ({c.balancing})")
        elif isinstance(c, Database) and c.read_replicas > 1 and c.read_policy in (
                "least_connections", "power_of_two"):
            out.append(f"{c.name} replicas ({c.read_policy})")
    return out


def message_queues(system) -> list[MessageQueue]:
    return [c for c in system.components if isinstance(c, MessageQueue)]


# ------------------------------------------------------------------- consumers with retention


@dataclass(frozen=True)
class Retention:
    """M/M/1 with deterministic patience ``D``: loss, and the wait of the messages served."""

    arrival_rate: float
    mean_service: float
    patience: float
    p0: float  # P(V = 0): server idle
    p_below: float  # P(0 < V <= D)
    loss: float  # P(V > D): lost unread
    trunc_mean: float  # E[V | 0 < V <= D]
    trunc_m2: float
    theta: float  # mu - lambda

    @property
    def throughput(self) -> float:
        return self.arrival_rate * (1.0 - self.loss)

    @property
    def utilization(self) -> float:
        return self.throughput * self.mean_service

    @property
    def mean_wait(self) -> float:
        """Mean wait of a message that is served."""
        return self.p_below * self.trunc_mean / max(1.0 - self.loss, 1e-300)

    @property
    def wait_var(self) -> float:
        acc = max(1.0 - self.loss, 1e-300)
        m2 = self.p_below * self.trunc_m2 / acc
        return max(m2 - self.mean_wait**2, 0.0)

    @property
    def mean_virtual_wait(self) -> float:
        """Time-average wait of all messages (the lost ones wait V too before they go)."""
        mu = 1.0 / self.mean_service
        return self.p_below * self.trunc_mean + self.loss * (self.patience + 1.0 / mu)

    @property
    def mean_queue_length(self) -> float:
        return self.arrival_rate * self.mean_virtual_wait

    def wait_cdf(self) -> Callable[[np.ndarray], np.ndarray]:
        """P(wait <= x) of a served message."""
        acc = max(1.0 - self.loss, 1e-300)
        atom, body = self.p0 / acc, self.p_below / acc
        theta, d = self.theta, self.patience

        def cdf(x: np.ndarray) -> np.ndarray:
            x = np.clip(np.asarray(x, float), 0.0, d)
            if abs(theta * d) < 1e-9:
                frac = x / d
            elif theta > 0:
                frac = np.expm1(-theta * x) / math.expm1(-theta * d)
            else:
                a = -theta
                frac = np.exp(a * (x - d)) * np.expm1(-a * x) / math.expm1(-a * d)
            return np.minimum(atom + body * frac, 1.0)

        return cdf


def _truncated_exponential(theta: float, d: float) -> tuple[float, float, float]:
    """log of int_0^d exp(-theta v) dv, and the mean and second moment of that density."""
    if abs(theta * d) < 1e-9:
        return math.log(d), d / 2.0, d * d / 3.0
    a = abs(theta)
    tail = 1.0 / math.expm1(a * d) if a * d < 700 else 0.0
    m1 = 1.0 / a - d * tail  # rate-a truncated exponential on [0, d]
    m2 = 2.0 / a**2 - (d * d + 2.0 * d / a) * tail
    if theta > 0:
        return math.log(-math.expm1(-a * d)) - math.log(a), m1, m2
    # density grows towards d: mirror u = d - v
    return a * d + math.log(-math.expm1(-a * d)) - math.log(a), d - m1, d * d - 2 * d * m1 + m2


def mm1_retention(arrival_rate: float, mean_service: float, patience: float) -> Retention:
    """M/M/1 + D (deterministic impatience), in log space so that any load is safe."""
    lam, s, d = float(arrival_rate), float(mean_service), float(patience)
    mu = 1.0 / s
    theta = mu - lam
    if lam <= 0:
        return Retention(lam, s, d, 1.0, 0.0, 0.0, 0.0, 0.0, theta)
    log_a, m1, m2 = _truncated_exponential(theta, d)
    logs = np.array([0.0, math.log(lam) + log_a, math.log(lam * s) - theta * d])
    p0, p_below, loss = np.exp(logs - special.logsumexp(logs))
    return Retention(lam, s, d, float(p0), float(p_below), float(loss), m1, m2, theta)
