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
# # 03 · Vertical vs horizontal scaling
#
# **Question.** The launch campaign is expected to bring five times today's traffic: 50,000
# active users at the evening peak. Today the shop (notebook 02's monolith, with its
# PostgreSQL told apart into reads and writes) runs on two app boxes and one database box, and
# breaks its p99 budget of 200 ms at about twice today's traffic. The case study's team first
# bought a bigger database server ("sandbags": more RAM, a faster CPU), then scaled out. Which
# is cheaper and safer at 50,000 users, if we also want
#
# * **2x headroom**: the budget still met at twice the peak (the load test the team runs), and
# * **N+1**: the budget still met at the peak with any one box down?
#
# We compare the options tier by tier (capacity, p99, cost, and what one lost box leaves, by
# simulation), let `scaling.cheapest` search all plans, and watch an autoscaler follow a
# campaign morning.

# %%
import matplotlib.pyplot as plt
import pandas as pd

import capsim as cs
from capsim import scaling as sc
from capsim.scaling.examples import ecommerce_scalable, today

cat = sc.load_catalogue()  # data/instances.csv: an ILLUSTRATIVE catalogue, not real prices
system, now = ecommerce_scalable()  # the reference model and today's traffic
budget = cs.Budget(p99_s=0.200)
target = now.with_users(50_000)  # the launch peak
PEAK = 2.0  # headroom factor: the load test at twice the peak
RUN = 14_000  # page requests per simulated run (2 replications per scenario)
pd.set_option("display.max_colwidth", 60)

# %% [markdown]
# ## The catalogue, and what a core is worth
#
# Four families shaped like a public cloud's (prices linear in vCPUs within a family):
# `general` (4 GiB per vCPU), `compute` (2 GiB, 15% faster cores, cheaper), `memory` (8 GiB)
# and `fast` (high-clock cores, 35% faster, 8 GiB). A model's service times are the work of one
# request on one reference core (speed 1.0). On a bigger box each core is worth less: the
# Universal Scalability Law's contention (σ) and coherency (κ) penalties, here Gunther's
# published fit of SPEC SDM91 (see `capsim/scaling/options.py`), make N cores worth
# C(N) = N / (1 + σ(N−1) + κN(N−1)) reference cores.

# %%
worth = sc.effective_capacity(cat)
sc.plot_effective_capacity(worth)
plt.show()
big = worth.set_index("name").loc[["general-2", "general-64"]]
dearer = big["usd_per_effective_core_hour"].iloc[1] / big["usd_per_effective_core_hour"].iloc[0]
print(f"64 vCPUs do the work of {big.loc['general-64', 'effective_cores']:.1f} reference "
      f"cores ({big.loc['general-64', 'efficiency']:.0%} efficient); 2 vCPUs that of "
      f"{big.loc['general-2', 'effective_cores']:.2f}. A unit of work costs {dearer:.1f}x as "
      f"much on the biggest general box as on the smallest.")

# %% [markdown]
# ## Today
#
# Two `general-8` app boxes and one `general-8` PostgreSQL box. The twin gives the users at
# which the budget breaks, and each tier's wall (100% busy) in users.

# %%
deployed_today = sc.deploy(system, today(cat))
tiers = {c.name: sc.capacity_per_s(deployed_today, c.name) / now.requests_per_user_s
         for c in system.components}
today_users = sc.twin_saturation_users(deployed_today, now, budget)
print(f"Today's plan costs ${sum(o.cost_per_hour_usd for o in today(cat).values()):.2f}/h and "
      f"holds the budget to {today_users:,.0f} users ({today_users / now.users:.1f}x today).")
print("Wall (100% busy) per tier: " + ", ".join(f"{k} {v:,.0f} users" for k, v in tiers.items()))

# %% [markdown]
# PostgreSQL is the bottleneck, as in notebook 02: every page gives it 2.25 queries (2 reads,
# 0.25 writes), and it hits its wall well before the app tier does.
#
# ## 1 · Scaling the database up, then out
#
# Eight ways to run PostgreSQL at the launch peak, with an app tier large enough not to be in
# the way (12 `compute-8` boxes). **Up**, five single boxes: more RAM and faster cores, the
# case study's "sandbags". **Out**, three layouts of a primary for writes plus read replicas
# (reads scale with replicas; shards, which split the writes, come up below). For each option
# `compare` gives the twin's users within budget, the simulated p99 at the peak and at twice
# the peak, the cost, and what one lost box leaves (simulated, with an `Outage` or a
# failover lasting the whole run; `RUN` page requests per run, 2 replications).

