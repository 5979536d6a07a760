"""An API served by several workers answers a scrape with the sum of them all."""

from __future__ import annotations

import subprocess
import sys
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ROOT, Databases, ServiceProcess

pytestmark = pytest.mark.integration


def requests_counted(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_requests_total"
        and sample.labels.get("route") == "/api/v1/payments/{payment_id}"
        and sample.labels.get("status") == "404"
    )


def test_every_request_is_counted_once_whichever_of_two_workers_took_it(
    databases: Databases, postgres_up: None
) -> None:
    database = databases.fresh("metrics_workers")
    api = ServiceProcess("payments", {"PAYMENTS_DB": database.dbname}, workers=2).start()
    try:
        with httpx.Client(base_url=api.url, timeout=5) as client:
            for _ in range(40):  # new connections: granian spreads them over its workers
                with httpx.Client(base_url=api.url, timeout=5) as fresh:
                    assert fresh.get(f"/api/v1/payments/{uuid.uuid4()}").status_code == 404
            assert client.get("/health").status_code == 200

        scrapes = [requests_counted(api.url) for _ in range(6)]  # each may reach either worker
    finally:
        api.stop()

    assert scrapes == [40.0] * 6


def test_the_cli_leaves_prometheus_client_to_the_workers_it_serves() -> None:
    # prometheus-client picks its mode (one process, or workers sharing a directory) when it
    # is first imported; `ordersystem serve` must reach servicekit.serve, which names the
    # directory, before anything imports it, or the forked workers count apart.
    probe = (
        "import sys, ordersystem.cli, servicekit.serve; print('prometheus_client' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )

    assert done.stdout.strip() == "False"
