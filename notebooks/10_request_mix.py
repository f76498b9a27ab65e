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
# # 10 · The request mix: one number per component, or a demand per endpoint?
#
# **Question.** The shop's PostgreSQL answers very different queries: a product page is two
# 3 ms primary-key lookups, a search one 70 ms ranked query, a checkout a lookup and a 40 ms
# transaction. A capacity spreadsheet writes one number per component: "the database, 12.5 ms
# a query, 1.8 queries a page". Both give the database exactly the same work. Do they give
# the same answers: how many users the shop holds within its budget (p99 under 200 ms *for
# every endpoint*, the case study's CI rule), what breaks first, and each endpoint's p99?
#
# Then the classic way one endpoint eats a database: a category listing written as an N+1
# query (one query for the page, then one per product shown). How does a model find it, and
# what does fixing it buy?
#
# We use the analytic twin for the curves (instant) and confirm the key points with short
# replicated simulations (95% confidence intervals).

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import capsim as cs
from capsim.experiment import twin_saturation
from capsim.model.demands import averaged, demand_table

SEED = 10  # every simulation below is a pure function of (model, workload, seed)
REPS = 4  # independent replications per simulated point
DURATION_S = 20  # simulated seconds per run, the first WARMUP_S dropped
WARMUP_S = 5
ENDPOINTS = ["product", "search", "checkout"]
budgets = {f: cs.Budget(p99_s=0.200, flow=f) for f in ENDPOINTS + ["listing"]}
today = cs.OpenWorkload(users=10_000, requests_per_user_s=0.02)  # 200 pages/s at the peak

APP = cs.Service("app", servers=32, service_time=cs.LogNormal(mean=0.015, cv=1.0))
# the database's own service time is a primary-key lookup (in memory, through an index); a
# step that costs something else says so with its own service_time
PG = cs.Database("postgres", servers=8, service_time=cs.Gamma(mean=0.003, cv=0.5))
SEARCH = cs.Gamma(mean=0.070, cv=0.4)  # full-text search over the catalogue, ranked
CHECKOUT = cs.Gamma(mean=0.040, cv=0.5)  # the order: insert, stock update, commit


def shop(listing: list | None = None) -> cs.System:
    """Product pages, search and checkout on one app pool and one PostgreSQL. With a
    ``listing`` (its database steps), a tenth of the page views are category listings,
    taken from the product pages."""
    share = 0.1 if listing else 0.0
    flows = [cs.Flow("product", 0.7 - share, [cs.Call("app"), cs.Read("postgres", visits=2)]),
             cs.Flow("search", 0.2, [cs.Call("app"), cs.Read("postgres", service_time=SEARCH)]),
             cs.Flow("checkout", 0.1, [cs.Call("app"), cs.Read("postgres"),
                                       cs.Write("postgres", service_time=CHECKOUT)])]
    if listing:
        flows.append(cs.Flow("listing", share, [cs.Call("app"), *listing]))
    return cs.System([APP, PG], flows, name="shop")


per_endpoint = shop()
one_number = averaged(per_endpoint)  # the spreadsheet's model of the same shop
models = {"per-endpoint": per_endpoint, "one number": one_number}
print(f"Today: {today.users:,} users x {today.requests_per_user_s} pages/s = "
      f"{today.arrival_rate_per_s:.0f} pages/s; the one-number database: "
      f"{one_number.component('postgres').service_time}")

# %% [markdown]
# ## The two models
#
# `averaged` gives every component one service time: the average of the steps' own demands,
# each weighted by how often a request makes it (flow share x visits). It keeps the
# database's own distribution shape (Gamma, cv 0.5) with the averaged mean; the app pool,
# whose steps give no demand of their own, is left as it is. `demand_table` says where each
# request's work goes: visits per request, busy milliseconds per request, and the cv of one
# visit's service time.

# %%
tables = pd.concat([demand_table(m).assign(model=name) for name, m in models.items()])
pg = tables[tables["component"] == "postgres"]
pg.pivot(index="flow", columns="model", values=["visits", "demand_ms", "service_cv"]).loc[
    ENDPOINTS + ["all"]].round(2)

