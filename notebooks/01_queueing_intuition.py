# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Queueing intuition
#
# Five questions that come back in every capacity review, each answered three ways: a capsim
# model, a simulation of it (independent replications with 95% confidence intervals) and the
# queueing formula that should agree with it.
#
# 1. **The hockey stick.** How does latency grow as a server gets busier?
# 2. **Little's law.** How many requests are in flight, given throughput and latency?
# 3. **Variability.** Same average work per request: why do some systems queue more?
# 4. **Pooling.** One queue in front of 4 servers, or 4 queues in front of one each?
# 5. **The 80% alarm line.** Why do capacity plans stop at about 80% utilization?
#
# Throughout, one request needs **10 ms** of a server's time on average, so one server handles
# at most 100 requests/s. Utilization is the share of that capacity in use.

# %%
import matplotlib.pyplot as plt

import capsim as cs
from capsim import report

S = 0.010  # mean service time per request: 10 ms
REPS = 4  # independent replications per simulated point
GRID = [i / 200 for i in range(193)]  # utilizations 0% .. 96% for the analytic curves


def one_queue(servers: int = 1, service_time: cs.Distribution | None = None) -> cs.System:
    """One FIFO queue in front of `servers` identical servers (10 ms exponential by default)."""
    server = cs.Service("server", servers, service_time or cs.Exponential(S))
    return cs.System([server], flows=[cs.Flow("request", steps=[cs.Call("server")])])


def run_at(system: cs.System, rho: float, *, servers: int = 1, seed: int) -> cs.Replications:
    """REPS replications with Poisson arrivals at utilization `rho` (5% of each is warm-up).

    Busier queues drift more slowly, so they get longer runs: 20k requests up to 70% busy,
    80k at 90%, 160k at 95%.
    """
    rate = rho * servers / S
    duration = max(20_000, 8_000 / (1 - rho)) / rate
    return cs.replicate(system, cs.OpenWorkload(users=1, requests_per_user_s=rate), REPS, seed,
                        duration_s=duration, warmup_s=0.05 * duration)


# %% [markdown]
# ## 1 · The hockey stick
#
# **Question.** A single server with 10 ms requests (exponentially distributed, arriving at
# random: the M/M/1 queue). How do the mean and the 99th-percentile latency change as traffic
# takes it from 30% to 95% busy?

# %%
RHOS = [0.3, 0.5, 0.7, 0.8, 0.9, 0.95]
mm1 = {rho: run_at(one_queue(), rho, seed=i) for i, rho in enumerate(RHOS)}
points = report.replication_points(mm1, ["mean_s", "p99_s"])
theory = report.station_curve(GRID, mean_service_s=S)

report.latency_vs_utilization(theory, points, alarm=0.8,
                              title="M/M/1, 10 ms per request: latency vs utilization")
plt.show()

# %%
check = report.compare_to_theory(points, report.station_curve(RHOS, mean_service_s=S))
at = check.set_index(["utilization", "metric"])["mean"] * 1e3
for rho in (0.5, 0.8, 0.9, 0.95):
    print(f"{rho:4.0%} busy: mean {at[rho, 'mean_s']:6.1f} ms, p99 {at[rho, 'p99_s']:6.1f} ms")
print(f"\nFrom 50% to 80% busy (1.6x the traffic) the mean grows "
      f"{at[0.8, 'mean_s'] / at[0.5, 'mean_s']:.1f}x; from 80% to 95% (1.19x the traffic) "
      f"it grows another {at[0.95, 'mean_s'] / at[0.8, 'mean_s']:.1f}x.")
print(f"Theory lies inside the 95% CI at {check['inside_ci'].sum()} of {len(check)} points; "
      f"the largest gap is {check['rel_error'].abs().max():.1%}.")

# %% [markdown]
# **Answer.** Latency is not proportional to load. The mean latency of M/M/1 is
# $S / (1 - \rho)$: it doubles between 0% and 50% busy, doubles again by 75%, and again by
# 87.5%, so the curve is flat and then a wall. The p99 is a fixed multiple ($\ln 100 \approx
# 4.6$) of the mean, so the tail climbs the same wall, just higher. The simulation, which knows
# no formula, lands on the curve (numbers above); its confidence intervals widen near 100%
# because the queue there swings between empty and very long for minutes at a time. (A 95%
# interval misses the truth one time in twenty by design, so an occasional near miss among
# 12 points is expected; a systematic gap would not be.)

# %% [markdown]
# ## 2 · Little's law
#
# **Question.** A small shop: a `web` tier (4 workers, 20 ms log-normal requests) and a `db`
# (2 connections, 8 ms). Browsing hits the database 30% of the time, checkout twice. At
# 150 requests/s, how many requests are inside each component on average?
#
# Little's law says $L = \lambda W$: the number present equals arrival rate times time spent,
# for any queue, any distribution, any scheduling, as long as the system is stable.

