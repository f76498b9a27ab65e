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
# # 04 · Scaling the database
#
# **Question.** Notebook 02 found the database to be the wall. What does each remedy the case
# study's team reached for buy, in users supported and in p99 latency: an index on the slow
# query, a bigger box, read replicas, shards? And where does each one stop helping?
#
# 1. **The index.** The query that took 30 s without an index: what does it do to everyone else?
# 2. **Five layouts for a read-heavy shop.** One primary, a bigger box, replicas, shards, and
#    shards with a hot key range.
# 3. **Where replicas stop: writes.** The same layouts under a write-heavy mix.
#
# Every database box below has 8 cores and answers an indexed query in 8 ms on average
# (exponential). Traffic is counted in active users, each loading a page every 50 s.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import capsim as cs
from capsim.experiment import twin_saturation
from capsim.scaling.sizing import bottleneck

SEED = 4
RATE = 0.02  # pages per second per active user
today = cs.OpenWorkload(users=10_000, requests_per_user_s=RATE)
budget = cs.Budget(p99_s=0.200)
APP = cs.Service("app", servers=64, service_time=cs.LogNormal(mean=0.010, cv=1.0))
PG = cs.Database("pg", servers=8, service_time=cs.Exponential(0.008))


def shop(pg: cs.Database, checkout: float = 0.1, history: float = 0.0,
         index: bool = True) -> cs.System:
    """Pages on `app` querying `pg`: browse (2 reads), checkout (2 writes, 1 read) and the
    order-history page (one query on the orders table, with or without its index)."""
    flows = [cs.Flow("browse", 1 - checkout - history, [cs.Call("app"), cs.Read("pg"),
                                                         cs.Read("pg")]),
             cs.Flow("checkout", checkout, [cs.Call("app"), cs.Write("pg"), cs.Write("pg"),
                                            cs.Read("pg")])]
    if history:
        flows.append(cs.Flow("order-history", history, [cs.Call("app"),
                                                         cs.Read("pg", index=index)]))
    return cs.System([APP, pg], flows, name=pg.name)


# %% [markdown]
# ## 1 · The index: a 30-second query
#
# **Question.** The order-history page (1% of pages) looks up a user's orders. Without an
# index PostgreSQL scans the whole orders table: 150 million rows at 5 million rows/s per
# core, 30 s. With the index it is one ordinary lookup. In development, with a handful of
# users, 30 s was merely slow. What does it do at 200, 600, 1,000 users, and to the *other*
# pages, which never touch the orders table?

# %%
pg_orders = cs.replace(PG, table_rows=150_000_000)
variants = {"no index": shop(pg_orders, history=0.01, index=False),
            "indexed": shop(pg_orders, history=0.01, index=True)}
walls = {name: bottleneck(s).users_at(RATE) for name, s in variants.items()}
work = variants["no index"].demands()["pg"]
scans = 0.01 * pg_orders.table_rows / pg_orders.scan_rows_per_s
print(f"One scan: {pg_orders.table_rows / pg_orders.scan_rows_per_s:.0f} s of a core, "
      f"{pg_orders.scan_factor():,.0f} indexed lookups' worth: {scans / work:.0%} of "
      f"pg's work per page is the 1% of pages that scan.")
for name, wall in walls.items():
    print(f"{name:9s}: pg is 100% busy at {wall:,.0f} users "
          f"(today's {today.users:,} users offer it {today.users / wall:.1f}x its capacity)")

# %%
USERS_SCAN = [200, 600, 1000]
# 30 s scans make a heavy tail: long runs for the unindexed variant, short ones suffice indexed
runs_of = {"no index": (5, 2400), "indexed": (3, 600)}  # (replications, seconds)
scan_runs = {(name, u): cs.replicate(s, today.with_users(u), runs_of[name][0], SEED,
                                     duration_s=runs_of[name][1], warmup_s=100)
             for name, s in variants.items() for u in USERS_SCAN}
