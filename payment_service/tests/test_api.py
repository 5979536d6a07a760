"""The payment API answers 404 only for a payment that is not there, on a real Postgres."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from payment_service.api import create_app
from payment_service.application import Payments
from payment_service.settings import Settings
from tests.support import Databases

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(databases: Databases) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings(postgres=databases.fresh("payments_api"))
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


async def test_a_payment_is_shown_and_an_unknown_or_malformed_id_is_404(
    client: AsyncTestClient[Litestar],
) -> None:
    app: Payments = client.app.state.payments
    order_id = uuid.uuid4()
    decided = app.pay(order_id=order_id, amount=Decimal("12.50"), currency="EUR")

    shown = await client.get(f"/api/v1/payments/{decided.id}")
    unknown = await client.get(f"/api/v1/payments/{uuid.uuid4()}")
    malformed = await client.get("/api/v1/payments/not-a-uuid")

    assert shown.status_code == 200
    assert shown.json()["order_id"] == str(order_id)
    assert [unknown.status_code, malformed.status_code] == [404, 404]
    assert unknown.json()["code"] == malformed.json()["code"] == "payment_not_found"


async def test_a_value_error_inside_the_application_is_not_taken_for_a_missing_payment(
    client: AsyncTestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: uuid.UUID) -> None:
        raise ValueError("a defect, not an unknown id")

    monkeypatch.setattr(client.app.state.payments, "get", broken)

    response = await client.get(f"/api/v1/payments/{uuid.uuid4()}")

    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
