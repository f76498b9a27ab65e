"""The analytic twin of a whole system: ``solve(system, workload) -> AnalyticResult``.

The system is solved as the queueing stations it lowers to (``System.stations()``: a service's
instances, a database's primaries and replicas per shard, a topic's consumers, delays), under
the same names as the simulation's ``components()`` rows.

Open workloads are solved station by station (a queueing network decomposition):

* arrival rate per station ``lambda_k = lambda x visits_k`` from the routes (branches, hit
  ratios, shard and replica choice expanded with their probabilities), thinned by drops
  upstream;
* a delay (``Delay``, a CDN edge, a broker's ack) is an infinite-server station: no wait, its
  response is its latency (exact for any distribution; utilization 0, as the engine reports);
* an unbounded station with Poisson arrivals and exponential service everywhere (a product-form
  network) uses exact M/M/c means; otherwise Allen-Cunneen G/G/c with the arrival scv carried
  along the routes by Whitt's QNA (superposition, splitting, departure scv): an approximation.
  A station visited with several service scales (an unindexed read is ``table_rows /
  scan_rows_per_s`` index lookups) has a mixture service time: its mean and scv enter the
  formulas, each visit's response is the wait plus its own scaled service, and the wait's
  shape (for percentiles) is a three-moment hyperexponential from Takacs' M/G/1 moments;
* a synchronous call made while holding the caller's worker (``Call(..., calls=[...])``) keeps
  that worker busy for its own service plus the responses of the calls it makes: the holder's
  effective service time (mean and scv) includes them, solved as a fixed point (layered
  queueing, method of surrogates: an approximation). Its utilization and offered load include
  the holding time, so a slow downstream saturates the upstream pool. The calls are treated as
  open traffic: a small holding pool, which never has more calls in flight than workers,
  throttles its downstream more than the twin says (downstream waits overstated), and a
  finite queue behind a pool smaller than its room never drops;
* a round-robin pick among ``n`` stations sends each one every n-th request (arrival scv
  divided by ``n``, Kraemer & Langenbach-Belz's correction for the smoother arrivals);
  least-connections and power-of-two picks are taken as even random splits;
* a finite ``queue_capacity`` uses M/M/c/K (exact for exponential service, an approximation
  otherwise), solved as a fixed point because drops upstream thin the load downstream;
* a MessageQueue's consumers are single-server stations fed by their partitions' share of the
  published messages (partition affinity: not a pooled M/M/K). Each queue has a latency row
  ``"<queue> (async)"`` (message end-to-end time at the consumer) that the ``"all"`` row does
  not pool; an overloaded consumer makes only that row unstable. Retention is M/M/1 with
  deterministic impatience (see ``components``);
* processor sharing (``discipline="ps"``): a visit takes its own service x the M/G/c-PS
  slowdown ``1 + C(c, a) / (c (1 - rho))`` (insensitive: exact means for Poisson arrivals;
  with a ``max_concurrency`` cap, exact for exponential service, the requests beyond the cap
  waiting FIFO in front); non-preemptive priority: per priority class (a flow's priority,
  flows without one last) Cobham's waits for one server, M/M/c's for exponential service
  equal in every class, else the FCFS wait scaled by Bondi-Buzen's priority ratio; a host's
  cores are M/M/c-PS shared by every station on it (its visits' work / speed x the host's
  slowdown), the stations' threads an FCFS pool with that time as service; a host has its
  own component row, and an overloaded host makes the stations on it unstable (see
  ``disciplines``);
* latency percentiles convolve per-station sojourn times on a grid, assuming the stations are
  independent: exact for one M/M/c station and for M/M/1 tandems (Reich), an approximation
  elsewhere.

Closed workloads use exact MVA (see ``mva``) with delays as infinite-server demand and the
consumers as open stations fed at the MVA throughput; they are always stable (consumers
aside), and their request percentiles are NaN because MVA yields means only. Processor
sharing is product form there too (the same MVA); a host is a load-dependent station of its
cores; a priority station is FCFS with its wait split over the classes (approximation).

A workload of several populations (``MixedWorkload``, or one population running some flows)
goes to ``populations``: open ones alone are one superposed open stream; with a closed one
they are the classes of multi-class MVA (``multiclass_network``: exact for product form,
BCMP's mixed network when open classes are among them).
"""

from __future__ import annotations

import math

from capsim.analytic.closed_network import solve_closed
from capsim.analytic.open_network import solve_open
from capsim.analytic.populations import solve_populations
from capsim.analytic.result import AnalyticResult
from capsim.analytic.stations import build_stations
from capsim.errors import ModelError
from capsim.model import ClosedWorkload, MixedWorkload, OpenWorkload, System

__all__ = ["solve"]


def solve(system: System, workload: OpenWorkload | ClosedWorkload, *,
          duration_s: float | None = None) -> AnalyticResult:
    """Solve ``system`` under ``workload`` analytically.

    ``duration_s`` turns drop and error rates into expected counts over a window of that
    length (the simulation's ``drops``/``errors``); without it they are NaN where drops can
    happen and 0 where they cannot.
    """
    if not isinstance(system, System):
        raise ModelError(f"solve: system must be a System, got {system!r}")
    if duration_s is not None and not (duration_s > 0 and math.isfinite(duration_s)):
        raise ModelError(f"solve.duration_s: must be > 0, got {duration_s!r}")
    if isinstance(workload, MixedWorkload) or (
            isinstance(workload, (OpenWorkload, ClosedWorkload)) and workload.flows is not None):
        return solve_populations(system, workload, duration_s)
    stations = build_stations(system)
    if isinstance(workload, OpenWorkload):
        return solve_open(system, workload, stations, duration_s)
    if isinstance(workload, ClosedWorkload):
        return solve_closed(system, workload, stations, duration_s)
    raise ModelError("solve: workload must be an Open, Closed or MixedWorkload, got "
                     f"{workload!r}")
