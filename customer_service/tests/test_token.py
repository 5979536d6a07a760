"""The optional service token: required on the API when set, never on health or metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from customer_service.api import create_app
from customer_service.settings import Settings
from tests.support import Databases

pytestmark = pytest.mark.integration
SECRET = "s3cret-token-value"


@pytest.fixture
async def client(databases: Databases) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings(postgres=databases.fresh("customers_token"), api_token=SECRET)
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {SECRET}", SECRET])
async def test_without_the_right_token_the_api_answers_401(
    client: AsyncTestClient[Litestar], header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}

    response = await client.get("/api/v1/customers/1", headers=headers)

    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


async def test_with_the_token_the_api_answers(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get(
        "/api/v1/customers/1", headers={"Authorization": f"Bearer {SECRET}"}
    )

    assert response.status_code == 200


async def test_health_the_schema_and_the_metrics_stay_open(
    client: AsyncTestClient[Litestar],
) -> None:
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/schema/openapi.json")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200  # a scraper carries no token
