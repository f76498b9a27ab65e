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
# # 05 · Caching
#
# **Question.** The case study put Redis in front of PostgreSQL for product details and a CDN
# in front of the static assets. What does a cache buy, what does it cost, and when does it
# bite back?
#
# 1. **Hit ratio.** How much database load and p99 does each point of hit ratio buy?
# 2. **What hit ratio to expect** from a cache of a given size.
# 3. **Stale data.** TTL and invalidation on write: how often does a shopper see the wrong
#    stock level, and how old is it? ("Stale data is worse than slow data.")
# 4. **Cold start.** A deploy or a flush empties Redis: what does the database see?
# 5. **CDN.** What does serving static assets from the edge do for the user and the origin?

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import optimize

import capsim as cs
from capsim.model.popularity import che_hit_ratio
from capsim.report.timeseries import latency_timeseries, recovery, station_timeseries

SEED = 5
APP = cs.Service("app", servers=64, service_time=cs.LogNormal(mean=0.005, cv=1.0))
PG = cs.Database("pg", servers=4, service_time=cs.Exponential(0.010))
REDIS = cs.Cache("redis", servers=4, service_time=cs.Exponential(0.0005), hit_ratio=0.9)
load = cs.OpenWorkload(users=100_000, requests_per_user_s=0.01)  # 1,000 product views/s


def product_page(redis: cs.Cache, updates: float = 0.0) -> cs.System:
    """Product views read Redis and, on a miss, PostgreSQL (cache-aside); a share of requests
    are stock updates, written to PostgreSQL and to the product's cache entry."""
    view = [cs.Call("app"), cs.Read("redis", on_miss=[cs.Read("pg")])]
    flows = [cs.Flow("view-product", 1 - updates, view)]
    if updates:
        flows.append(cs.Flow("update-stock", updates, [cs.Call("app"), cs.Write("pg"),
                                                       cs.Write("redis")]))
    return cs.System([APP, redis, PG], flows, name="shop")


# %% [markdown]
# ## 1 · What each point of hit ratio buys
#
# **Question.** 1,000 product views per second; each miss costs PostgreSQL (4 cores) a 10 ms
# query. Without a cache that is 2.5x what the database can do. How do its utilization and
# the page's p99 change with the hit ratio $h$?
#
# Only misses reach the database, so its utilization is $\rho = \lambda (1 - h) S / c$:
# linear in the miss ratio. Latency is the hockey stick of notebook 01 in $\rho$, which makes
# it very non-linear in $h$.

# %%
lam, S, c = load.arrival_rate_per_s, PG.service_time.mean, PG.servers
H_SIM = [0.7, 0.8, 0.9, 0.95, 0.99]
H_LINE = np.linspace(0.61, 0.995, 40)
twin = [cs.analytic.solve(product_page(cs.replace(REDIS, hit_ratio=h)), load) for h in H_LINE]
sims = {h: cs.replicate(product_page(cs.replace(REDIS, hit_ratio=h)), load, 3, SEED,
                        duration_s=20, warmup_s=3) for h in H_SIM}
pts = pd.DataFrame([{"h": h, "pg_util": r.components().query(
    "component == 'pg' and metric == 'utilization'")["mean"].item(),
    **r.latency().query("metric == 'p99_s'").iloc[0][["mean", "half_width"]]}
    for h, r in sims.items()])

fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.2))
h_all = np.linspace(0, 1, 101)
ax.plot(h_all, np.minimum(lam * (1 - h_all) * S / c, 1.2) * 100, color="tab:blue",
        label=r"$\lambda(1-h)S/c$")
ax.plot(pts["h"], pts["pg_util"] * 100, "o", color="tab:blue", mec="white", label="simulated")
bx.plot(H_LINE, [t.latency()["p99_s"].iloc[0] * 1e3 for t in twin], color="tab:red",
        label="twin")
bx.errorbar(pts["h"], pts["mean"] * 1e3, yerr=pts["half_width"] * 1e3, fmt="o", capsize=3,
            color="tab:red", mec="white", label="simulated (95% CI)")
