"""Service disciplines against exact queueing theory: processor sharing, priorities, hosts.

* **M/G/1-PS insensitivity**: under processor sharing the mean response is S / (1 - rho)
  whatever the service distribution, so a hyperexponential service with cv = 3 gives the
  M/M/1 mean; the same station serving first come first served pays Pollaczek-Khinchine's
  (1 + cs^2) / 2 factor on its wait, several times slower.
* **Cobham**: M/M/1 with two classes and non-preemptive priority, W_k = W0 / ((1 - s_{k-1})
  (1 - s_k)), W0 = sum_i lambda_i E[S_i^2] / 2, s_k the load of classes 1..k (s_0 = 0); the
  overall mean wait is M/M/1's (a work-conserving discipline).
* **A shared host**: two services on one single-core box, each request a job of its own
  on the CPU: the CPU is an M/G/1-PS queue with mixed classes, whose class-k mean response
  is S_k / (1 - rho_host) (again insensitive), and the host's row shows utilization rho_host.
* **PS over c cores with a concurrency cap K >= c**: with n present the CPU completes work at
  min(min(n, K), c) = min(n, c) cores, so under exponential service the number present is the
  M/M/c birth-death chain whatever K is: M/M/c's mean response (Erlang C), exactly.

Every check is a confidence interval over independent replications (``replicate``).
"""

from __future__ import annotations

import capsim as cs
from capsim.analytic.queues import mg1_wait, mmc
from capsim.experiment import mean_ci, replicate
from tests.validation.agreement import CONFIDENCE, assert_agrees, column

E = cs.Exponential
REPS = 8


def run(system: cs.System, rate: float, customers: int, seed: int, reps: int = REPS,
        warmup: float = 0.05):
    """Replications sized by customers each; warm-up a fraction of the run (5%)."""
    duration = customers / rate
    return replicate(system, cs.OpenWorkload(1, rate), reps, seed, duration_s=duration,
                     warmup_s=warmup * duration)


def single(discipline: str, service: cs.Distribution, servers: int = 1, **kw) -> cs.System:
    return cs.System([cs.Service("s", servers, service, discipline=discipline, **kw)],
                     [cs.Flow("f", 1.0, [cs.Call("s")])])


def test_mg1_ps_mean_response_is_insensitive_and_fcfs_is_pollaczek_khinchine():
    service = cs.HyperExponential(mean=1.0, cv=3.0)
    lam = 0.7
    # cs^2 = 9 makes the mean converge slowly (relaxation ~ 5 s / (1 - sqrt(rho))^2 ~ 190 s):
    # 16 x 80k customers put the 99% half-width near 4% (cap 7%); a 2% warm-up is 12
    # relaxation times
    ps = run(single("ps", service), lam, 80_000, seed=11, reps=16, warmup=0.02)
    assert_agrees(column(ps.latency_runs(), "flow", "f", "mean_s"), 1.0 / (1 - lam),
                  "M/H2/1-PS mean response = S / (1 - rho)", max_rel_half_width=0.07)
    assert_agrees(column(ps.components_runs(), "component", "s", "utilization"), lam,
                  "M/H2/1-PS utilization", max_rel_half_width=0.02)
    # the same seeds: each replication's first arrivals and services are its PS twin's
    # (streams are keyed by name), served in order; FCFS needs fewer to be told apart
    fcfs = run(single("fcfs", service), lam, 36_000, seed=11, reps=16, warmup=0.02)
    pk = 1.0 + mg1_wait(lam, 1.0, service.scv)
    f_lat = column(fcfs.latency_runs(), "flow", "f", "mean_s")
    assert_agrees(f_lat, pk, "M/H2/1-FCFS mean response (P-K)", max_rel_half_width=0.2)
    slower, half = mean_ci(f_lat - column(ps.latency_runs(), "flow", "f", "mean_s"),
                           CONFIDENCE)
    assert slower - half > 0.5 * (pk - 1.0 / (1 - lam)), (
        f"FCFS is not significantly slower than PS: {slower:.3g} +- {half:.3g}")


