"""``compare`` as the table a capacity review reads: users at the budget by simulation (with
the search's bracket, the twin's estimate beside it), cost per month, the ranked summary, the
budget frontier, the one-box-down capacity never above the healthy one, and ``capsim compare``
with database options.

Small models only: M/M/1 (10 ms, p99 <= 100 ms, whose saturating rate is known in closed
form), a tandem of deterministic stages (where the twin is pessimistic), a tiny database.
"""

import math

import numpy as np
import pandas as pd
import pytest

import capsim as cs
from capsim import scaling as sc
from capsim.cli import main
from capsim.report.scaling import frontier_steps, pareto_front
from capsim.scaling.compare import ComparisonResult, _bottleneck_utilization, compare

E = cs.Exponential
S = 0.010
BUDGET = cs.Budget(p99_s=0.100)
NO_USL = {"sigma": 0.0, "kappa": 0.0}
RATE = 10.0  # requests per user-second
# M/M/1: p99 of the response time = ln(100) S / (1 - rho), so the budget B breaks at
# lambda* = (1 - ln(100) S / B) / S requests per second
MM1_USERS = (1 - math.log(100) * S / BUDGET.p99_s) / S / RATE  # 5.39 users


def box(name: str = "box-1", vcpus: int = 1, price: float = 0.05) -> sc.Instance:
    return sc.Instance(name, "test", vcpus, 1.0, 4.0 * vcpus, price)


def one_tier(service_time=None) -> cs.System:
    return cs.System([cs.Service("web", servers=1, service_time=service_time or E(S))],
                     [cs.Flow("page", 1.0, [cs.Call("web")])])


@pytest.fixture(scope="module")
def mm1() -> ComparisonResult:
    """M/M/1 (1 x box-1) and M/M/2 (1 x box-2) at 2 users, users at budget simulated."""
    return compare(one_tier(), "web", vertical=[sc.Vertical(box(), **NO_USL),
                                                sc.Vertical(box("box-2", 2, 0.10), **NO_USL)],
                   workload=cs.OpenWorkload(2.0, RATE), budget=BUDGET, replications=2,
                   requests=4_000, saturation_duration_s=30.0, processes=1,
                   catalogue_label="test boxes")


# -- users at the budget: simulated, bracketed, the twin's beside it --------------------------


def test_users_at_budget_is_simulated_and_its_bracket_holds_the_mm1_closed_form(mm1):
    t = mm1.table().set_index("option")
    row = t.loc["1 x box-1"]
    search = mm1.saturation["1 x box-1"]
    assert row["users_at_budget_status"] == "bracketed"
    assert row["users_at_budget_low"] <= MM1_USERS <= row["users_at_budget_high"]
    # the columns are the search's, whose loads were simulated (replicated runs)
    assert row["users_at_budget"] == search.users
    assert (row["users_at_budget_low"], row["users_at_budget_high"]) == (search.users_low,
                                                                         search.users_high)
    # its ends are loads simulated and settled: the CI of the p99 below the limit at the low
    # end, above it at the high end (a bracket, not a confidence interval of the crossing)
    evals = search.evaluations.set_index("users")
    low, high = evals.loc[row["users_at_budget_low"]], evals.loc[row["users_at_budget_high"]]
    assert low["decided"] and not low["breaks"] and low["ci_high"] < BUDGET.p99_s
    assert high["decided"] and high["breaks"] and high["ci_low"] > BUDGET.p99_s
    assert evals["replications"].min() >= 2
    # the twin is exact for M/M/1, and kept as its own column
    assert row["twin_users_at_budget"] == pytest.approx(MM1_USERS, rel=0.01)
    # the columns that follow from it
    assert row["cost_per_month_usd"] == pytest.approx(0.05 * 730)
    assert row["usd_per_month_per_1k_users"] == pytest.approx(
        row["cost_per_month_usd"] / row["users_at_budget"] * 1e3)
    assert row["headroom_at_2x_peak"] == pytest.approx(row["users_at_budget"] / 4.0 - 1)
    assert t.loc["1 x box-2", "users_at_budget_low"] > row["users_at_budget_high"]
    assert (t["users_at_budget_high"] <= t["capacity_users"]).all()


