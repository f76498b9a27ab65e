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
# # 09 · The case study, end to end
#
# A growing e-commerce platform ran a monolith on one PostgreSQL. A marketing campaign
# brought 2.5x the usual peak, and pages took seconds, then minutes. Six months later, after
# an index, Redis, read replicas and shards, a services split with Kafka for orders and a CDN,
# the same campaign passes under 300 ms (see `shared/case-study.md`).
#
# **The questions:** what did users see at the campaign peak before and after? Which change
# bought how much? Where is the new saturation point, and what does the new platform cost?
#
# **The model:** the two scenario files `data/scenarios/ecommerce_monolith.yaml` (before) and
# `ecommerce_scaled.yaml` (after); `capsim.examples.case_study_stages()` walks from one to the
# other one change at a time.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import capsim as cs
from capsim.examples import case_study_stages, scenario
from capsim.experiment import twin_breaks_on, twin_saturation
from capsim.report.timeseries import latency_of_arrivals, user_requests

before, after = scenario("ecommerce_monolith"), scenario("ecommerce_scaled")
stages = case_study_stages()
today = before.workload  # 10,000 active users at today's peak, a page every 50 s each
print(f"today's peak: {today.users:,} users = {today.arrival_rate_per_s:.0f} requests/s")
for label, system in stages:
    print(f"{label:25s} {len(system.stations()):2d} stations")

# %% [markdown]
# ## The campaign, before and after
#
# Two minutes of today's peak, then the campaign: 2.5x the traffic for five minutes, then
# five minutes back at the usual peak (time enough for the monolith's backlog to drain, so
# every page that arrived during the campaign has finished and counts). Every stage sees
# exactly the same arrivals (same seed, streams keyed by name). What users saw is the latency
# of the page requests that *arrived* during the campaign (the orders queue's asynchronous
# processing is not a page anyone waits for).

# %%
START, LENGTH, LEVEL, DURATION = 120, 300, 2.5, 600
campaign = cs.replace(today, profile=cs.Spike(START, LENGTH, LEVEL))
runs = {label: cs.simulate(system, campaign, DURATION, seed=7, sample_interval_s=20)
        for label, system in stages}
table = pd.DataFrame({label: latency_of_arrivals(run, START, START + LENGTH)
                      for label, run in runs.items()}).T[["mean_s", "p99_s"]]
print(table.round(3).to_string())