def test_two_class_nonpreemptive_priority_matches_cobham():
    lam = (0.3, 0.4)  # requests/s of the high (0) and low (1) priority class
    mean = 1.0
    s1, s2 = lam[0] * mean, lam[1] * mean
    w0 = sum(lam) * 2 * mean ** 2 / 2  # exponential: E[S^2] = 2 S^2
    theory = {"hi": w0 / (1 - s1), "lo": w0 / ((1 - s1) * (1 - s1 - s2))}
    total = sum(lam)
    system = cs.System([cs.Service("s", 1, E(mean), discipline="priority")],
                       [cs.Flow("hi", lam[0] / total, [cs.Call("s")], priority=0),
                        cs.Flow("lo", lam[1] / total, [cs.Call("s")], priority=1)])
    res = run(system, total, 80_000, seed=12)
    lat = res.latency_runs()
    for flow, wait in theory.items():
        assert_agrees(column(lat, "flow", flow, "mean_s") - mean, wait,
                      f"M/M/1 priority class {flow}: mean wait (Cobham)",
                      max_rel_half_width=0.07)
    # conservation: the work-conserving discipline leaves M/M/1's overall mean wait
    assert_agrees(column(res.components_runs(), "component", "s", "mean_wait_s"),
                  total * mean / (1 - total), "M/M/1 priority: overall mean wait (conserved)",
                  max_rel_half_width=0.07)


def test_two_services_on_one_core_share_it_by_processor_sharing():
    lam = 0.28  # requests/s of each flow
    sa, sb = 0.5, 2.0
    rho = lam * (sa + sb)  # 0.7 of the one core
    system = cs.System(
        [cs.Service("a", 1000, E(sa), host="box"),
         cs.Service("b", 1000, cs.HyperExponential(mean=sb, cv=2.0), host="box")],
        [cs.Flow("fa", 0.5, [cs.Call("a")]), cs.Flow("fb", 0.5, [cs.Call("b")])],
        hosts=[cs.Host("box", cores=1)])
    res = run(system, 2 * lam, 80_000, seed=13)
    comp, lat = res.components_runs(), res.latency_runs()
    for name, flow, s in (("a", "fa", sa), ("b", "fb", sb)):
        assert_agrees(column(comp, "component", name, "mean_response_s"), s / (1 - rho),
                      f"host PS: {name}'s mean response = S / (1 - rho_host)",
                      max_rel_half_width=0.07)
        assert_agrees(column(lat, "flow", flow, "mean_s"), s / (1 - rho),
                      f"host PS: flow {flow}'s mean latency", max_rel_half_width=0.07)
    assert_agrees(column(comp, "component", "box", "utilization"), rho,
                  "host utilization = rho_host", max_rel_half_width=0.02)
    assert_agrees(column(comp, "component", "box", "mean_in_system"), rho / (1 - rho),
                  "host: jobs on the CPU = rho / (1 - rho)", max_rel_half_width=0.07)


def test_ps_on_two_cores_with_a_concurrency_cap_is_mmc():
    cores, cap, mean, rho = 2, 8, 1.0, 0.8
    lam = rho * cores / mean
    theory = mmc(lam, mean, cores)
    res = run(single("ps", E(mean), servers=cores, max_concurrency=cap), lam, 80_000,
              seed=14)
    comp, lat = res.components_runs(), res.latency_runs()
    assert_agrees(column(lat, "flow", "f", "mean_s"), theory.mean_response,
                  "PS c=2 K=8: mean response = M/M/2's", max_rel_half_width=0.07)
    assert_agrees(column(comp, "component", "s", "mean_in_system"),
                  lam * theory.mean_response, "PS c=2 K=8: mean present = M/M/2's",
                  max_rel_half_width=0.07)
    assert_agrees(column(comp, "component", "s", "utilization"), rho,
                  "PS c=2 K=8: utilization", max_rel_half_width=0.02)
    # the cap binds (M/M/2 at 0.8: P(n >= 8) = 0.19): requests do wait in front of it, yet
    # the chain is M/M/2's (one core twice as fast, M/M/1 at 2 mu, would give 2.5 s)
    assert column(comp, "component", "s", "mean_wait_s").mean() > 0.1
