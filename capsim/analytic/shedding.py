"""What the twin makes of rate limits, lossy hops, queue deadlines and latency spikes.

A limit or a lossy hop is a *gate* in front of a component's stations: of the requests that
reach it a share passes (``model.shedding.gates``: the token bucket's exact admission for
Poisson arrivals at it, ``1 - loss`` at a hop), and the rest fail there. The open solver
thins the arrivals at a gated station by its gate before the station (``flow_rates``), so
the station is solved at what it admits and everything after it on a route sees that
much; a request's survival multiplies the gates it passes (``StationState.gate``). A flow's
own limit scales its routes (its rejected requests visit nothing) and adds the rejected
share to its errors (:func:`entry_errors`). Queue deadlines are the stations' ``max_wait_s``
(M/M/c + D, ``analytic.pools``). Spikes, and the retries a lost or rejected request may
trigger, are not modelled; nor is any of it in the closed (MVA) solvers.
"""

from __future__ import annotations

import math
from dataclasses import replace

from capsim.model import Delay, Service
from capsim.model import shedding as model_shedding
from capsim.model.shedding import Gates

__all__ = ["admitted_routes", "entry_errors", "entry_shares", "gates_for", "shedding_notes",
           "smooths", "station_gates"]


def gates_for(system, lam: float, ratio) -> Gates | None:
    """The system's gates at request rate ``lam`` (None: nothing sheds)."""
    return model_shedding.gates(system, lam, ratio) if model_shedding.used(system) else None


def smooths(gates: Gates | None) -> bool:
    """True when a rate limit turns away a noticeable share (1e-9): what it admits is then
    smoother than the Poisson stream it was offered (a token every 1/rate at most)."""
    if gates is None:
        return False
    shares = list(gates.flows.values()) + [a for c, a in gates.components.items()
                                           if c in gates.limited]
    return any(a < 1.0 - 1e-9 for a in shares)


def station_gates(stations, gates: Gates | None) -> dict[str, float]:
    """Per twin station whose component sheds: the share of its arrivals let in."""
    if gates is None:
        return {}
    return {n: gates.components[st.component] for n, st in stations.items()
            if st.component in gates.components}


def admitted_routes(routes, gates: Gates | None):
    """Routes with each flow's probability scaled by the share its own limit admits."""
    if gates is None or not gates.flows:
        return routes
    return tuple(replace(r, probability=r.probability * gates.flows[r.flow])
                 if r.flow in gates.flows else r for r in routes)


def entry_errors(summary: dict, shares: dict) -> dict:
    """Request summaries ``(throughput, mean, error rate, stable, offered rate)`` solved on
    admitted routes, turned back into summaries of everything offered: a label whose
    requests a flow limit admits with share ``a`` offers ``offered / a`` and fails
    ``1 - a (1 - error rate)`` of it."""
    out = dict(summary)
    for label, a in shares.items():
        if label not in out or a >= 1.0:
            continue
        thr, mean, err, stable, offered = out[label]
        err = 1.0 - a * (1.0 - err) if math.isfinite(err) else err
        out[label] = (thr, mean, err, stable, offered / a if a > 0 else math.inf)
    return out


def entry_shares(system, gates: Gates | None, populations=None) -> dict:
    """Per latency label (a flow, "all", ``("population", name)``), the share of its
    requests the flows' own limits admit: its flows' shares, weighted by their traffic."""
    if gates is None or not gates.flows:
        return {}
    from capsim.schema import ALL_FLOWS

    weight = {f.name: f.weight for f in system.flows}
    mixes = {f: {f: w} for f, w in weight.items()}
    if len(weight) > 1:
        mixes[ALL_FLOWS] = weight
    mixes.update({("population", k): mix for k, mix in (populations or {}).items()})
    out = {}
    for label, mix in mixes.items():
        total = sum(mix.values())
        if total > 0:
            out[label] = sum(w * gates.flows.get(f, 1.0) for f, w in mix.items()) / total
    return out


def shedding_notes(system, closed: bool) -> list[str]:
    """What the twin did with limits, deadlines, loss and spikes."""
    notes = []
    limited = [c.name for c in system.components
               if isinstance(c, Service) and c.rate_limit is not None]
    flows = [f.name for f in system.flows if f.rate_limit is not None]
    lossy = [c.name for c in system.components if isinstance(c, Delay) and c.loss > 0]
    deadlines = [c.name for c in system.components
                 if isinstance(c, Service) and c.queue_deadline_s is not None]
    if closed and (limited or flows or lossy):
        notes.append("rate limits and lossy hops are not modelled by the closed solver (MVA): "
                     + ", ".join(limited + [f"flow {f}" for f in flows] + lossy))
    elif limited or flows:
        notes.append("rate limits: token buckets admit the exact long-run share of Poisson "
                     "arrivals (M/D/1 workload with a threshold; approximate for other "
                     "arrivals), the rest are errors and thin what follows, taken as a random "
                     "thinning: a binding limit's smoother output makes the waits downstream "
                     "shorter than the twin says: "
                     + ", ".join(limited + [f"flow {f}" for f in flows]))
    if lossy and not closed:
        notes.append("lossy hops: traffic after them thinned by 1 - loss, the loss an error "
                     "(no retries of lost requests): " + ", ".join(lossy))
    if deadlines:
        notes.append("queue deadlines: M/M/c + D (exact for Poisson arrivals and exponential "
                     "service; a finite queue beside one is M/M/c/K without it; a doomed "
                     "request waits in the simulation until a worker finds it, so the run's "
                     "queue length is larger by the lost rate x 1/(c mu)): "
                     + ", ".join(deadlines))
    if system.spikes:
        notes.append("latency spikes are not modelled: the twin is the steady state without "
                     "them (" + ", ".join(f"{s.component} at {s.start_s:g} s for "
                                          f"{s.duration_s:g} s" for s in system.spikes) + ")")
    return notes