# %% [markdown]
# Read the `all` row: per average page the database does 1.8 queries and 22.5 ms of work in
# both models. What the one-number model moves is *who pays*: it charges a product page
# 25 ms of database (2 x 12.5) instead of 6, and a search 12.5 ms instead of 70. And it loses
# the spread: the queries the database really serves are a mix of 3 ms and 70 ms, whose cv
# (about 2) is four times that of the one-number model's single Gamma. That cv is what sets
# the length of the queue every request waits in.
#
# ## 1 · Same load, same bottleneck, same wall

# %%
loads = pd.DataFrame([{"model": name, "users": u, **m.offered_load(
    today.with_users(u).arrival_rate_per_s)} for u in (today.users, 15_000)
    for name, m in models.items()])
gap = loads.groupby("users")[["app", "postgres"]].agg(lambda x: x.max() - x.min()).max().max()
twins = {name: cs.analytic.solve(m, today) for name, m in models.items()}
wall = today.users / per_endpoint.offered_load(today.arrival_rate_per_s)["postgres"]
print(f"Largest difference in offered load between the models: {gap:.1e}")
print(f"Bottleneck: {twins['per-endpoint'].bottleneck} / {twins['one number'].bottleneck}; "
      f"postgres reaches 100% at {wall:,.0f} users in both.")
loads.round(4)

# %% [markdown]
# Identical (to rounding), by construction: the average is weighted by the same routes
# the simulation and the twin use. Utilization, the bottleneck (PostgreSQL, about half busy
# at today's peak; the app pool about a tenth) and the wall are questions about the mean
# load, and the one-number model answers them right.
#
# ## 2 · Different tails
#
# The p99 of each endpoint against users, from the twin (lines), and simulated at 12,000 and
# 15,000 users (points with 95% CIs). Each endpoint's p99 crosses the 200 ms budget at its own
# load (`twin_saturation` per endpoint, the dots on the budget line).

# %%
# from 2,000 users to 98.5% of the wall, closer together where p99 turns up
users_line = wall * (1 - np.geomspace(1 - 2_000 / wall, 0.015, 15))
curves = pd.DataFrame([
    {"model": name, "users": u, **t.latency().set_index("flow")["p99_s"].to_dict()}
    for name, m in models.items()
    for u in users_line for t in [cs.analytic.solve(m, today.with_users(u))]])
# where each endpoint's twin p99 reaches the budget, to within 1% of the load
breaks = pd.DataFrame([
    {"model": name, "endpoint": f, "users": twin_saturation(m, today, budgets[f], tol=1e-2)}
    for name, m in models.items() for f in ENDPOINTS])
SIM_USERS = [12_000, 15_000]
sims = {(name, u): cs.replicate(m, today.with_users(u), REPS, SEED, duration_s=DURATION_S,
                                warmup_s=WARMUP_S)
        for name, m in models.items() for u in SIM_USERS}
print(f"Simulated {len(sims)} points x {REPS} runs of {DURATION_S} s.")
sim_p99 = pd.concat([r.latency().query("metric == 'p99_s'").assign(model=name, users=u)
                     for (name, u), r in sims.items()])

# %%
colors = {"product": "tab:blue", "search": "tab:red", "checkout": "tab:green"}
styles = {"per-endpoint": "-", "one number": "--"}
fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
for (name, f), c in [((n, f), c) for n in styles for f, c in colors.items()]:
    line = curves[curves["model"] == name]
    ax.plot(line["users"], line[f] * 1e3, styles[name], color=c, lw=2,
            label=f"{f} ({name})")
    pts = sim_p99[(sim_p99["model"] == name) & (sim_p99["flow"] == f)]
    ax.errorbar(pts["users"], pts["mean"] * 1e3,
                yerr=[(pts["mean"] - pts["ci_low"]) * 1e3, (pts["ci_high"] - pts["mean"]) * 1e3],
                fmt="o" if name == "per-endpoint" else "s", mfc="white" if name != "per-endpoint"
                else c, color=c, capsize=3)
    at = breaks[(breaks["model"] == name) & (breaks["endpoint"] == f)]["users"]
    ax.plot(at, [200] * len(at), "o" if name == "per-endpoint" else "s", ms=9, color=c,
            mfc="white" if name != "per-endpoint" else c, mew=2, zorder=5)
