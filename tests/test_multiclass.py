"""Multi-class MVA, mixed networks and priority queues against published numbers and theorems.

Published examples are compared at the precision they were printed: ``printed(v, "0.582")``
accepts half a unit in the last printed digit for machine-printed reports (PDQ), one unit for
tables computed by hand or with rounded intermediates (Bolch et al., Schwetman).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import linalg

from capsim.analytic.multiclass import LATTICE_LIMIT, mixed_network, mva_multiclass
from capsim.analytic.mva import mva
from capsim.analytic.queues import (
    mg1_priority_nonpreemptive,
    mg1_priority_preemptive,
    mg1_wait,
    mmc,
    mmc_priority_nonpreemptive,
    mmc_ps_response,
)
from capsim.errors import ModelError


def printed(value: float, text: str, ulps: float = 0.5) -> bool:
    """True when ``value`` agrees with the printed decimal ``text`` to its printed digits."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(value - float(text)) <= ulps * 10.0**-decimals + 1e-12


def assert_printed(values, texts, ulps: float = 0.5) -> None:
    bad = [(v, t) for v, t in zip(np.ravel(values), np.ravel(texts), strict=True)
           if not printed(float(v), t, ulps)]
    assert not bad, f"computed vs printed: {bad}"


# ------------------------------------------------------------------ published closed examples


def test_qsp_two_class_closed_example_exact_fractions():
    # Lazowska, Zahorjan, Graham & Sevcik, "Quantitative System Performance" (1984), ch. 7,
    # p. 142: CPU and disk, one request of each class; S = [1/10 1/3; 2/5 1], V = [10 9; 5 4].
    # The book gives Q = [4/19 15/19; 5/19 14/19], residence [4/3 5; 5/2 7], X = [3/19 2/19]
    # (numbers as transcribed in the Octave `queueing` package, qncmmva.m tests).
    r = mva_multiclass([[1.0, 3.0], [2.0, 4.0]], [1, 1], [0.0, 0.0])
    assert r.exact
    np.testing.assert_allclose(r.queue_length, [[4 / 19, 15 / 19], [5 / 19, 14 / 19]],
                               rtol=1e-13)
    np.testing.assert_allclose(r.residence_time, [[4 / 3, 5], [5 / 2, 7]], rtol=1e-13)
    np.testing.assert_allclose(r.throughput, [3 / 19, 2 / 19], rtol=1e-13)


def test_pdq_multiclass_test_report():
    # PDQ distribution, examples/ppa_1998/chap3/mc-test.c and its printed report mc-test.out
    # (PDQ Analyzer v4.0, EXACT): "From A. Allen Example 6.3.4, p. 413" (Allen, Probability,
    # Statistics, and Queueing Theory). Two terminal classes (5 users, Z = 20 s; 15 users,
    # Z = 30 s) and a batch class of 5 on three FCFS nodes.
    demands = {
        "term1": {"node1": 0.50, "node2": 0.40, "node3": 1.20},
        "term2": {"node1": 0.04, "node2": 0.20, "node3": 0.05},
        "batch": {"node1": 0.06, "node2": 0.30, "node3": 0.06},
    }
    r = mva_multiclass(demands, {"term1": 5, "term2": 15, "batch": 5},
                       {"term1": 20.0, "term2": 30.0, "batch": 0.0})
    assert r.classes == ("term1", "term2", "batch")
    assert r.stations == ("node1", "node2", "node3")
    assert_printed(r.throughput, ["0.1984", "0.4768", "2.7472"])
    assert_printed(r.response_time, ["5.2051", "1.4570", "1.8200"])
    assert_printed(r.residence_time, [["0.6804", "2.6132", "1.9114"],
                                      ["0.0556", "1.3163", "0.0850"],
                                      ["0.0835", "1.6341", "0.1024"]])
    assert_printed(r.queue_length, [["0.1350", "0.5184", "0.3792"],
                                    ["0.0265", "0.6277", "0.0405"],
                                    ["0.2293", "4.4894", "0.2814"]])
    assert_printed(np.multiply(r.utilization, 100), [["9.9186", "7.9349", "23.8047"],
                                                     ["1.9074", "9.5368", "2.3842"],
                                                     ["16.4835", "82.4174", "16.4835"]])