p99 = pd.DataFrame([{"variant": name, "users": u, **row}
                    for (name, u), reps in scan_runs.items()
                    for row in reps.latency().query("metric == 'p99_s'").to_dict("records")])

fig, ax = plt.subplots(figsize=(10, 4.5))
for (name, flow), c in p99[p99["flow"].isin(["browse", "order-history"])].groupby(
        ["variant", "flow"]):
    ax.errorbar(c["users"], c["mean"], yerr=c["half_width"].clip(upper=c["mean"] * 0.9),
                fmt="o-" if flow == "browse" else "s:", capsize=3,
                color="tab:red" if name == "no index" else "tab:green",
                label=f"{flow} page, {name}")
ax.axhline(budget.p99_s, color="0.3", ls="--", lw=1, label="p99 budget (200 ms)")
ax.set(yscale="log", xlabel="users", ylabel="p99 latency (s, log scale)",
       title="One unindexed query on 1% of pages: p99 of every page")
ax.legend(frameon=False, fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1))
ax.grid(alpha=0.3)
plt.show()

# %%
at = p99.set_index(["variant", "flow", "users"])["mean"]
print(f"browse p99 without the index: {at['no index', 'browse', 200] * 1e3:.0f} ms at 200 "
      f"users, {at['no index', 'browse', 600]:.1f} s at 600, "
      f"{at['no index', 'browse', 1000]:.0f} s at 1,000 (pg then "
      f"{1000 / walls['no index']:.0%} busy); with it: "
      f"{at['indexed', 'browse', 1000] * 1e3:.0f} ms at 1,000.")
print(f"order-history itself: {at['no index', 'order-history', 1000]:.0f} s p99 without "
      f"the index, {at['indexed', 'order-history', 1000] * 1e3:.0f} ms with it.")
print(f"The index moves pg's wall from {walls['no index']:,.0f} to {walls['indexed']:,.0f} "
      f"users: {walls['indexed'] / walls['no index']:.0f}x.")

# %% [markdown]
# **Answer.** Without the index, a query on 1% of the pages is almost all of the database's
# work. Every scan holds a core for 30 s, and when a few of them overlap, the lookups of every
# other page queue behind them. So the browse page, which never reads the orders table, goes
# from under 100 ms p99 to seconds and then minutes, while the database is still below 100%.
# This is how "queries that took milliseconds in development took tens of seconds at peak".
# (The order-history page itself waits minutes at p99: its scans take 30 s on average, and
# with this model's exponential query times some take far longer.)
# The database hits its wall at about 1,300 users, and at today's 10,000 it would need 8
# times its cores: it never catches up, and a health check that only asks whether it is up
# says yes. The index is the cheapest capacity there is. It moves the wall nearly 20x and
# costs no hardware. Everything below assumes it is in place.
#
# ## 2 · Five layouts for a read-heavy shop
#
# **Question.** 90% of pages browse (2 reads), 10% check out (2 writes, 1 read): about 90% of
# queries are reads. Five ways to give PostgreSQL more capacity, all but the first with three
# boxes' worth of CPU:
#
# * **1 primary**: today's single 8-core box;
# * **bigger box**: one 24-core box (scaling up, what the team tried first);
# * **primary + 2 replicas**: writes on the primary, reads spread over two replicas that
#   apply its changes 50 ms late on average;
# * **3 shards**: keys split evenly over three primaries;
# * **3 shards, one hot**: the same, but one shard holds the popular half of the traffic.
#
# How many users does each support before p99 breaks 200 ms, and which box gives out first?

# %%
layouts = {
    "1 primary": PG,
    "bigger box (24 cores)": cs.replace(PG, servers=24),
    "primary + 2 replicas": cs.replace(PG, read_replicas=2,
                                       replication_lag=cs.Exponential(0.05)),
    "3 shards": cs.replace(PG, shards=3),
    "3 shards, one hot": cs.replace(PG, shards=3, shard_weights=(0.5, 0.25, 0.25)),
}
read_heavy = {name: shop(pg) for name, pg in layouts.items()}
bottlenecks = {name: bottleneck(s) for name, s in read_heavy.items()}  # fills first
capacity = pd.DataFrame([{"layout": name, "first to break": bottlenecks[name].station,
                          "80% alarm at (users)": bottlenecks[name].users_at(RATE, 0.8),
                          "100% at (users)": bottlenecks[name].users_at(RATE),
                          "p99 > 200 ms at (users, twin)": twin_saturation(s, today, budget)}
                         for name, s in read_heavy.items()]).set_index("layout")
