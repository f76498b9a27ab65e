"""The testbed shop: a small real WSGI app on PostgreSQL, with an optional Redis cache-aside.

Endpoints, as the case study's shop has them:

* ``GET /product?sku=SKU-0000042``: one product by its SKU (the product page);
* ``GET /search?q=017``: the 20 cheapest products whose name contains the term (a text
  match: no B-tree index serves it, so it scans the table in every stage; the cache is what
  spares the database);
* ``POST /checkout?sku=...``: takes one from stock and writes an order, in one transaction;
  with the cache on, drops the product's cached copy (invalidation on write).

The same code serves every stage: an index is a ``CREATE INDEX`` (:func:`set_indexes`), the
cache is the ``CAPSIM_SHOP_REDIS`` setting, more workers is gunicorn's ``--workers``. Settings
come from the environment (gunicorn forks one process per worker; each opens its own
connections on its first request):

* ``CAPSIM_SHOP_DSN``: the PostgreSQL connection string (required);
* ``CAPSIM_SHOP_REDIS``: a Redis URL; empty or unset, no cache;
* ``CAPSIM_SHOP_TTL_S``: how long a cached page lives (seconds, default 30).

Every answer carries the CPU time the worker spent in the database client
(``X-Capsim-Db-Cpu-Us``) and in the cache client (``X-Capsim-Cache-Cpu-Us``), in microseconds:
the app's own timing, which calibration uses to split the worker's CPU between the paths.
"""

from __future__ import annotations

import json
import os
import time
from urllib.parse import parse_qs

__all__ = ["CATEGORIES", "ROWS", "app", "create_catalogue", "search_term", "set_indexes", "sku"]

ROWS = 200_000  # enough rows that a lookup without an index is a 10-20 ms scan
CATEGORIES = 500

_state: dict = {}
# CPU seconds this worker spent in the database and the cache client during the current
# request (a sync worker serves one request at a time, so the process's CPU clock is the
# request's); sent back as headers, which k6 records: timing in the app, as a team would add
_spent = {"db": 0.0, "cache": 0.0}


class _timed:
    """Adds the process CPU time of the block to ``_spent[part]``."""

    def __init__(self, part: str) -> None:
        self.part = part

    def __enter__(self):
        self.start = time.process_time()

    def __exit__(self, *exc) -> None:
        _spent[self.part] += time.process_time() - self.start


def sku(row_id: int) -> str:
    """The SKU of product ``row_id`` (1-based)."""
    return f"SKU-{row_id:07d}"


def search_term(rank: int) -> str:
    """The ``rank``-th most popular search term (1-based): three digits, which many product
    names contain."""
    return f"{rank % 1000:03d}"


def create_catalogue(dsn: str, rows: int = ROWS, categories: int = CATEGORIES) -> None:
    """The products and orders tables, filled with ``rows`` products (no secondary index)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("DROP TABLE IF EXISTS orders, products")
        conn.execute("""
            CREATE TABLE products (
                id integer PRIMARY KEY,
                sku text NOT NULL,
                category_id integer NOT NULL,
                name text NOT NULL,
                description text NOT NULL,
                price_cents integer NOT NULL,
                stock integer NOT NULL)""")
        conn.execute("""
            INSERT INTO products
            SELECT i, 'SKU-' || lpad(i::text, 7, '0'), 1 + (i::bigint * 7919) %% %s,
                   'Product ' || i, repeat(md5(i::text), 4),
                   100 + (i::bigint * 104729) %% 50000, 1000000
            FROM generate_series(1, %s) AS i""", (categories, rows))
        conn.execute("""
            CREATE TABLE orders (
                id bigserial PRIMARY KEY,
                product_id integer NOT NULL,
                quantity integer NOT NULL,
                total_cents integer NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now())""")
        conn.execute("VACUUM ANALYZE products")


INDEXES = {
    "products_sku": "CREATE UNIQUE INDEX products_sku ON products (sku)",
}


def set_indexes(dsn: str, indexed: bool) -> None:
    """Create (``indexed``) or drop the secondary indexes the shop's lookups need."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, ddl in INDEXES.items():
            conn.execute(f"DROP INDEX IF EXISTS {name}")
            if indexed:
                conn.execute(ddl)
        conn.execute("ANALYZE products")