@pytest.mark.parametrize(
    ("populations", "expected"),
    [
        # H. Schwetman, "Implementing the Mean Value Algorithm for the Solution of Queueing
        # Network Models", Purdue CSD-TR-355 (1982), table 3 (N = [2 1]) and table 5
        # (N = [15 5]): two delay stations (1 s, 15 s) and one single-server CPU (.025 s,
        # .5 s). Table 5 prints X1 = 14.3.
        ([2, 1], {"X": ["1.949", "0.064"], "R_cpu": ["0.027", "0.525"],
                  "Q_tot": ["1.949", "0.966", "0.085"]}),
        ([15, 5], {"X": ["14.3", "0.314"], "R_cpu": ["0.047", "0.934"],
                   "U_cpu": ["0.358", "0.157"], "Q_cpu": ["0.677", "0.293"]}),
    ],
)
def test_schwetman_delay_station_tables(populations, expected):
    r = mva_multiclass([[1.0, 0.0, 0.025], [0.0, 15.0, 0.5]], populations, 0.0,
                       delay=[True, True, False])
    assert_printed(r.throughput, expected["X"], ulps=1)
    assert_printed([r.residence_time[0][2], r.residence_time[1][2]], expected["R_cpu"], ulps=1)
    if "Q_tot" in expected:
        assert_printed(r.total_queue_length, expected["Q_tot"], ulps=1)
    else:
        assert_printed([r.utilization[0][2], r.utilization[1][2]], expected["U_cpu"], ulps=1)
        assert_printed([r.queue_length[0][2], r.queue_length[1][2]], expected["Q_cpu"], ulps=1)
    assert r.residence_time[0][0] == 1.0 and r.residence_time[1][1] == 15.0  # delay: no wait


def test_bolch_two_class_multiserver_example():
    # Bolch, Greiner, de Meer & Trivedi, "Queueing Networks and Markov Chains", Example 9.5
    # (p. 337), as transcribed in the Octave `queueing` package (qncmmva.m): station 1 has two
    # servers, station 2 one, station 3 is a delay; N = [2 1].
    s = np.array([[0.2, 0.4, 1.0], [0.2, 0.6, 2.0]])
    v = np.array([[1.0, 0.6, 0.4], [1.0, 0.3, 0.7]])
    r = mva_multiclass(s * v, [2, 1], 0.0, servers=[2, 1, 1], delay=[False, False, True])
    assert_printed(r.queue_length, [["0.428", "0.726", "0.845"], ["0.108", "0.158", "0.734"]],
                   ulps=1)
    assert_printed(r.throughput, ["2.113", "0.524"], ulps=1)


# -------------------------------------------------------------------- published mixed examples


def test_qsp_mixed_example_exact_fractions():
    # QSP (Lazowska et al. 1984) ch. 7, p. 148: the p. 142 network plus two open classes
    # (1/s and 1/2 per s); the closed classes' queue lengths are again 4/19 15/19 5/19 14/19.
    r = mixed_network([1.0, 0.5], [[1 / 4, 1 / 6], [1 / 2, 1.0]],
                      [[1 / 2, 1.0], [1.0, 4 / 3]], [1, 1], 0.0)
    assert r.stable and r.exact
    np.testing.assert_allclose(r.closed_queue_length, [[4 / 19, 15 / 19], [5 / 19, 14 / 19]],
                               rtol=1e-13)
    np.testing.assert_allclose(r.total_utilization[0], 0.5 + 0.5 * 3 / 19 + 1 * 2 / 19)


def test_qsp_open_two_class_example():
    # QSP Example 7.2 (p. 138): two open workflows on CPU and disk; the book's values are quoted
    # in the PDQ distribution's R demo interfaces/R/pdq/demo/multiwo.R: for workflow A
    # U_cpu = 0.158, R_cpu = 1.58, Q_cpu = 0.25, R = 30.08.
    r = mixed_network({"A": 3 / 19, "B": 2 / 19},
                      {"A": {"cpu": 10 / 10, "dsk": 9 / 3}, "B": {"cpu": 5 * 2 / 5, "dsk": 4.0}},
                      None, [], 0.0)
    assert r.stable and r.exact and r.closed_classes == ()
    assert_printed(r.open_utilization[0][0], "0.158")
    assert_printed(r.open_residence_time[0][0], "1.58")
    assert_printed(r.open_queue_length[0][0], "0.25")
    assert_printed(r.open_response_time[0], "30.08")


