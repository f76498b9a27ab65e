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
# # 12 · Retry storms, and the patterns that stop them
#
# **Question.** The case study moved work to asynchronous services for failure isolation:
# "preventing cascading system collapses". Synchronous calls with timeouts and retries are
# where collapses start. Can a short burst of traffic take a healthy database down *and keep
# it down* after the burst has gone? And which of the usual defences (a retry budget, a circuit
# breaker, backoff) prevents that, at what cost?
#
# **The model.** A database worth one queue (M/M/1, 10 ms per query) at 70% busy; every caller
# waits 300 ms for it (30 query times, well above the normal p99 of ~150 ms) and retries up to
# 3 times. For 0.65 s, one second into the run, traffic doubles. Each run lasts 6 s: 600 query
# times, long after the burst.

# %%
import matplotlib.pyplot as plt

import capsim as cs
from capsim.report.timeseries import station_timeseries

RETRY = dict(timeout_s=0.3, retries=3)
db = cs.Service("db", 1, cs.Exponential(0.01))
burst = cs.OpenWorkload(1, 70.0, profile=cs.Spike(1.0, 0.65, 2.0))
variants = {
    "plain retries": cs.System([db], [cs.Flow("q", 1.0, [cs.Call("db", **RETRY)])]),
    "retry budget": cs.System([db], [cs.Flow("q", 1.0, [cs.Call(
        "db", **RETRY, retry_budget=cs.RetryBudget(ratio=0.1, window_s=1.0,
                                                 min_retries_per_s=1.0))])]),
    "circuit breaker": cs.System([db], [cs.Flow("q", 1.0, [cs.Call(
        "db", **RETRY, breaker=cs.CircuitBreaker(failure_ratio=0.5, window_s=1.0,
                                                 min_calls=20, open_s=0.5,
                                                 half_open_calls=3))])]),
    "backoff only": cs.System([db], [cs.Flow("q", 1.0, [cs.Call(
        "db", **RETRY, backoff=cs.Backoff(base_s=0.1, multiplier=2.0, max_s=1.0))])]),
}

# %% [markdown]
# ## One run: the burst leaves, the overload stays
#
# With plain retries, watch the requests at the database and the attempts it gets per call.
# Once the queue is longer than the 300 ms the callers wait, every attempt times out and is
# sent again while the abandoned one still queues: the database gets about four attempts per
# call, several times what it can do, and never catches up.

# %%
SEED = 3
runs = {name: cs.simulate(system, burst, duration_s=6.0, warmup_s=0.0, seed=SEED)
        for name, system in variants.items()}
fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
for name, run in runs.items():
    at_db = station_timeseries(run, ["db"])
    axes[0].plot(at_db["time_s"], at_db["present"], label=name)
axes[0].axvspan(1.0, 1.65, color="tab:red", alpha=0.1, label="the burst (2x traffic)")
axes[0].set_ylabel("requests at the database")
axes[0].set_yscale("symlog")
axes[0].legend(fontsize=8)
state = runs["circuit breaker"].breaker_state(runs["circuit breaker"].call_names[0])
axes[1].step(state["time_s"], state["level"], where="post", color="tab:purple")
axes[1].set_yticks([0, 1, 2], ["closed", "half-open", "open"])
axes[1].set_ylabel("the breaker")
axes[1].set_xlabel("time (s)")
plt.tight_layout()
plt.show()
runs["plain retries"].calls().round(2)

# %% [markdown]
# ## Thirty seeds: how often does the burst win?
#
# One run is one draw. `cs.retry_storm` runs every variant over the same 30 seeds and calls a
# run **collapsed** when the engine's divergence check flags the database after the burst has
# ended (its arrivals need more than it can do, or its backlog grows while it is never idle):
# the offered load is back to 70% by then, so a collapsed run is held down by its own retries.

# %%
storm = cs.retry_storm(variants, burst, 6.0, 30)
fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
names = storm["variant"]
ax[0].bar(names, storm["collapse_rate"], color="tab:red", alpha=0.7,
          yerr=[storm["collapse_rate"] - storm["collapse_low"],
                storm["collapse_high"] - storm["collapse_rate"]], capsize=4)
