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
# # 03 · Vertical vs horizontal scaling, on real shapes and prices
#
# **Question.** The launch campaign is expected to bring five times today's traffic: 50,000
# active users at the evening peak. Today the shop (notebook 02's monolith, its PostgreSQL told
# apart into reads and writes) runs on two app boxes and one database box, and breaks its p99
# budget of 200 ms at about twice today's traffic. The architect's question for the review:
#
# > One big PostgreSQL box (an `r7i.8xlarge`), or a primary and two replicas on
# > `r7i.2xlarge`? And what happens when the primary dies?
#
# The review's rules: p99 ≤ 200 ms at the peak **and at twice the peak** (the load test the team
# runs), and still met with **any one box down** (N+1). We answer on AWS's own instance shapes
# and prices, find the cheapest plan in dollars per month, show the primary's failover as a
# timeline, and watch an autoscaler follow a campaign morning.

# %%
import matplotlib.pyplot as plt

import capsim as cs
from capsim import scaling as sc
from capsim.scaling.examples import ecommerce_scalable, today

cat = sc.load_catalogue()  # data/catalogues/aws-us-east-1.csv
print(cat.label)
system, now = ecommerce_scalable()  # the reference model and today's traffic
# asynchronous replication: a replica is on average 200 ms behind the primary (our assumption;
# measure yours: pg_stat_replication's replay_lag)
system = system.evolve("postgres", replication_lag=cs.Exponential(0.2))
budget = cs.Budget(p99_s=0.200)
target = now.with_users(50_000)  # the launch peak
PEAK = 2.0  # headroom factor: the load test at twice the peak
FAILOVER = cs.Failover(detect_s=10, promote_s=20)  # health checks, then promotion
RUN = 8_000  # page requests per simulated run (2 replications per scenario)

# %% [markdown]
# ## The catalogue, and what a vCPU is worth
#
# `data/catalogues/aws-us-east-1.csv` is derived from Netflix's `service-capacity-modeling`
# (Apache-2.0): EC2 and RDS shapes (vCPUs, cores, clock, a per-core speed scale) with their
# 3-year-reserved us-east-1 prices; `make catalogue` regenerates it. A model's service times
# are the work of one request on one **m5 vCPU**; a faster vCPU divides them (`speed`: clock ×
# IPC against the m5's). On a bigger box each core is worth less: the Universal Scalability
# Law's contention (σ) and coherency (κ), here Gunther's published fit of SPEC SDM91 (see
# `capsim/scaling/options.py`), make N cores worth C(N) = N / (1 + σ(N−1) + κN(N−1)) reference
# cores.

# %%
families = ("m5", "m7i", "c7i", "r7i", "r7a", "db.r6g")
shown = sc.Catalogue(tuple(i for i in cat if i.family in families), label=cat.label)
worth = sc.effective_capacity(shown)
sc.plot_effective_capacity(worth)
plt.show()
w = worth.set_index("name")
small, big = w.loc["r7i.large"], w.loc["r7i.16xlarge"]
print(f"An r7i vCPU does {cat['r7i.large'].speed:.2f}x an m5 vCPU's work, an r7a vCPU (a whole "
      f"AMD core) {cat['r7a.large'].speed:.2f}x, an RDS db.r6g vCPU "
      f"{cat['db.r6g.large'].speed:.2f}x.")
print(f"64 r7i vCPUs do the work of {big['effective_cores']:.0f} m5 vCPUs "
      f"({big['efficiency']:.0%} efficient after the USL); a unit of work costs "
      f"{big['usd_per_effective_core_hour'] / small['usd_per_effective_core_hour']:.1f}x as much "
      f"on the r7i.16xlarge as on the r7i.large. RDS charges "
      f"{cat['db.r6g.2xlarge'].price_per_hour_usd / cat['r7i.2xlarge'].price_per_hour_usd:.1f}x "
      f"an EC2 box of the same size for running PostgreSQL for you.")

# %% [markdown]
# ## Today
#
# Two `m7i.2xlarge` app boxes and PostgreSQL on one RDS `db.r6i.2xlarge`. The twin gives the
# users at which the budget breaks, and each tier's wall (100% busy) in users.

# %%
plan_today = today(cat)
deployed_today = sc.deploy(system, plan_today)
tiers = {c.name: sc.capacity_per_s(deployed_today, c.name) / now.requests_per_user_s
         for c in system.components}
today_users = sc.twin_saturation_users(deployed_today, now, budget)
cost_today = sum(o.cost_per_hour_usd for o in plan_today.values()) * 730
print(f"Today's plan costs ${cost_today:,.0f}/month and holds the budget to "
      f"{today_users:,.0f} users ({today_users / now.users:.1f}x today).")
print("Wall (100% busy) per tier: " + ", ".join(f"{k} {v:,.0f} users" for k, v in tiers.items()))