def test_bolch_mixed_example():
    # Bolch et al., "Queueing Networks and Markov Chains", Example 8.6 (p. 345), as transcribed
    # in the Octave `queueing` package (qnmix.m): two open classes (0.5, 0.25 per s), two closed
    # classes of one request each, two single-server stations. Times are per visit.
    v = np.array([[2, 1], [2.5, 1.5], [1, 0.5], [1, 0.4]])
    d = v * np.array([[0.4, 0.6], [0.8, 1.6], [0.3, 0.5], [0.5, 0.8]])
    r = mixed_network([0.5, 0.25], d[:2], d[2:], [1, 1], 0.0)
    assert r.exact
    assert_printed(r.open_utilization, [["0.4", "0.3"], ["0.5", "0.6"]])
    assert_printed(np.divide(r.closed_residence_time, v[2:]),
                   [["4.829", "6.951"], ["7.727", "11.636"]], ulps=1)
    assert_printed(r.closed_queue_length, [["0.582", "0.418"], ["0.624", "0.376"]], ulps=1)
    assert_printed(np.divide(r.open_residence_time, v[:2]),
                   [["8.822", "10.766"], ["17.645", "28.710"]], ulps=1)
    assert_printed(r.closed_throughput, ["0.120", "0.081"], ulps=1)


def test_schwetman_mixed_example():
    # Schwetman, CSD-TR-355 (1982), figure 10 (p. 26): an open class (1/s, .25 s at the CPU)
    # and a closed class of 3 (.25 s CPU, .10 s disk); printed R = 1.201, .885, .135.
    r = mixed_network([1.0], [[0.25, 0.0]], [[0.25, 0.10]], [3], 0.0)
    assert_printed([r.open_residence_time[0][0], *r.closed_residence_time[0]],
                   ["1.201", "0.885", "0.135"], ulps=1)
    assert r.open_utilization[0][0] == pytest.approx(0.25)


# -------------------------------------------------------------------------------- properties


@pytest.mark.parametrize("servers", [[1, 1, 1], [1, 4, 1], [2, 16, 3]])
def test_one_class_equals_single_class_mva(servers):
    d, n, z = [0.05, 0.9, 0.2], 60, 1.5
    a = mva(d, n, z, servers=servers)
    b = mva_multiclass([d], [n], [z], servers=servers)
    assert b.throughput[0] == pytest.approx(a.throughput, rel=1e-12)
    np.testing.assert_allclose(b.residence_time[0], a.residence_time, rtol=1e-11)
    np.testing.assert_allclose(b.queue_length[0], a.queue_length, rtol=1e-11)
    np.testing.assert_allclose(b.total_utilization, a.utilization, rtol=1e-12)


@pytest.mark.parametrize("servers", [[1, 1], [3, 32]])
def test_identical_classes_merge_into_one(servers):
    # customers of identical classes are exchangeable: the merged class is the same network,
    # and each customer gets X(N) / N of the throughput (deep in saturation of a 32-server
    # station too, where p(0) = 1 - sum p(j) would have lost every digit)
    d, z, n1, n2 = [0.4, 9.0], 2.0, 70, 90
    one = mva(d, n1 + n2, z, servers=servers)
    two = mva_multiclass([d, d], [n1, n2], [z, z], servers=servers)
    x1, x2 = two.throughput
    assert x1 + x2 == pytest.approx(one.throughput, rel=1e-11)
    assert x1 / n1 == pytest.approx(x2 / n2, rel=1e-11)
    for rc in two.residence_time:
        np.testing.assert_allclose(rc, one.residence_time, rtol=1e-10)
    np.testing.assert_allclose(two.total_queue_length, one.queue_length, rtol=1e-10)


def test_symmetric_classes_get_equal_values():
    r = mva_multiclass([[0.3, 0.2, 0.1], [0.3, 0.2, 0.1]], [4, 4], [1.0, 1.0],
                       servers=[2, 1, 1], delay=[False, False, True])
    assert r.throughput[0] == pytest.approx(r.throughput[1], rel=1e-14)
    np.testing.assert_allclose(r.queue_length[0], r.queue_length[1], rtol=1e-14)