ax[0].set_ylabel("runs that collapse (95% Wilson)")
ax[1].bar(names, storm["error_rate_after"], color="tab:orange", alpha=0.7,
          yerr=storm["error_rate_after_hw"], capsize=4)
ax[1].set_ylabel("error rate after the burst")
for a in ax:
    a.tick_params(axis="x", rotation=20)
plt.tight_layout()
plt.show()
storm[["variant", "collapses", "runs", "collapse_rate", "error_rate_spike",
       "error_rate_after", "p99_after_s", "recovery_s", "fast_fails",
       "retries_denied"]].round(3)

# %%
s = storm.set_index("variant")
plain = s.loc["plain retries"]
print(f"Plain retries: the burst left the database down in {plain['collapses']:.0f} of "
      f"{plain['runs']:.0f} runs ({plain['collapse_low']:.0%} to {plain['collapse_high']:.0%}); "
      f"after it, {plain['error_rate_after']:.0%} of requests failed.")
for name in ("retry budget", "circuit breaker"):
    r = s.loc[name]
    print(f"{name.capitalize()}: {r['collapses']:.0f} collapses of {r['runs']:.0f} (at most "
          f"{r['collapse_high']:.0%}); {r['error_rate_after']:.0%} of requests failed after the "
          f"burst, mostly in the runs it tipped over, and the database was back to normal "
          f"{r['recovery_s']:.1f} s after it (median).")
r = s.loc["backoff only"]
print(f"Backoff alone: {r['collapses']:.0f} collapses of {r['runs']:.0f}: it spreads the "
      f"retries out but still sends every one of them.")

# %% [markdown]
# **The answer.** Yes: a burst of a fraction of a second tips a 70%-busy database into a
# retry storm in about half the runs, and plain retries keep it there: a metastable failure.
# Both defences break the loop by capping the attempts the database gets: the **retry budget**
# allows retries only up to a tenth of the calls (plus a trickle), the **circuit breaker**
# stops calling once half the calls fail and probes again after half a second. Their price is
# paid in the runs the burst tipped over: calls that fail at once instead of queueing, so the
# error rate after the burst is a fraction of plain retries' and the database recovers in
# about a second. **Backoff** alone is no defence: a later retry is still a retry. Give every
# retrying client a budget or a breaker; back off as well, but not instead.

# %% [markdown]
# ## A connection pool sized too small
#
# The case study's load tests found "thread pool / connection pool exhaustion". Here: two app
# instances of 16 workers, each page two 20 ms queries on a PostgreSQL with 8 connections'
# worth of workers, and each app instance's pool holds 2 connections (HikariCP's
# `maximumPoolSize`). The saturation search finds where the p99 budget of 250 ms breaks, with
# that pool and with 4 per instance.

# %%
page = cs.Flow("page", 1.0, [cs.Call("app", calls=[cs.Read("pg"), cs.Read("pg")])])
app = cs.Service("app", 16, cs.Exponential(0.005), instances=2, balancing="least_connections")
pages = cs.OpenWorkload(users=100, requests_per_user_s=1.0)
found = {}
for size in (2, 4):
    pg = cs.Database("pg", servers=8, service_time=cs.Exponential(0.02),
                     pool=cs.Pool(size=size, per="instance"))
    found[size] = cs.find_saturation(cs.System([app, pg], [page]), pages,
                                     cs.Budget(p99_s=0.25), duration_s=20, replications=2,
                                     rel_tol=0.1, store=None)
    print(f"pool of {size} per instance: {found[size]}")
small = cs.System([app, cs.Database("pg", servers=8, service_time=cs.Exponential(0.02),
                                    pool=cs.Pool(size=2, per="instance"))], [page])
at_wall = cs.simulate(small, pages.with_users(found[2].users_low), duration_s=30, seed=1)
print(at_wall.components()[["component", "servers", "utilization"]].round(2))
at_wall.pools().round(3)

# %% [markdown]
# With 2 connections per instance the database never works on more than 4 queries at once:
# capsim shows it with the 4 servers the pools let it use (of its 8), about 80% busy at the
# wall, and the pool table shows more than half of the queries waiting for a connection. The
# budget breaks at about 80 users per second; doubling the pool roughly doubles that. The
# pool, not the database, was the wall. Size a pool for the database's capacity spread over
# the callers, and watch `pools()` (wait share, p99 wait) the way you watch utilization.