def test_users_at_budget_differs_from_the_twin_where_the_twin_is_off():
    # three deterministic 10 ms stages in a row: the twin's tail for a tandem is pessimistic,
    # so the simulated budget holds at loads above the twin's answer
    system = cs.System([cs.Service(n, servers=1, service_time=cs.Deterministic(S))
                        for n in "abc"], [cs.Flow("page", 1.0, [cs.Call(n) for n in "abc"])])
    result = compare(system, "a", vertical=[sc.Vertical(box(), **NO_USL)],
                     workload=cs.OpenWorkload(2.0, RATE), budget=BUDGET, replications=1,
                     requests=2_000, saturation_duration_s=30.0, processes=1)
    row = result.table().iloc[0]
    assert row["users_at_budget_status"] == "bracketed"
    assert row["users_at_budget_low"] > 1.05 * row["twin_users_at_budget"]
    assert row["users_at_budget"] != row["twin_users_at_budget"]


def test_a_search_that_does_not_bracket_reports_so_and_makes_up_no_number():
    # log-normal 10 ms with cv 3: the service's own p99 (108 ms) breaks a 100 ms budget at any
    # load; the search stops at its lowest load (200 pages a run) and says so
    system = one_tier(cs.LogNormal(S, 3.0))
    result = compare(system, "web", vertical=[sc.Vertical(box(), **NO_USL)],
                     workload=cs.OpenWorkload(2.0, RATE), budget=BUDGET, replications=1,
                     requests=2_000, saturation_duration_s=10.0, processes=1)
    row = result.table().iloc[0]
    assert row["users_at_budget_status"] == "broken_at_lowest"
    assert math.isnan(row["users_at_budget"]) and row["users_at_budget_low"] == 0.0
    assert row["users_at_budget_high"] == pytest.approx(2.0)  # 200 / (10/s x 10 s)
    assert math.isnan(row["usd_per_month_per_1k_users"])
    assert math.isnan(row["headroom_at_2x_peak"])
    summary = result.summary()
    assert summary["users interval"].iloc[0].startswith("below 2 (broken at the lowest load")
    assert math.isnan(summary["users at budget"].iloc[0])


def test_without_the_search_the_column_is_the_twins_and_says_so():
    result = compare(one_tier(), "web", vertical=[sc.Vertical(box(), **NO_USL)],
                     workload=cs.OpenWorkload(2.0, RATE), budget=BUDGET, replications=1,
                     requests=2_000, processes=1, simulate_saturation=False)
    row = result.table().iloc[0]
    assert row["users_at_budget_status"] == "twin"
    assert row["users_at_budget"] == row["twin_users_at_budget"]
    assert math.isnan(row["users_at_budget_low"]) and math.isnan(row["users_at_budget_high"])
    assert result.saturation == {"1 x box-1": None}
    assert "the analytic twin's estimate (not simulated" in result.caption()
    assert result.summary()["users interval"].iloc[0] == "twin's estimate, no interval"


# -- the summary ---------------------------------------------------------------------------


def handmade(rows: list[dict], label: str = "hand-made prices") -> ComparisonResult:
    """A ComparisonResult from a table written by hand (no simulation)."""
    defaults = {"kind": "vertical", "users_at_budget_status": "bracketed",
                "p99_at_target_s": 0.05, "survives_one_failure": True}
    bracket = [{"users_at_budget_low": 0.9 * r["users_at_budget"],
                "users_at_budget_high": 1.1 * r["users_at_budget"]} for r in rows]
    table = pd.DataFrame([{**defaults, **b, **r} for b, r in zip(bracket, rows, strict=True)])
    table["usd_per_month_per_1k_users"] = table["cost_per_month_usd"] / (
        table["users_at_budget"] / 1e3)
    table["meets_every_check"] = (table["meets_budget"] & table["meets_budget_at_2x_peak"]
                                  & table["survives_one_failure"].astype(bool))
    return ComparisonResult("web", BUDGET, cs.OpenWorkload(1_000.0, 1.0), (), table,
                            pd.DataFrame(), 0.0, 2.0, label, 2)