# %%
roomy_app = sc.apply(system, "app", sc.Horizontal(cat["compute-8"], 12))
db_up = [sc.Vertical(cat[n]) for n in ("general-8", "memory-16", "memory-32", "fast-32",
                                       "memory-64")]
db_out = [sc.DatabaseOptions(cat["memory-16"], read_replicas=2),
          sc.DatabaseOptions(cat["general-16"], read_replicas=3),
          sc.DatabaseOptions(cat["memory-8"], read_replicas=5)]
db = sc.compare(roomy_app, "postgres", vertical=db_up, horizontal=db_out, workload=target,
                budget=budget, peak_factor=PEAK, seed=3, requests=RUN)
print(db)
db.table()[["option", "cost_per_hour_usd", "saturation_users", "usd_per_hour_per_1k_users",
            "p99_at_target_s", "p99_at_2x_peak_s", "failure", "capacity_left_one_down",
            "p99_one_down_s"]].round(3)

# %%
db.plot()
plt.show()

# %%
t = db.table().set_index("option")
up = t[t["kind"] == "vertical"].sort_values("cost_per_hour_usd")
biggest = up["saturation_users"].idxmax()
steps = up[["cost_per_hour_usd", "saturation_users"]].diff().dropna()
gain = (steps["saturation_users"] / steps["cost_per_hour_usd"]).round(-2)
print(f"Scaling up: the best single box is {biggest} (${up.loc[biggest, 'cost_per_hour_usd']:.2f}"
      f"/h): {up.loc[biggest, 'saturation_users']:,.0f} users within budget, "
      f"{up.loc[biggest, 'saturation_users'] / (PEAK * target.users):.0%} of the "
      f"{PEAK * target.users:,.0f} a 2x load test needs.")
print("Users gained per extra $/h along the way up: " + ", ".join(
    f"{a} -> {b}: {g:,.0f}" for a, b, g in zip(up.index[:-1], up.index[1:], gain, strict=True)))
print(f"One box down: every single box leaves {up['capacity_one_down_users'].max():,.0f} users "
      f"(measured: {up['pages_served_one_down'].max():.0%} of pages served).")
out = t[t["kind"] == "database"]
print("Scaling out, one box down: " + "; ".join(
    f"{o} keeps {r.capacity_left_one_down:.0%}" for o, r in out.iterrows()))

# %% [markdown]
# **What it shows.** Going up works for a while, each extra dollar-hour buying about the same
# number of users (the printout above), and then stops: past 32 cores the USL's coherency
# cost eats the extra cores, so the 64-core box serves *fewer* users than the 32-core fast
# one, and every one of its queries is slower, which lifts the latency floor towards the
# budget. No single box reaches twice the peak, and whichever you buy, when it fails nobody is
# served: the single point of failure the case study was left with. Going out, read replicas
# multiply the read capacity for about the price of the big boxes, and a lost box costs a
# share of the capacity instead of all of it: with one replica of two lost, half the reads
# remain, so N+1 needs a replica more than the peak alone does.
#
# Shards are not what this target needs: with replicas, the primary only writes.

# %%
reps = sc.apply(roomy_app, "postgres", db_out[1])
writes_wall = 1 / reps.offered_load(1.0)["postgres"] / now.requests_per_user_s
print(f"With {db_out[1].label}, the primary carries only writes (0.25 per page) and reaches "
      f"100% at {writes_wall:,.0f} users, {writes_wall / target.users:.0f}x the launch peak: "
      f"shards (which split writes) become necessary only beyond that.")

# %% [markdown]
# ## 2 · The app tier: one big box or many small ones
#
# Now PostgreSQL is a primary with three replicas, and the app tier is the question: a single
# `compute` box of 32 or 64 vCPUs, or N smaller ones behind a least-connections balancer.

# %%
roomy_db = sc.apply(system, "postgres", db_out[1])
app_up = [sc.Vertical(cat[n]) for n in ("compute-32", "compute-64")]
app_out = [sc.Horizontal(cat["compute-4"], 12), sc.Horizontal(cat["compute-8"], 6),
           sc.Horizontal(cat["compute-8"], 8)]
app = sc.compare(roomy_db, "app", vertical=app_up, horizontal=app_out, workload=target,
                 budget=budget, peak_factor=PEAK, seed=3, requests=RUN)
