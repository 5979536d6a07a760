"""The README documents every setting the code reads from the environment."""

from __future__ import annotations

import re

from customer_service.settings import Settings as CustomerSettings
from order_service.settings import Settings as OrderSettings
from payment_service.settings import Settings as PaymentSettings
from servicekit.env import variables
from tests.support import ROOT

PACKAGES = (
    "contracts",
    "order_service",
    "customer_service",
    "payment_service",
    "projections",
    "servicekit",
    "ordersystem",
)
SETTINGS = (OrderSettings, CustomerSettings, PaymentSettings)
# Reads outside the settings classes: env_str(env, "NAME", ...), dbname_var="NAME", and the
# plain env.get("NAME", ...) and os.environ.get("NAME", ...)
READ = re.compile(
    r'env_str\(\s*env,\s*"([A-Z0-9_]+)"'
    r'|dbname_var="([A-Z0-9_]+)"'
    r'|(?:env|environ)\.get\(\s*"([A-Z0-9_]+)"'
)


def variables_read_by_the_code() -> set[str]:
    found: set[str] = set().union(*(variables(settings) for settings in SETTINGS))
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "tests" in path.parts:
                continue
            for match in READ.finditer(path.read_text()):
                found.add(next(name for name in match.groups() if name))
    return found


def test_the_scan_finds_the_settings_it_should() -> None:
    found = variables_read_by_the_code()

    assert {"POSTGRES_HOST", "ORDERS_DB", "CUSTOMER_SERVICE_URL"} <= found
    assert {"PAYMENTS_DB", "PAYMENT_DB_POOL_SIZE"} <= found  # read in payment_service alone
    assert {"POSTGRES_PASSWORD", "LOG_LEVEL"} <= found  # a nested setting, a plain read


def test_every_environment_variable_is_in_the_readme_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]

    missing = {name for name in variables_read_by_the_code() if f"`{name}`" not in table}

    assert not missing, f"README's Configuration table lacks {sorted(missing)}"
