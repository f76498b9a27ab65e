"""The case study's shop as a reference model for scaling questions.

``ecommerce_scalable`` is the monolith of ``capsim.examples`` with its PostgreSQL as a
``Database`` (reads and writes told apart, so replicas and shards mean something) and service
times stated as the **reference demand** of the scaling layer: the work of one page (or query)
on one reference core (speed 1.0) with nothing else running. As returned, each tier runs on
reference workers with no contention penalty; deploy it on instances with
``capsim.scaling.deploy(system, today(catalogue))`` or any other plan.

Numbers are illustrative but plausible: ~25 ms of application CPU per page (log-normal, cv 1),
~8 ms per query, pages issuing 2-4 queries of which about one in ten writes.
"""

from __future__ import annotations

import capsim as cs
from capsim.scaling.catalogue import Catalogue, load_catalogue
from capsim.scaling.options import Horizontal, Option, Vertical

__all__ = ["ecommerce_scalable", "today"]


def ecommerce_scalable() -> tuple[cs.System, cs.OpenWorkload]:
    """The shop (app tier + PostgreSQL) and today's traffic: 10,000 users, a page every 50 s.

    Per page: 2.0 reads and 0.25 writes on average (browse 70%: 2 reads; search 15%: 3 reads;
    cart 10%: a read and a write; checkout 5%: a read and 3 writes).
    """
    app = cs.Service("app", servers=8, service_time=cs.LogNormal(mean=0.025, cv=1.0),
                     instances=2, balancing="least_connections")
    db = cs.Database("postgres", servers=8, service_time=cs.Exponential(mean=0.008))
    page = cs.Call("app")
    read, write = cs.Read("postgres"), cs.Write("postgres")
    flows = [
        cs.Flow("browse", 0.70, [page, read, read]),
        cs.Flow("search", 0.15, [page, read, read, read]),
        cs.Flow("cart", 0.10, [page, read, write]),
        cs.Flow("checkout", 0.05, [page, read, write, write, write]),
    ]
    system = cs.System([app, db], flows, name="ecommerce-scalable")
    return system, cs.OpenWorkload(users=10_000, requests_per_user_s=0.02)


def today(catalogue: Catalogue | None = None) -> dict[str, Option]:
    """Today's deployment: the app on 2 general-8 boxes, PostgreSQL on one general-8 box."""
    cat = catalogue or load_catalogue()
    return {"app": Horizontal(cat["general-8"], 2), "postgres": Vertical(cat["general-8"])}
