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
# # 08 · Planning a load test at 2x peak, simulated first
#
# **Question.** The case study's team load-tests with k6 and Locust "at 2x the current peak on
# a regular cadence", and a change ships only if every endpoint keeps p99 under 200 ms. Before
# spending a test run on the `web` service: which load steps are worth running, what should
# they show, does the budget hold at 2x peak, and once the test has run, does it agree with
# the model?
#
# The measurements in `data/measurements/` are real: the real k6 (1.1.0) and the real Locust
# (2.47.0) loaded `capsim.testbed.StubServer`, a real HTTP server on this machine whose
# configuration we know (8 workers, a queue of at most 48, log-normal service times), and the
# server timed its own service times. So the model can be checked against reality *and*
# against a known truth (the folder's README says how each file was recorded).

# %%
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import capsim as cs
from capsim import report
from capsim.analytic import usl
from capsim.calibrate import fit_service_time, read_durations, read_load_test
from capsim.experiment import plan_load_test

DATA = Path("..") / "data" / "measurements"
SEED = 8
REPS = 3  # replications per simulated load step
STEP_S = 60  # every planned load step runs 60 s
K6_STEP_S, LOCUST_STEP_S = 30, 25  # the recorded runs: 30 s per k6 run, 25 s per Locust step
PEAK_PER_S = 180.0  # today's production peak (requests/s): the number the plan starts from
budget = cs.Budget(p99_s=0.200)  # "every endpoint p99 < 200 ms"

# %% [markdown]
# ## 1 · The model, from what production already tells us
#
# `web` runs 8 workers behind a queue of at most 48 waiting requests (its configuration); a
# request that finds the queue full is rejected at once (a fast 503). Its service time comes
# from 2,000 durations measured on the service alone (one request at a time, timed by the
# server): four families are fitted by maximum likelihood and ranked by AIC.

# %%
fit = fit_service_time(read_durations(DATA / "service_times.csv", unit="ms"))
service = fit.distribution
web = cs.Service("web", servers=8, service_time=service, queue_capacity=48)
system = cs.System([web], [cs.Flow("get", 1.0, [cs.Call("web")])], name="web")
capacity = 8 / service.mean
print(fit)
print(f"Service time: {service.mean * 1e3:.1f} ms mean, cv {service.cv:.2f}; capacity "
      f"8 / {service.mean * 1e3:.1f} ms = {capacity:.0f} requests/s. Today's peak "
      f"{PEAK_PER_S:.0f}/s is {PEAK_PER_S / capacity:.0%} of it; 2x peak, "
      f"{2 * PEAK_PER_S:.0f}/s, is {2 * PEAK_PER_S / capacity:.0%}.")
fit.table[["family", "mean_s", "cv", "aic", "delta", "ks_stat"]].round(4)

# %% [markdown]
# ## 2 · Simulate the test before running it
#
# The k6 script: each virtual user (VU) sends a request, waits for the answer, sleeps 0.1 s,
# and loops: a closed workload. A sweep simulates it from 5 to 250 VUs, `REPS` independent
# 60-second runs per step.

# %%
k6_script = cs.ClosedWorkload(users=10, think_time=cs.Deterministic(0.1))
vus = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 70, 80, 90, 100, 120, 150, 200, 250]
plan = cs.sweep(system, cs.growth(k6_script, users=vus), REPS, SEED, duration_s=STEP_S,
                warmup_s=0.0, store=None, progress=False)
sat = plan.saturation(budget)
curve = {m: plan.curve(m, "get")["mean"]
         for m in ("throughput_per_s", "p99_s", "error_rate")}
