"""Both services publish an OpenAPI document that names every operation and its errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e

METHODS = {"get", "post", "put", "patch", "delete"}


def operations(base_url: str) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{base_url}/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    return {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


@pytest.mark.parametrize("service", ["orders", "customers"])
def test_every_operation_has_an_id_and_documents_its_errors(system: System, service: str) -> None:
    base_url = system.orders.url if service == "orders" else system.customers.url

    found = operations(base_url)

    assert found
    for name, operation in found.items():
        assert operation.get("operationId"), name
        if "/health" in name:
            continue
        errors = [code for code in operation["responses"] if code[0] in "45"]
        assert errors, f"{name} documents no error response"
        for code in errors:
            content = operation["responses"][code]["content"]
            assert "application/problem+json" in content, f"{name} {code}"


def test_the_order_body_is_documented_in_both_shapes(system: System) -> None:
    create = operations(system.orders.url)["POST /api/v1/orders"]

    schema = create["requestBody"]["content"]["application/json"]["schema"]

    flat, wrapped = schema["anyOf"]
    assert set(flat["required"]) == {"customer_id", "product_name", "quantity", "price"}
    assert wrapped["properties"]["order"] == flat
