"""The Prometheus text exposition of a time series, checked line by line (no parser; promtool
checks it in test_prometheus_rules.py)."""

import math
import re
from datetime import UTC, datetime

import pandas as pd
import pytest

import capsim as cs
from capsim.monitor import NAMES, metric_name, to_prometheus, write_prometheus
from capsim.monitor.prometheus import HELP, escape_help, escape_label

T0 = 1_732_900_000  # Unix seconds of the run's t = 0


def frame(rows):
    return pd.DataFrame(rows, columns=["time_s", "name", "metric", "value"])


TS = frame([
    (60.0, "db", "utilization", 0.83),
    (60.0, "app[0]", "utilization", 0.5),
    (120.0, "db", "utilization", 0.9),
    (120.0, "app[0]", "utilization", 0.25),
    (60.0, "db", "throughput_per_s", 100.0),
    (60.0, "checkout", "throughput_per_s", 12.5),
    (60.0, "checkout", "p99_s", 0.2125),
    (120.0, "checkout", "p99_s", float("nan")),
])


def test_exposition_line_by_line():
    text = to_prometheus(TS, T0)
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert text.splitlines() == [
        "# HELP capsim_utilization_ratio Busy servers / servers (0 to 1), time average over "
        "the window.",
        "# TYPE capsim_utilization_ratio gauge",
        'capsim_utilization_ratio{component="db"} 0.83 1732900060000',
        'capsim_utilization_ratio{component="db"} 0.9 1732900120000',
        'capsim_utilization_ratio{component="app[0]"} 0.5 1732900060000',
        'capsim_utilization_ratio{component="app[0]"} 0.25 1732900120000',
        "# HELP capsim_throughput_per_second Requests completed per second over the window.",
        "# TYPE capsim_throughput_per_second gauge",
        'capsim_throughput_per_second{component="db"} 100.0 1732900060000',
        'capsim_throughput_per_second{flow="checkout"} 12.5 1732900060000',
        "# HELP capsim_latency_seconds Latency quantiles of the flow's requests finished in "
        "the window.",
        "# TYPE capsim_latency_seconds summary",
        'capsim_latency_seconds{flow="checkout",quantile="0.99"} 0.2125 1732900060000',
        'capsim_latency_seconds{flow="checkout",quantile="0.99"} NaN 1732900120000',
    ]


def test_the_names_follow_the_prometheus_conventions():
    # base units with their plural suffix, a 0-1 share as _ratio, no reserved suffix on a
    # gauge, no abbreviated unit (promtool check metrics says the same where it is installed)
    assert NAMES == {
        "utilization": "capsim_utilization_ratio",
        "mean_in_system": "capsim_mean_in_system",
        "mean_queue_length": "capsim_mean_queue_length",
        "throughput_per_s": "capsim_throughput_per_second",
        "drops": "capsim_dropped_requests",
        "count": "capsim_finished_requests",
        "errors": "capsim_failed_requests",
        "p50_s": 'capsim_latency_seconds{quantile="0.5"}',
        "p95_s": 'capsim_latency_seconds{quantile="0.95"}',
        "p99_s": 'capsim_latency_seconds{quantile="0.99"}',
    }
    for metric in NAMES:
        name = metric_name(metric)
        assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name)
        assert not re.search(r"_(count|sum|bucket|total|s|ms|per_s)$", name), name
        assert HELP[name.removeprefix("capsim_")]


def test_latency_quantiles_are_one_summary_family():
    ts = frame([(60.0, "f", "p99_s", 0.3), (60.0, "f", "p50_s", 0.1), (60.0, "f", "p95_s", 0.2),
                (120.0, "f", "p50_s", 0.11), (120.0, "f", "p99_s", 0.31),
                (120.0, "f", "p95_s", 0.21), (60.0, "f", "count", 7.0)])
    lines = to_prometheus(ts, 0, openmetrics=True).splitlines()
    assert sum(x.startswith("# TYPE ") for x in lines) == 2
    assert lines[1:11] == [
        "# TYPE capsim_latency_seconds summary",
        "# UNIT capsim_latency_seconds seconds",
        'capsim_latency_seconds{flow="f",quantile="0.5"} 0.1 60.000',
        'capsim_latency_seconds{flow="f",quantile="0.95"} 0.2 60.000',
        'capsim_latency_seconds{flow="f",quantile="0.99"} 0.3 60.000',
        'capsim_latency_seconds{flow="f",quantile="0.5"} 0.11 120.000',
        'capsim_latency_seconds{flow="f",quantile="0.95"} 0.21 120.000',
        'capsim_latency_seconds{flow="f",quantile="0.99"} 0.31 120.000',
        "# HELP capsim_finished_requests Requests of the flow finished in the window.",
        "# TYPE capsim_finished_requests gauge",
    ]
    assert "# UNIT capsim_finished_requests" not in "\n".join(lines)  # a count has no unit
    # the text format has no UNIT line
    assert not any(x.startswith("# UNIT") for x in to_prometheus(ts, 0).splitlines())
    # HELP by capsim metric or by family
    for key in ("p95_s", "latency_seconds"):
        assert to_prometheus(ts, 0, help={key: "lat"}).splitlines()[0] == \
            "# HELP capsim_latency_seconds lat"
    with pytest.raises(cs.ModelError, match="labels: must have label names .*got 'quantile'"):
        to_prometheus(ts, 0, labels={"quantile": "x"})


def test_every_family_has_one_help_and_type_before_its_samples():
    lines = to_prometheus(TS, T0).splitlines()
    seen = []
    for i, line in enumerate(lines):
        if line.startswith("# TYPE "):
            name = line.split()[2]
            assert lines[i - 1].startswith(f"# HELP {name} ")
            assert line.endswith(" summary" if name == "capsim_latency_seconds" else " gauge")
            assert name not in seen
            seen.append(name)
        elif not line.startswith("#"):
            assert line.split("{")[0] == seen[-1]
    assert seen == ["capsim_utilization_ratio", "capsim_throughput_per_second",
                    "capsim_latency_seconds"]