capacity.round(-2)

# %%
GRID = np.linspace(2_000, 78_000, 20)
twins = {name: [cs.analytic.solve(s, today.with_users(u)) for u in GRID]
         for name, s in read_heavy.items()}
twin_p99 = {name: [t.latency().set_index("flow").loc["all", "p99_s"] for t in results]
            for name, results in twins.items()}
check_users = 2 * today.users  # the case study's load test: 2x today's peak
checks = {name: cs.replicate(s, today.with_users(check_users), 4, SEED, duration_s=40,
                             warmup_s=5) for name, s in read_heavy.items()}

fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.6), width_ratios=[1.2, 1])
colors = dict(zip(layouts, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
for name, curve in twin_p99.items():
    ax.plot(GRID, np.asarray(curve) * 1e3, color=colors[name], label=name)
    ax.plot(capacity.loc[name, "p99 > 200 ms at (users, twin)"], budget.p99_s * 1e3, "X",
            ms=9, color=colors[name], mec="white")
    sim = checks[name].latency().query("flow == 'all' and metric == 'p99_s'").iloc[0]
    ax.errorbar(check_users, sim["mean"] * 1e3, yerr=sim["half_width"] * 1e3, fmt="o",
                color=colors[name], capsize=3, mec="white")
ax.axhline(budget.p99_s * 1e3, color="0.3", ls="--", lw=1, label="p99 budget")
ax.set(ylim=(0, 300), xlabel="users", ylabel="p99 latency of all pages (ms)",
       title="p99 vs users (lines: twin, X: budget breaks; dots: simulated)")
ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x:,.0f}"))
ax.legend(frameon=False, fontsize=9)
ax.grid(alpha=0.3)
util = pd.concat([r.components().query("metric == 'utilization'").assign(layout=name)
                  for name, r in checks.items()])
util = util[util["component"] != "app"]
for i, (name, u) in enumerate(util.groupby("layout", sort=False)):
    x = i + np.linspace(-0.3, 0.3, len(u)) if len(u) > 1 else np.array([i])
    bx.bar(x, u["mean"] * 100, width=0.6 / max(len(u), 2), color=colors[name])
    for xi, (comp, val) in zip(x, zip(u["component"], u["mean"], strict=True), strict=True):
        bx.text(xi, val * 100 + 1, comp.removeprefix("pg/").replace("replica", "r") or comp,
                ha="center", fontsize=7, rotation=90)
bx.axhline(80, color="tab:orange", ls=":", label="80% alarm line")
bx.set_xticks(range(len(layouts)), [n.replace(" (", "\n(").replace(", ", ",\n")
                                    .replace(" + ", "\n+ ") for n in layouts], fontsize=8)
bx.set(ylim=(0, 110), ylabel="utilization (%)", title="Each database box at 2x today")
bx.legend(frameon=False, fontsize=9)
plt.show()

# %%
rep = checks["primary + 2 replicas"].runs[0].databases().iloc[0]
one = capacity.loc["1 primary", "p99 > 200 ms at (users, twin)"]
for name in layouts:
    sim = checks[name].latency().query("flow == 'all' and metric == 'p99_s'").iloc[0]
    users = capacity.loc[name, "p99 > 200 ms at (users, twin)"]
    print(f"{name:22s}: p99 {sim['mean'] * 1e3:4.0f} ms at {check_users:,} users; budget "
          f"breaks at {users:7,.0f} users ({users / one:.1f}x one primary), first "
          f"{capacity.loc[name, 'first to break']}")
print(f"Replicas: {rep.stale_reads} of {rep.reads_after_write} reads that follow the same "
      f"request's write ({rep.stale_probability:.0%}) met a replica that had not caught up.")

# %% [markdown]
# **Answer.** Each layout's curve is the same hockey stick with its wall somewhere else, and
# at 2x today only the single primary is near its alarm line (the simulated points agree with
# the twin's curves). For a read-heavy shop three boxes buy about 3x:
#
# * the **bigger box** and **3 even shards** go furthest, and the bigger box does it with no
#   change to the application: that is why scaling up is tried first. But it stays a single
#   point of failure, and there is a largest box to buy;
# * **replicas** get a bit less, because the primary's core sits nearly idle with only the
#   writes, and they add a consistency cost: a checkout that reads what it just wrote can get
#   the old data back (the share above) unless those reads go to the primary;
# * a **hot shard** wastes most of the gain: the shard with half the traffic fills up when the
#   others are at half load, so three boxes buy 2x, not 3x. The shard key matters as much as
#   the shard count.
#
# ## 3 · Where replicas stop: writes
#
# **Question.** Replicas take reads off the primary, but every write still goes to it. What
# happens when the mix shifts towards writes, here half the pages checking out (40% of
# queries are writes)? How many users does each layout support as boxes are added?

# %%
BOXES = range(1, 9)


def layout(kind: str, boxes: int) -> cs.Database:
    """`boxes` 8-core boxes as a primary with replicas, or as even or skewed shards."""
    if kind == "primary + replicas":
        return cs.replace(PG, read_replicas=boxes - 1)
    hot = [2.0] + [1.0] * (boxes - 1)  # one shard twice as busy as each of the others
    weights = tuple(w / sum(hot) for w in hot) if kind == "shards, one hot" else None
    return cs.replace(PG, shards=boxes, shard_weights=weights)


KINDS = ["primary + replicas", "shards", "shards, one hot"]
MIXES = {"read-heavy (10% checkout)": 0.1, "write-heavy (50% checkout)": 0.5}
scaling = pd.DataFrame([{"kind": kind, "mix": mix, "boxes": b,
                         "users": bottleneck(shop(layout(kind, b), checkout=w)).users_at(
                             RATE, 0.8)}
                        for kind in KINDS for mix, w in MIXES.items() for b in BOXES])

fig, ax = plt.subplots(figsize=(8, 4.6))
for (kind, mix), c in scaling.groupby(["kind", "mix"], sort=False):
    ax.plot(c["boxes"], c["users"], "o-" if mix.startswith("read") else "s--",
            color=colors[list(layouts)[KINDS.index(kind) + 2]], label=f"{kind}, {mix}")
ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda y, _: f"{y:,.0f}"))
ax.set(xlabel="database boxes (8 cores each)", ylabel="users at the 80% alarm line",
       title="Users supported as boxes are added")