HANDMADE = [  # option, users at budget, $/month, meets at the target, at 2x peak
    {"option": "A", "users_at_budget": 1_000.0, "cost_per_month_usd": 100.4,
     "meets_budget": True, "meets_budget_at_2x_peak": False},
    {"option": "B", "users_at_budget": 2_987.6, "cost_per_month_usd": 250.4,
     "meets_budget": True, "meets_budget_at_2x_peak": True, "p99_at_target_s": 0.0456789,
     "survives_one_failure": False},
    {"option": "C", "users_at_budget": 2_500.0, "cost_per_month_usd": 300.0,
     "meets_budget": True, "meets_budget_at_2x_peak": True},
    {"option": "D", "users_at_budget": 6_000.0, "cost_per_month_usd": 400.0,
     "meets_budget": False, "meets_budget_at_2x_peak": False, "p99_at_target_s": math.inf},
    {"option": "E", "users_at_budget": math.nan, "cost_per_month_usd": 500.0,
     "meets_budget": True, "meets_budget_at_2x_peak": True, "users_at_budget_low": 5_000.0,
     "users_at_budget_high": math.inf, "users_at_budget_status": "holds_at_highest"},
    {"option": "G", "users_at_budget": 5_000.0, "cost_per_month_usd": 600.0,
     "meets_budget": True, "meets_budget_at_2x_peak": False},
]


def test_summary_columns_order_and_rounding():
    result = handmade(HANDMADE)
    s = result.summary()
    assert list(s.columns) == ["option", "$/month", "users at budget", "users interval",
                               "p99 at target (ms)", "meets target & 2x peak",
                               "survives one failure", "$/month per 1k users"]
    assert s.index.name == "rank" and list(s.index) == [1, 2, 3, 4, 5, 6]
    # meeting the budget at the target and 2x peak first, cheapest first; then the rest
    assert list(s["option"]) == ["B", "C", "E", "A", "D", "G"]
    b = s.iloc[0]
    assert b["$/month"] == 250 and isinstance(b["$/month"], int | np.integer)
    assert b["users at budget"] == 2_990  # 3 significant figures
    assert b["users interval"] == "2,690 to 3,290"
    assert b["p99 at target (ms)"] == 45.7
    assert b["$/month per 1k users"] == round(250.4 / 2.9876, 2)
    assert not b["survives one failure"]
    e = s.set_index("option").loc["E"]
    assert math.isnan(e["users at budget"])
    assert e["users interval"] == "above 5,000 (held at the highest load tried)"
    assert math.isinf(s.set_index("option").loc["D", "p99 at target (ms)"])
    caption = s.attrs["caption"]
    assert caption == result.caption()
    assert "prices: hand-made prices" in caption and "a month is 730 h" in caption
    assert "users at budget: simulated" in caption and "twin_users_at_budget" in caption
    text = result.summary_text()
    assert text.startswith("6 options for 'web' at 1,000 users")
    lines = text.split("\n")
    row_e = next(line for line in lines if line.split()[:2] == ["3", "E"])
    assert "n/a" in row_e and "above 5,000" in row_e
    row_d = next(line for line in lines if line.split()[:2] == ["5", "D"])
    assert "no steady state" in row_d and "6,000" in row_d


def test_summary_of_a_simulated_comparison(mm1):
    s = mm1.summary()
    # box-2 meets the budget at the target and at 2x peak; box-1 (M/M/1 at 4 users, p99
    # ~70 ms, judged on the upper bound of 2 replications) does not: box-2 ranks first
    assert list(s["option"]) == ["1 x box-2", "1 x box-1"]
    assert list(s["$/month"]) == [73, 36]
    assert "prices: test boxes" in s.attrs["caption"]
    assert s.iloc[1]["users interval"].count(" to ") == 1
    assert 20 < s.iloc[1]["p99 at target (ms)"] < 100


# -- the budget frontier ---------------------------------------------------------------------


def test_the_frontier_is_the_pareto_front_of_users_and_cost():
    result = handmade(HANDMADE)
    t = result.table()
    users, cost = t["users_at_budget"].to_numpy(), t["cost_per_month_usd"].to_numpy()
    front = pareto_front(users, cost)
    assert [t["option"][i] for i in front] == ["A", "B", "D"]  # C, G dominated; E unknown
    # no option off the front is undominated, none on it is dominated
    for i in range(len(t)):
        if np.isnan(users[i]):
            continue
        dominated = any(users[j] >= users[i] and cost[j] <= cost[i]
                        and (users[j] > users[i] or cost[j] < cost[i]) for j in range(len(t)))
        assert (i in front) == (not dominated)
    xs, ys = frontier_steps(users[front], cost[front])
    assert list(xs) == [0.0, 1_000.0, 2_987.6, 6_000.0]
    assert list(ys) == [100.4, 100.4, 250.4, 400.0]
    assert list(result.frontier()["option"]) == ["A", "B", "D"]
    assert pareto_front([1.0, 1.0, 2.0], [5.0, 5.0, 5.0]) == [2]  # same cost: most users
    assert pareto_front([], []) == []