def test_label_values_are_escaped():
    ts = frame([(1.0, 'a "quoted"\\path\nnext', "utilization", 1.0)])
    sample = to_prometheus(ts, 0).splitlines()[2]
    assert sample == ('capsim_utilization_ratio{component="a \\"quoted\\"\\\\path\\nnext"} '
                      '1.0 1000')
    assert "\n" not in sample
    assert escape_label("\\") == "\\\\" and escape_label('"') == '\\"'
    assert escape_label("\n") == "\\n"
    # HELP escapes backslash and newline only (OpenMetrics also double quotes)
    assert escape_help('a\\b\n"c"') == 'a\\\\b\\n"c"'
    assert escape_help('"c"', openmetrics=True) == '\\"c\\"'


def test_metric_names_are_sanitized():
    assert metric_name("p99_s") == "capsim_latency_seconds"
    assert metric_name("utilization", prefix="sim_") == "sim_utilization_ratio"
    assert metric_name("hit ratio (%)") == "capsim_hit_ratio____"
    assert metric_name("99th", prefix="") == "_99th"
    assert metric_name("cpu.util", prefix="app:") == "app:cpu_util"
    text = to_prometheus(frame([(1.0, "db", "cpu.util-x", 0.5)]), 0)
    assert text.splitlines()[1:] == ["# TYPE capsim_cpu_util_x gauge",
                                     'capsim_cpu_util_x{component="db"} 0.5 1000']
    assert text.splitlines()[0] == "# HELP capsim_cpu_util_x capsim metric cpu.util-x"
    with pytest.raises(cs.ModelError, match="same Prometheus name 'capsim_a_b'"):
        to_prometheus(frame([(1.0, "db", "a.b", 1.0), (1.0, "db", "a-b", 1.0)]), 0)
    # a metric of your own may not take an exported family's name either
    with pytest.raises(cs.ModelError, match="same Prometheus name 'capsim_latency_seconds'"):
        to_prometheus(frame([(1.0, "f", "p99_s", 1.0), (1.0, "f", "latency_seconds", 1.0)]), 0)


def test_values_timestamps_and_extra_labels():
    ts = frame([(0.5, "db", "drops", math.inf), (1.0, "db", "drops", -math.inf),
                (1.5, "db", "drops", 3.0)])
    lines = to_prometheus(ts, datetime(2024, 11, 29, 17, 6, 40, tzinfo=UTC),
                          labels={"scenario": 'la"unch'}, help={"drops": "x\\y"}).splitlines()
    name = "capsim_dropped_requests"
    assert lines == [f"# HELP {name} x\\\\y", f"# TYPE {name} gauge",
                     f'{name}{{component="db",scenario="la\\"unch"}} +Inf 1732900000500',
                     f'{name}{{component="db",scenario="la\\"unch"}} -Inf 1732900001000',
                     f'{name}{{component="db",scenario="la\\"unch"}} 3.0 1732900001500']
    with pytest.raises(cs.ModelError, match="labels: must have label names"):
        to_prometheus(ts, 0, labels={"bad-name": "x"})
    with pytest.raises(cs.ModelError, match="start_epoch_s: must be Unix seconds"):
        to_prometheus(ts, -1)
    with pytest.raises(cs.ModelError, match="timezone-aware"):
        to_prometheus(ts, datetime(2024, 1, 1))
    with pytest.raises(cs.ModelError, match="missing columns"):
        to_prometheus(ts.drop(columns="metric"), 0)


def test_openmetrics_for_backfilling():
    lines = to_prometheus(TS.head(1), T0, openmetrics=True).splitlines()
    assert lines == [
        "# HELP capsim_utilization_ratio Busy servers / servers (0 to 1), time average over "
        "the window.",
        "# TYPE capsim_utilization_ratio gauge",
        "# UNIT capsim_utilization_ratio ratio",
        'capsim_utilization_ratio{component="db"} 0.83 1732900060.000',
        "# EOF",
    ]


def test_a_run_exports_every_series(tmp_path):
    one = cs.System([cs.Service("s", 2, cs.Exponential(0.01))], [cs.Flow("f", 1.0,
                                                                         [cs.Call("s")])])
    run = cs.simulate(one, cs.OpenWorkload(1, 50.0), 120, seed=1, sample_interval_s=30)
    ts = run.timeseries(60)
    path = write_prometheus(ts, tmp_path / "run.prom", T0)
    lines = path.read_text().splitlines()
    samples = [x for x in lines if not x.startswith("#")]
    assert len(samples) == len(ts)
    assert 'capsim_utilization_ratio{component="s"}' in samples[0]
    assert any(x.startswith('capsim_latency_seconds{flow="f",quantile="0.99"} ') for x in samples)
    assert sum(x.startswith("# TYPE ") for x in lines) == len({metric_name(m) for m in
                                                               ts["metric"].unique()})
    assert {x.rsplit(" ", 1)[1] for x in samples} == {"1732900060000", "1732900120000"}


def test_a_flow_and_a_station_of_the_same_name_keep_their_labels():
    ts = frame([(60.0, "api", "utilization", 0.5), (60.0, "api", "p99_s", 0.1)])
    samples = [x for x in to_prometheus(ts, 0).splitlines() if not x.startswith("#")]
    assert samples == ['capsim_utilization_ratio{component="api"} 0.5 60000',
                       'capsim_latency_seconds{flow="api",quantile="0.99"} 0.1 60000']
