"""capsim.calibrate: service-time fits recover known distributions (and the service times the
stub server measured); the load-test readers together feed the USL fit; bad input fails with the
field and the value. The readers of each tool are tested in test_k6.py and test_locust.py.
"""

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import capsim as cs
from capsim.analytic import usl
from capsim.calibrate import (
    FIT_COLUMNS,
    Weibull,
    fit_service_time,
    read_durations,
    read_load_test,
)
from capsim.experiment import mean_ci

DATA = Path(__file__).resolve().parents[1] / "data" / "measurements"
K6_FILES = sorted((DATA / "k6").glob("k6-1.1.0_summary_*vus.json"))
LOCUST_FILE = DATA / "locust" / "locust-2.47.0_full-history_stats_history.csv"

# the stub server the files were recorded on (data/measurements/README.md)
TRUE_SERVICE = cs.LogNormal(mean=0.020, cv=1.0)
CAPACITY_PER_S = 8 / 0.020


# -- Weibull ------------------------------------------------------------------------------------
WEIBULLS = [Weibull(mean=0.02, cv=0.4), Weibull(mean=1.5, cv=1.0), Weibull(mean=0.3, cv=2.5)]


@pytest.mark.parametrize("dist", WEIBULLS, ids=repr)
def test_weibull_samples_have_the_declared_mean_and_cv(dist):
    rng = np.random.default_rng(2024)
    batches = [dist.sample(rng, 20_000) for _ in range(20)]
    assert all(b.dtype == np.float64 and b.shape == (20_000,) and (b >= 0).all()
               for b in batches)
    m, half = mean_ci([b.mean() for b in batches], 0.999)
    assert abs(m - dist.mean) <= half
    c, half = mean_ci([b.std() / b.mean() for b in batches], 0.999)
    assert abs(c - dist.cv) <= half + 0.03 * dist.cv  # heavy tails bias a sample cv low
    assert stats.kstest(batches[0][:5000], dist.cdf).pvalue > 0.001


def test_weibull_parameters_round_trip_and_match_scipy():
    w = Weibull.from_shape_scale(0.7, 0.05)
    assert w.shape == pytest.approx(0.7, rel=1e-10)
    assert w.scale == pytest.approx(0.05, rel=1e-10)
    ref = stats.weibull_min(0.7, scale=0.05)
    assert w.mean == pytest.approx(ref.mean()) and w.cv == pytest.approx(ref.std() / ref.mean())
    x = np.array([0.0, 0.01, 0.05, 0.3])
    assert np.allclose(w.cdf(x), ref.cdf(x))
    assert Weibull(mean=2.0, cv=1.0).shape == pytest.approx(1.0)  # the exponential
    s = w.scaled(3.0)
    assert type(s) is Weibull and s.mean == pytest.approx(3.0) and s.cv == pytest.approx(w.cv)
    assert repr(w).startswith("Weibull(mean=")
    assert Weibull(0.02, 0.5) == Weibull(0.02, 0.5) and hash(Weibull(0.02, 0.5))
    cs.Service("web", servers=2, service_time=w)  # a service time like any other


@pytest.mark.parametrize(("args", "match"), [
    ((0.0, 1.0), r"Weibull.mean: must be > 0, got 0.0"),
    ((1.0, -1.0), r"Weibull.cv: must be > 0, got -1.0"),
    ((1.0, 1e-6), r"Weibull.cv: must be between .*, got 1e-06"),
])
def test_weibull_bad_input(args, match):
    with pytest.raises(cs.ModelError, match=match):
        Weibull(*args)
    with pytest.raises(cs.ModelError, match=r"Weibull.shape: must be > 0, got -2"):
        Weibull.from_shape_scale(-2, 1.0)


# -- fitting service times ----------------------------------------------------------------------
N = 4000
CLEAR_CASES = {  # families far enough apart that 4000 samples tell them apart
    "gamma": cs.Gamma(mean=0.020, cv=0.5),
    "lognormal": cs.LogNormal(mean=0.020, cv=1.5),
    "weibull": Weibull(mean=0.020, cv=2.0),
}


@pytest.mark.parametrize("family", list(CLEAR_CASES))
@pytest.mark.parametrize("criterion", ["aic", "ks"])
def test_criterion_picks_the_generating_family(family, criterion):
    for seed in (1, 2, 3):
        x = CLEAR_CASES[family].sample(np.random.default_rng(seed), N)
        assert fit_service_time(x, criterion=criterion).best == family


@pytest.mark.parametrize("family", list(CLEAR_CASES))
def test_fit_recovers_mean_and_cv(family):
    """The MLE mean is within 4 standard errors (cv * mean / sqrt(n)) of the truth; the cv
    within 4 of its delta-method standard errors, bounded here by 8 % for these shapes."""
    truth = CLEAR_CASES[family]
    for seed in (4, 5):
        report = fit_service_time(truth.sample(np.random.default_rng(seed), N))
        d = report.distribution
        assert type(d) is type(truth)
        assert abs(d.mean - truth.mean) < 4 * truth.cv * truth.mean / math.sqrt(N)
        assert d.cv == pytest.approx(truth.cv, rel=0.08)
        assert report.params["mean_s"] == d.mean and report.params["cv"] == d.cv


