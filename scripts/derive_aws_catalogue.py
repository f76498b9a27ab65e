"""Derive capsim's AWS instance catalogue from the service-capacity-modeling wheel.

capsim ships ``data/catalogues/aws-us-east-1.csv``, a real catalogue (sizes, per-core speeds and
3-year reserved prices of AWS instance types) taken from Netflix's service-capacity-modeling
package (Apache License 2.0). That package pins ``scipy<1.17``, which capsim cannot live with,
so it is never installed: this script reads the JSON data straight out of its wheel (a zip) and
writes the CSV, which is committed. Nothing downloads when capsim runs; only regenerating does.

    make catalogue                                         # downloads the pinned wheel with pip
    python scripts/derive_aws_catalogue.py path/to/service_capacity_modeling-0.3.212-...whl

The conversion (speed relative to an m5 vCPU, price per hour from the annual cost) is described
in the CSV's own header, written by ``header`` below, so the file explains itself.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "service-capacity-modeling"
VERSION = "0.3.212"
REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "catalogues" / "aws-us-east-1.csv"

# (family, service) in the order the CSV lists them: EC2 general, compute and memory purpose,
# then the RDS (Aurora PostgreSQL) database classes
FAMILIES: tuple[tuple[str, str], ...] = (
    ("m5", "ec2"), ("m6i", "ec2"), ("m7i", "ec2"), ("m7a", "ec2"),
    ("c6i", "ec2"), ("c7i", "ec2"),
    ("r6i", "ec2"), ("r7i", "ec2"), ("r7a", "ec2"),
    ("db.r6i", "rds"), ("db.r7i", "rds"), ("db.r6g", "rds"), ("db.r7g", "rds"),
)
# the reference vCPU, speed 1.0: an m5's (Skylake/Cascade Lake at 3.1 GHz, the source's IPC 1.0)
REFERENCE = "m5"
REFERENCE_GHZ = 3.1
REFERENCE_IPC = 1.0
HOURS_PER_YEAR = 8760
INACTIVE = {"deprecated", "end-of-life"}  # the source's lifecycles it does not recommend

DATA = "service_capacity_modeling/hardware/profiles"
SHAPES = DATA + "/shapes/aws/auto_{}.json"
PRICES = {"ec2": DATA + "/pricing/aws/3yr-reserved_ec2.json",
          "rds": DATA + "/pricing/aws/3yr-reserved_rds.json"}
OVERRIDES = DATA + "/pricing/aws/3yr-reserved_zz-overrides.json"  # the source lets these win

COLUMNS = ("family", "name", "vcpus", "speed", "memory_gib", "price_per_hour_usd", "cores",
           "clock_ghz", "ipc_scale", "network_gbps", "service")
LABEL = f"AWS {REGION}, 3-yr reserved ({PACKAGE} {VERSION})"


def download(dest: Path, version: str = VERSION) -> Path:
    """Fetch the pinned wheel with pip (no dependencies: it is only read, never installed)."""
    subprocess.run([sys.executable, "-m", "pip", "download", f"{PACKAGE}=={version}",
                    "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
                    "--quiet", "-d", str(dest)], check=True)
    wheels = sorted(dest.glob(f"{PACKAGE.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download left no {PACKAGE} {version} wheel in {dest}")
    return wheels[0]


def _json(wheel: zipfile.ZipFile, member: str) -> dict:
    try:
        return json.loads(wheel.read(member))
    except KeyError:
        raise SystemExit(f"{wheel.filename}: no {member}; is this a {PACKAGE} wheel?") from None


def wheel_version(wheel: zipfile.ZipFile) -> str:
    """The version in the wheel's METADATA, so a different wheel cannot pass for the pinned one."""
    for member in wheel.namelist():
        if member.endswith(".dist-info/METADATA"):
            for line in wheel.read(member).decode().splitlines():
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
    raise SystemExit(f"{wheel.filename}: no METADATA with a Version")


def prices(wheel: zipfile.ZipFile, service: str) -> dict[str, dict]:
    """Annual prices by instance name for one service in REGION, the overrides applied."""
    table = dict(_json(wheel, PRICES[service])[REGION]["instances"])
    table.update(_json(wheel, OVERRIDES).get(REGION, {}).get("instances", {}))
    return table


def rows(wheel: zipfile.ZipFile) -> tuple[list[dict], dict[str, list[str]]]:
    """The catalogue's rows (family order, then vCPUs), and per family the types left out."""
    out, skipped = [], {}
    for family, service in FAMILIES:
        price = prices(wheel, service)
        shapes = _json(wheel, SHAPES.format(family.replace(".", "_")))["instances"]
        found, left = [], []
        for name, shape in shapes.items():
            cost = price.get(name, {})
            if name.rsplit(".", 1)[-1].startswith("metal"):  # .metal, .metal-24xl, ...
                left.append(f"{name} (metal)")
            elif "annual_cost" not in cost:
                left.append(f"{name} (no price)")
            elif {shape.get("lifecycle"), cost.get("lifecycle")} & INACTIVE:
                left.append(f"{name} ({shape.get('lifecycle') or cost.get('lifecycle')})")
            else:
                found.append(_row(family, service, name, shape, float(cost["annual_cost"])))
        out += sorted(found, key=lambda r: r["vcpus"])
        if left:
            skipped[family] = [family + " (no prices in the source)"] if not found else left
    return out, skipped


