"""The baseline's databases, tables and seed (benchmark fixture): created and dropped here."""

from __future__ import annotations

import psycopg
from psycopg import sql

from bench.baseline.settings import Settings

OUTBOX = """
CREATE TABLE IF NOT EXISTS outbox (
    id bigserial PRIMARY KEY,
    event_id uuid NOT NULL,
    routing_key text NOT NULL,
    payload bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now())
"""

TABLES: dict[str, tuple[str, ...]] = {
    "orders": (
        """CREATE TABLE IF NOT EXISTS orders (
            id uuid PRIMARY KEY,
            customer_id bigint NOT NULL,
            product_name text NOT NULL,
            quantity integer NOT NULL,
            price numeric NOT NULL,
            total numeric NOT NULL,
            status text NOT NULL,
            payment_status text NOT NULL DEFAULT 'pending',
            version integer NOT NULL DEFAULT 1,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id, created_at DESC)",
        OUTBOX,
    ),
    "customers": (
        """CREATE TABLE IF NOT EXISTS customers (
            id bigint PRIMARY KEY,
            customer_name text NOT NULL,
            address text NOT NULL,
            orders_count bigint NOT NULL DEFAULT 0)""",
        """CREATE TABLE IF NOT EXISTS processed_events (
            consumer text NOT NULL,
            event_id uuid NOT NULL,
            PRIMARY KEY (consumer, event_id))""",
    ),
    "payments": (
        """CREATE TABLE IF NOT EXISTS payments (
            order_id uuid PRIMARY KEY,
            amount numeric NOT NULL,
            status text NOT NULL,
            reason text,
            created_at timestamptz NOT NULL DEFAULT now())""",
        OUTBOX,
    ),
}
SERVICES = tuple(TABLES)

SEED = (
    (1, "Ada Lovelace", "12 St James's Square, London"),
    (2, "Grace Hopper", "1 Navy Yard, Arlington"),
    (3, "Alan Turing", "78 High Street, Bletchley"),
    (4, "Katherine Johnson", "4 Langley Boulevard, Hampton"),
    (5, "Edsger Dijkstra", "21 Oude Delft, Delft"),
)


def migrate(settings: Settings) -> None:
    """Create every database and table if missing, and seed customers 1..5."""
    for service in SERVICES:
        _create_database(settings, settings.dbname(service))
        with psycopg.connect(settings.conninfo(service, "migrate"), autocommit=True) as conn:
            for statement in TABLES[service]:
                conn.execute(statement)
            if service == "customers":
                conn.cursor().executemany(
                    "INSERT INTO customers (id, customer_name, address) VALUES (%s, %s, %s)"
                    " ON CONFLICT (id) DO NOTHING",
                    SEED,
                )


def _create_database(settings: Settings, dbname: str) -> None:
    with psycopg.connect(settings.conninfo("", dbname="postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            return
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def drop(settings: Settings) -> None:
    """Drop every database of this stack (its processes must have stopped, or are cut off)."""
    with psycopg.connect(settings.conninfo("", dbname="postgres"), autocommit=True) as conn:
        for service in SERVICES:
            name = sql.Identifier(settings.dbname(service))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