# %%
fig, ax = plt.subplots(figsize=(9, 4))
for label in (stages[0][0], stages[-1][0]):
    req = user_requests(runs[label])
    p99 = req.groupby(req["arrival_s"] // 60)["latency_s"].quantile(0.99)
    ax.plot(p99.index + 0.5, p99.values, "o-", label=f"{label}: p99 of each minute's arrivals")
ax.axvspan(START / 60, (START + LENGTH) / 60, color="orange", alpha=0.15, label="campaign (2.5x)")
ax.axhline(0.3, color="crimson", ls="--", label="300 ms")
ax.set(yscale="log", xlabel="minutes (by arrival)", ylabel="p99 latency (s)",
       title="The same campaign, before and after")
ax.legend()
plt.show()

first, last = table.iloc[0], table.iloc[-1]
print(f"Before: during the campaign the mean response was {first['mean_s']:.1f} s and the "
      f"p99 {first['p99_s']:.0f} s (over 10 s: {first['p99_s'] > 10}).")
print(f"After: mean {last['mean_s'] * 1e3:.0f} ms, p99 {last['p99_s'] * 1e3:.0f} ms "
      f"(under 300 ms: {last['p99_s'] < 0.3}); {first['mean_s'] / last['mean_s']:,.0f}x faster "
      "on average.")

# %% [markdown]
# ## Which change bought how much?
#
# The gain of each stage is the drop in mean campaign latency from the stage before it; its
# share is that drop over the whole drop. (The order matters: once Redis has taken the load
# off the database, replicas have little left to fix. We follow the order the team took.)

# %%
mean = table["mean_s"]
gain = (-mean.diff()).fillna(0.0).iloc[1:]
share = gain / gain.sum()
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.barh(share.index[::-1], share.values[::-1] * 100, color="tab:green")
ax.set(xlabel="share of the drop in mean campaign latency (%)",
       title="Each change's share of the gain")
plt.show()
for label, s in share.items():
    print(f"{label:25s} {s:6.1%}  (mean {mean[label]:.3g} s after it)")

# %% [markdown]
# ## The new saturation point
#
# The analytic twin answers instantly where the budget breaks as users grow; a short simulated
# sweep around the answer confirms it. The budget is the page p99 (200 ms) *and* the orders
# queue: a consumer group offered more than it can process builds a backlog that never
# drains, however fast the pages are, so it counts as broken too.

# %%
budget = after.budget
old_users = twin_saturation(before.system, today, budget, tol=0.005)
new_users = twin_saturation(after.system, after.workload, budget, tol=0.005)
grid = cs.growth(after.workload, users=np.array([0.95, 1.05]) * new_users)
check = cs.sweep(after.system, grid, 2, seed=7, duration_s=60, warmup_s=10, store=None,
                 progress=False)
sat = check.saturation(budget)
print(f"Before: the budget broke at about {old_users:,.0f} users "
      f"({old_users / today.users:.1f}x today's peak).")
breaks_on = twin_breaks_on(after.system, after.workload.with_users(1.05 * new_users), budget)
print(f"After: the twin says {new_users:,.0f} users ({new_users / today.users:.0f}x today's "
      f"peak), on {breaks_on}; the simulated sweep says {sat}")

# %% [markdown]
# ## What it costs
#
# Priced on the AWS catalogue (`data/catalogues/aws-us-east-1.csv`, 3-year reserved prices from
# Netflix's service-capacity-modeling): the model's service times are read as measured on one m5
# vCPU (speed 1.0), so every worker is an m5 vCPU, priced at the m5 family's rate, and every
# replica and shard a box of the same size (`sizing.vcpus`). Cost per hour, and per thousand
# users served within budget at the saturation point.

# %%
from capsim.scaling import load_catalogue  # noqa: E402
from capsim.scaling.sizing import vcpus  # noqa: E402

catalogue = load_catalogue()
prices = catalogue.table()
per_vcpu = prices.loc[prices["family"] == "m5", "price_per_vcpu_hour_usd"].median()
print(f"{catalogue.label}: ${per_vcpu:.4f} per m5 vCPU-hour")
size = {"before": vcpus(before.system), "after": vcpus(after.system)}
costs = pd.DataFrame({
    "vCPUs": size,
    "cost_per_hour": {name: n * per_vcpu for name, n in size.items()},
    "saturation_users": {"before": old_users, "after": new_users},
})
costs["cost_per_1000_users_hour"] = costs["cost_per_hour"] / (costs["saturation_users"] / 1000)
print(costs.round(3).to_string())

# %% [markdown]
# ## The answer

# %%
ratio = costs.loc["after", "cost_per_hour"] / costs.loc["before", "cost_per_hour"]
per_user = (costs.loc["after", "cost_per_1000_users_hour"]
            / costs.loc["before", "cost_per_1000_users_hour"])
print(f"At the campaign peak the monolith answered in {first['mean_s']:.0f} s on average "
      f"(p99 {first['p99_s']:.0f} s); the layered platform in {last['mean_s'] * 1e3:.0f} ms "
      f"(p99 {last['p99_s'] * 1e3:.0f} ms).")
print(f"{share.idxmax()} bought the largest share ({share.max():.0%}) of the gain; the index "
      f"came first and bought {share.iloc[0]:.0%}.")
print(f"The budget now holds to about {new_users:,.0f} users, {new_users / old_users:.0f}x "
      f"the old limit, for {ratio:.1f}x the hourly cost: {per_user:.0%} of the old cost per "
      "thousand users served.")