knee = capacity * (service.mean + k6_script.think_time.mean)  # Kleinrock's N*
rising = curve["throughput_per_s"][curve["throughput_per_s"].index <= knee]  # increasing
vus_2x = float(np.interp(2 * PEAK_PER_S, rising, rising.index))  # VUs that offer 2x peak
vus_peak = float(np.interp(PEAK_PER_S, rising, rising.index))
first_errors = curve["error_rate"][curve["error_rate"] > 0.001].index.min()
print(sat)
print(f"Today's peak takes about {vus_peak:.0f} VUs, 2x peak about {vus_2x:.0f}. Throughput "
      f"stops growing at the knee, N* = capacity x (service + sleep) = {knee:.0f} VUs; "
      f"rejections pass 0.1% from {first_errors} VUs (8 in service + 48 queued = 56 "
      f"requests at most).")

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.6))
report.hockey_stick(plan, budget, sat, ax=ax1)
ax1.legend(loc="lower right", frameon=False, fontsize="small")
ax1.set_ylabel("latency of GET (ms)")
ax1.set_xlabel("virtual users (k6 VUs)")
ax1.set_title("p50 / p95 / p99 per load step (simulated)")
x = plan.metric("throughput_per_s", "get")
ax2.fill_between(x["users"], x["ci_low"], x["ci_high"], color="tab:blue", alpha=0.2, lw=0)
ax2.plot(x["users"], x["mean"], "o-", ms=4, color="tab:blue", label="throughput (simulated)")
ax2.axhline(capacity, color="0.3", ls=":", label=f"capacity {capacity:.0f}/s")
ax2.axhline(2 * PEAK_PER_S, color="tab:green", ls="--", label=f"2x peak {2 * PEAK_PER_S:.0f}/s")
ax2.axvline(knee, color="tab:orange", lw=1.5, label=f"knee N* = {knee:.0f} VUs")
err = plan.metric("error_rate", "get")
ax3 = ax2.twinx()
ax3.plot(err["users"], err["mean"] * 100, "s--", ms=3, color="tab:red", label="rejected (%)")
ax3.set_ylabel("rejected requests (%)", color="tab:red")
ax3.set_ylim(0, 100)
ax2.set_xlabel("virtual users (k6 VUs)")
ax2.set_ylabel("successful responses per s")
ax2.set_ylim(0, capacity * 1.15)
ax2.set_title("Throughput and rejections (simulated)")
ax2.grid(alpha=0.3)
handles = ax2.get_legend_handles_labels()[0] + ax3.get_legend_handles_labels()[0]
ax2.legend(handles=handles, loc="center right", fontsize="small", frameon=False)
plt.show()

# %% [markdown]
# **The load plan.** Steps far below the knee only confirm a straight line, so a few are
# enough; the information is at the knee, where throughput stops growing and queueing starts,
# and past it, where the queue fills and the service starts rejecting. Steps: a quarter of
# the knee, today's peak, then dense from 2x peak through the knee to the point where the
# budget breaks and beyond, each with what the simulation expects to see.

# %%
steps = sorted({5 * round(v / 5) for v in (0.25 * knee, vus_peak, vus_2x, knee, 1.25 * knee,
                                            sat.users, 2 * knee)})
expect = pd.DataFrame({
    "VUs": steps,
    "requests/s": np.interp(steps, curve["throughput_per_s"].index, curve["throughput_per_s"]),
    "p99 (ms)": np.interp(steps, curve["p99_s"].index, curve["p99_s"]) * 1e3,
    "rejected (%)": np.interp(steps, curve["error_rate"].index, curve["error_rate"]) * 100})
expect["budget"] = np.where(expect["p99 (ms)"] < budget.p99_s * 1e3, "pass", "FAIL")
expect.round(1)

# %% [markdown]
# The test itself at today's peak and at 2x, as an open load (requests arrive whatever the
# service does, as real users' do): `plan_load_test` holds each level, simulates it, and
# writes the k6 script whose thresholds are the budget, judged on each hold's own requests
# (`capsim loadtest` on the command line does the same). Each threshold comes with what the
# model expects of it.

# %%
open_load = cs.OpenWorkload(users=PEAK_PER_S, requests_per_user_s=1.0)
k6_plan = plan_load_test(system, open_load, budget, headroom=2.0, hold_s=STEP_S,
                         replications=REPS, seed=SEED, scenario="web")
print(k6_plan)
print("\n".join(k6_plan.k6_script().splitlines()[:12] + ["..."]))

# %% [markdown]
# ## 3 · The test, as run
#
# The k6 runs (10, 25, 50, 100 VUs, 30 s each; each VU sends a request and sleeps 0.1 s)
# and the stepped Locust run (5 to 120 users, 25 s a step, wait `between(0.05, 0.15)`, two
# endpoints whose `Aggregated` rows are read), into one table. Throughput counts successful
# responses; latencies include the rejected requests, as both tools report them.