@pytest.mark.parametrize("approximate", [False, True])
def test_littles_law_and_utilization_law_per_class(approximate):
    d = np.array([[0.05, 0.30, 0.0, 1.0], [0.20, 0.05, 0.4, 0.5], [0.10, 0.10, 0.1, 0.0]])
    n, z = [6, 4, 5], [3.0, 0.5, 0.0]
    c, dly = [1, 3, 2, 1], [False, False, False, True]
    r = mva_multiclass(d, n, z, servers=c, delay=dly, approximate=approximate)
    assert r.exact is not approximate
    x = np.array(r.throughput)
    np.testing.assert_allclose(x * (np.array(r.response_time) + z), n, rtol=1e-13)
    np.testing.assert_allclose(np.array(r.queue_length).sum(axis=1) + x * z, n, rtol=1e-13)
    per_server = np.where(dly, 1, c)
    np.testing.assert_allclose(r.total_utilization, (x[:, None] * d).sum(axis=0) / per_server,
                               rtol=1e-13)
    assert r.residence_time[0][3] == 1.0 and r.residence_time[1][3] == 0.5  # delay station
    assert max(r.total_utilization[:3]) < 1.0


def _ctmc(d: np.ndarray, n: tuple[int, int], z: np.ndarray, c: tuple[int, int]):
    """Brute-force CTMC: think -> station A -> station B -> think, both c-server PS stations.

    With j requests at a station each is served at rate ``min(j, c) / j`` of one server (the
    load-dependent station MVA models); a stage of zero duration is passed through at once.
    Returns throughputs and queue lengths (class x station).
    """
    dur = np.column_stack([z, d])  # per class: think, A, B
    states = [s for s in itertools.product(*(range(n[i % 2] + 1) for i in range(4)))
              if all(n[k] - s[k] - s[2 + k] >= 0 for k in range(2))]  # (a1, a2, b1, b2)
    states = [s for s in states  # nobody sits in a stage of zero duration
              if all(dur[k, st] > 0 or ([n[k] - s[k] - s[2 + k], s[k], s[2 + k]][st] == 0)
                     for k in range(2) for st in range(3))]
    index = {s: i for i, s in enumerate(states)}
    g = np.zeros((len(states), len(states)))
    done = np.zeros((len(states), 2))

    for i, s in enumerate(states):
        for cls in range(2):
            counts = [n[cls] - s[cls] - s[2 + cls], s[cls], s[2 + cls]]
            for st in range(3):
                if not counts[st]:
                    continue
                if st == 0:
                    rate = counts[0] / dur[cls, 0]
                else:
                    tot = s[2 * st - 2] + s[2 * st - 1]
                    rate = counts[st] / tot * min(tot, c[st - 1]) / dur[cls, st]
                nxt, wraps = (st + 1) % 3, st == 2
                while dur[cls, nxt] == 0:
                    wraps = wraps or nxt == 2
                    nxt = (nxt + 1) % 3
                t = list(s)
                if st:
                    t[2 * st - 2 + cls] -= 1
                if nxt:
                    t[2 * nxt - 2 + cls] += 1
                g[i, index[tuple(t)]] += rate
                g[i, i] -= rate
                done[i, cls] += rate if wraps else 0.0
    a_mat = np.vstack([g.T, np.ones(len(states))])
    rhs = np.zeros(len(states) + 1)
    rhs[-1] = 1.0
    pi = linalg.lstsq(a_mat, rhs)[0]
    occ = np.array(states, dtype=float)
    q = (pi @ occ).reshape(2, 2).T  # rows: class; columns: station
    return pi @ done, q