ax.legend(frameon=False, fontsize=8)
ax.grid(alpha=0.3)
plt.show()

# %%
grid = scaling.set_index(["kind", "mix", "boxes"])["users"]
rd, wr = MIXES
gain = grid / grid.groupby(level=["kind", "mix"]).transform("first")  # vs 1 box
print(f"Write-heavy: 1 box {grid['shards', wr, 1]:,.0f} users; primary + 7 replicas "
      f"{grid['primary + replicas', wr, 8]:,.0f} (x{gain['primary + replicas', wr, 8]:.1f}, "
      f"flat from {grid['primary + replicas', wr, 3]:,.0f} at 3 boxes); 8 shards "
      f"{grid['shards', wr, 8]:,.0f} (x{gain['shards', wr, 8]:.1f}).")
print(f"Read-heavy: primary + 7 replicas {grid['primary + replicas', rd, 8]:,.0f} users "
      f"(x{gain['primary + replicas', rd, 8]:.1f}); 8 shards with one hot: "
      f"x{gain['shards, one hot', rd, 8]:.1f}.")

# %% [markdown]
# The model's answer in one picture. With a read-heavy mix, replicas scale almost as well as
# shards. With a write-heavy mix the replica line goes flat after two replicas: every write
# lands on the one primary, and extra replicas only add idle read capacity. A simulation at
# 48,000 users shows it happening: five boxes as a primary with 4 replicas, and as 5 shards.

