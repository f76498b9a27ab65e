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

# Cumulative per-station counters a run samples over time (``RunResult.samples``' last axis,
# read one at a time with ``RunResult.counter(name)``): time-integrals of requests present and
# of busy servers, sums of waits and sojourns (s), counts, and the number present at the time.
COUNTERS = ("area_in_system", "area_busy", "wait_sum_s", "sojourn_sum_s", "arrivals", "started",
            "completions", "drops", "present")

# -- flow names ---------------------------------------------------------------------------------
# A MessageQueue's messages, publish to processed, are reported as a flow of their own next to
# the request flows. Its name is made and read only here, so no caller matches on the suffix.
# (This module imports nothing: every layer, the model's lowering included, may use it.)
_ASYNC_SUFFIX = " (async)"


def async_flow(queue: str) -> str:
    """The flow name of ``queue``'s messages: ``"orders"`` -> ``"orders (async)"``."""
    return f"{queue}{_ASYNC_SUFFIX}"


def is_async_flow(flow: str) -> bool:
    """Whether ``flow`` is a message queue's async flow (not requests a user waits for)."""
    return flow.endswith(_ASYNC_SUFFIX) and len(flow) > len(_ASYNC_SUFFIX)


def async_queue(flow: str) -> str | None:
    """The queue an async flow belongs to (``"orders (async)"`` -> ``"orders"``); None for a
    request flow."""
    return flow[: -len(_ASYNC_SUFFIX)] if is_async_flow(flow) else None
