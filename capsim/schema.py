"""Column names shared by simulated and analytic results, so the two line up side by side.

Units are in the names (``_s`` seconds, ``_per_s`` per second). A steady-state quantity of an
unstable system is ``inf`` (latency, queue length) and its row says ``stable=False``.
"""

LATENCY_COLUMNS = [
    "flow",
    "count",  # requests completed in the measured window (NaN from the analytic twin)
    "throughput_per_s",
    "mean_s",
    "p50_s",
    "p95_s",
    "p99_s",
    "errors",  # requests dropped (full queue) in the window
    "error_rate",
    "censored",  # requests still in flight when the run ended (NaN from the twin)
    "stable",
    "adequate",  # the run is long enough for its finite estimates (NaN from the twin)
]

SIMULATION_ONLY = ("censored", "adequate", "instability")

COMPONENT_COLUMNS = [
    "component",
    "servers",
    "offered_load",  # lambda x E[S] / servers from the model; >= 1 means no steady state
    "utilization",  # time-average fraction of busy servers
    "throughput_per_s",
    "mean_queue_length",  # waiting, not in service
    "mean_in_system",  # waiting + in service
    "mean_wait_s",  # time in queue per visit
    "mean_response_s",  # wait + service per visit
    "drops",
    "stable",
    "instability",  # why it has no steady state: "" or e.g. "offered load 1.42 >= 1 (model)"
]

ALL_FLOWS = "all"  # the flow name of the row that pools every flow