def _product_form(d: np.ndarray, n: tuple[int, int], z: np.ndarray, c: tuple[int, int]):
    """Throughputs and queue lengths from the normalising constant, states enumerated."""

    def weight(pop):  # unnormalised G(pop) and sum of n_ck * weight
        g, nq = 0.0, np.zeros((2, 2))
        for a1, a2, b1, b2 in itertools.product(range(pop[0] + 1), range(pop[1] + 1),
                                                range(pop[0] + 1), range(pop[1] + 1)):
            t1, t2 = pop[0] - a1 - b1, pop[1] - a2 - b2
            if t1 < 0 or t2 < 0:
                continue
            w = z[0] ** t1 / math.factorial(t1) * z[1] ** t2 / math.factorial(t2)
            for st, (x1, x2) in enumerate(((a1, a2), (b1, b2))):
                tot = x1 + x2
                w *= (math.factorial(tot) / math.prod(min(j, c[st]) for j in range(1, tot + 1))
                      * d[0, st] ** x1 / math.factorial(x1) * d[1, st] ** x2
                      / math.factorial(x2))
            g += w
            nq += w * np.array([[a1, b1], [a2, b2]])
        return g, nq

    g, nq = weight(n)
    x = np.array([weight((n[0] - 1, n[1]))[0] / g, weight((n[0], n[1] - 1))[0] / g])
    return x, nq / g


@pytest.mark.parametrize(
    ("d", "z", "c"),
    [
        ([[0.6, 0.2], [0.3, 0.9]], [0.5, 1.0], (2, 3)),
        ([[0.8, 0.0], [0.2, 0.5]], [0.0, 1.0], (2, 2)),  # class 1 lives at A: p_A(0) = 0
    ],
)
def test_load_dependent_exact_against_ctmc_and_normalising_constant(d, z, c):
    d, z, n = np.array(d), np.array(z), (3, 2)
    x_ctmc, q_ctmc = _ctmc(d, n, z, c)
    x_pf, q_pf = _product_form(d, n, z, c)
    np.testing.assert_allclose(x_pf, x_ctmc, rtol=1e-9)  # the product form itself
    np.testing.assert_allclose(q_pf, q_ctmc, rtol=1e-9, atol=1e-12)
    r = mva_multiclass(d, list(n), z, servers=list(c))
    np.testing.assert_allclose(r.throughput, x_ctmc, rtol=1e-9)
    np.testing.assert_allclose(r.queue_length, q_ctmc, rtol=1e-9, atol=1e-12)


def test_schweitzer_close_to_exact_and_exact_for_single_requests():
    d = [[0.1, 0.8, 0.05], [0.2, 0.3, 0.4]]
    ex = mva_multiclass(d, [30, 20], [1.0, 2.0], servers=[1, 4, 1])
    ap = mva_multiclass(d, [30, 20], [1.0, 2.0], servers=[1, 4, 1], approximate=True)
    assert not ap.exact and ap.iterations > 0
    np.testing.assert_allclose(ap.throughput, ex.throughput, rtol=0.05)
    one = mva_multiclass([[0.3, 0.5], [0.2, 0.1]], [1, 1], [1.0, 0.0])
    sb = mva_multiclass([[0.3, 0.5], [0.2, 0.1]], [1, 1], [1.0, 0.0], approximate=True)
    assert sb.throughput[0] != pytest.approx(one.throughput[0], rel=1e-6)  # not exact at N = 1
    solo = mva_multiclass([[0.3, 0.5]], [1], [1.0], approximate=True)  # one request: no queue
    assert solo.throughput[0] == pytest.approx(1 / 1.8, rel=1e-12)


def test_mappings_and_arrays_agree_and_zero_population_classes_are_zero():
    arr = mva_multiclass([[0.2, 0.1], [0.0, 0.3], [0.5, 0.5]], [3, 2, 0], [1.0, 0.0, 2.0],
                         servers=[2, 1])
    mp = mva_multiclass({"a": {"x": 0.2, "y": 0.1}, "b": {"y": 0.3}, "c": {"x": 0.5, "y": 0.5}},
                        {"a": 3, "b": 2, "c": 0}, {"a": 1.0, "b": 0.0, "c": 2.0},
                        servers={"x": 2})
    assert mp.stations == ("x", "y")
    np.testing.assert_allclose(mp.queue_length, arr.queue_length, rtol=1e-14)
    assert arr.throughput[2] == 0.0 and arr.residence_time[2] == (0.0, 0.0)
    zero = mva_multiclass([[1.0, 2.0]], [0], [0.0])
    assert zero.throughput == (0.0,) and zero.total_queue_length == (0.0, 0.0)