h_wall = 1 - c / (lam * S)
for a in (ax, bx):
    a.axvspan(0, h_wall, color="0.5", alpha=0.15, lw=0, label="no steady state (pg >= 100%)")
    a.set(xlabel="Redis hit ratio", xlim=(0, 1))
    a.grid(alpha=0.3)
    a.legend(frameon=False, fontsize=9)
ax.axhline(80, color="tab:orange", ls=":")
ax.set(ylabel="pg utilization (%)", ylim=(0, 120), title="Database load: linear in misses")
bx.set(ylabel="p99 of a product view (ms)", ylim=(0, 120),
       title="p99: the hockey stick, seen from the cache")
plt.show()

# %%
at = pts.set_index("h")
h80 = 1 - 0.8 * c / (lam * S)
print(f"Without a cache pg would be offered {lam * S / c:.0%} of its capacity; it needs "
      f"h >= {h_wall:.0%} just to keep up and h >= {h80:.0%} to stay under the 80% line.")
for h in (0.7, 0.9, 0.99):
    print(f"h = {h:.0%}: pg {at.loc[h, 'pg_util']:.0%} busy, p99 {at.loc[h, 'mean'] * 1e3:.0f} ms")
print(f"From 90% to 99% the database sheds {at.loc[0.9, 'pg_util'] / at.loc[0.99, 'pg_util']:.0f}x "
      f"its load, but p99 improves only {at.loc[0.9, 'mean'] / at.loc[0.99, 'mean']:.2f}x.")

# %% [markdown]
# **Answer.** Every point of hit ratio takes the same slice off the database, but what it buys
# in latency depends on where you are. Near the wall (70% here) a few points decide between a
# working site and no steady state. Past 90% the database is idle enough that p99 is the
# application's own time, and more hit ratio buys headroom for growth, not speed. So the
# number to watch is the *miss* ratio: going from 90% to 99% hits cuts database load 10x.
#
# ## 2 · What hit ratio will we get?
#
# **Question.** Hit ratio is not a dial: it depends on how skewed popularity is and how much of
# the catalogue fits in memory. 100,000 products, requested with Zipf popularity (s = 0.9: a
# few hits, a long tail), an LRU Redis. How many products must it hold for 70%, 80%, 90%?
# Che's approximation answers without a simulation.

# %%
KEYS, ZIPF = 100_000, 0.9
sizes = [1_000, 5_000, 10_000, 20_000, 50_000]
print(", ".join(f"{n:,} keys: {che_hit_ratio(KEYS, ZIPF, n):.0%}" for n in sizes))
needed = {h: optimize.brentq(lambda n, h=h: che_hit_ratio(KEYS, ZIPF, round(n)) - h, 10, KEYS - 1,
                             xtol=1)  # to the key: the hit ratio is a step function of whole keys
          for h in (0.7, 0.8, 0.9)}
print("Keys needed: " + ", ".join(f"h = {h:.0%}: {n:,.0f} ({n / KEYS:.0%} of the catalogue)"
                                  for h, n in needed.items()))

# %% [markdown]
# **Answer.** The first few thousand keys do most of the work (the head of the Zipf curve);
# each further point costs more memory than the last. With this popularity, 20% of the
# catalogue in Redis gives about 70% hits, barely above the 60% this database needs to keep
# up at all; 90% hits needs three fifths of the catalogue. Sections 3 and 4 simulate the LRU
# itself, key by key.
#
# ## 3 · Stale data: TTL and invalidation
#
# **Question.** Product pages show stock levels. Every purchase changes the stock of one
# product (popular products sell more, with the same Zipf popularity as views). A cached copy
# is stale from that moment until it expires (TTL) or is invalidated. With and without
# `invalidate_on_write`, for TTLs from 10 s to 15 min: what share of product views show
# stale stock, how old is it, and what does invalidation cost in hit ratio?
#
# A smaller shop for this question: 5,000 products, Redis holds 1,000, 100 requests/s, 5% of
# them purchases. Each run is warmed up for longer than its TTL.

# %%
TTLS = [10, 30, 60, 300, 900]
inventory = cs.Cache("redis", servers=4, service_time=cs.Exponential(0.0005), keys=5_000,
                     zipf_s=ZIPF, capacity_keys=1_000)