# -- the app ---------------------------------------------------------------------------------
def _connections():
    """This worker's database connection and Redis client (None: no cache), made once."""
    if "db" not in _state:
        import psycopg

        _state["db"] = psycopg.connect(os.environ["CAPSIM_SHOP_DSN"], autocommit=True)
        url = os.environ.get("CAPSIM_SHOP_REDIS", "")
        if url:
            import redis

            _state["cache"] = redis.Redis.from_url(url)
        else:
            _state["cache"] = None
        _state["ttl"] = int(float(os.environ.get("CAPSIM_SHOP_TTL_S", "30")))
    return _state["db"], _state["cache"]


def _cached(cache, key: str, ttl: int, load) -> bytes:
    """Cache-aside: the cached body, or ``load()``'s, stored for ``ttl`` seconds."""
    if cache is not None:
        with _timed("cache"):
            body = cache.get(key)
        if body is not None:
            return body
    with _timed("db"):
        body = load()
    if cache is not None:
        with _timed("cache"):
            cache.set(key, body, ex=ttl)
    return body


def _product(db, cache, ttl: int, query: dict) -> tuple[str, bytes]:
    code = query.get("sku", [""])[0]

    def load() -> bytes:
        row = db.execute("SELECT id, sku, name, description, price_cents, stock "
                         "FROM products WHERE sku = %s", (code,)).fetchone()
        if row is None:
            return b""
        keys = ("id", "sku", "name", "description", "price_cents", "stock")
        return json.dumps(dict(zip(keys, row, strict=True))).encode()

    body = _cached(cache, f"product:{code}", ttl, load)
    return ("200 OK", body) if body else ("404 Not Found", b'{"error": "no such sku"}')


def _search(db, cache, ttl: int, query: dict) -> tuple[str, bytes]:
    term = query.get("q", [""])[0]
    if not term.isalnum():
        return "400 Bad Request", b'{"error": "q must be letters or digits"}'

    def load() -> bytes:
        rows = db.execute("SELECT sku, name, price_cents FROM products WHERE name LIKE %s "
                          "ORDER BY price_cents LIMIT 20", (f"%{term}%",)).fetchall()
        return json.dumps([{"sku": s, "name": n, "price_cents": p} for s, n, p in rows]).encode()

    return "200 OK", _cached(cache, f"search:{term}", ttl, load)


def _checkout(db, cache, query: dict) -> tuple[str, bytes]:
    code = query.get("sku", [""])[0]
    with _timed("db"), db.transaction():
        row = db.execute("UPDATE products SET stock = stock - 1 WHERE sku = %s AND stock > 0 "
                         "RETURNING id, price_cents", (code,)).fetchone()
        if row is not None:
            order = db.execute("INSERT INTO orders (product_id, quantity, total_cents) "
                               "VALUES (%s, 1, %s) RETURNING id", row).fetchone()[0]
    if row is None:
        return "409 Conflict", b'{"error": "no such sku or out of stock"}'
    if cache is not None:
        with _timed("cache"):
            cache.delete(f"product:{code}")
    return "200 OK", json.dumps({"order": order}).encode()


def app(environ, start_response):
    """The WSGI entry point (``capsim.testbed.shop:app``)."""
    path = environ.get("PATH_INFO", "/")
    _spent["db"] = _spent["cache"] = 0.0
    if path == "/health":
        status, body = "200 OK", b"ok"
    else:
        db, cache = _connections()
        query = parse_qs(environ.get("QUERY_STRING", ""))
        ttl = _state["ttl"]
        if path == "/product":
            status, body = _product(db, cache, ttl, query)
        elif path == "/search":
            status, body = _search(db, cache, ttl, query)
        elif path == "/checkout" and environ.get("REQUEST_METHOD") == "POST":
            status, body = _checkout(db, cache, query)
        else:
            status, body = "404 Not Found", b'{"error": "no such page"}'
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))),
                            ("X-Capsim-Db-Cpu-Us", str(round(_spent["db"] * 1e6))),
                            ("X-Capsim-Cache-Cpu-Us", str(round(_spent["cache"] * 1e6)))])
    return [body]
