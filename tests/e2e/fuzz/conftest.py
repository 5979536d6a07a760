"""The three APIs every fuzzing test sends to, and what every answer from them must be."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.e2e.conftest import System, start_system
from tests.e2e.hostile import Answer, Request, send
from tests.support import RUN_ID, Databases


# Package scope: both fuzzing modules send to one system, started once.
@pytest.fixture(scope="package")
def apis(databases: Databases, rabbitmq_up: None) -> Iterator[System]:
    """The three APIs on their own databases, with no rate limit to get in the way."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("API_RATE_LIMIT", "0")
        running = start_system(databases, prefix=f"t{RUN_ID}.fuzz")
    yield running
    running.stop()


def stored(system: System, service: str) -> int:
    """What a create adds to: order streams, or customers."""
    if service == "orders":
        return system.stored_orders()
    with psycopg.connect(system.customers_db.conninfo()) as conn:
        row = conn.execute("SELECT count(*) FROM customers").fetchone()
        assert row is not None
        return int(row[0])


def answer(system: System, service: str, request: Request, *, creates: bool) -> Answer:
    """Send it; check what every answer must be: below 500, and problem details if refused."""
    before = stored(system, service) if creates else 0
    got = send(getattr(system, service).port, request)
    assert got.status < 500, (got, request)
    if got.status >= 400:
        assert got.is_problem, (got, request)
        if creates:
            assert stored(system, service) == before, ("refused, yet stored", got, request)
    return got


def still_serving(system: System, service: str) -> None:
    process = getattr(system, service).process
    assert process is not None
    assert process.poll() is None, f"the {service} API died"
    assert httpx.get(f"{getattr(system, service).url}/health", timeout=5).status_code == 200