# %%
shop = cs.System(
    [cs.Service("web", servers=4, service_time=cs.LogNormal(mean=0.020, cv=1.5)),
     cs.Service("db", servers=2, service_time=cs.Exponential(0.008))],
    flows=[cs.Flow("browse", weight=0.8,
                   steps=[cs.Call("web"), cs.Branch([(0.3, [cs.Call("db")]), (0.7, [])])]),
           cs.Flow("checkout", weight=0.2, steps=[cs.Call("web"), cs.Call("db"), cs.Call("db")])],
)
run = cs.simulate(shop, cs.OpenWorkload(users=15_000, requests_per_user_s=0.01),
                  duration_s=600, warmup_s=60, seed=7)
little = report.littles_law_table(run)
report.littles_law_plot(little).set_title("Little's law on one 10-minute run at 150 requests/s")
plt.show()
little.round(4)

# %%
whole = little.set_index("name").loc["whole system"]
print(f"At {whole.throughput_per_s:.1f} requests/s and a mean latency of "
      f"{whole.mean_time_s * 1e3:.1f} ms, lambda x W = {whole.lambda_w:.2f} requests in flight; "
      f"counting them over time gives L = {whole.L:.2f}.")
print(f"Largest disagreement over all rows: {little['rel_diff'].abs().max():.2%}.")

# %% [markdown]
# **Answer.** The bars pair up: the number of requests inside each component, measured by
# watching the component over time, equals its throughput times the mean time a request
# spends there, measured per request. The two are counted independently, so this is a check on
# the simulator as much as a law. In practice it turns two dashboard numbers into a third:
# requests per second × mean latency = concurrency, which is how many threads, connections
# or pods a tier needs just to hold the traffic it already has.

# %% [markdown]
# ## 3 · Why variability hurts
#
# **Question.** Three servers do the same average work, 10 ms per request, but with different
# spread: constant (cv = 0), exponential (cv = 1) and bursty (cv = 2, most requests short and a
# few very long). At the same utilization, how long do requests wait in the queue?
#
# The Pollaczek-Khinchine formula for one server with random arrivals:
# $W_q = \dfrac{\rho\,S}{1-\rho}\cdot\dfrac{1 + c_s^2}{2}$. Variability enters as its own
# factor, $(1 + c_s^2)/2$: 0.5, 1 and 2.5 for our three servers.

# %%
RHOS_V = [0.5, 0.7, 0.8, 0.9]
shapes = {"cv = 0 (constant)": cs.Deterministic(S), "cv = 1 (exponential)": cs.Exponential(S),
          "cv = 2 (bursty)": cs.HyperExponential(S, cv=2.0)}
curves, sims = {}, {}
for k, (label, dist) in enumerate(shapes.items()):
    curves[label] = report.station_curve(GRID, mean_service_s=S, cv=dist.cv)
    runs = {rho: run_at(one_queue(1, dist), rho, seed=100 + 10 * k + i)
            for i, rho in enumerate(RHOS_V)}
    sims[label] = report.replication_points(runs, ["mean_wait_s"], table="components")

report.compare_curves(curves, sims, y="mean_wait_s", alarm=0.8,
                      title="Same 10 ms mean service time, different variability")
plt.show()

# %%
waits = {label: pts.set_index("utilization")["mean"] * 1e3 for label, pts in sims.items()}
base = waits["cv = 1 (exponential)"]
for label, w in waits.items():
    print(f"{label:21}: mean wait {w[0.8]:5.1f} ms at 80% busy, {w[0.9]:5.1f} ms at 90%; "
          f"{w[0.8] / base[0.8]:.2f}x the exponential wait at 80% "
          f"(P-K: {(1 + shapes[label].cv ** 2) / 2:.1f}x)")
agree = [report.compare_to_theory(sims[label], curves[label]) for label in sims]
print(f"P-K lies inside the 95% CI at {sum(a['inside_ci'].sum() for a in agree)} of "
      f"{sum(len(a) for a in agree)} simulated points.")

# %% [markdown]
# **Answer.** Same average work, same utilization, very different queues: the bursty server
# makes requests wait about 2.5 times as long as the exponential one, and 5 times as long as
# the perfectly regular one, as P-K predicts, and the simulated points agree within their
# confidence intervals. A long request blocks everyone behind it, and the queue it builds
# takes a long time to drain. Cutting variability (splitting slow endpoints off, timeouts,
# batching big jobs elsewhere) buys latency without buying servers.

# %% [markdown]
# ## 4 · Pooling: one queue or many?
#
# **Question.** Four servers, each 10 ms per request. Either every request joins **one
# shared queue** served by whichever server frees up first (M/M/4), or a load balancer
# sends each request at random to **one of four private queues** (four M/M/1). Same servers,
# same traffic, same utilization: how different is the latency?

# %%
C = 4
pooled = one_queue(C)
separate = cs.System(
    [cs.Service(f"server{i}", 1, cs.Exponential(S)) for i in range(C)],
    flows=[cs.Flow("request", steps=[
        cs.Branch([(1 / C, [cs.Call(f"server{i}")]) for i in range(C)])])],
)
RHOS_P = [0.5, 0.7, 0.8, 0.9]
pool_curves = {f"one queue, {C} servers (M/M/{C})": report.station_curve(GRID, servers=C,
                                                                         mean_service_s=S),
               f"{C} separate queues (M/M/1 each)": report.station_curve(GRID, mean_service_s=S)}