def test_exponential_data_nests_in_gamma_and_weibull():
    """Exponential data: gamma and Weibull (shape ~ 1) fit as well. Nested in them, the
    exponential loses at most LR - 2 AIC points, LR ~ chi2(1), so it stays close to the best
    (below 4 points: LR < 6, p ~ 0.99 per rival); BIC's ln(n) penalty picks it."""
    for seed in (6, 7, 8):
        x = cs.Exponential(0.05).sample(np.random.default_rng(seed), N)
        aic = fit_service_time(x)
        row = aic.table.set_index("family")
        assert row.loc["exponential", "delta"] < 4.0
        assert row.loc[["gamma", "weibull"], "shape"].to_numpy() == pytest.approx(1.0, abs=0.05)
        bic = fit_service_time(x, criterion="bic")
        assert bic.best == "exponential"
        assert bic.distribution == cs.Exponential(float(x.mean()))  # the MLE is the mean


def test_report_table_and_distribution_agree_with_scipy():
    x = cs.LogNormal(mean=0.02, cv=1.2).sample(np.random.default_rng(9), 2000)
    report = fit_service_time(x)
    t = report.table
    assert list(t.columns) == FIT_COLUMNS
    assert list(t["family"]) == sorted(t["family"], key=dict(zip(t["family"], t["aic"],
                                                                   strict=True)).get)
    assert t.loc[0, "family"] == report.best and t.loc[0, "delta"] == 0
    assert (t["aic"] == 2 * t["n_params"] - 2 * t["loglik"]).all()
    assert np.allclose(t["bic"], t["n_params"] * np.log(2000) - 2 * t["loglik"])
    # log-normal MLE in closed form: mean and (ddof=0) std of ln x
    lx = np.log(x)
    assert report.params["mu"] == pytest.approx(lx.mean())
    assert report.params["sigma"] == pytest.approx(lx.std())
    ln = t.set_index("family").loc["lognormal"]
    ref = stats.lognorm(ln["shape"], scale=ln["scale"])
    grid = np.quantile(x, [0.1, 0.5, 0.9, 0.99])
    assert np.allclose(report.distribution.cdf(grid), ref.cdf(grid))
    assert ln["loglik"] == pytest.approx(ref.logpdf(x).sum())
    assert ln["ks_stat"] == pytest.approx(stats.kstest(x, ref.cdf).statistic)
    # the Weibull MLE solves its score equation, and agrees with scipy's generic fit
    wb = t.set_index("family").loc["weibull"]
    k, lam = wb["shape"], wb["scale"]
    assert np.sum(x**k * np.log(x)) / np.sum(x**k) - 1 / k == pytest.approx(lx.mean(), abs=1e-9)
    assert lam == pytest.approx(np.mean(x**k) ** (1 / k), rel=1e-9)
    c, _, scale = stats.weibull_min.fit(x, floc=0)
    assert k == pytest.approx(c, rel=1e-3) and lam == pytest.approx(scale, rel=1e-3)
    assert "lognormal" in str(report)


def test_families_subset_and_order():
    x = cs.Gamma(mean=1.0, cv=0.5).sample(np.random.default_rng(10), 500)
    report = fit_service_time(x, families=["exponential", "weibull"])
    assert set(report.table["family"]) == {"exponential", "weibull"}
    assert fit_service_time(x, families="gamma").best == "gamma"


@pytest.mark.parametrize(("samples", "kwargs", "match"), [
    ([], {}, r"fit_service_time.samples: must hold at least 2 durations, got 0"),
    ([0.1], {}, r"fit_service_time.samples: must hold at least 2 durations, got 1"),
    ([0.1, float("nan"), 0.3], {}, r"fit_service_time.samples\[1\]: must be a finite number, "
                                   r"got nan"),
    ([0.1, 0.2, -0.5, -1.0], {}, r"fit_service_time.samples\[2\]: must be >= 0 .*got -0.5 "
                                 r"\(1 more\)"),
    ([0.1, 0.0, 0.3], {}, r"fit_service_time.samples\[1\]: must be > 0 .*got 0.0"),
    ([0.2, 0.2, 0.2], {}, r"fit_service_time.samples: must vary .*got 0.2"),
    (["a", "b"], {}, r"fit_service_time.samples: must be numbers"),
    ([[0.1, 0.2], [0.3, 0.4]], {}, r"fit_service_time.samples: must be one-dimensional"),
    ([0.1, 0.2], {"families": ["pareto"]}, r"fit_service_time.families: each must be one of "
                                           r".*got 'pareto'"),
    ([0.1, 0.2], {"families": []}, r"fit_service_time.families: must name at least one"),
    ([0.1, 0.2], {"criterion": "aicc"}, r"fit_service_time.criterion: must be one of .*'aicc'"),
])
def test_fit_bad_input_names_field_index_and_value(samples, kwargs, match):
    with pytest.raises(cs.ModelError, match=match):
        fit_service_time(samples, **kwargs)