ax.axhline(200, color="0.2", ls=":", lw=1.5, label="budget: p99 200 ms")
ax.plot([], [], "o", color="0.3", label="simulated, per-endpoint")
ax.plot([], [], "s", color="0.3", mfc="white", label="simulated, one number")
ax.plot([], [], "o", ms=9, color="0.3", label="big: where it breaks the budget")
ax.axvline(wall, color="0.5", lw=1)
ax.text(wall, 20, " postgres\n 100%", color="0.4", va="bottom")
ax.set(xlabel="users", ylabel="p99 (ms)", ylim=(0, 400), xlim=(2_000, wall * 1.08),
       title="p99 per endpoint: twin (lines), simulated (95% CI)")
ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x:,.0f}"))
ax.grid(alpha=0.3)
ax.legend(frameon=False, fontsize=8, ncol=2, loc="upper left")
at = sim_p99[(sim_p99["users"] == 15_000) & sim_p99["flow"].isin(ENDPOINTS)]
x = np.arange(len(ENDPOINTS))
for k, (name, hatch) in enumerate([("per-endpoint", ""), ("one number", "//")]):
    b = at[at["model"] == name].set_index("flow").loc[ENDPOINTS]
    bx.bar(x + (k - 0.5) * 0.38, b["mean"] * 1e3, 0.38, yerr=[(b["mean"] - b["ci_low"]) * 1e3,
           (b["ci_high"] - b["mean"]) * 1e3], capsize=4, hatch=hatch, label=name,
           color=[colors[f] for f in ENDPOINTS], edgecolor="white", alpha=0.9 if k else 1.0)
bx.axhline(200, color="0.2", ls=":", lw=1.5)
bx.set_xticks(x, ENDPOINTS)
bx.set(ylabel="p99 (ms), simulated, 95% CI", title="p99 at 15,000 users: solid per-endpoint, "
       "hatched one number")
bx.grid(alpha=0.3, axis="y")
plt.tight_layout()
plt.show()

# %%
order = {name: b.sort_values("users") for name, b in breaks.groupby("model")}
for name in ("per-endpoint", "one number"):
    o = order[name]
    print(f"{name:12s}: endpoints break the budget in the order "
          + ", ".join(f"{r.endpoint} ({r.users:,.0f})" for r in o.itertuples())
          + f"; the shop holds {o['users'].iloc[0]:,.0f} users "
          f"({o['users'].iloc[0] / wall:.0%} of the wall).")
floor = {name: cs.analytic.solve(m, today.with_users(500)).latency().set_index("flow")[
    "p99_s"] * 1e3 for name, m in models.items()}
print("p99 with (almost) no queueing, 500 users (ms): " + "; ".join(
    f"{f} {floor['per-endpoint'][f]:.0f} vs {floor['one number'][f]:.0f}" for f in ENDPOINTS))
t15 = {name: cs.analytic.solve(m, today.with_users(15_000)).components().set_index(
    "component").loc["postgres"] for name, m in models.items()}
print(f"At 15,000 users postgres is {t15['per-endpoint']['offered_load']:.0%} busy in both; "
      f"a query waits {t15['per-endpoint']['mean_wait_s'] * 1e3:.1f} ms for a core on "
      f"average, the one-number model says {t15['one number']['mean_wait_s'] * 1e3:.1f} ms.")
b15 = at.set_index(["model", "flow"])["mean"] * 1e3
print("Simulated p99 at 15,000 users (ms): " + "; ".join(
    f"{f} {b15['per-endpoint', f]:.0f} vs {b15['one number', f]:.0f}" for f in ENDPOINTS))

# %% [markdown]
# **Why averaging gets the tails wrong though the load is right.** Two reasons, both visible
# above.
#
# * *Each endpoint's own work is wrong.* A search is 70 ms of database; the one-number model
#   gives it 12.5 ms. Its p99 with no queueing at all is already about 180 ms of the 200 ms
#   budget in the per-endpoint model, so a little queueing breaks it; the one-number model
#   puts it near 90 ms and calls search the *safest* endpoint. The product page is the
#   reverse: 25 ms of database instead of 6.
# * *The queue everyone waits in is too short.* The database serves a mix of 3 ms and 70 ms
#   queries (cv about 2): a short lookup that arrives behind a few searches waits for them.
#   The one-number model replaces the mix with one well-behaved query time (cv 0.5), and its
#   waits are several times shorter at the same utilization (the numbers above). So even the
#   product page, whose own work the one-number model overstates, breaks sooner in the real
#   shop.
#
# Together they move the saturation point (the one-number model promises thousands of users
# the shop does not have: it holds the budget almost to the wall, because its p99 is flat
# until the very end) and reverse the order in which endpoints fail: the real shop's search
# goes first, then checkout, then product pages; the spreadsheet says product pages and
# checkout together, search last. A capacity plan built on it would watch the wrong
# endpoint and fix the wrong query.
#
# ## 3 · The N+1 listing page
#
# The next release adds category listings (a tenth of page views, taken from product pages).
# The ORM writes it the classic way: one query for the page's 24 product ids (5 ms), then one
# primary-key lookup per product shown, `visits=24` (with a page size that varies, a
# `cs.Geometric(mean=24)` count does the same). The fix is one batched query,
# `WHERE id = ANY($1)`, that costs more than one lookup (12 ms) but is made once.

