"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

Docker cannot run on this project's development machines, so nothing here starts a container.
Instead the file is read as YAML and held against our own code: every command must be one
the `ordersystem` CLI accepts (the image's entrypoint), every healthcheck must probe the port
the process really listens on, and every variable we set must be one our code reads.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ordersystem.cli import parser
from ordersystem.commands import SERVICES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
OUR_PACKAGES = (
    "contracts",
    "order_service",
    "customer_service",
    "projections",
    "servicekit",
    "ordersystem",
)

Service = dict[str, Any]


def load_services() -> dict[str, Service]:
    with COMPOSE.open(encoding="utf-8") as file:
        document = yaml.safe_load(file)
    assert isinstance(document, dict), "docker-compose.yml is not a mapping"
    services = document.get("services")
    assert isinstance(services, dict), "docker-compose.yml has no services"
    return {str(name): service for name, service in services.items()}


SERVICES_IN_COMPOSE = load_services()
# Ours = built from our image (entrypoint `ordersystem`); the others are upstream images.
OURS = {name: s for name, s in SERVICES_IN_COMPOSE.items() if "build" in s}
LONG_RUNNING = {name: s for name, s in OURS.items() if s.get("restart") != "no"}
# The HTTP APIs among them; workers such as the relay have no port to probe.
APIS = {name: s for name, s in LONG_RUNNING.items() if s.get("command", [""])[0] == "serve"}


def cli_rejection(command: list[str]) -> str | None:
    """None when `ordersystem *command` parses; otherwise what argparse said about it."""
    complaint = io.StringIO()
    try:
        with contextlib.redirect_stderr(complaint), contextlib.redirect_stdout(complaint):
            parser().parse_args(command)
    except SystemExit as exit_:
        return complaint.getvalue().strip() or f"argparse exited with {exit_.code}"
    return None


def command_of(service: Service) -> list[str]:
    command = service.get("command")
    assert isinstance(command, list), f"command must be a list (exec form), not {command!r}"
    assert all(isinstance(arg, str) for arg in command), f"non-string argument in {command!r}"
    return [str(arg) for arg in command]


def environment_of(service: Service) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "environment must be a mapping"
    return {str(key): str(value) for key, value in environment.items()}


def listening_port(service: Service) -> int:
    """The port `ordersystem serve ...` binds with this service's command and environment."""
    args = parser().parse_args(command_of(service))
    assert args.command == "serve", "only `serve` processes listen on a port"
    configured = SERVICES[args.service].settings(environment_of(service)).port
    return int(args.port or configured)


def container_ports(service: Service) -> set[int]:
    return {int(str(mapping).rsplit(":", 1)[-1]) for mapping in service.get("ports", [])}


def healthcheck_url(service: Service) -> str:
    healthcheck = service.get("healthcheck")
    assert isinstance(healthcheck, dict), "no healthcheck"
    test = [str(part) for part in healthcheck["test"]]
    assert test[:3] == ["CMD", "python", "-c"], f"probe with the image's python: {test!r}"
    urls = re.findall(r"https?://[^'\"\s]+", test[3])
    assert len(urls) == 1, f"expected one URL in {test[3]!r}"
    return str(urls[0])


def dockerfile_instruction(name: str) -> list[str]:
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    found = [line.split(None, 1)[1] for line in lines if line.startswith(f"{name} ")]
    assert found, f"the Dockerfile has no {name}"
    value = json.loads(found[-1])  # the last one wins; exec form is a JSON array
    assert isinstance(value, list), f"{name} must be in exec form"
    return [str(arg) for arg in value]


def test_compose_runs_every_process_of_ours() -> None:
    assert {"migrate", "customers", "orders"} <= set(OURS)
    assert {"customers", "orders", "payments", "relay", "payment-relay"} <= set(LONG_RUNNING)
    assert {"payment-processor", "payment-results", "projector"} <= set(LONG_RUNNING)
    assert {"customers", "orders", "payments"} == set(APIS)


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_compose_command_exists_in_our_cli(name: str) -> None:
    command = command_of(OURS[name])

    assert cli_rejection(command) is None, f"{name}: `ordersystem {' '.join(command)}`"


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "nonsense"],
        ["serve", "orders", "--no-such-option"],
        ["relay-everything"],
        ["ordersystem", "serve", "orders"],  # the entrypoint repeated in the command
        [],
    ],
)
def test_a_command_our_cli_lacks_is_rejected_by_the_same_check(command: list[str]) -> None:
    assert cli_rejection(command) is not None


def test_the_image_runs_our_cli_and_its_default_command_exists() -> None:
    assert dockerfile_instruction("ENTRYPOINT") == ["ordersystem"]

    assert cli_rejection(dockerfile_instruction("CMD")) is None