def test_mixed_without_closed_load_is_open_mm1_and_mmc():
    lam, do = [0.5, 0.2], np.array([[0.4, 0.3, 1.0], [1.0, 2.0, 0.5]])
    r = mixed_network(lam, do, [[0.7, 0.2, 0.1]], [0], 5.0, servers=[1, 3, 1],
                      delay=[False, False, True])
    assert r.stable and r.exact
    u = np.array(lam) @ do
    np.testing.assert_allclose(np.array(r.open_residence_time)[:, 0], do[:, 0] / (1 - u[0]),
                               rtol=1e-14)  # M/M/1: D / (1 - U)
    mm3 = mmc(u[1], 1.0, 3)  # D = V S: the M/M/c residence is D (1 + Wq / S)
    np.testing.assert_allclose(np.array(r.open_residence_time)[:, 1],
                               do[:, 1] * mm3.mean_response, rtol=1e-13)
    np.testing.assert_allclose(np.array(r.open_residence_time)[:, 2], do[:, 2])
    np.testing.assert_allclose(np.array(r.open_queue_length).sum(axis=0)[0],
                               u[0] / (1 - u[0]), rtol=1e-13)
    assert r.closed_throughput == (0.0,)


def test_mixed_without_open_load_is_closed_mva():
    dc, n, z = [[0.2, 0.5, 0.3], [0.4, 0.1, 0.2]], [4, 3], [1.0, 2.0]
    c, dly = [1, 3, 1], [False, False, True]
    ref = mva_multiclass(dc, n, z, servers=c, delay=dly)
    r = mixed_network([0.0], [[0.0, 0.0, 0.0]], dc, n, z, servers=c, delay=dly)
    assert r.exact
    np.testing.assert_allclose(r.closed_throughput, ref.throughput, rtol=1e-14)
    np.testing.assert_allclose(r.closed_residence_time, ref.residence_time, rtol=1e-14)


def test_mixed_shared_multiserver_station_is_flagged_approximate():
    r = mixed_network([1.0], [[0.5, 0.1]], [[0.6, 0.2]], [5], 1.0, servers=[3, 1])
    assert r.stable and not r.exact
    x = r.closed_throughput[0]
    assert x * (r.closed_response_time[0] + 1.0) == pytest.approx(5.0, rel=1e-12)
    assert r.total_utilization[0] == pytest.approx((1.0 * 0.5 + x * 0.6) / 3, rel=1e-12)
    assert r.total_utilization[0] < 1.0


def test_mixed_unstable_open_load_names_the_station():
    r = mixed_network({"web": 3.0}, {"web": {"cpu": 0.2, "db": 0.4}},
                      {"batch": {"cpu": 0.1, "db": 0.1}}, {"batch": 2}, 0.0)
    assert not r.stable and r.unstable_stations == ("db",)
    assert r.open_response_time == (math.inf,)
    assert r.closed_response_time == (math.inf,) and r.closed_throughput == (0.0,)
    assert r.total_utilization[1] == pytest.approx(1.2)


# -------------------------------------------------------------------------------- bad input


def test_bad_input_names_argument_and_value():
    with pytest.raises(ModelError, match=r"mva_multiclass\.populations: must be integers >= 0, "
                                         r"got \[-1\]"):
        mva_multiclass([[1.0]], [-1], [0.0])
    with pytest.raises(ModelError, match=r"mva_multiclass\.populations: .*2000000.*"
                                         r"approximate=True"):
        mva_multiclass([[0.1, 0.2], [0.2, 0.1], [0.1, 0.1]], [200, 200, 200], [1.0, 1.0, 1.0])
    assert LATTICE_LIMIT < 201**3
    with pytest.raises(ModelError, match=r"mva_multiclass\.demands: must be a 2-D"):
        mva_multiclass([0.1, 0.2], [1], [0.0])
    with pytest.raises(ModelError, match=r"mva_multiclass\.servers: must be integers >= 1"):
        mva_multiclass([[0.1, 0.2]], [1], [0.0], servers=[1, 0])
    with pytest.raises(ModelError, match=r"mva_multiclass\.think_times: needs one value"):
        mva_multiclass([[0.1], [0.2]], [1, 1], [0.0, 1.0, 2.0])
    with pytest.raises(ModelError, match=r"no demand and no think time"):
        mva_multiclass([[0.0, 0.0]], [2], [0.0])
    with pytest.raises(ModelError, match=r"mixed_network\.closed_demands: needs one column"):
        mixed_network([1.0], [[0.1, 0.2]], [[0.1]], [1], 0.0)
    with pytest.raises(ModelError, match=r"mg1_priority_nonpreemptive\.second_moments"):
        mg1_priority_nonpreemptive([1.0], [0.5], [0.1])
    big = mva_multiclass([[0.1, 0.2], [0.2, 0.1], [0.1, 0.1]], [200, 200, 200],
                         [1.0, 1.0, 1.0], approximate=True)
    assert not big.exact