# %%
IDS = cs.Gamma(mean=0.005, cv=0.5)  # SELECT id FROM products WHERE category = $1 LIMIT 24
BATCH = cs.Gamma(mean=0.012, cv=0.5)  # the 24 products in one query
designs = {"N+1": shop([cs.Read("postgres", service_time=IDS), cs.Read("postgres", visits=24)]),
           "batched": shop([cs.Read("postgres", service_time=IDS),
                            cs.Read("postgres", service_time=BATCH)])}
demand = pd.concat([demand_table(m).assign(design=name) for name, m in designs.items()])
demand = demand[(demand["component"] == "postgres") & (demand["flow"] != "all")]
demand["ms_per_page"] = demand["weight"] * demand["demand_ms"]  # its share of an average page

fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 3.8))
flow_colors = {**colors, "listing": "tab:purple"}
for i, (_, d) in enumerate(demand.groupby("design", sort=False)):
    left = 0.0
    for r in d.itertuples():
        ax.barh(i, r.ms_per_page, left=left, color=flow_colors[r.flow], edgecolor="white",
                label=r.flow if i == 0 else None)
        left += r.ms_per_page
    ax.text(left, i, f" {left:.1f} ms", va="center")
ax.set_yticks(range(len(designs)), list(designs))
ax.set(xlabel="postgres busy time per average page (ms), by endpoint",
       title="Who loads the database", xlim=(0, 38))
ax.legend(frameon=False, fontsize=9, ncol=4, loc="lower right", bbox_to_anchor=(1, 1.08))
per_req = demand.pivot(index="flow", columns="design", values="demand_ms").loc[
    ENDPOINTS + ["listing"], list(designs)]
per_req.plot.bar(ax=bx, color=["tab:purple", "tab:olive"], rot=0)
bx.set(ylabel="postgres ms per request", xlabel="", title="Database work per request")
for a in (ax, bx):
    a.grid(alpha=0.3, axis="x" if a is ax else "y")
plt.tight_layout()
plt.show()

# %% [markdown]
# The breakdown finds the N+1 without running anything: the listing is a tenth of the pages
# but the second-largest consumer of the database, 77 ms of work per listing (25 queries)
# against 17 ms batched. Now what it does to the budget: the listing's p99 against users, and
# the load at which each design stops holding every endpoint's budget.

# %%
fix = {}
for name, m in designs.items():
    per = {f: twin_saturation(m, today, budgets[f], tol=1e-2) for f in budgets}
    wall_m = today.users / m.offered_load(today.arrival_rate_per_s)["postgres"]
    fix[name] = {"first": min(per, key=per.get), "users": min(per.values()), "wall": wall_m,
                 **{f"{f} breaks at": u for f, u in per.items()}}
fix = pd.DataFrame.from_dict(fix, orient="index")
listing_sims = {name: cs.replicate(m, today, REPS, SEED, duration_s=DURATION_S,
                                   warmup_s=WARMUP_S) for name, m in designs.items()}
fix.round(0)

# %%
fig, ax = plt.subplots(figsize=(9, 4.5))
for name, color in [("N+1", "tab:purple"), ("batched", "tab:olive")]:
    m = designs[name]
    us = fix.loc[name, "wall"] * (1 - np.geomspace(1 - 2_000 / fix.loc[name, "wall"], 0.015, 15))
    ax.plot(us, [cs.analytic.solve(m, today.with_users(u)).latency().set_index("flow").loc[
        "listing", "p99_s"] * 1e3 for u in us], color=color, lw=2, label=f"listing, {name}")
    s = listing_sims[name].latency().query("metric == 'p99_s' and flow == 'listing'")
    ax.errorbar([today.users], s["mean"] * 1e3,
                yerr=[(s["mean"] - s["ci_low"]) * 1e3, (s["ci_high"] - s["mean"]) * 1e3],
                fmt="o", color=color, capsize=4, mec="white")
    ax.axvline(fix.loc[name, "users"], color=color, ls="--", lw=1.5,
               label=f"{name}: every endpoint within budget up to "
                     f"{fix.loc[name, 'users']:,.0f} users")