pool_runs = {label: {rho: run_at(system, rho, servers=C, seed=200 + 10 * k + i)
                     for i, rho in enumerate(RHOS_P)}
             for k, (label, system) in enumerate(zip(pool_curves, [pooled, separate], strict=True))}
pool_points = {label: report.replication_points(runs) for label, runs in pool_runs.items()}

fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
for ax, metric in zip(axes, ["mean_s", "p99_s"], strict=True):
    report.compare_curves(pool_curves, pool_points, y=metric, alarm=0.8, ax=ax,
                          ylabel=f"{'mean' if metric == 'mean_s' else 'p99'} latency")
fig.suptitle("Pooling: same 4 servers, same traffic")
plt.show()

# %%
pool_at = {label: pts.set_index(["utilization", "metric"])["mean"] * 1e3
           for label, pts in pool_points.items()}
one, four = pool_at.values()
for rho in (0.5, 0.8, 0.9):
    ratio = four[rho, "mean_s"] / one[rho, "mean_s"]
    print(f"{rho:.0%} busy: mean {one[rho, 'mean_s']:5.1f} ms pooled vs "
          f"{four[rho, 'mean_s']:5.1f} ms separate ({ratio:.1f}x); "
          f"p99 {one[rho, 'p99_s']:5.1f} vs {four[rho, 'p99_s']:5.1f} ms")
print(f"Pooled at 90% busy ({one[0.9, 'mean_s']:.1f} ms mean) is still faster than separate "
      f"queues at 80% ({four[0.8, 'mean_s']:.1f} ms).")
agree = [report.compare_to_theory(pool_points[label], pool_curves[label]) for label in pool_points]
print(f"Theory lies inside the 95% CI at {sum(a['inside_ci'].sum() for a in agree)} of "
      f"{sum(len(a) for a in agree)} simulated points.")

# %% [markdown]
# **Answer.** The shared queue wins everywhere, and by more the busier the servers are. With
# private queues a request can wait behind a slow neighbour while another server sits idle;
# a shared queue never lets that happen. This is why one pool behind a least-busy load
# balancer beats sticky routing to individual instances, and why a big shared pool gives
# lower latency than a small one at the same utilization.

# %% [markdown]
# ## 5 · Why 80% is a sensible alarm line
#
# **Question.** Traffic is never flat: a 20% burst above the usual peak is ordinary (a
# marketing mail, a retry storm). If a single server normally runs at 50%, 70%, 80% or 90%,
# what does that burst do to its latency?

# %%
burst = report.burst_headroom([0.5, 0.7, 0.8, 0.9], burst=0.2, mean_service_s=S)
report.burst_headroom_plot(report.station_curve(GRID, mean_service_s=S), burst, alarm=0.8)
plt.title("Where a +20% burst takes an M/M/1 server (10 ms per request)")
plt.show()

for r in burst.itertuples():
    after = (f"{r.mean_after_s * 1e3:.0f} ms (x{r.slowdown:.1f})" if r.stable_after
             else "no steady state: the queue grows until the burst ends")
    print(f"{r.utilization:.0%} -> {r.after_burst:.0%}: uses {r.headroom_used:.0%} of the spare "
          f"capacity; slope {r.slope_s_per_point * 1e3:.1f} ms per point; "
          f"mean {r.mean_s * 1e3:.0f} ms -> {after}")
slope = burst.set_index("utilization")["slope_s_per_point"]
print(f"One more point of load costs {slope[0.8] / slope[0.5]:.1f}x as much at 80% as at 50%, "
      f"and {slope[0.9] / slope[0.5]:.0f}x as much at 90%.")
big = report.burst_headroom([0.8], burst=0.2, servers=16, mean_service_s=S).iloc[0]
print(f"A shared pool of 16 servers takes the same burst from 80% much better: mean "
      f"{big.mean_s * 1e3:.1f} -> {big.mean_after_s * 1e3:.1f} ms (x{big.slowdown:.1f}). "
      f"But no pool absorbs +20% above {1 / 1.2:.0%} busy.")

# %% [markdown]
# **Answer.** The slope of the curve is the cost of one more percentage point of load. At 50%
# busy it is a fraction of a millisecond and a 20% burst is barely visible. At 80% each point
# costs about six times as much, and the same burst eats 80% of the spare capacity and
# multiplies mean latency by 5, painful but survivable and short-lived. At 90% the same burst
# needs more capacity than exists: there is no steady state, and the queue grows for as long
# as the burst lasts. An alarm at 80% fires while there is still room to absorb an ordinary
# burst and time to add capacity; one at 90% fires when the next burst is already an outage.
#
# Two refinements. A large shared pool has a much flatter curve (section 4), so the latency
# cost of a burst from 80% is far smaller there; but capacity is capacity, and no pool of any
# size absorbs a +20% burst above 1/1.2 ≈ 83% busy. So 80% is "the burst still fits, with a
# small margin": if your bursts are bigger, your alarm line is lower.
