"""Secrets come from the environment and are never printed by a settings object."""

from __future__ import annotations

from customer_service.settings import Settings as CustomerSettings
from order_service.settings import Settings as OrderSettings
from payment_service.settings import Settings as PaymentSettings

TOKEN, PASSWORD = "s3cret-token-value", "pg-secret"


def test_no_settings_object_prints_a_token_or_a_password() -> None:
    env = {"CUSTOMER_SERVICE_TOKEN": TOKEN, "POSTGRES_PASSWORD": PASSWORD}
    customers = CustomerSettings.from_env(env)
    settings: list[object] = [customers, OrderSettings.from_env(env), PaymentSettings.from_env(env)]

    printed = " ".join(repr(s) for s in settings) + " ".join(str(s) for s in settings)

    assert customers.api_token == TOKEN  # read from the environment ...
    assert TOKEN not in printed  # ... and never shown
    assert PASSWORD not in printed
