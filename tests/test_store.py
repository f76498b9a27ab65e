"""Result store: exact round-trips, atomic writes, corrupt files, and stable fingerprints."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import capsim as cs
from capsim.experiment.store import NullStore, ResultStore, fingerprint


def make_system(servers=2, mean=0.01, weight=0.7, db_time=None):
    db = cs.Service("db", servers, db_time or cs.Exponential(mean))
    web = cs.Service("web", 4, cs.LogNormal(mean=0.02, cv=1.0))
    flows = [
        cs.Flow("browse", weight, [cs.Call("web"), cs.Call("db")]),
        cs.Flow("buy", 1.0 - weight, [cs.Call("web"), cs.Branch([(0.5, [cs.Call("db")]),
                                                                  (0.5, [])])]),
    ]
    return cs.System([web, db], flows)


def make_parts(**over):
    parts = dict(
        model=make_system(),
        workload=cs.OpenWorkload(users=100, requests_per_user_s=0.1),
        settings={"duration_s": 600.0, "warmup_s": 60.0},
        seed=np.random.SeedSequence(42),
        replication=0,
    )
    return parts | over


def frame():
    return pd.DataFrame({
        "flow": ["browse", "buy", "all"],
        "p99_s": [0.1, np.inf, np.nan],
        "mean_s": [-np.inf, 1e-300, 0.1 + 0.2],
        "count": np.array([3, 0, 2**62], dtype=np.int64),
        "servers": np.array([1, 2, 3], dtype=np.int32),
        "stable": [True, False, True],
        "users": pd.array([1, None, 3], dtype="Int64"),
    })


# --- store -------------------------------------------------------------------------------------


def test_round_trip_is_exact(tmp_path):
    store = ResultStore(tmp_path / "res")
    assert not (tmp_path / "res").exists()  # created lazily
    key = store.key(**make_parts())
    assert store.get(key) is None and key not in store and len(store) == 0
    df = frame()
    store.put(key, df)
    back = store.get(key)
    pd.testing.assert_frame_equal(back, df)
    assert back["stable"].dtype == bool and back["count"].dtype == np.int64
    assert np.isposinf(back.loc[1, "p99_s"]) and np.isnan(back.loc[2, "p99_s"])
    assert (tmp_path / "res" / key[:2] / f"{key}.parquet").is_file()
    assert key in store and len(store) == 1 and store.keys() == [key]


def test_index_is_reset(tmp_path):
    store = ResultStore(str(tmp_path))
    k1, k2 = fingerprint(1), fingerprint(2)
    store.put(k1, frame().iloc[[2, 0]])  # positional index: dropped
    pd.testing.assert_frame_equal(store.get(k1), frame().iloc[[2, 0]].reset_index(drop=True))
    store.put(k2, frame().set_index("flow"))  # named index: kept as a column
    pd.testing.assert_frame_equal(store.get(k2), frame())


def test_put_overwrites_and_clear_removes_only_results(tmp_path):
    store = ResultStore(tmp_path)
    key = fingerprint("x")
    store.put(key, frame())
    store.put(key, frame().head(1))
    pd.testing.assert_frame_equal(store.get(key), frame().head(1))
    (tmp_path / "notes.txt").write_text("mine")
    store.clear()
    assert len(store) == 0 and store.get(key) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_crash_mid_write_leaves_nothing(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    key = fingerprint("crash")

    def half_write_then_die(table, where, **kwargs):
        with open(where, "wb") as f:
            f.write(b"PAR1 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", half_write_then_die)
    with pytest.raises(KeyboardInterrupt):
        store.put(key, frame())
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # not even a corrupt file
    assert key not in store and store.get(key) is None


def test_crash_before_replace_keeps_previous_result(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    key = fingerprint("old")
    store.put(key, frame())

    def die(src, dst):
        raise OSError("killed")

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(OSError, match="killed"):
        store.put(key, frame().head(1))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(store.get(key), frame())
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{key}.parquet"]


@pytest.mark.parametrize("content", [b"", b"not parquet at all", b"PAR1\x00\x01truncated"])
def test_corrupt_file_is_missing_and_removed(tmp_path, content):
    store = ResultStore(tmp_path)
    key = fingerprint("corrupt")
    store.put(key, frame())
    path = tmp_path / key[:2] / f"{key}.parquet"
    path.write_bytes(content)
    with pytest.warns(RuntimeWarning, match="unreadable"):
        assert store.get(key) is None
    assert not path.exists() and key not in store
    store.put(key, frame())
    pd.testing.assert_frame_equal(store.get(key), frame())


def test_truncated_file_is_missing(tmp_path):
    store = ResultStore(tmp_path)
    key = fingerprint("truncated")
    store.put(key, frame())
    path = tmp_path / key[:2] / f"{key}.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.warns(RuntimeWarning):
        assert store.get(key) is None


@pytest.mark.parametrize("store", [ResultStore(None), NullStore()])
def test_null_store_stores_nothing(store):
    key = store.key(**make_parts())
    store.put(key, frame())
    assert store.get(key) is None and key not in store
    assert len(store) == 0 and store.keys() == []
    store.clear()


def test_bad_keys_and_frames_are_rejected(tmp_path):
    store = ResultStore(tmp_path)
    for bad in ["../../etc/passwd", "ABC", fingerprint(1)[:10], 42]:
        with pytest.raises(ValueError, match="not a store key"):
            store.get(bad)
    with pytest.raises(TypeError, match="DataFrame"):
        store.put(fingerprint(1), {"a": [1]})
    with pytest.raises(TypeError, match="column names"):
        store.put(fingerprint(1), pd.DataFrame({0: [1.0]}))
    assert not tmp_path.joinpath(fingerprint(1)[:2]).exists()


# --- fingerprint -------------------------------------------------------------------------------


def test_fingerprint_is_stable_across_processes():
    code = (
        "import numpy as np, capsim as cs\n"
        "from capsim.experiment.store import fingerprint\n"
        "from tests.test_store import make_parts\n"
        "p = make_parts()\n"
        "print(fingerprint(p, {'b': 1, 'a': [0.1, float('nan')]}, np.arange(5)))\n"
    )
    here = fingerprint(make_parts(), {"a": [0.1, float("nan")], "b": 1}, np.arange(5))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for seed in ("0", "12345"):
        env = os.environ | {"PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True,
                             capture_output=True, text=True).stdout.strip()
        assert out == here


def test_fingerprint_equal_for_equal_but_distinct_objects():
    a, b = make_parts(), make_parts()
    assert a["model"] is not b["model"]
    assert fingerprint(a) == fingerprint(b)
    assert ResultStore().key(**a) == ResultStore().key(**dict(reversed(b.items())))
    assert fingerprint({"x": 1, "y": 2}) == fingerprint({"y": 2, "x": 1})
    assert fingerprint(np.int64(5), np.float64(0.5)) == fingerprint(5, 0.5)
    assert fingerprint(np.arange(3.0)) == fingerprint(np.array([0.0, 1.0, 2.0]))


@pytest.mark.parametrize("change", [
    dict(model=make_system(servers=3)),
    dict(model=make_system(mean=0.011)),
    dict(model=make_system(weight=0.6)),
    dict(model=make_system().evolve("web", service_time=cs.LogNormal(mean=0.02, cv=1.1))),
    dict(model=replace(make_system(), name="other")),
    dict(workload=cs.OpenWorkload(users=101, requests_per_user_s=0.1)),
    dict(workload=cs.ClosedWorkload(users=100)),
    dict(settings={"duration_s": 600.0, "warmup_s": 60.000000001}),
    dict(seed=np.random.SeedSequence(43)),
    dict(seed=np.random.SeedSequence(42).spawn(1)[0]),
    dict(replication=1),
])
def test_fingerprint_changes_with_any_detail(change):
    store = ResultStore()
    assert store.key(**make_parts()) != store.key(**make_parts(**change))


def test_fingerprint_sees_every_empirical_sample():
    a, b = cs.Empirical([0.1, 0.3, 0.2]), cs.Empirical([0.2, 0.3, 0.1])
    assert repr(a) == repr(b)  # repr abbreviates the samples: the fingerprint must not use it
    assert fingerprint(make_system(db_time=a)) != fingerprint(make_system(db_time=b))
    c, d = cs.Empirical([0.1, 0.3]), cs.Empirical([0.2, 0.2])
    assert c.mean == d.mean and fingerprint(c) != fingerprint(d)


def test_fingerprint_distinguishes_types_and_values():
    values = [1, 1.0, True, "1", None, 0.1, 0.1000000001, float("inf"), float("nan"), -0.0, 0.0,
              (1,), [[1]], {"1": 1}, {1: 1}, np.arange(2), np.arange(2.0),
              np.random.SeedSequence(1), np.random.SeedSequence(1, spawn_key=(0,)),
              cs.Exponential(1.0), cs.Deterministic(1.0)]
    digests = {fingerprint(v) for v in values}
    assert len(digests) == len(values)
    assert fingerprint(float("nan")) == fingerprint(float("nan"))


def test_key_changes_with_capsim_version(monkeypatch):
    store = ResultStore()
    before = store.key(**make_parts())
    monkeypatch.setattr(cs, "__version__", "99.0.0")
    assert store.key(**make_parts()) != before


@pytest.mark.parametrize("bad", [object(), {1, 2}, b"bytes", 1j, lambda: 0, cs.Service,
                                 pd.DataFrame(), np.longdouble(1)])
def test_fingerprint_rejects_unknown_objects(bad):
    with pytest.raises(TypeError, match=type(bad).__qualname__):
        fingerprint({"nested": [bad]})
