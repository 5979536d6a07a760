"""Hostile input, generated: schemathesis against each API's own OpenAPI document.

It sends schema-valid and schema-violating requests to every operation (examples, coverage,
fuzzing and stateful phases) and fails on a 5xx, an undocumented status, a response that
breaks its schema, valid data refused or invalid data accepted. The exceptions it is told
about are in tests/schemathesis.toml, each with its reason. SCHEMATHESIS_EXAMPLES and
SCHEMATHESIS_SEED make a run longer or different; a failure prints how to replay it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import System, start_system
from tests.support import ROOT, RUN_ID, Databases

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

EXAMPLES = os.environ.get("SCHEMATHESIS_EXAMPLES", "100")
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261122")  # fixed, so CI replays the same run
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def apis(databases: Databases, rabbitmq_up: None) -> Iterator[System]:
    """The three APIs on their own databases: generated orders stay out of other tests."""
    # No projector runs here: a generated min_position is never reached, so it is answered
    # 503 at once rather than after the usual deadline.
    no_wait = {"MIN_POSITION_DEADLINE": "0"}
    running = start_system(databases, prefix=f"t{RUN_ID}.schemathesis", env=no_wait)
    yield running
    running.stop()


@pytest.mark.parametrize("service", ["orders", "customers", "payments"])
def test_generated_requests_find_no_server_error_and_no_broken_response(
    apis: System, service: str
) -> None:
    url = getattr(apis, service).url

    run = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--no-color",
            "--config-file",
            str(ROOT / "tests" / "schemathesis.toml"),
            "run",
            f"{url}/schema/openapi.json",
            "--max-examples",
            EXAMPLES,
            "--seed",
            SEED,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )

    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    generated = re.search(r"(\d+) generated", run.stdout)
    assert generated is not None, run.stdout[-5000:]
    assert int(generated.group(1)) > 100  # it really sent requests, to every operation
    assert "Tested: 0" not in run.stdout
