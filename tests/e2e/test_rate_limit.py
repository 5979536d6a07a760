"""The rate limit as served: API_RATE_LIMIT reaches a real API process."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support import Databases, ServiceProcess

pytestmark = pytest.mark.e2e


def test_a_client_over_api_rate_limit_is_refused_with_429_and_health_is_not(
    databases: Databases,
) -> None:
    db = databases.fresh("ratelimit")
    api = ServiceProcess("payments", {"PAYMENTS_DB": db.dbname, "API_RATE_LIMIT": "2"}).start()
    try:
        with httpx.Client(base_url=api.url) as client:
            url = f"/api/v1/payments?order_id={uuid.uuid4()}"
            statuses = [client.get(url).status_code for _ in range(20)]
            ready = [client.get("/health/ready").status_code for _ in range(20)]
    finally:
        api.stop()

    assert 200 in statuses
    assert statuses.count(429) >= 10  # 20 requests in a row against 2 a second
    assert set(ready) == {200}