print(app)
app.table()[["option", "cost_per_hour_usd", "saturation_users", "p99_at_target_s",
             "p99_at_2x_peak_s", "capacity_left_one_down", "p99_one_down_s"]].round(3)

# %%
app.plot()
plt.show()

# %%
a = app.table().set_index("option")
for option, row in a[a["kind"] == "vertical"].iterrows():
    slower = sc.Vertical(cat[row["instance"]]).service_factor
    p99 = row["p99_at_target_s"]
    print(f"{option}: every page takes {slower:.2f}x its reference time (USL contention, "
          f"faster cores); within budget up to {row['saturation_users']:,.0f} users; at the "
          f"target " + (f"p99 {p99 * 1e3:,.0f} ms" if p99 < float("inf") else "no steady "
                        "state") + "; nothing left if it fails.")
out_app = a[a["kind"] == "horizontal"]
print("Out: losing one of N boxes leaves " + ", ".join(
    f"{o} {r.capacity_left_one_down:.0%}" for o, r in out_app.iterrows()) + " of the capacity.")

# %% [markdown]
# A stateless tier scales out almost linearly (each box pays the USL only for its own cores),
# and losing one of N boxes costs at most 1/N of the capacity: the balancer's health check
# sends its share to the others (less than 1/N when the database, not the app tier, is the
# system's wall). A single big box is the dearest way to buy app capacity and a single point
# of failure; and since the model charges the USL's contention on every request (pessimistic
# at light load, see `capsim/scaling/options.py`), a box whose pages are slowed enough can miss
# the latency budget at any load, whatever its capacity.
#
# ## 3 · The cheapest plan that meets everything
#
# `scaling.cheapest` looks at every combination of app and database options in order of cost:
# a bound per tier throws out what cannot work (too little memory: we ask 64 GiB for the
# database's working set after the launch; over 100% busy at twice the peak; a single box
# under N+1), the analytic twin screens each remaining plan in milliseconds, and simulation
# confirms the first plan that passes, at the peak, at twice the peak, and with one box of each
# tier down.

# %%
app_options = [sc.Horizontal(i, n) for i in cat if i.family in ("general", "compute")
               and 4 <= i.vcpus <= 16 for n in range(2, 17)]
app_options += [sc.Vertical(i) for i in cat if i.family == "compute" and i.vcpus >= 16]
db_options = [sc.Vertical(i) for i in cat if i.vcpus >= 8]
db_options += [sc.DatabaseOptions(i, read_replicas=r, shards=s) for i in cat
               if i.family in ("general", "memory") and 8 <= i.vcpus <= 32
               for r in range(1, 6) for s in (1, 2)]
plan = sc.cheapest(system, budget, target, {"app": app_options, "postgres": db_options},
                   peak_factor=PEAK, n_plus_one=True, min_memory_gib={"postgres": 64}, seed=3,
                   requests=RUN)
print(plan)
kept = plan.screened.replace({"reason": {"": "kept"}})
print(kept.groupby(["tier", "reason"]).size().rename("options").to_string())
plan.checks[["scenario", "p99_s", "throughput_per_s", "max_utilization", "meets"]].round(3)

# %% [markdown]
# ## 4 · Autoscaling: following the day
#
# A fleet sized for twice the peak idles most of the day. The app tier is stateless, so it can
# follow the traffic: target tracking keeps its boxes about 60% busy, adding `compute-2` boxes
# when they run hotter (each takes 3 minutes to boot) and removing them when traffic falls.
# Here is a campaign morning at today's traffic, 09:00 to 12:00: the daily ramp, and at 11:00 a
# campaign e-mail that triples traffic for half an hour. (The app tier alone is simulated,
# with the database sized for the spike: a day of the whole model would take minutes.)

# %%
HOUR = 3600.0
START = 9  # 09:00
morning = cs.Diurnal(trough=0.2, peak_hour=20 - START) * cs.Spike(2 * HOUR, 0.5 * HOUR, 3.0)
scaler = cs.Autoscaler("app", target_utilization=0.6, min_instances=2, max_instances=12,
                       interval_s=60, provision_s=180, cooldown_s=300)
day = sc.simulate_autoscaling(sc.tier_alone(system, "app"), "app",
                              sc.Horizontal(cat["compute-2"], 2), scaler,
                              cs.replace(now, profile=morning), duration_s=3 * HOUR, seed=3,
                              window_s=120, budget=budget)
day.plot(start_hour=START)
plt.show()
auto = day.summary()
auto.round(3)