ax.axhline(200, color="0.2", ls=":", lw=1.5, label="budget: p99 200 ms")
ax.set(xlabel="users", ylabel="p99 of the listing page (ms)", ylim=(0, 400),
       title="The N+1 listing: twin (lines), simulated at today's peak (95% CI)")
ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x:,.0f}"))
ax.grid(alpha=0.3)
ax.legend(frameon=False, fontsize=9, loc="upper left")
plt.show()

# %%
lp = {name: r.latency().query("metric == 'p99_s'").set_index("flow")["mean"] * 1e3
      for name, r in listing_sims.items()}
util = {name: r.components().query("component == 'postgres' and metric == 'utilization'")[
    "mean"].item() for name, r in listing_sims.items()}
for name in designs:
    print(f"{name:8s} at today's {today.users:,} users: postgres {util[name]:.0%} busy, "
          f"listing p99 {lp[name]['listing']:.0f} ms, search p99 {lp[name]['search']:.0f} ms "
          f"(simulated); the budget holds to {fix.loc[name, 'users']:,.0f} users "
          f"({fix.loc[name, 'first']} breaks first), the wall is at "
          f"{fix.loc[name, 'wall']:,.0f}.")
gain = fix.loc["batched", "users"] / fix.loc["N+1", "users"] - 1
print(f"Batching the listing moves the saturation point by {gain:+.0%}.")

# %% [markdown]
# **What the N+1 does.** Twenty-five queries in a row make the listing slow twice over: 77 ms
# of database work before any queueing, and 25 waits for a core, one per query, so its p99
# climbs with the database's queue 25 times as fast as a one-query page's. And it is the
# database's second-largest customer, so it drags every other endpoint's queue up with it:
# the shop's budget breaks thousands of users earlier than without listings (section 2):
# shipped as written, the release breaks the budget at today's peak. One batched query
# costs a little more than one lookup but a sixth of the 24, waits once, and hands the
# capacity back.
#
# ## The answer

# %%
pe, on = order["per-endpoint"], order["one number"]
print(f"Same load: postgres is the bottleneck in both models and reaches 100% at "
      f"{wall:,.0f} users.")
print(f"Per-endpoint demands: the shop holds every endpoint's p99 <= 200 ms up to "
      f"{pe['users'].iloc[0]:,.0f} users, and {pe['endpoint'].iloc[0]} breaks first. One "
      f"number per component says {on['users'].iloc[0]:,.0f} users "
      f"({on['users'].iloc[0] / pe['users'].iloc[0] - 1:+.0%}), with "
      f"{on['endpoint'].iloc[0]} first and {on['endpoint'].iloc[-1]} last.")
print(f"At 15,000 users the simulated search p99 is {b15['per-endpoint', 'search']:.0f} ms; "
      f"the one-number model says {b15['one number', 'search']:.0f} ms.")
print(f"The N+1 listing holds the budget to {fix.loc['N+1', 'users']:,.0f} users "
      f"({fix.loc['N+1', 'first']} breaks first); batched, to "
      f"{fix.loc['batched', 'users']:,.0f} ({gain:+.0%}).")

# %% [markdown]
# **Answer.** A model with one service time per component gets the *load* right: the same
# utilization, the same bottleneck (PostgreSQL) and the same wall, because the mean work is
# the same. Everything about latency it gets wrong. It gives every query the average cost,
# so the 70 ms search looks like the safest endpoint when it is the first to break, and it
# forgets that the database serves a very uneven mix, so its queues are too short and its
# p99 stays flat until the wall: it promises thousands of users (the numbers above) that the
# real shop does not hold within its budget, and it names the wrong endpoint to watch. For a
# latency budget per endpoint, give each step its own demand (`service_time=`) and let the
# model weigh the mix.
#
# The same per-step demands make an N+1 page visible before it ships: a per-flow demand
# table shows one endpoint, a tenth of the traffic, doing a large share of the database's
# work in 25 small queries, and its p99 rising with every one of them. Batching them into one
# query is the fix, and it moves the saturation point back by the amount above.
