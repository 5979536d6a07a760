"""A real Prometheus for tests: a generated scrape config over the processes a test names,
a store of its own in a temporary directory, and PromQL through Prometheus's HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ordersystem.preflight import Finding
from tests.support import free_port, terminate, wait_until_ready

SCRAPE_INTERVAL = "500ms"
REMEDY = "install it: apt-get install prometheus (make test-tools does)"


def prometheus_finding() -> Finding:
    found = shutil.which("prometheus")
    detail = found or "no prometheus binary on PATH"
    return Finding("Prometheus", found is not None, detail, REMEDY)


def scrape_config(targets: Mapping[str, str]) -> dict[str, Any]:
    """One job per process, named as the process is: `targets` maps a name to its metrics URL."""
    jobs = []
    for name, url in targets.items():
        address = httpx.URL(url)
        jobs.append(
            {
                "job_name": name,
                "metrics_path": address.path,
                "static_configs": [{"targets": [f"{address.host}:{address.port}"]}],
            }
        )
    interval = {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL}
    return {"global": interval, "scrape_configs": jobs}


@dataclass
class Prometheus:
    """`prometheus` scraping `targets`, until `stop()`."""

    targets: Mapping[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    directory: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, within: float = 30.0) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError(f"no prometheus binary: {REMEDY}")
        self.directory = Path(tempfile.mkdtemp(prefix="ordersystem-prometheus-"))
        config = self.directory / "prometheus.yml"
        config.write_text(json.dumps(scrape_config(self.targets)))  # JSON is YAML
        log = (self.directory / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()  # the child holds it
        try:
            wait_until_ready(f"{self.url}/-/ready", self.process, timeout=within)
        except RuntimeError as exc:  # it exited: say what it said
            said = (self.directory / "prometheus.log").read_text()[-2000:]
            raise RuntimeError(f"{exc}: {said}") from exc
        return self

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result: one {metric, value} per series (a vector)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{promql}: {body.get('errorType')}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, promql: str) -> float | None:
        """The value of a query that yields one series; None when it yields none."""
        result = self.query(promql)
        if not result:
            return None
        assert len(result) == 1, f"{promql}: {len(result)} series"
        return float(result[0]["value"][1])

    def stop(self) -> None:
        terminate(self.process)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