# %%
HEAVY = 48_000
five = {"primary + 4 replicas": shop(layout("primary + replicas", 5), checkout=0.5),
        "5 shards": shop(layout("shards", 5), checkout=0.5)}
heavy = {name: cs.replicate(s, today.with_users(HEAVY), 3, SEED, duration_s=40, warmup_s=5)
         for name, s in five.items()}
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), sharey=True)
for ax, (name, reps) in zip(axes, heavy.items(), strict=True):
    u = reps.components().query("metric == 'utilization' and component != 'app'")
    ax.bar(u["component"].str.removeprefix("pg/"), u["mean"] * 100,
           yerr=u["half_width"] * 100, capsize=3,
           color=["tab:red" if v > 0.8 else "tab:blue" for v in u["mean"]])
    ax.axhline(80, color="tab:orange", ls=":")
    ax.set(title=f"{name}, write-heavy, {HEAVY:,} users", ylim=(0, 105))
axes[0].set_ylabel("utilization (%)")
plt.show()

# %%
for name, reps in heavy.items():
    u = reps.components().query("metric == 'utilization'").set_index("component")["mean"]
    lat = reps.latency().query("flow == 'all' and metric == 'p99_s'").iloc[0]
    print(f"{name:21s}: busiest {u.drop('app').idxmax()} at {u.drop('app').max():.0%}, "
          f"least busy {u.drop('app').idxmin()} at {u.drop('app').min():.0%}; "
          f"p99 {lat['mean'] * 1e3:.0f} ms (95% CI +-{lat['half_width'] * 1e3:.0f})")

# %% [markdown]
# ## The answer

# %%
c = capacity["p99 > 200 ms at (users, twin)"]
print(f"1. Index first: one unindexed 30 s query on 1% of pages caps the database at "
      f"{walls['no index']:,.0f} users and drags every page's p99 to "
      f"{at['no index', 'browse', 1000]:.0f} s long before that; the index moves the wall "
      f"{walls['indexed'] / walls['no index']:.0f}x, for free.")
print(f"2. Read-heavy, three boxes' worth: bigger box {c['bigger box (24 cores)']:,.0f} users, "
      f"3 shards {c['3 shards']:,.0f}, primary + 2 replicas {c['primary + 2 replicas']:,.0f}, "
      f"a hot shard only {c['3 shards, one hot']:,.0f}, against {c['1 primary']:,.0f} for one "
      f"primary.")
print(f"3. Write-heavy: replicas stop at {grid['primary + replicas', wr, 8]:,.0f} users however "
      f"many are added (the primary takes every write); shards keep scaling, "
      f"{grid['shards', wr, 8]:,.0f} users on 8 boxes.")

# %% [markdown]
# **Answer.** In order of what they buy per unit of effort:
#
# * **An index** on the query that scans is the largest gain and costs no hardware: one
#   missing index was the case study's "seconds, then tens of seconds", and it hurts every
#   page, not just its own.
# * **A bigger box** is the simplest next step and works as well as three small ones, but it is
#   still a single point of failure, and the largest box has a price and a ceiling.
# * **Read replicas** scale reads nearly linearly and do nothing for writes: under a
#   write-heavy mix they stop helping after the second, with the primary at its wall and the
#   replicas idling at a third. They also return stale data to a request that reads its own
#   write, so those reads belong on the primary.
# * **Shards** scale reads and writes alike, but only as evenly as the shard key spreads the
#   load: a shard twice as hot as the others turns 3 boxes into 2x and 8 boxes into 4.5x.
#
# So: index, then replicas while the load is read-heavy, and shards (on a well-spread key)
# when writes become the bottleneck, which is what the case study's team ended up doing.
