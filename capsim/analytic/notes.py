"""The caveats an ``AnalyticResult`` carries: which numbers are exact, which approximate.

Each note names the approximation the twin made for this model (QNA, holding surrogates,
balancing taken as random splits, Che's cache approximation...) and where; outages,
autoscalers, timeouts and retries, which the twin leaves out, are said so.
"""

from __future__ import annotations

from capsim.analytic import components as comp
from capsim.dists import Exponential
from capsim.model import Cache, Call, Database
from capsim.model.flows import _walk
from capsim.model.workload import PEAK_WINDOW_S

__all__ = ["component_notes", "open_notes"]




def open_notes(system, workload, stations, states, markov, hit, routes) -> tuple[str, ...]:
    notes = []
    queueing = [n for n, st in stations.items() if not st.delay]
    inexact = [n for n in queueing if not states[n].exact]
    if markov:
        head = ("Poisson arrivals, exponential service: per-station means are exact "
                "(product form); M/M/c/K is exact for one finite station, approximate when "
                "drops upstream thin (and un-Poisson) its arrivals")
        if inexact:
            head += ("; approximate (not product form: holding, service mixtures, round-robin "
                     "splits, or their non-Poisson output downstream) at: " + ", ".join(inexact))
        notes.append(head)
    else:
        notes.append("non-Markovian model: G/G/c waits by Allen-Cunneen with QNA-propagated "
                     "arrival scv (approximation; exact only for M/G/1 at a Poisson-fed station)")
        if any(s.queue_capacity is not None and not isinstance(s.service, Exponential)
               for s in stations.values()):
            notes.append("finite queues with non-exponential service use M/M/c/K (approximation)")
    notes += component_notes(system, workload, stations, states, hit, routes)
    notes.append("percentiles convolve independent per-station sojourn times (exact for one "
                 "M/M/c station and M/M/1 tandems; an approximation otherwise)")
    return tuple(notes)


def component_notes(system, workload, stations, states, hit, routes) -> list[str]:
    """What the twin does with delays, holding, mixtures, balancing, caches, queues, outages."""
    notes = []
    delays = [n for n, st in stations.items() if st.delay]
    if delays:
        notes.append("delays are infinite-server stations (no queue; response = latency, exact "
                     "for any distribution; utilization 0): " + ", ".join(delays))
    holders = [n for n, s in states.items() if s.holds]
    if holders:
        notes.append("holding calls: approximation (layered queueing, method of surrogates): a "
                     "worker stays busy for its own service plus the responses of the calls it "
                     "makes, solved as a fixed point; utilization and offered load include that "
                     "holding time at: " + ", ".join(holders) + ". It treats successive holding "
                     "times as independent and the calls as open (Poisson) traffic: the holder's "
                     "own wait is understated when the downstream is bursty (about -25% in "
                     "validation; its response about -2%), and the downstream waits are "
                     "overstated, the more so the smaller the holding pool (a pool of c "
                     "workers never has more than c calls in flight): +13% under 12 workers, "
                     "+50% under 2")
        bursty = sorted({n for route in routes for i, v in enumerate(route.calls) if v.holds
                         for h in route.calls[i + 1:i + 1 + v.holds]
                         if states[h.component].mixed for n in [v.component]})
        if bursty:
            notes.append("holding over a station with mixed service times (e.g. scans among "
                         "index reads): a slow visit ties up many workers at once, which the "
                         "surrogate misses; the holder's wait and the flows' latency can be "
                         "badly understated at: " + ", ".join(bursty))
    mixed = [n for n, s in states.items() if s.mixed]
    if mixed:
        notes.append("service-time mixtures (e.g. unindexed scans among index reads) enter as "
                     "their mean and scv (Allen-Cunneen; exact M/G/1 for one Poisson-fed "
                     "server): " + ", ".join(mixed))
    rr = sorted({st.component for st in stations.values() if st.split > 1})
    if rr:
        notes.append("round-robin balancing: each of n stations gets every n-th request "
                     "(arrival scv / n; QNA approximation): " + ", ".join(rr))
    even = comp.even_split_policies(system)
    if even:
        notes.append("least-connections / power-of-two balancing approximated as even random "
                     "splits (pessimistic: they balance better): " + ", ".join(even))
    dbs = [c.name for c in system.components if isinstance(c, Database)
           and (c.read_replicas or c.shards > 1)]
    if dbs:
        notes.append("databases: reads split evenly over a shard's replicas (the primary when "
                     "none), shards by weight, writes to the shard's primary: " + ", ".join(dbs))
    for c in system.components:
        if isinstance(c, Cache) and c.dynamic:
            how = "Che's approximation (LRU over Zipf keys)"
            if c.ttl_s is not None or c.invalidate_on_write:
                how += (", TTL from insertion and invalidating writes by a per-key lifetime "
                        "(approximation)")
            notes.append(f"cache {c.name}: hit ratio {hit[c.name]:.4g} by {how}; a cold start "
                         "and stale reads are not modelled")
    for q in comp.message_queues(system):
        line = (f"queue {q.name}: each of {q.consumers} consumers is one server fed by its "
                f"partitions' share {tuple(round(s, 4) for s in q.partition_share())} of the "
                "messages (partition affinity, not a pooled queue)")
        if q.retention_s is not None:
            line += ("; retention as M/M/1 with deterministic impatience (exact for exponential "
                     "consumers, approximate otherwise)")
        notes.append(line)
    if system.outages:
        notes.append("outages are not modelled: the twin is the steady state without them (" +
                     ", ".join(f"{o.component} at {o.start_s:g} s for {o.duration_s:g} s"
                               for o in system.outages) + ")")
    if getattr(workload, "profile", None) is not None:
        notes.append(f"time-varying profile: solved at its busiest {PEAK_WINDOW_S:g} s "
                     "(the rate the simulation judges stability at), not at the base rate")
    scalers = getattr(system, "autoscalers", ())
    if scalers:
        notes.append("autoscalers are not modelled: solved with every instance of the pool "
                     "serving (" + ", ".join(a.component for a in scalers) + ")")
    guarded = sorted({c.component for f in system.flows for c in _walk(f.steps)
                      if isinstance(c, Call) and getattr(c, "guarded", False)})
    if guarded:
        notes.append("timeouts and retries are not modelled (one attempt per call, never "
                     "abandoned): " + ", ".join(guarded))
    return notes