# ------------------------------------------------------------------ priority and PS formulas


def test_cobham_one_class_is_pollaczek_khinchine():
    for lam, s, scv in ((0.3, 1.0, 0.0), (0.8, 0.5, 1.0), (1.5, 0.6, 3.0)):
        (w,) = mg1_priority_nonpreemptive([lam], [s], [s * s * (1 + scv)])
        assert w == pytest.approx(mg1_wait(lam, s, scv), rel=1e-13)
        (t,) = mg1_priority_preemptive([lam], [s], [s * s * (1 + scv)])
        assert t == pytest.approx(s + mg1_wait(lam, s, scv), rel=1e-13)


def test_cobham_satisfies_kleinrock_conservation_law():
    # work conservation: sum rho_k W_k = rho W0 / (1 - rho), whatever the priority order
    lam, s = np.array([0.2, 0.5, 0.3]), np.array([0.5, 0.4, 1.0])
    s2 = s * s * np.array([1.0, 2.0, 3.5])
    w = np.array(mg1_priority_nonpreemptive(lam, s, s2))
    rho, w0 = float(lam @ s), float(lam @ s2) / 2
    assert float(lam * s @ w) == pytest.approx(rho * w0 / (1 - rho), rel=1e-13)
    assert w[0] < w[1] < w[2]
    t = mg1_priority_preemptive(lam, s, s2)
    (t_top,) = mg1_priority_preemptive(lam[:1], s[:1], s2[:1])  # lower classes are invisible
    assert t[0] == pytest.approx(t_top, rel=1e-14)
    assert t[2] > t[1] > t[0]


def test_priority_unstable_classes_are_inf_but_higher_ones_finite():
    w = mg1_priority_nonpreemptive([0.5, 1.0], [1.0, 1.0], [2.0, 2.0])
    assert math.isinf(w[1])
    # class 2 saturates: server always busy, half the time on each class, E[S^2]/(2E[S]) = 1
    assert w[0] == pytest.approx(1.0 / (1.0 * 0.5))
    assert mmc_priority_nonpreemptive([0.5, 5.0], 1.0, 2) == pytest.approx(
        (1.0 / (2 * 1.0 * 0.75), math.inf))
    assert math.isinf(mg1_priority_preemptive([0.5, 1.0], [1.0, 1.0], [2.0, 2.0])[1])


@pytest.mark.parametrize(("lam", "s", "c"), [(0.7, 1.0, 1), (2.5, 1.0, 3), (30.0, 0.3, 12)])
def test_mmc_priority_one_class_is_mmc_and_classes_conserve(lam, s, c):
    (w,) = mmc_priority_nonpreemptive([lam], s, c)
    assert w == pytest.approx(mmc(lam, s, c).mean_wait, rel=1e-13)
    split = np.array([0.2, 0.3, 0.5]) * lam  # same service: total queue as FCFS
    ws = np.array(mmc_priority_nonpreemptive(split, s, c))
    assert float(split @ ws) == pytest.approx(lam * mmc(lam, s, c).mean_wait, rel=1e-12)
    if c == 1:
        cob = mg1_priority_nonpreemptive(split, [s] * 3, [2 * s * s] * 3)
        np.testing.assert_allclose(ws, cob, rtol=1e-13)


def test_mmc_ps_response():
    for lam, s in ((0.5, 1.0), (0.9, 0.2)):
        assert mmc_ps_response(lam, s, 1) == pytest.approx(s / (1 - lam * s), rel=1e-13)
    assert mmc_ps_response(2.5, 1.0, 3) == pytest.approx(mmc(2.5, 1.0, 3).mean_response,
                                                         rel=1e-13)
    assert mmc_ps_response(3.0, 1.0, 3) == math.inf