# %%
k6_files = sorted((DATA / "k6").glob("k6-1.1.0_summary_*vus.json"))
locust_file = DATA / "locust" / "locust-2.47.0_full-history_stats_history.csv"
measured = read_load_test([*k6_files, locust_file])
measured["tool"] = np.where(measured["source"].str.endswith(".json"), "k6", "Locust")
measured[["tool", "concurrency", "duration_s", "requests", "throughput_per_s", "p50_s",
          "p95_s", "p99_s", "error_rate"]].round(4)

# %% [markdown]
# That Locust file was written with `--csv-full-history`. Without it, Locust's percentile
# columns are cumulative since the test began, not the step's own: the reader keeps the
# throughput, mean and error rate of each step and refuses to guess its percentiles.

# %%
with warnings.catch_warnings(record=True) as said:
    warnings.simplefilter("always", cs.MeasurementWarning)
    default = read_load_test(DATA / "locust" / "locust-2.47.0_default_stats_history.csv")
print(said[0].message)
default[["concurrency", "throughput_per_s", "mean_s", "p99_s", "error_rate"]].round(4)

# %% [markdown]
# ## 4 · Measured against simulated
#
# The same model at the same concurrency, with each tool's own think time and step length:
# the k6 sleep of 0.1 s for 30 s, and Locust's wait, uniform between 0.05 and 0.15 s (same
# mean and cv as a gamma), for 25 s of which the reader skips the first 10 s. The intervals
# are the simulation's own (`REPS` runs); the measurement is one run, with its own noise.

# %%
locust_script = cs.ClosedWorkload(users=5, think_time=cs.Gamma(mean=0.1, cv=0.05 / 3**0.5 / 0.1))
locust_users = [int(u) for u in measured.loc[measured["tool"] == "Locust", "concurrency"]]
locust_sim = cs.sweep(system, cs.growth(locust_script, users=locust_users), REPS, SEED,
                      duration_s=LOCUST_STEP_S, warmup_s=10.0, store=None, progress=False)
k6_users = [int(u) for u in measured.loc[measured["tool"] == "k6", "concurrency"]]
k6_sim = cs.sweep(system, cs.growth(k6_script, users=k6_users), REPS, SEED,
                  duration_s=K6_STEP_S, warmup_s=0.0, store=None, progress=False)

rows = []
for r in measured.itertuples():
    sim = k6_sim if r.tool == "k6" else locust_sim
    row = {"tool": r.tool, "users": int(r.concurrency)}
    for metric in ("throughput_per_s", "p99_s", "error_rate"):
        s = sim.curve(metric, "get").loc[int(r.concurrency)]
        row |= {f"{metric} measured": getattr(r, metric), f"{metric} simulated": s["mean"],
                f"{metric} inside CI": s["ci_low"] <= getattr(r, metric) <= s["ci_high"]}
    rows.append(row)
gap = pd.DataFrame(rows)
gap["throughput gap (%)"] = (gap["throughput_per_s simulated"]
                             / gap["throughput_per_s measured"] - 1) * 100
gap["p99 gap (ms)"] = (gap["p99_s simulated"] - gap["p99_s measured"]) * 1e3
gap[["tool", "users", "throughput_per_s measured", "throughput_per_s simulated",
     "throughput gap (%)", "p99_s measured", "p99_s simulated", "p99 gap (ms)",
     "error_rate measured", "error_rate simulated"]].round(3)

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.4))
for tool, sim, color in (("k6", plan, "tab:blue"), ("Locust", locust_sim, "tab:purple")):
    mine = measured[measured["tool"] == tool]
    for ax, metric, k in ((ax1, "throughput_per_s", 1.0), (ax2, "p99_s", 1e3)):
        s = sim.curve(metric, "get")
        s = s[s.index <= 130]
        ax.fill_between(s.index, s["ci_low"] * k, s["ci_high"] * k, color=color, alpha=0.2,
                        lw=0)
        ax.plot(s.index, s["mean"] * k, "-", color=color, label=f"{tool} script, simulated")
        ax.plot(mine["concurrency"], mine[metric] * k, "o", color=color, mec="black", ms=7,
                label=f"{tool}, measured")
ax1.set_ylabel("successful responses per s")
ax2.set_ylabel("p99 latency (ms)")
ax2.axhline(budget.p99_s * 1e3, color="tab:red", ls="--", label="budget 200 ms")
for ax in (ax1, ax2):
    ax.set_xlabel("concurrency (VUs / users)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", frameon=False)
ax1.set_title("Throughput: measured points on the simulated curves")
ax2.set_title("p99: measured points on the simulated curves")
plt.show()