# %%
lag = day.boot_periods()[0]
history = day.history()
found = history.loc[history["time_s"] <= lag[0], "serving"].iloc[-1]
print(f"Autoscaled, the morning cost ${auto['cost_usd']:.2f} ({auto['mean_instances']:.1f} "
      f"boxes on average, {auto['min_instances']:.0f} to {auto['max_instances']:.0f}); a fleet "
      f"sized for the busiest moment would have cost ${auto['fixed_fleet_cost_usd']:.2f} "
      f"(autoscaling saved {auto['saving_vs_fixed']:.0%}).")
print(f"The price: the spike found {found:.0f} boxes serving, and it took "
      f"{(lag[1] - lag[0]) / 60:.0f} minutes to notice and boot more. Requests arriving in "
      f"those minutes ({auto['share_requests_booting']:.1%} of the morning) had a p99 of "
      f"{auto['p99_booting_s']:.1f} s against {auto['p99_steady_s'] * 1e3:.0f} ms otherwise; "
      f"{auto['share_over_budget_booting']:.0%} of them broke the budget.")

# %% [markdown]
# Target tracking follows the slow daily ramp without anyone noticing: the ramp is gentle
# next to a 3-minute boot. A step is another matter: until new boxes serve, the boxes already
# running take all of it, and at three times the traffic a 60% target has no room for it, so a
# queue builds for minutes and the tail goes from milliseconds to seconds. Known spikes (a
# campaign e-mail, a launch) are better met by scheduling capacity ahead of them, or by a lower
# target (more idle capacity, paid every hour); the autoscaler is for the traffic you cannot
# schedule.
#
# ## The recommendation

# %%
best_up = up.loc[biggest]
chosen = plan.plan or {}
out_tiers = [tier for tier, opt in chosen.items() if not isinstance(opt, sc.Vertical)]
up_tiers = [tier for tier in chosen if tier not in out_tiers]
verdict = ("Scale out." if not up_tiers else "Scale up." if not out_tiers else
           f"Scale out {' and '.join(out_tiers)}; scale up {' and '.join(up_tiers)}.")
print((verdict if chosen else "") + (
    f" The cheapest plan that holds p99 <= {budget.p99_s * 1e3:.0f} ms for "
    f"{target.users:,.0f} users, with the budget still met at {PEAK:g}x that and with any one "
    f"box down, is {plan.describe()}, at ${plan.cost_per_hour_usd:.2f}/h "
    f"(${plan.cost_per_hour_usd / target.users * 1e3:.3f}/h per 1,000 users)."
    if chosen else " No plan in the options searched meets every requirement."))
if chosen:
    checks = plan.checks.set_index("scenario")
    print(f"Checked by simulation: p99 {checks.loc['target', 'p99_s'] * 1e3:.0f} ms at the "
          f"peak, {checks.loc['peak', 'p99_s'] * 1e3:.0f} ms at {PEAK:g}x (its busiest station "
          f"{checks.loc['peak', 'max_utilization']:.0%} busy: that load test is its limit), "
          f"and at most {checks.filter(like='one_down', axis=0)['p99_s'].max() * 1e3:.0f} ms "
          f"with one box down.")
print(f"Scaling the database up does not get there: the best single box ({biggest}, "
      f"${best_up['cost_per_hour_usd']:.2f}/h) holds the budget to "
      f"{best_up['saturation_users']:,.0f} users, "
      f"{'short of' if best_up['saturation_users'] < PEAK * target.users else 'past'} the "
      f"{PEAK * target.users:,.0f} of a {PEAK:g}x load test, and when it fails nobody is "
      f"served; bigger boxes pay more per unit of work and get less of it (USL).")
if isinstance(chosen.get("postgres"), sc.DatabaseOptions):
    loads = plan.system.offered_load(1.0)
    primary = max(loads[n] for n in loads if n.startswith("postgres") and "replica" not in n)
    print(f"The database scales out ({chosen['postgres'].label}): reads grow with replicas; "
          f"the primary, left with the writes, reaches 100% only at "
          f"{1 / primary / now.requests_per_user_s:,.0f} users, so shards can wait.")
print(f"Let the app tier autoscale for the day ({auto['saving_vs_fixed']:.0%} cheaper than a "
      f"fleet sized for the peak on our campaign morning), but schedule capacity before known "
      f"spikes: during the {(lag[1] - lag[0]) / 60:.0f}-minute scale-out lag, p99 reached "
      f"{auto['p99_booting_s']:.1f} s.")
