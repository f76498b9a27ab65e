"""The case study's shop as a reference model for scaling questions.

``ecommerce_scalable`` is built from the case study's scenario file,
``data/scenarios/ecommerce_monolith.yaml`` (via ``capsim.examples.scenario``): its app tier and
its PostgreSQL (a ``Database``: reads and writes told apart, so replicas and shards mean
something), with service times read as the **reference demand** of the scaling layer: the work
of one page (or query) on one reference core (speed 1.0) with nothing else running, and its
traffic. As returned, each tier runs on reference workers with no contention penalty; deploy it
on instances with ``capsim.scaling.deploy(system, today(catalogue))`` or any other plan. On the
bundled AWS catalogue the reference core is one m5 vCPU.

What differs from the scenario, on purpose, is said in ``ecommerce_scalable``: today's app
deployment (2 boxes of 8 workers behind least-connections) and a page mix whose reads and
writes are round numbers (2.0 reads and 0.25 writes per page) with every query indexed, so the
scaling arithmetic is easy to check by hand.
"""

from __future__ import annotations

from dataclasses import replace

import capsim as cs
from capsim.examples import scenario
from capsim.scaling.catalogue import Catalogue, load_catalogue
from capsim.scaling.options import Horizontal, Option, Vertical

__all__ = ["ecommerce_scalable", "today"]

SOURCE = "ecommerce_monolith"  # the scenario file the shop is read from


def ecommerce_scalable() -> tuple[cs.System, cs.OpenWorkload]:
    """The shop (app tier + PostgreSQL) and today's traffic, from the case study's scenario:
    10,000 users, a page every 50 s; ~25 ms of app CPU per page (log-normal, cv 1), ~8 ms per
    query.

    Unlike the scenario, the app runs on 2 instances of 8 workers (least-connections) instead
    of one pool of 24, the unindexed search scan is left out (the database's table size with
    it), and the page mix has 2.0 reads and 0.25 writes per page on average (browse 70%: 2
    reads; search 15%: 3 reads; cart 10%: a read and a write; checkout 5%: a read and 3
    writes) where the scenario's has 2.15 reads and 0.2 writes (browse 75%, search 15%,
    checkout 10%: 2 reads and 2 writes).
    """
    shop = scenario(SOURCE)
    app = replace(shop.system.component("app"), servers=8, instances=2,
                  balancing="least_connections")
    db = replace(shop.system.component("postgres"), table_rows=None,
                 scan_rows_per_s=cs.Database.scan_rows_per_s)
    page = cs.Call(app.name)
    read, write = cs.Read(db.name), cs.Write(db.name)
    flows = [
        cs.Flow("browse", 0.70, [page, read, read]),
        cs.Flow("search", 0.15, [page, read, read, read]),
        cs.Flow("cart", 0.10, [page, read, write]),
        cs.Flow("checkout", 0.05, [page, read, write, write, write]),
    ]
    system = cs.System([app, db], flows, name="ecommerce-scalable")
    return system, shop.workload


def today(catalogue: Catalogue | None = None) -> dict[str, Option]:
    """Today's deployment on the AWS catalogue: the app on 2 ``m7i.2xlarge`` (8 vCPUs each),
    PostgreSQL on one ``db.r6i.2xlarge`` (8 vCPUs; Aurora PostgreSQL, the newest Intel RDS class
    the catalogue prices). At today's 10,000 users the database is the bottleneck: it fills at
    about 22,000 users, the app at about 38,000."""
    cat = catalogue or load_catalogue()
    return {"app": Horizontal(cat["m7i.2xlarge"], 2), "postgres": Vertical(cat["db.r6i.2xlarge"])}