# %%
worst_x = gap.loc[gap["throughput gap (%)"].abs().idxmax()]
worst_p = gap.loc[gap["p99 gap (ms)"].abs().idxmax()]
inside = gap["throughput_per_s inside CI"].sum(), gap["p99_s inside CI"].sum()
print(f"Throughput: simulated within {gap['throughput gap (%)'].abs().max():.1f}% of measured at "
      f"every step (largest at {worst_x['tool']} {worst_x['users']} users); measured inside "
      f"the simulated 95% CI at {inside[0]} of {len(gap)} steps.")
print(f"p99: gaps of {gap['p99 gap (ms)'].abs().median():.1f} ms at the median step, "
      f"{worst_p['p99 gap (ms)']:+.1f} ms at worst ({worst_p['tool']} {worst_p['users']} "
      f"users); inside the CI at {inside[1]} of {len(gap)}.")
print(f"Rejections: measured {gap['error_rate measured'].max():.0%} at the heaviest step, "
      f"simulated {gap.loc[gap['error_rate measured'].idxmax(), 'error_rate simulated']:.0%}.")
plateau = measured.loc[measured["concurrency"] >= 1.25 * knee, "throughput_per_s"].mean()
print(f"Past the knee the service measured {plateau:.0f}/s, the model {capacity:.0f}/s: the "
      f"plateau implies a mean service time of 8 / {plateau:.0f} = {8 / plateau * 1e3:.2f} ms, "
      f"the fit to the service times said {service.mean * 1e3:.2f} ms "
      f"({service.mean * plateau / 8 - 1:+.1%}).")

# %% [markdown]
# The model, built only from service times measured on the service alone, predicts what the
# real tools measured on the real server: throughput within a few percent at every step, p99
# within about ten milliseconds, and the share of requests rejected once the queue can fill
# (numbers above). The plateau is a little under 8 / mean service time: the server does work
# its service time does not count (handing a request to a worker thread, parsing, writing the
# answer, on two cores shared with the load tool). Near saturation that is the gap to watch,
# since a small loss of capacity is a large change in p99.
#
# A measurement is one run and the intervals are the simulation's alone, so a step can fall
# outside them when the model is right: a single short step's p99 is decided by its few
# slowest requests, and Locust's p99 is the median of 10-second p99s, not one p99 over the
# step. A gap much bigger than that noise is the finding, and says which part of the model to
# revisit. One was found while making these files: a first version of the server let a newly
# arriving request take a freed worker before the ones already waiting (a plain semaphore),
# and its p99 at 100 VUs was about 40% above the model's. The model assumed first come, first
# served; the server did not do it. Once it did, the two agreed.
#
# ## 5 · The Universal Scalability Law, and where not to trust it
#
# USL is the usual way to summarise such a test: fit X(N) = λN / (1 + σ(N-1) + κN(N-1)) to
# the measured throughput, read off the peak. Here it is fitted to the measured steps and
# drawn past them, next to the simulation of the same steps.

# %%
law = usl.fit(measured["concurrency"], measured["throughput_per_s"])
print(law)
last = measured["concurrency"].max()
beyond = [150, 200, 250]
fig, ax = plt.subplots(figsize=(9, 4.6))
law.plot(ax, n_to=260, label="USL fit")
ax.plot(x["users"], x["mean"], "s-", color="tab:green", ms=4, label="simulated (k6 script)")
ax.axvline(last, color="0.4", ls=":", lw=1)
ax.text(last + 3, 1.15 * law.x_max, "last measurement", color="0.3", fontsize="small")
ax.legend(loc="lower right", fontsize="small", frameon=False)
ax.set_title("USL past the data: a peak and a decline the system does not have")
plt.show()
usl_vs_sim = pd.DataFrame({"VUs": beyond, "USL predicts (/s)": law.predict(beyond),
                           "simulated (/s)": [curve["throughput_per_s"][v] for v in beyond],
                           "simulated rejected (%)": [curve["error_rate"][v] * 100
                                                      for v in beyond]})
usl_vs_sim.round(1)