cases = [(ttl, inv) for inv in (False, True) for ttl in TTLS]
systems = [product_page(cs.replace(inventory, ttl_s=ttl, invalidate_on_write=inv), 0.05)
           for ttl, inv in cases]
warm = [ttl + 60 for ttl, _ in cases]
runs = [cs.simulate(system, load.with_users(10_000), w + 300, w, SEED)
        for system, w in zip(systems, warm, strict=True)]
stale = pd.DataFrame([{"ttl_s": ttl, "invalidate": inv, **r.caches().iloc[0].to_dict(),
                       "pg_util": r.components().set_index("component").loc["pg", "utilization"]}
                      for (ttl, inv), r in zip(cases, runs, strict=True)])

fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for inv, c_ in stale.groupby("invalidate"):
    style = dict(color="tab:green" if inv else "tab:red", marker="o",
                 label="invalidate on write" if inv else "TTL only")
    axes[0].plot(c_["ttl_s"], c_["stale_ratio"] * 100, **style)
    axes[1].plot(c_["ttl_s"], c_["mean_stale_age_s"], **style)
    axes[2].plot(c_["ttl_s"], c_["hit_ratio"] * 100, **style)
for a, (ylabel, title) in zip(axes, [("stale reads (% of views)", "Views showing stale stock"),
                                     ("mean age of stale data (s)", "How stale"),
                                     ("hit ratio (%)", "What invalidation costs")],
                              strict=True):
    a.set(xscale="log", xlabel="TTL (s, log scale)", ylabel=ylabel, title=title)
    a.grid(alpha=0.3)
axes[0].legend(frameon=False)
plt.show()

# %%
s_ = stale.set_index(["invalidate", "ttl_s"])
for ttl in (30, 300):
    print(f"TTL {ttl:3d} s, TTL only: {s_.loc[(False, ttl), 'stale_ratio']:.1%} of views stale, "
          f"{s_.loc[(False, ttl), 'mean_stale_age_s']:.0f} s old on average, hit ratio "
          f"{s_.loc[(False, ttl), 'hit_ratio']:.1%}; with invalidation: "
          f"{s_.loc[(True, ttl), 'stale_ratio']:.1%} stale, hit ratio "
          f"{s_.loc[(True, ttl), 'hit_ratio']:.1%} (pg {s_.loc[(False, ttl), 'pg_util']:.1%} -> "
          f"{s_.loc[(True, ttl), 'pg_util']:.1%} busy)")
lost = s_.loc[(False, TTLS[-1]), "hit_ratio"] - s_.loc[(False, TTLS[0]), "hit_ratio"]
print(f"The shortest TTL, {TTLS[0]} s, still leaves {s_.loc[(False, TTLS[0]), 'stale_ratio']:.1%} "
      f"of views stale and costs {lost * 100:.0f} points of hit ratio against {TTLS[-1]} s.")

# %% [markdown]
# **Answer.** With a TTL alone, staleness is the price of every hit: the longer the TTL, the
# higher the hit ratio and the more views show a stock level that has already changed,
# because the products people look at most are the ones that sell most. Shortening the TTL
# trades hit ratio for freshness and never gets staleness to zero. Invalidating the entry on
# every write removes stale reads entirely (in this model, where the write and the
# invalidation happen together) and costs only a couple of points of hit ratio, since an
# invalidated key is simply re-read once. That is the case study's rule, "stale data is
# worse than slow data": invalidate on write, and keep a long TTL only as a safety net.
#
# ## 4 · Cold start: the miss storm after a deploy or a flush
#
# **Question.** Back to 1,000 views/s over 100,000 products, Redis holding 20,000. Warm, the
# LRU gives about 70% hits and PostgreSQL is about 75% busy. After a deploy that starts with
# an empty Redis (or a flush), every view misses at first. What does the database go through,
# and for how long? (The warm start is pre-loaded with the 20,000 most popular products,
# slightly better than what the LRU then keeps, so its hit ratio settles a little lower.)

# %%
lru = cs.Cache("redis", servers=4, service_time=cs.Exponential(0.0005), keys=KEYS,
               zipf_s=ZIPF, capacity_keys=20_000)
