"""What the twin makes of connection pools and bulkheads.

A database behind a pool of ``N`` connections in all (``model.pools.pool_connections``) with
``N <= c`` servers a box is lowered to an ``N``-server station (``model.pools``): its queue is
the wait for a connection, FIFO, so one pool in front of one box is M/M/N exactly (Erlang C)
for Poisson arrivals and exponential queries; a larger pool leaves the box's M/M/c. The
pool's ``max_wait_s`` is the station's deterministic patience: M/M/c + D, solved exactly by
:func:`mmc_patience` (a request that would wait longer than D is never served and delays no
one, so the served ones see the virtual wait below D). Bulkheads are not modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from capsim.analytic.components import Retention, _truncated_exponential
from capsim.dists import Exponential
from capsim.model import Database, Service
from capsim.model.pools import pool_connections
from capsim.model.workload import OpenWorkload

__all__ = ["Patience", "mmc_patience", "patience_state", "pool_notes"]


@dataclass(frozen=True)
class Patience:
    """M/M/c with deterministic patience ``D`` (every request waits at most D, then leaves):
    the share lost, and the wait of the ones served (``served``: an M/M/1 + D record of the
    same shape, whose wait fields hold for c servers too)."""

    servers: int
    loss: float  # P(virtual wait > D): the requests that give up
    p_wait: float  # P(0 < virtual wait <= D): served after a wait
    served: Retention

    @property
    def throughput(self) -> float:
        return self.served.throughput

    @property
    def utilization(self) -> float:
        return self.throughput * self.served.mean_service / self.servers

    @property
    def mean_wait(self) -> float:
        """Mean wait of a request that is served (zeros included)."""
        return self.served.mean_wait

    @property
    def mean_queue_length(self) -> float:
        """Requests waiting: the served for their wait, the lost for their D (Little)."""
        lam, d = self.served.arrival_rate, self.served.patience
        return lam * ((1.0 - self.loss) * self.mean_wait + self.loss * d)


def mmc_patience(arrival_rate: float, mean_service: float, servers: int,
                 patience: float) -> Patience:
    """M/M/c + D, exact. With ``a = lambda / mu`` and ``p_j ~ a^j / j!`` the states with a
    server free (j < c), the virtual wait V of a full system has density
    ``lambda p_{c-1} exp(-(c mu - lambda) v)`` below D and ``lambda p_{c-1} exp(-theta D -
    c mu (v - D))`` above (a request that would wait longer than D adds no work): the loss is
    ``P(V > D) = lambda p_{c-1} exp(-theta D) / (c mu)``, normalized, in log space so that
    any load is safe. D = 0 is Erlang B; c = 1 is ``components.mm1_retention``."""
    lam, s, c, d = float(arrival_rate), float(mean_service), int(servers), float(patience)
    mu = 1.0 / s
    theta = c * mu - lam
    if lam <= 0:
        return Patience(c, 0.0, 0.0, Retention(lam, s, d, 1.0, 0.0, 0.0, 0.0, 0.0, theta))
    j = np.arange(c)
    log_idle = j * math.log(lam * s) - special.gammaln(j + 1)
    if d > 0:
        log_int, m1, m2 = _truncated_exponential(theta, d)
        log_body = math.log(lam) + log_idle[-1] + log_int
    else:
        log_body, m1, m2 = -math.inf, 0.0, 0.0
    log_tail = math.log(lam) + log_idle[-1] - theta * d - math.log(c * mu)
    logs = np.append(log_idle, [log_body, log_tail])
    p = np.exp(logs - special.logsumexp(logs))
    idle, body, loss = float(p[:-2].sum()), float(p[-2]), float(p[-1])
    return Patience(c, loss, body, Retention(lam, s, d, idle, body, loss, m1, m2, theta))


def patience_state(st, lk: float, eff, markov: bool, holds: bool, mixed: bool):
    """The state of a station whose requests wait at most ``st.max_wait_s`` (a binding pool's
    wait for a connection, a service's queue deadline: either way a request that would wait
    longer is never served): M/M/c + D with the visits' effective mean service; exact for
    Poisson arrivals and exponential service, an approximation otherwise. Its queue length
    counts the ones that give up for D each (a pool's timeout)."""
    from capsim.analytic.stations import StationState  # stations calls this

    m, _, own, _, _ = eff
    c = st.servers
    offered, own_load = lk * m / c, lk * own / c
    if not math.isfinite(m):  # a holder whose calls never return
        return StationState(lk, offered, 1.0, 0.0, math.inf, math.inf, math.inf, math.inf,
                            0.0, False, None, 0.0, own_load, False, holds, mixed)
    r = mmc_patience(lk, m, c, st.max_wait_s)
    exact = markov and isinstance(st.service, Exponential) and not holds and not mixed
    if st.max_wait_s > 0:
        cdf, var = r.served.wait_cdf(), r.served.wait_var
    else:
        cdf, var = (lambda x: np.ones_like(x)), 0.0
    lq = r.mean_queue_length
    busy = r.throughput * m
    return StationState(lk, offered, r.utilization, r.throughput, lq, lq + busy, r.mean_wait,
                        r.mean_wait + m, r.loss, True, cdf, var, own_load, exact, holds, mixed)


def pool_notes(system, workload) -> list[str]:
    """What the twin did with each pool, and that bulkheads are left out."""
    notes = []
    open_ = isinstance(workload, OpenWorkload)
    for db in system.components:
        if not isinstance(db, Database) or db.pool is None:
            continue
        pool, n = db.pool, pool_connections(system, db)
        pools = 1 if pool.per == "system" else n // pool.size
        boxes = db.shards * (1 + db.read_replicas)
        if n > db.servers:
            line = (f"pool {db.name}: {n} connections in all, more than a box's {db.servers} "
                    "servers: it never binds before the database's own queue, solved as "
                    "without it")
            if pool.max_wait_s is not None:
                line += "; its max_wait_s timeouts are not modelled"
            notes.append(line)
            continue
        line = (f"pool {db.name}: {n} connections in all (<= a box's {db.servers} servers): "
                f"each box is solved as {n} servers, its queue the wait for a connection")
        if pools == 1 and boxes == 1:
            line += " (exact: one FIFO pool in front of one box)"
        if pools > 1:
            line += (f"; approximate: {pools} pools of {pool.size} (one per caller instance) "
                     "queue apart, taken as one queue (optimistic)")
        if boxes > 1:
            line += (f"; approximate: the pool is shared by {boxes} boxes, each given all "
                     "of it (optimistic)")
        if pool.max_wait_s is not None:
            line += (f"; max_wait_s {pool.max_wait_s:g} s as M/M/c + D (deterministic "
                     "patience, exact for Poisson arrivals and exponential queries)"
                     if open_ else "; its max_wait_s timeouts are not modelled here (no "
                     "impatience in a closed or mixed workload's MVA)")
        notes.append(line)
    heads = [f"{c.name}->{dep} ({k})" for c in system.components if isinstance(c, Service)
             for dep, k in c.bulkheads]
    if heads:
        notes.append("bulkheads are not modelled (no call is rejected; the twin is the system "
                     "without them): " + ", ".join(heads))
    return notes
