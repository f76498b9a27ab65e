"""Bundled example models, so a first run needs no input from the user.

``ecommerce_monolith`` is the "before" of the case study (shared/case-study.md): one monolithic
application pool in front of a single PostgreSQL, no cache. Numbers are illustrative but
plausible: ~25 ms of application CPU per page, ~8 ms per query on 8 database cores, and pages
that issue 2-4 queries each.
"""

from __future__ import annotations

import capsim as cs


def ecommerce_monolith() -> tuple[cs.System, cs.OpenWorkload]:
    """The monolith on one PostgreSQL, and its traffic: a page every 50 s per active user."""
    app = cs.Service("app", servers=24, service_time=cs.LogNormal(mean=0.025, cv=1.0))
    postgres = cs.Service("postgres", servers=8, service_time=cs.Exponential(mean=0.008))
    db = cs.Call("postgres")
    flows = [
        cs.Flow("browse", 0.75, [cs.Call("app"), db, db]),
        cs.Flow("search", 0.15, [cs.Call("app"), db, db, db]),
        cs.Flow("checkout", 0.10, [cs.Call("app"), db, db, db, db]),
    ]
    system = cs.System([app, postgres], flows, name="ecommerce-monolith")
    return system, cs.OpenWorkload(users=10_000, requests_per_user_s=0.02)