starts = {"warm (pre-loaded)": cs.replace(lru, warm=True),
          "cold (empty)": cs.replace(lru, warm=False)}
start_runs = {name: cs.simulate(product_page(redis), load, 120, seed=SEED)
              for name, redis in starts.items()}
fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
for (name, run), color in zip(start_runs.items(), ["tab:green", "tab:red"], strict=True):
    hits = run.hit_ratio_timeseries()
    axes[0].plot(hits["time_s"], hits["hit_ratio"].rolling(5, min_periods=1).mean() * 100,
                 color=color, label=name)
    pg = station_timeseries(run, ["pg"])
    axes[1].plot(pg["time_s"], pg["present"], color=color)
    lat = latency_timeseries(run, 5.0)
    axes[2].plot(lat["time_s"] + 2.5, lat["p99_s"] * 1e3, color=color)
axes[0].set(ylabel="Redis hit ratio (%)", ylim=(0, 100), title="Warm and cold starts at 1,000 "
            "views/s")
axes[0].legend(frameon=False)
axes[1].set(ylabel="queries at pg\n(waiting + running)")
axes[2].set(ylabel="p99 of views arriving\nin each 5 s (ms, log)", yscale="log",
            xlabel="seconds since the deploy")
for a in axes:
    a.grid(alpha=0.3)
plt.show()

# %%
cold, warm_run = start_runs["cold (empty)"], start_runs["warm (pre-loaded)"]
steady = cold.with_warmup(60).caches()["hit_ratio"].item()  # once the first minute is over
hits = cold.hit_ratio_timeseries()
smooth = hits["hit_ratio"].rolling(5, min_periods=1).mean()
t90 = hits.loc[smooth >= 0.9 * steady, "time_s"].iloc[0]
pg = station_timeseries(cold, ["pg"])
normal = station_timeseries(warm_run, ["pg"])["present"].quantile(0.99)
storm = recovery(pg["time_s"], pg["present"], after_s=0, level=normal)
lat = latency_timeseries(cold, 5.0).set_index("time_s")["p99_s"]
print(f"Cold Redis: hit ratio reaches 90% of its steady {steady:.0%} after {t90:.0f} s; pg is "
      f"offered {lam * S / c:.0%} of its capacity at first.")
print(f"pg's backlog peaks at {storm.peak:,.0f} queries after {storm.peak_s:.0f} s and is back "
      f"to normal (<= {normal:.0f}, the warm run's 99th percentile) after {storm.back_s:.0f} s.")
print(f"p99 of views arriving in the first minute: up to {lat[lat.index < 60].max():.1f} s; "
      f"from {storm.back_s:.0f} s on: {lat[lat.index >= storm.back_s].max() * 1e3:.0f} ms at "
      f"worst.")

# %% [markdown]
# **Answer.** An empty cache turns 1,000 views/s into 1,000 queries/s for a database sized for
# the misses of a warm one. The cache fills fast (the popular keys come back first, so the
# hit ratio climbs steeply), but the backlog the database built in the first seconds takes
# most of a minute to work off, and for all that time every miss waits behind it: p99 goes
# from tens of milliseconds to seconds. Nothing is broken and every health check is green.
# The remedies are what the picture suggests: pre-load (warm) the cache before it takes
# traffic, flush or deploy one node at a time rather than all of Redis at once, and keep
# enough database headroom for the miss storm, or shed load while it lasts.
#
# ## 5 · A CDN for static assets
#
# **Question.** Users are far from the data centre: a round trip over the internet costs
# 80 ms on average. A page needs its HTML from the app and then its CSS/JS bundle before it
# can render; the other assets (images, fonts) are separate requests, four for every page.
# The origin serving static files has 4 workers at 3 ms per file. What does a CDN with
# a 90% hit ratio and edge servers 15 ms away change?

# %%
internet = cs.Delay("internet", latency=cs.LogNormal(mean=0.080, cv=0.3))
web = cs.Service("app", servers=32, service_time=cs.LogNormal(mean=0.020, cv=1.0))
static = cs.Service("static", servers=4, service_time=cs.Exponential(0.003))
cdn = cs.CDN("cdn", hit_ratio=0.9, edge_latency=cs.LogNormal(mean=0.015, cv=0.5))
origin_fetch = [cs.Call("internet"), cs.Call("static")]