# %% [markdown]
# Inside the data the fit is excellent (R² above). Past it, USL has only two ways to bend:
# contention (σ) levels the curve off, coherency (κ) turns it down, and a least-squares fit
# to a curve that flattens abruptly at the worker limit picks κ > 0. So it predicts a peak
# and a *retrograde* decline. The service does not decline: its 8 workers stay busy and the
# queue limit turns the surplus into fast rejections, so successful throughput stays on its
# plateau while the share of failed requests climbs. A USL extrapolation here would
# under-state capacity and invent a failure mode; use it inside the measured range, and let
# the model (or a measurement) speak past it.
#
# ## 6 · The budget, pass or fail
#
# "Every endpoint p99 under 200 ms" per load step (this service has one endpoint, `get`;
# Locust's per-`Name` rows give one row per endpoint the same way), measured by each tool
# and as simulated. Next to it the error rate, because a p99 over *all* requests can be
# flattered by fast failures.

# %%
verdict = gap[["tool", "users", "p99_s measured", "p99_s simulated",
               "error_rate measured"]].copy()
verdict["p99 < 200 ms (measured)"] = np.where(verdict["p99_s measured"] < budget.p99_s,
                                              "PASS", "FAIL")
verdict["p99 < 200 ms (simulated)"] = np.where(verdict["p99_s simulated"] < budget.p99_s,
                                               "PASS", "FAIL")
verdict["errors < 1%"] = np.where(verdict["error_rate measured"] < 0.01, "PASS", "FAIL")
verdict["p99 (ms)"] = (verdict.pop("p99_s measured") * 1e3).round(0)
verdict["simulated p99 (ms)"] = (verdict.pop("p99_s simulated") * 1e3).round(0)
verdict["errors (%)"] = (verdict.pop("error_rate measured") * 100).round(1)
verdict.sort_values(["users", "tool"]).reset_index(drop=True)

# %% [markdown]
# ## The answer

# %%
at_2x = measured.iloc[(measured["throughput_per_s"] - 2 * PEAK_PER_S).abs().argsort()[:1]]
m2 = at_2x.iloc[0]
fails = verdict[verdict["p99 < 200 ms (measured)"] == "FAIL"]
print(f"Plan: {len(steps)} steps, {', '.join(map(str, steps))} VUs: the knee is at about "
      f"{knee:.0f} VUs, 2x today's peak ({2 * PEAK_PER_S:.0f}/s) needs about {vus_2x:.0f}, "
      f"and the simulation puts the budget break at {sat.users:.0f} VUs "
      f"(95% CI {sat.users_low:.0f}-{sat.users_high:.0f}).")
print(f"At 2x peak the budget holds: the nearest measured step ({m2['tool']}, "
      f"{m2['concurrency']:.0f} users, {m2['throughput_per_s']:.0f}/s) has p99 "
      f"{m2['p99_s'] * 1e3:.0f} ms and no errors; the simulation expected "
      f"{np.interp(m2['concurrency'], curve['p99_s'].index, curve['p99_s']) * 1e3:.0f} ms.")
failed = ", ".join(f"{t} {u}" for t, u in zip(fails["tool"], fails["users"], strict=True))
print(f"It fails at {failed} users: p99 {fails['p99 (ms)'].min():.0f}-"
      f"{fails['p99 (ms)'].max():.0f} ms with {fails['errors (%)'].min():.0f}-"
      f"{fails['errors (%)'].max():.0f}% of requests rejected, past the capacity "
      f"({plateau:.0f}/s measured).")
print(f"Measured and simulated agree within {gap['throughput gap (%)'].abs().max():.1f}% on "
      f"throughput and {gap['p99 gap (ms)'].abs().max():.0f} ms on p99. USL peaks at "
      f"N = {law.n_max:.0f} and predicts {law.predict(250):.0f}/s at 250 VUs where the "
      f"simulation holds {curve['throughput_per_s'][250]:.0f}/s.")

# %% [markdown]
# **Answer.** Simulating first turns the load test from a fishing trip into a check. The
# model, calibrated from service times alone, says where the interesting steps are (around
# the knee, about twice today's peak in VUs, and up to where the 200 ms budget breaks), what
# each should show, and writes the k6 script whose thresholds are the budget. The real test
# then confirms it, step by step: at 2x today's peak the `web` service meets "p99 < 200 ms",
# because 2x peak is still below its capacity of about 390 requests/s; the budget breaks only
# past capacity, where the queue fills and the service rejects a growing share of requests.
# Two lessons for the CI budget: check errors next to p99 (fast 503s make an overloaded
# service's p99 look better), and do not extrapolate a USL fit past the measured range: this
# service plateaus, the fit predicts a decline.
