"""The multi-host bed (tests.bed) for the tests of this folder: one for all of them, since
it takes half a minute to start, stopped as soon as they are done (it keeps two cores
busy). Needs root (namespaces), iproute2 and HAProxy: a developer's machine without them
skips, CI fails (`make test-tools` installs them)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ordersystem.preflight import Finding
from servicekit.postgres import PostgresSettings
from tests.bed import Bed, running_bed
from tests.hosts import IP
from tests.support import require

pytestmark = pytest.mark.integration


def bed_tools() -> Finding:
    missing = [tool for tool in (IP, "haproxy") if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.append("root (for ip netns)")
    return Finding(
        "the multi-host bed's tools",
        not missing,
        f"missing: {', '.join(missing)}",
        "run as root, and `make test-tools` (HAProxy, iproute2)",
    )


@dataclass
class Through:
    url: str


@dataclass
class BedSystem:
    """The bed as the fault harness sees a system (tests.faults.harness.System): its APIs
    through HAProxy, its databases on whichever of db1 and db2 takes writes."""

    bed: Bed

    @property
    def orders(self) -> Through:
        return Through(self.bed.url("orders"))

    @property
    def orders_db(self) -> PostgresSettings:
        return self.bed.database("orders")

    @property
    def customers_db(self) -> PostgresSettings:
        return self.bed.database("customers")

    @property
    def payments_db(self) -> PostgresSettings:
        return self.bed.database("payments")

    def projector_env(self) -> dict[str, str]:
        return {**self.bed.env(), "ORDER_SERVICE_URL": self.bed.url("orders")}


@pytest.fixture(scope="package")  # stopped once this folder's tests are done, not at the end
def bed() -> Iterator[Bed]:
    require(bed_tools())
    with running_bed() as started:
        yield started


@pytest.fixture
def system(bed: Bed) -> BedSystem:
    return BedSystem(bed)