def site(use_cdn: bool) -> cs.System:
    asset = [cs.Read("cdn", on_miss=origin_fetch)] if use_cdn else origin_fetch
    return cs.System([internet, web, static] + ([cdn] if use_cdn else []), [
        cs.Flow("page", 0.2, [cs.Call("internet"), cs.Call("app")] + asset),
        cs.Flow("asset", 0.8, asset)], name="cdn" if use_cdn else "origin")


sites = {"from the origin": site(False), "through the CDN": site(True)}
cdn_runs = {name: cs.simulate(system, load, 60, 5.0, SEED) for name, system in sites.items()}
table = pd.concat({name: r.latency().set_index("flow")[["mean_s", "p50_s", "p99_s"]] * 1e3
                   for name, r in cdn_runs.items()}, names=["served", "flow"])
static_util = {name: r.components().set_index("component").loc["static", "utilization"]
               for name, r in cdn_runs.items()}

fig, ax = plt.subplots(figsize=(8, 3.8))
wide = table.unstack("served")
x = np.arange(len(wide.index))
for k, (name, color) in enumerate(zip(sites, ["tab:gray", "tab:blue"], strict=True)):
    ax.bar(x + (k - 0.5) * 0.38, wide["mean_s", name], 0.38, color=color, label=f"mean, {name}")
    ax.errorbar(x + (k - 0.5) * 0.38, wide["p99_s", name], fmt="_", ms=18, mew=2, color="k",
                label="p99" if k else None)
ax.set_xticks(x, wide.index)
ax.set(ylabel="latency (ms)", title="Static assets from the origin or the edge", ylim=(0, 370))
ax.legend(frameon=False, fontsize=9, ncol=3, loc="upper center")
ax.grid(alpha=0.3, axis="y")
plt.show()
table.round(0)

# %%
page = table.xs("page", level="flow")["mean_s"]
asset = table.xs("asset", level="flow")
gain = 1 - page["through the CDN"] / page["from the origin"]
print(f"A page (HTML + bundle): mean {page['from the origin']:.0f} -> "
      f"{page['through the CDN']:.0f} ms ({gain:.0%} faster); an asset: p50 "
      f"{asset.loc['from the origin', 'p50_s']:.0f} -> {asset.loc['through the CDN', 'p50_s']:.0f} "
      f"ms, p99 {asset.loc['from the origin', 'p99_s']:.0f} -> "
      f"{asset.loc['through the CDN', 'p99_s']:.0f} ms (misses still go to the origin).")
print(f"The static origin goes from {static_util['from the origin']:.0%} to "
      f"{static_util['through the CDN']:.0%} busy.")

# %% [markdown]
# **Answer.** The CDN helps twice. For the user, a static file is one short hop instead of a
# round trip across the internet: a page whose critical path is "HTML from the app, then its
# bundle" gets markedly faster on average (the case study measured about 30% on real pages),
# while the asset's p99 improves far less than its median, because the 10% of misses still
# make the long trip. For the origin, nine requests in ten never arrive: a static tier at 75%
# busy is left almost idle, and traffic growth in assets no longer needs origin capacity.
# What the CDN does not touch is the HTML itself: dynamic pages still cross the internet to the
# app, so the next gains come from the app and the database (notebooks 02 and 04).
#
# ## The answer
#
# * **Hit ratio** buys database capacity linearly in the miss ratio and latency only near the
#   database's wall; size the cache for the miss rate the database can take at peak, with
#   headroom, not for a pretty hit ratio.
# * **Cache size**: with Zipf-like popularity a fifth of the catalogue already gives most of the
#   achievable hits; the last points are expensive.
# * **Staleness**: a TTL alone serves stale stock on a large share of views of the products
#   that matter most; invalidate on write, and the price is a couple of points of hit ratio.
# * **Cold start**: an empty cache is a miss storm; the database needs most of a minute to
#   recover even though the cache refills in seconds. Warm caches before they take traffic.
# * **CDN**: nine in ten asset requests served at the edge; faster pages for distant users and
#   an idle origin.
