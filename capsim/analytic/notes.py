"""The caveats an ``AnalyticResult`` carries: which numbers are exact, which approximate.

Each note names the approximation the twin made for this model (QNA, holding surrogates,
balancing taken as random splits, Che's cache approximation...) and where; outages,
autoscalers, timeouts and retries, which the twin leaves out, are said so.
"""

from __future__ import annotations

from capsim.analytic import components as comp
from capsim.analytic.pools import pool_notes
from capsim.analytic.shedding import shedding_notes
from capsim.dists import Exponential
from capsim.model import Cache, Call, Database
from capsim.model.flows import _walk
from capsim.model.workload import PEAK_WINDOW_S, OpenWorkload

__all__ = ["component_notes", "discipline_notes", "open_notes"]




def open_notes(system, workload, stations, states, markov, hit, routes,
               hosts=None) -> tuple[str, ...]:
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
    notes += discipline_notes(system, stations, states, hosts or {}, closed=False)
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
        notes.append("timeouts and retries (and breakers, backoff, retry budgets) are not "
                     "modelled (one attempt per call, never abandoned nor failed fast): "
                     + ", ".join(guarded))
    notes += pool_notes(system, workload)  # connection pools, bulkheads
    # rate limits, lossy hops, queue deadlines, latency spikes
    notes += shedding_notes(system, closed=not isinstance(workload, OpenWorkload))
    return notes


def discipline_notes(system, stations, states, hosts, closed: bool,
                     users: float = float("inf")) -> list[str]:
    """How the twin serves processor sharing, priorities and shared hosts, and where exactly
    (``users``: a closed workload's population, which bounds the requests at a station)."""
    notes = []
    ps = [n for n, st in stations.items() if st.ps and not st.consumer]
    if ps:
        if closed:
            notes.append("processor sharing is product form: MVA as for exponential FCFS "
                         "(multi-core = load-dependent), exact for any service distribution; a "
                         "visit's response is its own service x the station's mean slowdown: "
                         + ", ".join(ps))
            capped = [n for n in ps if stations[n].max_concurrency is not None]
            if capped:
                notes.append("max_concurrency in a closed workload: the wait for admission is "
                             "not split out (the row's wait is 0, its response holds it): "
                             + ", ".join(capped))
        else:
            inexact = [n for n in ps if not states[n].exact]
            line = ("processor sharing: a visit takes its own service x (1 + C(c, a) / "
                    "(c (1 - rho))) (M/G/c-PS is insensitive: exact means for Poisson "
                    "arrivals without a cap, and with a max_concurrency cap >= c under "
                    "exponential service; the requests beyond the cap wait FIFO): "
                    + ", ".join(ps))
            if inexact:
                line += ("; approximate (non-Poisson arrivals: queueing part x (ca2 + 1) / 2; "
                         "a cap with non-exponential or mixed service; slots held across "
                         "calls: an FCFS pool of the cap) at: " + ", ".join(inexact))
            notes.append(line)
            notes.append("percentiles under processor sharing stretch each visit's own service "
                         "by a gamma slowdown with the mean slowdown (E[T | x] = x stretch, "
                         "exact in mean for M/G/1-PS) and M/M/1-PS's second moment: tails are "
                         "an approximation (-4..-10% on the p99 in the validation): "
                         + ", ".join(ps))
    prio = [n for n, st in stations.items() if st.priority]
    if prio:
        if closed:
            notes.append("non-preemptive priority in a closed workload: MVA solves the station "
                         "as FCFS (throughput and the station's mean wait), and the wait is "
                         "split over the priority classes by M/M/c's priority/FCFS ratios, "
                         "keeping its rate-weighted mean (approximation): " + ", ".join(prio))
        else:
            exact = [n for n in prio if states[n].exact]
            approx = [n for n in prio if not states[n].exact]
            line = ("non-preemptive priority: per priority class (a flow's priority, flows "
                    "without one last) Cobham's M/G/1 waits with the classes' own service "
                    "(one server), M/M/c's (Cobham, Davis; exponential service equal for all "
                    "classes), else the G/G/c FCFS wait x M/M/c's priority/FCFS ratio; the "
                    "station's wait is their rate-weighted mean")
            if exact:
                line += "; exact (Poisson arrivals) at: " + ", ".join(exact)
            if approx:
                line += "; approximate at: " + ", ".join(approx)
            notes.append(line)
            notes.append("percentiles at priority stations scale the FCFS wait's shape to each "
                         "class's mean wait (approximation): " + ", ".join(prio))
    for h in system.hosts:
        on = [n for n, st in stations.items() if st.host == h.name]
        if not on:
            continue
        if closed:
            notes.append(f"host {h.name} ({h.cores} cores x speed {h.speed:g}): a "
                         "load-dependent station of its cores (processor sharing, product "
                         "form) with the hosted work / speed as demand; the stations on it ("
                         + ", ".join(on) + ") respond in their work / speed x the host's "
                         "slowdown. Their threads are ignored by MVA; they can bind only where "
                         "servers < users: " + (", ".join(
                             n for n in on if stations[n].servers < users) or
                             "none here"))
            continue
        hs = hosts.get(h.name)
        rho = f"rho_host = {hs.rho:.4g}" if hs is not None else ""
        bind = [n for n in on if not states[n].exact]
        line = (f"host {h.name} ({h.cores} cores x speed {h.speed:g}, {rho}): processor "
                "sharing of its cores by every station on it (" + ", ".join(on) + "); a "
                "visit's work takes work / speed x (1 + C(c, a) / (c (1 - rho_host))) "
                "(M/M/c-PS, insensitive), and the threads (servers) are an FCFS pool with "
                "that time plus any held calls as service (G/G/c). Exact means for Poisson "
                "arrivals while the threads do not bind; the jobs on the cores are not capped "
                "by the threads (the slowdown is overstated where they bind)")
        if bind:
            line += "; approximate at: " + ", ".join(bind)
        notes.append(line)
    return notes