# -- reading durations --------------------------------------------------------------------------
def test_measured_service_times_are_the_stubs_lognormal():
    """service_times.csv: 2000 service times the stub server timed around its sleeps, drawn
    from LogNormal(mean 20 ms, cv 1). A sleep overshoots by a fraction of a millisecond, so the
    fit finds the log-normal with a mean a little above 20 ms and the same cv; a real
    measurement, not a draw, so the check allows for that overshoot (up to 1 ms)."""
    x = read_durations(DATA / "service_times.csv", unit="ms")
    assert x.size == 2000
    report = fit_service_time(x)
    assert report.best == "lognormal"
    fitted = report.distribution
    se = TRUE_SERVICE.mean * TRUE_SERVICE.cv / math.sqrt(x.size)  # standard error of a mean
    assert TRUE_SERVICE.mean - 4 * se < fitted.mean < TRUE_SERVICE.mean + 0.001 + 4 * se
    assert fitted.cv == pytest.approx(TRUE_SERVICE.cv, abs=0.1)
    assert report.table.loc[0, "ks_pvalue"] > 0.01
    assert read_durations(DATA / "service_times.csv", column="duration_ms", unit="ms") == (
        pytest.approx(x))


def test_read_durations_tiny_files(tmp_path):
    p = tmp_path / "lat.csv"
    p.write_text("# measured by hand\nlatency_ms\n10\n20.5\n\n30\n")
    assert read_durations(p, unit="ms") == pytest.approx([0.010, 0.0205, 0.030])
    bare = tmp_path / "bare.csv"
    bare.write_text("0.5\n1.5\n2\n")  # no header: the first row is data
    assert read_durations(bare) == pytest.approx([0.5, 1.5, 2.0])
    wide = tmp_path / "wide.csv"
    wide.write_text("endpoint,duration_us\n/a,1500\n/b,2500\n")
    assert read_durations(wide, column="duration_us", unit="us") == pytest.approx([1.5e-3,
                                                                                  2.5e-3])


@pytest.mark.parametrize(("text", "kwargs", "match"), [
    ("ms\n10\n\n", {}, r"read_durations\('f.csv'\).ms: must hold at least 2 durations, got 1"),
    ("", {}, r"read_durations.path: must hold at least 2 durations, got 'an empty file'"),
    ("ms\n10\nabc\n30\n", {}, r"read_durations\('f.csv'\).ms\[1\]: must be a number, got 'abc'"),
    ("a,ms\nx,10\ny,\nz,3\n", {"column": "ms"}, r"\.ms\[1\]: must be a number, got an empty cell"),
    ("ms\n10\n-3\n", {}, r"read_durations\('f.csv'\).ms\[1\]: must be >= 0 .*got -3.0"),
    ("ms\n10\n0\n", {}, r"\.ms\[1\]: must be > 0 .*got 0.0"),
    ("a,b\n1,2\n3,4\n", {}, r"read_durations.column: must name one of \['a', 'b'\], got None"),
    ("a,b\n1,2\n3,4\n", {"column": "c"}, r"read_durations.column: must be one of .*got 'c'"),
    ("ms\n1\n2\n", {"unit": "min"}, r"read_durations.unit: must be one of .*got 'min'"),
])
def test_read_durations_bad_files(tmp_path, text, kwargs, match):
    p = tmp_path / "f.csv"
    p.write_text(text)
    with pytest.raises(cs.ModelError, match=match):
        read_durations(p, **kwargs)


def test_read_durations_missing_file(tmp_path):
    with pytest.raises(cs.ModelError, match=r"read_durations.path: must be an existing file"):
        read_durations(tmp_path / "nope.csv")


# -- both, into the USL -------------------------------------------------------------------------
def test_read_load_test_combines_formats_and_feeds_the_usl_fit():
    df = read_load_test([*K6_FILES, LOCUST_FILE])
    assert len(df) == 4 + 7 and df["concurrency"].is_monotonic_increasing
    assert set(df["source"]) == {f.name for f in K6_FILES} | {LOCUST_FILE.name}
    fit = usl.fit(df["concurrency"], df["throughput_per_s"])
    assert fit.r_squared > 0.97
    # the fitted curve levels off near the stub's capacity of 8 / 20 ms = 400 responses/s
    assert fit.x_max == pytest.approx(CAPACITY_PER_S, rel=0.10)
    with pytest.raises(cs.ModelError, match=r"read_load_test.paths: must be .json \(k6\) or "
                                            r".csv \(Locust\) files"):
        read_load_test([DATA / "README.md"])


def test_measurement_files_say_how_they_were_made():
    assert (DATA / "service_times.csv").read_text().startswith("# MEASURED")
    for folder, tool in (("k6", "k6 v1.1.0"), ("locust", "Locust 2.47.0")):
        readme = (DATA / folder / "README.md").read_text()
        assert tool in readme
        for f in (DATA / folder).iterdir():
            assert f.name == "README.md" or f.name in readme, f"{folder}/{f.name} undocumented"
    assert not list(DATA.glob("k6_summary_step*.json"))  # the generated samples are gone
    assert not (DATA / "generate.py").exists()