# %% [markdown]
# PostgreSQL is the bottleneck, as in notebook 02: every page gives it 2.25 queries (2 reads,
# 0.25 writes), and it hits its wall well before the app tier does.
#
# ## 1 · The database: one big box, or a primary and replicas
#
# Four ways to run PostgreSQL at the launch peak, with an app tier large enough not to be in the
# way (12 `c7i.2xlarge`). **Up**: one big box, on EC2 (`r7i.8xlarge`) or on RDS
# (`db.r6g.8xlarge`, managed). **Out**: a primary for writes and two read replicas, on Intel
# `r7i` or on AMD `r7a` (whose vCPUs are whole cores), which fail over (detected in 10 s, a
# replica promoted 20 s later). For each option `compare` simulates the users within budget (a
# saturation search started from the twin's estimate, here to ±10%: enough to rank them; a
# review would search tighter), the p99 at the peak and at twice the peak, one box down for a
# whole run, and a run in which the primary dies mid-way.

# %%
roomy_app = sc.apply(system, "app", sc.Horizontal(cat["c7i.2xlarge"], 12))
db_up = [sc.Vertical(cat[n]) for n in ("r7i.8xlarge", "db.r6g.8xlarge")]
db_out = [sc.DatabaseOptions(cat["r7i.2xlarge"], read_replicas=2),
          sc.DatabaseOptions(cat["r7a.2xlarge"], read_replicas=2)]
db = sc.compare(roomy_app, "postgres", vertical=db_up, options=db_out, workload=target,
                budget=budget, peak_factor=PEAK, failover=FAILOVER, seed=3, requests=RUN,
                saturation_rel_tol=0.2, saturation_duration_s=5.0, catalogue_label=cat.label,
                progress=True)
print(db.caption())
db.summary()

# %%
db.frontier_plot()
plt.show()

# %%
t = db.table().set_index("option")
big_box, out = t.loc["1 x r7i.8xlarge"], t.loc["r7i.2xlarge primary + 2 replicas"]
need = PEAK * target.users
print(f"One r7i.8xlarge: ${big_box['cost_per_month_usd']:,.0f}/month, the budget holds to "
      f"{big_box['users_at_budget']:,.0f} users (simulated; {big_box['users_at_budget_low']:,.0f}"
      f" to {big_box['users_at_budget_high']:,.0f}); when it fails, nobody is served.")
print(f"A primary and two replicas on r7i.2xlarge: ${out['cost_per_month_usd']:,.0f}/month, "
      f"{out['users_at_budget']:,.0f} users; with one box down "
      f"{out['capacity_left_one_down']:.0%} of the capacity is left; when the primary dies, "
      f"{out['failover_write_errors']:,.0f} writes are refused and "
      f"{out['failover_lost_writes']:,.0f} lost before a replica takes over "
      f"({out['failover_recovery_s']:.0f} s).")
print(f"Neither reaches the {need:,.0f} users of a {PEAK:g}x load test on its own; the "
      f"frontier's cheapest option past {target.users:,.0f} users is "
      f"{db.frontier().query('users_at_budget >= @target.users').iloc[0]['option']}.")

# %% [markdown]
# **What it shows.** Per dollar, a box's *cores* matter more than its size: the AMD `r7a`
# (whole cores, the fastest vCPU in the catalogue) buys the most users per dollar, and RDS's
# managed PostgreSQL costs about 1.7x an EC2 box of the same shape for less work per vCPU.
# Scaling up stops paying: an 8xlarge is four 2xlarges' price for less than their work (the
# USL), and one box is a single point of failure. Scaling out, read replicas multiply the
# read capacity and a lost box costs a share of the capacity instead of all of it; but no
# single option here meets twice the peak with a box down, which is why the cheapest-plan
# search below sizes the replicas for one fewer.
#
# ## 2 · When the primary dies
#
# The failover, as a timeline: the primary fails 60 s into the run at the launch peak; the
# health checks notice after 10 s, and a replica is primary 20 s later. Meanwhile writes are
# refused (each an error the shop must show or retry), reads go on at the replicas, and the
# writes the primary had committed but not yet shipped to a replica (the 200 ms replication
# lag) are lost: the recovery point. Three runs give the intervals; the twin gives the steady
# states before and after.

# %%
replicated = sc.apply(roomy_app, "postgres", sc.DatabaseOptions(cat["r7i.2xlarge"],
                                                                read_replicas=2,
                                                                failover=FAILOVER))
fo = sc.simulate_failover(replicated, target, "postgres", fail_at_s=60, duration_s=150,
                          replications=3, seed=3)
fo.plot(budget_s=budget.p99_s)
plt.show()
fo.summary().round(3)

# %%
s = fo.summary().set_index("measure")
twin = fo.twin.set_index("state")
print(f"While no primary takes writes ({s.loc['recovery_s', 'mean']:.0f} s), "
      f"{s.loc['write_errors', 'mean']:,.0f} ± {s.loc['write_errors', 'ci_half_width']:,.0f} "
      f"writes are refused (the run's error rate {s.loc['error_rate', 'mean']:.1%}) and "
      f"{s.loc['lost_writes', 'mean']:.0f} ± {s.loc['lost_writes', 'ci_half_width']:.0f} "
      f"committed writes are lost.")
