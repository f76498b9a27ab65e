"""Instance catalogue: the boxes a tier can run on, with their size, speed and price.

``data/instances.csv`` ships an **illustrative** catalogue (not any provider's products, prices
or benchmarks; its header says so): four families shaped like a public cloud's, priced linearly
in vCPUs within a family. Bring your own with the same columns::

    family,name,vcpus,speed,memory_gib,price_per_hour_usd

``speed`` is the throughput of one core relative to the reference core (1.0) that a model's
service times are measured on: a request that takes 10 ms there takes 10 / 1.35 ms on a core
of speed 1.35. Lines starting with ``#`` are comments.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from capsim.errors import ModelError, check_int, check_name, check_number, did_you_mean

__all__ = ["COLUMNS", "DEFAULT_CATALOGUE", "Catalogue", "Instance", "load_catalogue"]

DEFAULT_CATALOGUE = Path(__file__).resolve().parents[2] / "data" / "instances.csv"
COLUMNS = ("family", "name", "vcpus", "speed", "memory_gib", "price_per_hour_usd")


@dataclass(frozen=True)
class Instance:
    """One instance type: ``vcpus`` cores of relative ``speed``, memory and hourly price."""

    name: str
    family: str
    vcpus: int
    speed: float
    memory_gib: float
    price_per_hour_usd: float

    def __post_init__(self) -> None:
        owner = f"Instance({self.name!r})"
        check_name("Instance", "name", self.name)
        check_name(owner, "family", self.family)
        check_int(owner, "vcpus", self.vcpus, minimum=1)
        check_number(owner, "speed", self.speed)
        check_number(owner, "memory_gib", self.memory_gib)
        check_number(owner, "price_per_hour_usd", self.price_per_hour_usd, strict=False)

    def __str__(self) -> str:
        return (f"{self.name} ({self.vcpus} vCPU x {self.speed:g}, {self.memory_gib:g} GiB, "
                f"${self.price_per_hour_usd:.3f}/h)")


@dataclass(frozen=True)
class Catalogue:
    """Instance types by name: ``cat["memory-16"]``, ``cat.family("compute")``, ``cat.table()``."""

    instances: tuple[Instance, ...]
    source: str = ""

    def __post_init__(self) -> None:
        names = [i.name for i in self.instances]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ModelError(f"Catalogue: instance names must be unique, repeated: {dup}")
        if not self.instances:
            raise ModelError(f"Catalogue: no instances in {self.source or 'the catalogue'}")

    def __getitem__(self, name: str) -> Instance:
        for i in self.instances:
            if i.name == name:
                return i

        did_you = did_you_mean(name, [i.name for i in self.instances])
        raise ModelError(f"Catalogue: no instance named {name!r}{did_you}")

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
            raise ModelError(f"Catalogue: no family {family!r}; families: "
                             f"{', '.join(self.families)}")
        return out

    def table(self) -> pd.DataFrame:
        """One row per instance, with the price per vCPU-hour."""
        df = pd.DataFrame([{c: getattr(i, c) for c in COLUMNS} for i in self.instances],
                          columns=list(COLUMNS))
        df["price_per_vcpu_hour_usd"] = df["price_per_hour_usd"] / df["vcpus"]
        return df


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read a catalogue CSV (``data/instances.csv``, illustrative, when ``path`` is None)."""
    path = Path(DEFAULT_CATALOGUE if path is None else path)
    if not path.exists():
        raise ModelError(f"load_catalogue: no file {path}")
    df = pd.read_csv(path, comment="#", skipinitialspace=True)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ModelError(f"{path}: missing columns {missing}; expected {', '.join(COLUMNS)}")
    out = []
    for k, row in enumerate(df.itertuples(index=False), start=1):
        try:
            vcpus = float(row.vcpus)
            out.append(Instance(
                name=str(row.name).strip(), family=str(row.family).strip(),
                vcpus=int(vcpus) if math.isfinite(vcpus) and vcpus == int(vcpus) else vcpus,
                speed=float(row.speed), memory_gib=float(row.memory_gib),
                price_per_hour_usd=float(row.price_per_hour_usd)))
        except (ModelError, TypeError, ValueError) as exc:
            raise ModelError(f"{path}, data row {k}: {exc}") from None
    return Catalogue(tuple(out), str(path))
