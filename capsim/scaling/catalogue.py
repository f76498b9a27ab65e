"""Instance catalogue: the boxes a tier can run on, with their size, speed and price.

The default, ``data/catalogues/aws-us-east-1.csv``, is a real one: AWS EC2 (m5, m6i, m7i, m7a,
c6i, c7i, r6i, r7i, r7a) and RDS (db.r6i, db.r6g, db.r7g) instance types in us-east-1, derived
from Netflix's service-capacity-modeling 0.3.212 (Apache License 2.0) by
``scripts/derive_aws_catalogue.py`` (``make catalogue``). Its prices are the source's 3-year
reserved ones (All Upfront, spread per hour), not on-demand; its header says exactly how every
column was made, and ``Catalogue.label`` names it in tables and figures.

``speed`` is the throughput of one vCPU relative to the **reference core** (speed 1.0) that a
model's service times are measured on: here one **m5 vCPU** (3.1 GHz, the source's IPC
baseline). A request that takes 10 ms there takes 10 / 1.33 ms on an m7i vCPU (speed 1.33).
A vCPU is what AWS counts: a hyperthread on the Intel families (2 per core), a whole core on AMD
m7a/r7a and Graviton db.r6g/db.r7g (the ``cores`` column).

Bring your own with at least these columns (the rest are optional)::

    family,name,vcpus,speed,memory_gib,price_per_hour_usd[,cores,clock_ghz,ipc_scale,
    network_gbps,service]

Lines starting with ``#`` are comments; a ``# label: ...`` line names the catalogue (the file's
name otherwise). Measure your service times on a box you list with speed 1.0, or scale the
speeds so that the box you measured on has 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from capsim.errors import ModelError, check_int, check_name, check_number, did_you_mean, fail

__all__ = ["COLUMNS", "DEFAULT_CATALOGUE", "HOURS_PER_MONTH", "OPTIONAL_COLUMNS", "Catalogue",
           "Instance", "load_catalogue"]

DEFAULT_CATALOGUE = (Path(__file__).resolve().parents[2] / "data" / "catalogues"
                     / "aws-us-east-1.csv")
COLUMNS = ("family", "name", "vcpus", "speed", "memory_gib", "price_per_hour_usd")
OPTIONAL_COLUMNS = ("cores", "clock_ghz", "ipc_scale", "network_gbps", "service")
HOURS_PER_MONTH = 730  # 8,760 h a year / 12, as cloud price lists count a month
LABEL_PREFIX = "# label:"


@dataclass(frozen=True)
class Instance:
    """One instance type: ``vcpus`` cores of relative ``speed``, memory and hourly price; and,
    when the catalogue gives them, its physical ``cores``, clock, IPC scale, network and the
    service it is sold as (``ec2``, ``rds``)."""

    name: str
    family: str
    vcpus: int
    speed: float
    memory_gib: float
    price_per_hour_usd: float
    cores: int | None = None
    clock_ghz: float | None = None
    ipc_scale: float | None = None
    network_gbps: float | None = None
    service: str = ""

    def __post_init__(self) -> None:
        owner = f"Instance({self.name!r})"
        check_name("Instance", "name", self.name)
        check_name(owner, "family", self.family)
        check_int(owner, "vcpus", self.vcpus, minimum=1)
        check_number(owner, "speed", self.speed)
        check_number(owner, "memory_gib", self.memory_gib)
        check_number(owner, "price_per_hour_usd", self.price_per_hour_usd, strict=False)
        if self.cores is not None:
            check_int(owner, "cores", self.cores, minimum=1)
        for field in ("clock_ghz", "ipc_scale"):
            if getattr(self, field) is not None:
                check_number(owner, field, getattr(self, field))
        if self.network_gbps is not None:
            check_number(owner, "network_gbps", self.network_gbps, strict=False)
        if not isinstance(self.service, str):
            raise fail(owner, "service", "must be a string", self.service)

    @property
    def price_per_month_usd(self) -> float:
        """The hourly price over a month of ``HOURS_PER_MONTH`` (730) hours."""
        return self.price_per_hour_usd * HOURS_PER_MONTH

    def __str__(self) -> str:
        return (f"{self.name} ({self.vcpus} vCPU x {self.speed:g}, {self.memory_gib:g} GiB, "
                f"${self.price_per_hour_usd:.3f}/h)")


@dataclass(frozen=True)
class Catalogue:
    """Instance types by name: ``cat["r7i.4xlarge"]``, ``cat.family("m7i")``, ``cat.table()``;
    ``label`` says which catalogue it is (for tables and figures)."""

    instances: tuple[Instance, ...]
    source: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        names = [i.name for i in self.instances]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            where = f" in {self.source}" if self.source else ""
            raise ModelError(f"Catalogue: instance names must be unique{where}, repeated: {dup}")
        if not self.instances:
            raise ModelError(f"Catalogue: no instances in {self.source or 'the catalogue'}")
        if not self.label:
            object.__setattr__(self, "label", Path(self.source).name if self.source
                               else "catalogue")

    def __getitem__(self, name: str) -> Instance:
        for i in self.instances:
            if i.name == name:
                return i

        did_you = did_you_mean(name, [i.name for i in self.instances])
        raise ModelError(f"Catalogue: no instance named {name!r} in {self.label}{did_you}")

    def __iter__(self) -> Iterator[Instance]:
        return iter(self.instances)

    def __len__(self) -> int:
        return len(self.instances)

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.family for i in self.instances))

    def family(self, family: str) -> tuple[Instance, ...]:
        """The instances of one family, smallest first."""
        out = tuple(sorted((i for i in self.instances if i.family == family),
                           key=lambda i: i.vcpus))
        if not out:
            raise ModelError(f"Catalogue: no family {family!r} in {self.label}"
                             f"{did_you_mean(family, self.families)}; families: "
                             f"{', '.join(self.families)}")
        return out

    def table(self) -> pd.DataFrame:
        """One row per instance, with the price per vCPU-hour and per month (730 h); the
        catalogue's label is in ``.attrs["catalogue"]`` for whoever titles the table."""
        cols = COLUMNS + OPTIONAL_COLUMNS
        df = pd.DataFrame([{c: getattr(i, c) for c in cols} for i in self.instances],
                          columns=list(cols))
        df["cores"] = df["cores"].astype("Int64")
        for c in ("clock_ghz", "ipc_scale", "network_gbps"):
            df[c] = df[c].astype(float)
        df["price_per_vcpu_hour_usd"] = df["price_per_hour_usd"] / df["vcpus"]
        df["price_per_month_usd"] = df["price_per_hour_usd"] * HOURS_PER_MONTH
        df.attrs["catalogue"] = self.label
        return df