after = twin.loc["after"]
print(f"After the promotion one replica carries every read: the twin offers it "
      f"{after['offered_load']:.0%} of its capacity (from "
      f"{twin.loc['before', 'offered_load']:.0%}), " + (
          f"and the p99 goes from {twin.loc['before', 'p99_s'] * 1e3:.0f} to "
          f"{after['p99_s'] * 1e3:.0f} ms." if after["stable"] else
          "so there is no steady state: its queue grows until the failed box is back."))

# %% [markdown]
# The shop keeps serving pages during the failover, but not checkouts: every write in those 30
# seconds is refused, and the last fraction of a second of committed orders is gone (the
# 200 ms lag times the write rate). `Failover(..., writes="wait")` would hold the writes in a
# proxy until the new primary is ready instead: no errors, but 30-second checkouts.
# Synchronous replication (no `replication_lag`) loses nothing, at the price of every commit
# waiting for a replica.
#
# The worse news is after the promotion. Two replicas at 85% were enough for the peak, but
# one of them is now the primary, and the one left is offered far more reads than it can
# serve: the p99 climbs to tens of seconds and stays there until the failed box is rebuilt
# as a replica. That is what "survives one failure: no" in the table meant. N+1 for a
# replicated database means enough read capacity with one replica fewer.
#
# ## 3 · The cheapest plan that meets everything
#
# `scaling.cheapest` looks at every combination of app and database options in order of cost:
# a bound per tier throws out what cannot work (too little memory: we ask 64 GiB for the
# database's working set after the launch; over 100% busy at twice the peak; a single box under
# N+1), the analytic twin screens each remaining plan in milliseconds, and simulation confirms
# the first plan that passes, at the peak, at twice the peak, and with one box of each tier
# down.

# %%
app_options = [sc.Horizontal(cat[f"{f}.{size}"], n) for f in ("m7i", "c7i")
               for size in ("xlarge", "2xlarge", "4xlarge") for n in range(2, 25)]
db_options = [sc.Vertical(i) for i in cat if i.family in ("r7i", "r7a", "db.r6g")
              and i.vcpus >= 8]
db_options += [sc.DatabaseOptions(i, read_replicas=r, shards=s, failover=FAILOVER)
               for i in cat if i.family in ("r7i", "r7a") and 8 <= i.vcpus <= 32
               for r in range(1, 6) for s in (1, 2)]
plan = sc.cheapest(system, budget, target, {"app": app_options, "postgres": db_options},
                   peak_factor=PEAK, n_plus_one=True, min_memory_gib={"postgres": 64}, seed=3,
                   requests=RUN)
print(plan)
checks = plan.checks[["scenario", "p99_s", "throughput_per_s", "max_utilization", "meets"]]
checks.round(3)

# %%
tried = plan.table()[["plan", "cost_per_hour_usd", "stage", "meets"]].copy()
tried.insert(2, "cost_per_month_usd", (tried.pop("cost_per_hour_usd") * 730).round(0))
tried.head(10)

# %% [markdown]
# ## 4 · Autoscaling: following the day
#
# A fleet sized for twice the peak idles most of the day. The app tier is stateless, so it can
# follow the traffic: target tracking keeps its boxes about 60% busy, adding `c7i.large` boxes
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
                              sc.Horizontal(cat["c7i.large"], 2), scaler,
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
chosen = plan.plan or {}
monthly = plan.cost_per_hour_usd * 730
if chosen:
    print(f"The cheapest plan that holds p99 <= {budget.p99_s * 1e3:.0f} ms for "
          f"{target.users:,.0f} users, at {PEAK:g}x that and with any one box down, is "
          f"{plan.describe()}: ${monthly:,.0f} per month (${monthly / target.users * 1e3:.2f} "
          f"per 1,000 users), on {cat.label}.")
    c = plan.checks.set_index("scenario")
    print(f"Checked by simulation: p99 {c.loc['target', 'p99_s'] * 1e3:.0f} ms at the peak, "
          f"{c.loc['peak', 'p99_s'] * 1e3:.0f} ms at {PEAK:g}x, and at most "
          f"{c.filter(like='one_down', axis=0)['p99_s'].max() * 1e3:.0f} ms with one box down.")
else:
    print("No plan in the options searched meets every requirement.")
print(f"The single r7i.8xlarge (${big_box['cost_per_month_usd']:,.0f}/month) holds the budget "
      f"to {big_box['users_at_budget']:,.0f} users and stops everything when it fails. A "
      f"primary with replicas survives a lost box only when the replicas left can carry the "
      f"reads (two r7i.2xlarge replicas cannot; the plan's are bigger), and each failover "
      f"costs about {s.loc['recovery_s', 'mean']:.0f} s of refused writes and "
      f"{s.loc['lost_writes', 'mean']:.0f} lost ones: scale the database out, sized for one "
      f"replica fewer, and decide with the business whether those writes may be lost (or pay "
      f"for synchronous replication).")
print(f"Let the app tier autoscale for the day ({auto['saving_vs_fixed']:.0%} cheaper than a "
      f"fleet sized for the peak on our campaign morning), but schedule capacity before known "
      f"spikes: during the {(lag[1] - lag[0]) / 60:.0f}-minute scale-out lag, p99 reached "
      f"{auto['p99_booting_s']:.1f} s.")