@pytest.mark.parametrize("name", sorted(APIS))
def test_every_api_of_ours_has_a_healthcheck_on_its_own_readiness_endpoint(name: str) -> None:
    service = APIS[name]
    url = urlsplit(healthcheck_url(service))
    port = listening_port(service)

    assert url.path == "/health/ready"
    assert url.hostname == "127.0.0.1"
    assert url.port == port, f"{name} listens on {port}"
    assert port in container_ports(service), f"{name} does not publish {port}"
    assert service.get("restart") == "unless-stopped"


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_process_of_ours_waits_for_what_it_needs(name: str) -> None:
    depends_on = OURS[name].get("depends_on")
    assert isinstance(depends_on, dict), "depends_on must be the long form, with conditions"
    conditions = {dep: str(spec["condition"]) for dep, spec in depends_on.items()}

    assert conditions.get("postgres") == "service_healthy"
    for dependency, condition in conditions.items():
        assert dependency in SERVICES_IN_COMPOSE, f"{name} depends on unknown {dependency}"
        if condition == "service_healthy":
            assert "healthcheck" in SERVICES_IN_COMPOSE[dependency], dependency
        else:
            assert condition == "service_completed_successfully", condition
            assert SERVICES_IN_COMPOSE[dependency].get("restart") == "no", dependency


def test_the_apis_start_after_the_migration_and_orders_after_its_collaborators() -> None:
    def conditions(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in OURS[name]["depends_on"].items()}

    assert command_of(OURS["migrate"]) == ["migrate"]
    assert OURS["migrate"].get("restart") == "no"
    for name in LONG_RUNNING:
        assert conditions(name).get("migrate") == "service_completed_successfully", name
    assert conditions("orders") == {
        "postgres": "service_healthy",
        "rabbitmq": "service_healthy",
        "customers": "service_healthy",
        "migrate": "service_completed_successfully",
    }


@pytest.mark.parametrize("name", sorted(OURS))
def test_our_processes_reach_the_other_containers_by_service_name(name: str) -> None:
    environment = environment_of(OURS[name])

    assert environment["POSTGRES_HOST"] == "postgres"
    assert urlsplit(environment["RABBITMQ_URL"]).hostname == "rabbitmq"
    assert (
        environment["POSTGRES_PASSWORD"]
        == environment_of(SERVICES_IN_COMPOSE["postgres"])["POSTGRES_PASSWORD"]
    )


def test_orders_calls_the_customer_service_where_it_listens() -> None:
    url = urlsplit(environment_of(OURS["orders"])["CUSTOMER_SERVICE_URL"])

    assert url.hostname == "customers"
    assert url.port == listening_port(OURS["customers"])


def test_every_variable_we_set_is_read_by_our_code() -> None:
    sources = "\n".join(
        path.read_text(encoding="utf-8")
        for package in OUR_PACKAGES
        for path in (ROOT / package).rglob("*.py")
    )
    variables = {key for service in OURS.values() for key in environment_of(service)}

    unread = sorted(key for key in variables if f'"{key}"' not in sources)
    assert not unread, f"set in docker-compose.yml but read nowhere: {unread}"


def test_the_backing_services_are_postgres_16_and_rabbitmq_313_with_management() -> None:
    postgres = SERVICES_IN_COMPOSE["postgres"]
    rabbitmq = SERVICES_IN_COMPOSE["rabbitmq"]

    assert str(postgres["image"]).startswith("postgres:16")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert re.fullmatch(r"rabbitmq:3\.13[\w.-]*-management[\w.-]*", str(rabbitmq["image"]))
    assert rabbitmq["healthcheck"]["test"][-3:] == ["rabbitmq-diagnostics", "-q", "ping"]
    assert {5672, 15672} <= container_ports(rabbitmq)


def metrics_port(service: Service) -> int:
    """Where this process of ours serves its metrics, with its command and environment."""
    command, env = command_of(service), environment_of(service)
    if command[0] == "serve":
        return listening_port(service)
    which = {
        ("relay", "orders"): ("orders", "relay_metrics_port"),
        ("relay", "payments"): ("payments", "relay_metrics_port"),
        ("consume", "order-created"): ("payments", "processor_metrics_port"),
        ("consume", "payment-results"): ("orders", "payment_results_metrics_port"),
        ("project",): ("customers", "projector_metrics_port"),
    }
    key = ("project",) if command[0] == "project" else tuple(command[:2])
    assert key in which, f"no metrics port known for `ordersystem {' '.join(command)}`"
    package, field = which[key]
    return int(getattr(SERVICES[package].settings(env), field))


def test_prometheus_scrapes_every_process_of_ours_where_it_serves_its_metrics() -> None:
    prometheus = SERVICES_IN_COMPOSE["prometheus"]
    mounted = {str(v).split(":")[1]: ROOT / str(v).split(":")[0] for v in prometheus["volumes"]}
    config = yaml.safe_load(mounted["/etc/prometheus/prometheus.yml"].read_text(encoding="utf-8"))
    scraped = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }

    expected = {f"{name}:{metrics_port(service)}" for name, service in LONG_RUNNING.items()}
    assert scraped == expected
    for name, service in LONG_RUNNING.items():
        if command_of(service)[0] != "serve":  # a worker listens beyond its container
            assert environment_of(service)["METRICS_HOST"] == "0.0.0.0", name


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    grafana = SERVICES_IN_COMPOSE["grafana"]
    mounted = {str(v).split(":")[1]: ROOT / str(v).split(":")[0] for v in grafana["volumes"]}
    provisioning = mounted["/etc/grafana/provisioning"]
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    dashboards = mounted["/var/lib/grafana/dashboards"]
    board = json.loads((dashboards / "ordersystem.json").read_text(encoding="utf-8"))

    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    uids = {panel["datasource"]["uid"] for panel in board["panels"]}
    assert uids == {source["datasources"][0]["uid"]}
    provider = yaml.safe_load((provisioning / "dashboards" / "ordersystem.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