def test_frontier_plot_draws_the_staircase_the_target_and_the_catalogue():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = handmade(HANDMADE)
    fig = result.frontier_plot()
    ax = fig.axes[0]
    (stairs,) = [line for line in ax.get_lines() if line.get_gid() == "frontier"]
    assert list(stairs.get_xdata()) == [0.0, 1_000.0, 2_987.6, 6_000.0]
    assert list(stairs.get_ydata()) == [100.4, 100.4, 250.4, 400.0]
    assert stairs.get_drawstyle() == "steps-pre"
    verticals = [line for line in ax.get_lines()
                 if len(set(line.get_xdata())) == 1 and line.get_gid() != "frontier"]
    assert any(line.get_xdata()[0] == 2_000.0 for line in verticals)  # 2 x 1,000 users
    assert "hand-made prices" in ax.get_title()
    texts = [t.get_text() for t in ax.texts]
    for option in ("A", "B", "C", "D", "G"):
        assert option in texts
    assert "not on the chart: E (above 5,000 users)" in texts
    # labels do not overlap each other
    fig.draw_without_rendering()
    boxes = [t.get_window_extent() for t in ax.texts if t.get_text() in "ABCDG"]
    assert not any(a.overlaps(b) for k, a in enumerate(boxes) for b in boxes[k + 1:])
    plt.close(fig)


# -- one box down: never more capacity than with every box up ---------------------------------


def test_capacity_one_down_never_exceeds_capacity():
    # the database (writes on its primary) is the wall: losing one of 3 app boxes leaves the
    # whole capacity. The probe used to average the primary's utilization with its idle
    # replicas' and measured 1.5x the healthy capacity
    system = cs.System([cs.Service("web", servers=2, service_time=E(S)),
                        cs.Database("db", servers=2, service_time=E(S), read_replicas=2)],
                       [cs.Flow("page", 1.0, [cs.Call("web"), cs.Read("db"), cs.Write("db")])])
    result = compare(system, "web", horizontal=[sc.Horizontal(box("box-4", 4), 3, **NO_USL)],
                     workload=cs.OpenWorkload(1.0, 60.0), budget=BUDGET, replications=1,
                     requests=5_000, processes=1, simulate_saturation=False)
    row = result.table().iloc[0]
    assert row["capacity_users"] == pytest.approx(200 / 60)  # 2 workers x 100/s of writes
    assert row["capacity_one_down_users"] <= row["capacity_users"]
    assert row["capacity_left_one_down"] == pytest.approx(1.0, abs=0.06)


def test_the_probes_bottleneck_is_per_station_but_pools_a_services_boxes():
    comp = pd.DataFrame({"component": ["web[0]", "web[1]", "web[2]", "db", "db/replica1",
                                       "db/replica2"],
                         "servers": [2, 2, 2, 2, 2, 2],
                         "utilization": [0.0, 0.30, 0.34, 0.50, 0.25, 0.25]})
    owner = {"web[0]": "web", "web[1]": "web", "web[2]": "web", "db": "db",
             "db/replica1": "db", "db/replica2": "db"}
    # the primary's 50%, not (0.5 + 0.25 + 0.25) / 3 for the database as a whole
    assert _bottleneck_utilization(comp, owner, {"web"}) == pytest.approx(0.50)
    comp.loc[3, "utilization"] = 0.1
    # the web boxes that worked, together: (0.30 + 0.34) / 2; the one down does not count
    assert _bottleneck_utilization(comp, owner, {"web"}) == pytest.approx(0.32)


# -- the command line ------------------------------------------------------------------------