def _row(family: str, service: str, name: str, shape: dict, annual: float) -> dict:
    ghz, ipc = float(shape["cpu_ghz"]), float(shape["cpu_ipc_scale"])
    return {"family": family, "name": name, "vcpus": int(shape["cpu"]),
            "speed": f"{ghz * ipc / (REFERENCE_GHZ * REFERENCE_IPC):.4f}",
            "memory_gib": f"{float(shape['ram_gib']):g}",
            "price_per_hour_usd": f"{annual / HOURS_PER_YEAR:.6f}",
            "cores": int(shape["cpu_cores"]), "clock_ghz": f"{ghz:g}",
            "ipc_scale": f"{round(ipc, 4):g}",
            "network_gbps": f"{float(shape['net_mbps']) / 1000:g}", "service": service}


def header(sha256: str, derived: dt.date, families: Iterable[str],
           skipped: dict[str, list[str]]) -> list[str]:
    """The comment lines that say what the file is, where it comes from and how to remake it."""
    left = "; ".join(x for names in skipped.values() for x in names) or "none"
    ref = f"{REFERENCE_GHZ} x {REFERENCE_IPC}"
    ec2 = ", ".join(f for f in families if not f.startswith("db."))
    rds = ", ".join(f for f in families if f.startswith("db."))
    text = f"""\
AWS instance catalogue for capsim.scaling, region {REGION}
  EC2: {ec2}
  RDS: {rds}
label: {LABEL}
Derived from {PACKAGE} {VERSION} (Netflix, Apache License 2.0,
https://github.com/Netflix-Skunkworks/service-capacity-modeling): its instance shapes
(hardware/profiles/shapes/aws/auto_<family>.json) and us-east-1 prices
(hardware/profiles/pricing/aws/3yr-reserved_ec2.json, _rds.json, _zz-overrides.json; the
overrides win). Modified: columns selected and converted as below; see data/catalogues/README.md.
wheel: {PACKAGE.replace('-', '_')}-{VERSION}-py3-none-any.whl
  sha256 {sha256}
derived: {derived.isoformat()} by scripts/derive_aws_catalogue.py; regenerate: make catalogue
price_per_hour_usd = the source's annual_cost / {HOURS_PER_YEAR} h. The source's pricing basis (its
  tools/fetch_pricing.py): 3-year standard Reserved Instance, All Upfront (the upfront fee / 3
  per year), Linux, shared tenancy; EC2 types with no such offer take the 3-year All Upfront
  EC2 Instance Savings Plan rate; RDS prices are Aurora PostgreSQL, Single-AZ. These are not
  on-demand prices (those are higher). The source states no as-of date for instance prices.
speed = clock_ghz x ipc_scale / ({ref}): one vCPU's throughput relative to one {REFERENCE}
  vCPU ({REFERENCE_GHZ} GHz, ipc scale {REFERENCE_IPC}: the source's own baseline, Skylake), so a
  model's service times are read as measured on one {REFERENCE} vCPU. ipc_scale is the source's
  estimate for a typical workload across public benchmarks, not a benchmark of yours.
vcpus counts hyperthreads, as the source and AWS do: on the Intel families (m5, m6i, m7i, c6i,
  c7i, r6i, r7i, db.r6i) 2 vCPUs share a core; on AMD m7a/r7a and Graviton db.r6g/db.r7g each
  vCPU is a whole core. The cores column shows which.
memory_gib is the source's ram_gib (a little under AWS's nominal size: m5.large 7.63, not 8).
network_gbps = the source's net_mbps / 1000.
Only types with both a shape and a price, no .metal sizes; left out:
  {left}."""
    return ["# " + line if line else "#" for line in text.splitlines()]


def derive(wheel_path: Path, derived: dt.date | None = None) -> str:
    """The CSV's text from a wheel; ``derived`` (default today, UTC) goes in its header."""
    blob = wheel_path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(blob)) as wheel:
        wheel.filename = str(wheel_path)
        version = wheel_version(wheel)
        if version != VERSION:
            raise SystemExit(f"{wheel_path}: {PACKAGE} {version}, expected {VERSION}")
        table, skipped = rows(wheel)
    families = list(dict.fromkeys(r["family"] for r in table))
    day = derived or dt.datetime.now(dt.UTC).date()
    buf = io.StringIO()
    buf.write("\n".join(header(hashlib.sha256(blob).hexdigest(), day, families, skipped)) + "\n")
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", nargs="?", type=Path,
                        help=f"a {PACKAGE} {VERSION} wheel (default: download it with pip)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the CSV to write ({OUT})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download(Path(tmp))
        text = derive(wheel)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    n = sum(1 for line in text.splitlines() if line and not line.startswith("#")) - 1
    print(f"wrote {args.out} ({n} instance types)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