def _label(path: Path) -> str:
    """The ``# label: ...`` comment line's text, or "" when the file has none."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.startswith(LABEL_PREFIX):
                return line[len(LABEL_PREFIX):].strip()
            if line.strip() and not line.startswith("#"):
                break  # the label is in the header, before the data
    return ""


def _data_lines(path: Path) -> list[int]:
    """The file's line number of each data row (after the column names), as pandas reads them:
    comment and blank lines skipped."""
    with path.open(encoding="utf-8") as f:
        lines = [n for n, line in enumerate(f, start=1) if line.split("#", 1)[0].strip()]
    return lines[1:]


def _cell(owner: str, row: dict, field: str, kind: type, optional: bool = False):
    """One field of a row (read as text) as ``kind``; an empty optional cell is None."""
    value = str(row[field]).strip()
    if optional and not value:
        return None
    if kind is str:
        return value
    try:
        x = float(value)
    except ValueError:
        raise fail(owner, field, "must be a number", value) from None
    if kind is int:
        return int(x) if math.isfinite(x) and x == int(x) else x  # Instance refuses 2.5
    return x


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read a catalogue CSV; ``None`` is the bundled AWS one (``DEFAULT_CATALOGUE``)."""
    path = Path(DEFAULT_CATALOGUE if path is None else path)
    if not path.exists():
        raise ModelError(f"load_catalogue: no file {path}")
    try:
        df = pd.read_csv(path, comment="#", skipinitialspace=True, dtype=str,
                         keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not a readable CSV catalogue ({exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ModelError(f"{path}: missing columns {missing}; expected {', '.join(COLUMNS)} "
                         f"(optional: {', '.join(OPTIONAL_COLUMNS)})")
    optional = [c for c in OPTIONAL_COLUMNS if c in df.columns]
    kinds = {"vcpus": int, "speed": float, "memory_gib": float, "price_per_hour_usd": float,
             "cores": int, "clock_ghz": float, "ipc_scale": float, "network_gbps": float,
             "service": str, "name": str, "family": str}
    lines = _data_lines(path)
    out = []
    for k, row in enumerate(df.to_dict("records"), start=1):
        where = f"{path}, data row {k}" + (f" (line {lines[k - 1]})" if k <= len(lines) else "")
        owner = f"Instance({str(row['name']).strip()!r})"
        try:
            fields = {c: _cell(owner, row, c, kinds[c]) for c in COLUMNS}
            fields |= {c: _cell(owner, row, c, kinds[c], optional=True) for c in optional}
            if fields.get("service") is None:
                fields.pop("service", None)
            out.append(Instance(**fields))
        except (ModelError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: {exc}") from None
    return Catalogue(tuple(out), str(path), _label(path))