SHOP = """\
name: tiny-shop
components:
  - Service: {name: app, servers: 2, service_time: {Exponential: {mean: 0.004}}}
  - Database: {name: db, servers: 1, service_time: {Exponential: {mean: 0.004}}}
flows:
  - name: page
    weight: 1.0
    steps:
      - Call: app
      - Read: db
      - Read: db
      - Write: db
workload:
  OpenWorkload: {users: 40, requests_per_user_s: 1.0}
budget: {p99_s: 0.100}
run: {duration_s: 30, replications: 2, seed: 3}
"""
CATALOGUE = """\
# label: tiny test catalogue
family,name,vcpus,speed,memory_gib,price_per_hour_usd
db,db.t1.xlarge,2,1.0,8,0.10
db,db.t1.2xlarge,4,1.0,16,0.20
"""


@pytest.fixture
def shop(tmp_path):
    (tmp_path / "shop.yaml").write_text(SHOP)
    (tmp_path / "boxes.csv").write_text(CATALOGUE)
    return ["compare", str(tmp_path / "shop.yaml"), "--catalogue", str(tmp_path / "boxes.csv")]


def test_cli_compare_database_options(shop, capsys):
    assert main([*shop, "--component", "db", "--vertical", "db.t1.2xlarge",
                 "--database", "db.t1.xlarge+r2,db.t1.xlarge+r1x2,db.t1.xlargex2",
                 "--no-saturation", "--duration", "10"]) == 0
    out = capsys.readouterr().out
    for option in ("1 x db.t1.2xlarge", "db.t1.xlarge primary + 2 replicas",
                   "2 shards x (db.t1.xlarge primary + 1 replica)",
                   "2 shards x (db.t1.xlarge primary)"):
        assert option in out
    assert "prices: tiny test catalogue" in out
    assert "the analytic twin's estimate (not simulated" in out
    assert "$/month" in out and "p99 at target (ms)" in out
    assert "db.t1.xlarge primary + 2 replicas" in out.split("\n\n")[1]  # the summary table


def test_cli_compare_refuses_what_a_component_cannot_take(shop, capsys):
    assert main([*shop, "--component", "db", "--horizontal", "db.t1.xlargex3"]) == 2
    err = capsys.readouterr().err
    assert "--horizontal: Database('db') is stateful" in err
    assert "use --database INSTANCE[+rREPLICAS][xSHARDS], e.g. --database db.t1.xlarge+r2" in err
    assert main([*shop, "--component", "app", "--database", "db.t1.xlarge+r1"]) == 2
    assert "--database: Service('app') is a Service" in capsys.readouterr().err
    for flag, value in (("--database", "db.t1.xlarge+q2"), ("--database", "db.t1.xlarge+r"),
                        ("--horizontal", "db.t1.xlarge"), ("--database", ",")):
        component = "app" if flag == "--horizontal" else "db"
        assert main([*shop, "--component", component, flag, value]) == 2
        err = capsys.readouterr().err
        assert f"{flag}: cannot read {value!r}" in err, err
    assert main([*shop, "--component", "db", "--database", "db.t1.large+r1"]) == 2
    err = capsys.readouterr().err
    assert "--database 'db.t1.large+r1': Catalogue: no instance named 'db.t1.large'" in err
    assert main([*shop, "--component", "db", "--database", "db.t1.xlargex0"]) == 2
    assert "--database 'db.t1.xlargex0'" in capsys.readouterr().err
    assert main([*shop, "--component", "db"]) == 2
    assert "give --vertical, --horizontal and/or --database" in capsys.readouterr().err


def test_cli_compare_scales_a_host_up_only(tmp_path, capsys):
    scenario = tmp_path / "host.yaml"
    scenario.write_text(SHOP.replace("{mean: 0.004}}}\n  - Database",
                                     "{mean: 0.004}}, host: box}\n  - Database")
                        .replace("workload:", "hosts:\n  - {name: box, cores: 2}\nworkload:"))
    (tmp_path / "boxes.csv").write_text(CATALOGUE)
    base = ["compare", str(scenario), "--catalogue", str(tmp_path / "boxes.csv"),
            "--component", "box"]
    assert main([*base, "--horizontal", "db.t1.xlargex2"]) == 2
    assert "Host('box') is one box: it scales up, with --vertical" in capsys.readouterr().err
    assert main([*base, "--vertical", "db.t1.2xlarge", "--no-saturation", "--duration", "10",
                 "--json"]) == 0
    import json

    (row,) = json.loads(capsys.readouterr().out)
    assert row["option"] == "1 x db.t1.2xlarge" and row["failure"].startswith("outage: host")
