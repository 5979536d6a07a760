"""deploy/kubernetes/, checked without a cluster.

No Kubernetes runs on this project's development machines, so nothing here applies a
manifest. Every core object (and each Secret the kustomizations generate, built from its
`.example` file) is validated against the schemas of the Kubernetes API at
KUBERNETES_VERSION with kubernetes-validate, strictly: an unknown field is an error. The
operators' objects (CloudNativePG's Cluster, the RabbitMQ Cluster Operator's
RabbitmqCluster) are in no core schema, so their required fields are checked here by hand.

Then the manifests are held against our code, where a schema cannot: every command is one
the `ordersystem` CLI accepts, every probe asks the path and port the process really serves
(from servicekit's health and metrics code and the settings), the relays run a standby, the
projectors are as many as the partitions, and every setting is a variable of README.md's
Configuration table. The helpers that read a command's port are tests/test_compose.py's.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from customer_service.settings import Settings as CustomerSettings
from ordersystem.cli import parser
from ordersystem.commands import SERVICES, process_endpoints
from servicekit.brokers import nodes
from servicekit.health import health_handlers
from servicekit.metrics import Endpoint
from tests.test_compose import cli_rejection, listening_port, metrics_port

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = ROOT / "deploy" / "kubernetes"
DEPENDENCIES = SYSTEM / "dependencies"
# The release whose API the manifests are written for (a schema of kubernetes-validate's).
KUBERNETES_VERSION = "1.33"
# Custom resources of the two operators: no core schema knows them (checked by hand below).
OPERATOR_KINDS = {("postgresql.cnpg.io/v1", "Cluster"), ("rabbitmq.com/v1beta1", "RabbitmqCluster")}
# The settings README.md names as secrets ("Reliability"): only the Secret may hold them.
SECRETS = {"POSTGRES_PASSWORD", "RABBITMQ_URL", "CUSTOMER_SERVICE_TOKEN"}

Document = dict[str, Any]

# The paths our processes serve, from the code that serves them.
HEALTH = {str(handler.operation_id): next(iter(handler.paths)) for handler in health_handlers({})}
LIVENESS_PATH, READINESS_PATH = HEALTH["health"], HEALTH["ready"]
METRICS_PATH = urlsplit(Endpoint("127.0.0.1", 1).url).path


def kustomization(directory: Path) -> Document:
    document = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{directory}/kustomization.yaml is not a mapping"
    return document


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as kustomize reads a generator's `envs` file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {key.strip(): value for key, value in pairs}


def generated_secrets(directory: Path) -> Iterator[Document]:
    """Each Secret of the directory's secretGenerator, as kustomize would make it from the
    committed `.example` of each env file (the real files stay out of git)."""
    for generator in kustomization(directory).get("secretGenerator", []):
        data: dict[str, str] = {}
        for name in generator["envs"]:
            data |= env_file(directory / f"{name}.example")
        yield {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": generator["name"]},
            "type": generator.get("type", "Opaque"),
            "stringData": data,
        }


def documents(directory: Path) -> list[tuple[str, Document]]:
    """Every object the kustomization in `directory` applies, named by file, kind and name."""
    found: list[tuple[str, Document]] = []
    for resource in kustomization(directory)["resources"]:
        text = (directory / resource).read_text(encoding="utf-8")
        for document in yaml.safe_load_all(text):
            assert isinstance(document, dict), f"{resource}: an object is not a mapping"
            found.append((f"{directory.name}/{resource}", document))
    found += [(f"{directory.name}/secretGenerator", s) for s in generated_secrets(directory)]
    return [(f"{where}: {d['kind']}/{d['metadata']['name']}", d) for where, d in found]


ALL = documents(SYSTEM) + documents(DEPENDENCIES)
CORE = [(name, d) for name, d in ALL if (d["apiVersion"], d["kind"]) not in OPERATOR_KINDS]


def one(kind: str, directory: Path = SYSTEM) -> Document:
    found = [d for where, d in ALL if d["kind"] == kind and where.startswith(f"{directory.name}/")]
    assert len(found) == 1, f"expected one {kind} in {directory.name}, found {len(found)}"
    return found[0]


CONFIG_MAP, SECRET_OBJECT = one("ConfigMap"), one("Secret")
CONFIG: dict[str, str] = CONFIG_MAP["data"]
SECRET: dict[str, str] = SECRET_OBJECT["stringData"]
WORKLOADS = {d["metadata"]["name"]: d for _, d in ALL if d["kind"] in ("Deployment", "Job")}
DEPLOYMENTS = {name: d for name, d in WORKLOADS.items() if d["kind"] == "Deployment"}


def container(workload: Document) -> Document:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one process per pod"
    found: Document = containers[0]
    return found


def environment(workload: Document) -> dict[str, str]:
    """What the process sees: the ConfigMap and the Secret it reads, then its own `env`."""
    sources = {
        ("configMapRef", CONFIG_MAP["metadata"]["name"]): CONFIG,
        ("secretRef", SECRET_OBJECT["metadata"]["name"]): SECRET,
    }
    env: dict[str, str] = {}
    for source in container(workload).get("envFrom", []):
        ((kind, ref),) = source.items()
        assert (kind, ref["name"]) in sources, f"reads {kind} {ref['name']}, which is not here"
        env |= sources[(kind, ref["name"])]
    env |= {item["name"]: str(item.get("value", "")) for item in container(workload).get("env", [])}
    return env


def as_compose_service(workload: Document) -> dict[str, Any]:
    """The workload in the shape tests/test_compose.py's helpers read."""
    return {"command": container(workload)["args"], "environment": environment(workload)}


def process_name(args: list[str]) -> str:
    """The name `ordersystem run` gives the process these arguments start
    (ordersystem.commands.process_endpoints)."""
    if args[0] == "serve":
        return f"{args[1]} API"
    return "projector" if args[0] == "project" else " ".join(args[:2])


def probe_port(workload: Document, probe: Document) -> int:
    """The container port a probe's httpGet asks, by number or by the port's name."""
    port = probe["httpGet"]["port"]
    named = {p["name"]: int(p["containerPort"]) for p in container(workload).get("ports", [])}
    return named[port] if isinstance(port, str) else int(port)


def long_running(kind: str) -> dict[str, Document]:
    """The Deployments of APIs (`serve`) or of workers (everything else)."""
    apis = {n: d for n, d in DEPLOYMENTS.items() if container(d)["args"][0] == "serve"}
    return apis if kind == "api" else {n: d for n, d in DEPLOYMENTS.items() if n not in apis}


def readme_variables() -> set[str]:
    """The variables README.md's Configuration table names, in its first column."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    first_cells = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `")]
    return {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}


@pytest.mark.parametrize(("name", "document"), CORE, ids=[name for name, _ in CORE])
def test_every_core_object_is_valid_for_kubernetes(name: str, document: Document) -> None:
    problem = None
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:  # its own text prints the schema
        problem = f"at {error.json_path}: {error.message}"

    assert problem is None, problem


def test_the_validation_rejects_a_misspelt_probe() -> None:
    deployment = copy.deepcopy(DEPLOYMENTS["order-api"])
    probed = container(deployment)
    probed["readinessprobe"] = probed.pop("readinessProbe")

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_manifest_is_applied_by_its_kustomization_into_one_namespace() -> None:
    namespace = one("Namespace", DEPENDENCIES)["metadata"]["name"]
    for directory in (SYSTEM, DEPENDENCIES):
        listed = set(kustomization(directory)["resources"])
        files = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}

        assert files == listed, f"{directory.name}: files and kustomization differ"
        assert kustomization(directory)["namespace"] == namespace


def test_the_secret_files_stay_out_of_git_and_their_examples_are_in_it() -> None:
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    for directory in (SYSTEM, DEPENDENCIES):
        for generator in kustomization(directory)["secretGenerator"]:
            for name in generator["envs"]:
                path = (directory / name).relative_to(ROOT).as_posix()
                assert path in ignored, f"{path} is not in .gitignore"
                assert (directory / f"{name}.example").is_file()


def test_the_manifests_run_every_process_of_ordersystem_run() -> None:
    running = [process_name(container(d)["args"]) for d in DEPLOYMENTS.values()]

    assert sorted(running) == sorted(process_endpoints(CONFIG))
    assert container(WORKLOADS["migrate"])["args"] == ["migrate"]


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_every_container_runs_a_command_our_cli_accepts(name: str) -> None:
    ours = container(WORKLOADS[name])

    assert ours["image"] == "ordersystem"  # the one image, named by the kustomization
    assert ours["command"] == ["ordersystem"]  # the image's entrypoint, said again
    assert cli_rejection(ours["args"]) is None, f"`ordersystem {' '.join(ours['args'])}`"


@pytest.mark.parametrize("name", sorted(long_running("api")))
def test_every_api_is_probed_on_its_own_health_endpoints(name: str) -> None:
    deployment = DEPLOYMENTS[name]
    probes = container(deployment)
    port = listening_port(as_compose_service(deployment))
    args = parser().parse_args(probes["args"])

    assert probes["readinessProbe"]["httpGet"]["path"] == READINESS_PATH
    assert probes["livenessProbe"]["httpGet"]["path"] == LIVENESS_PATH
    assert probes["startupProbe"]["httpGet"]["path"] == LIVENESS_PATH
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert probe_port(deployment, probes[kind]) == port, f"{kind}: {name} listens on {port}"
    settings = SERVICES[args.service].settings(environment(deployment))
    assert (args.host or settings.host) == "0.0.0.0", "the kubelet probes the pod's address"


@pytest.mark.parametrize("name", sorted(long_running("worker")))
def test_every_worker_is_probed_where_it_serves_its_metrics(name: str) -> None:
    deployment = DEPLOYMENTS[name]
    probes = container(deployment)
    port = metrics_port(as_compose_service(deployment))

    assert port != 0, "a worker without metrics has nothing to probe"
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert probes[kind]["httpGet"]["path"] == METRICS_PATH, kind
        assert probe_port(deployment, probes[kind]) == port, f"{kind}: metrics on {port}"
    assert environment(deployment)["METRICS_HOST"] == "0.0.0.0", "the kubelet probes from outside"


def test_each_relay_runs_a_standby_beside_its_leader() -> None:
    relays = {n: d for n, d in DEPLOYMENTS.items() if container(d)["args"][0] == "relay"}

    assert sorted(container(d)["args"][1] for d in relays.values()) == ["orders", "payments"]
    for name, relay in relays.items():
        assert relay["spec"]["replicas"] == 2, name


def test_the_projectors_are_as_many_as_the_partitions() -> None:
    (projector,) = (d for d in DEPLOYMENTS.values() if container(d)["args"][0] == "project")
    partitions = CustomerSettings.from_env(environment(projector)).partitions

    assert partitions > 1, "partitioned, so that the projectors share the read models"
    assert projector["spec"]["replicas"] == partitions


def test_every_setting_is_a_variable_of_the_readme_configuration_table() -> None:
    known = readme_variables()
    assert {"POSTGRES_HOST", "RABBITMQ_URL", "ORDER_PARTITIONS", "METRICS_HOST"} <= known
    keys = set(CONFIG) | set(SECRET)
    keys |= {item["name"] for d in WORKLOADS.values() for item in container(d).get("env", [])}

    assert not keys - known, f"not in README's Configuration table: {sorted(keys - known)}"


def test_the_secrets_are_in_the_secret_and_only_there() -> None:
    assert set(SECRET) == SECRETS
    assert not SECRETS & set(CONFIG)
    for workload in WORKLOADS.values():
        assert not SECRETS & {item["name"] for item in container(workload).get("env", [])}


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_every_container_has_resource_requests_and_limits(name: str) -> None:
    resources = container(WORKLOADS[name])["resources"]

    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[bound]), f"{name}: {bound}"


def api_service(url: str) -> tuple[Document, Document]:
    """The Service a URL of ours names, and the Deployment it sends to."""
    parts = urlsplit(url)
    services = {d["metadata"]["name"]: d for _, d in ALL if d["kind"] == "Service"}
    assert parts.hostname in services, f"{url}: no Service {parts.hostname}"
    service = services[parts.hostname]
    (port,) = (p for p in service["spec"]["ports"] if p["port"] == parts.port)
    selector = service["spec"]["selector"]
    targets = [
        d
        for d in DEPLOYMENTS.values()
        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert len(targets) == 1, f"Service {parts.hostname} selects {len(targets)} Deployments"
    assert probe_port(targets[0], {"httpGet": {"port": port["targetPort"]}}) == listening_port(
        as_compose_service(targets[0])
    )
    return service, targets[0]


def test_each_api_calls_the_other_through_its_service() -> None:
    _, customers = api_service(CONFIG["CUSTOMER_SERVICE_URL"])
    _, orders = api_service(CONFIG["ORDER_SERVICE_URL"])

    assert container(customers)["args"][:2] == ["serve", "customers"]
    assert container(orders)["args"][:2] == ["serve", "orders"]


@pytest.mark.parametrize("name", sorted(long_running("api")))
def test_every_api_has_a_service_on_its_port(name: str) -> None:
    port = listening_port(as_compose_service(DEPLOYMENTS[name]))

    _, target = api_service(f"http://{name}:{port}")
    assert target is DEPLOYMENTS[name]


def test_postgres_is_a_synchronous_pair_and_the_system_logs_in_as_its_managed_role() -> None:
    cluster = one("Cluster", DEPENDENCIES)
    spec = cluster["spec"]
    (role,) = (r for r in spec["managed"]["roles"] if r["name"] == CONFIG["POSTGRES_USER"])
    (role_secret,) = generated_secrets(DEPENDENCIES)

    assert spec["instances"] == 2
    assert spec["storage"]["size"]
    assert spec["postgresql"]["synchronous"]["method"] in ("any", "first")
    assert spec["postgresql"]["synchronous"]["number"] == 1
    assert spec["postgresql"]["synchronous"]["dataDurability"] == "required"
    # CloudNativePG's Service for the primary is <cluster>-rw: it follows a failover.
    assert CONFIG["POSTGRES_HOST"] == f"{cluster['metadata']['name']}-rw"
    assert role["login"] is True
    assert role["createdb"] is True  # `ordersystem migrate` creates the databases
    assert role.get("superuser", False) is False
    assert role["passwordSecret"]["name"] == role_secret["metadata"]["name"]
    assert role_secret["type"] == "kubernetes.io/basic-auth"
    assert role_secret["stringData"]["username"] == CONFIG["POSTGRES_USER"]


def test_rabbitmq_is_a_cluster_of_three_and_the_system_connects_through_its_service() -> None:
    rabbitmq = one("RabbitmqCluster", DEPENDENCIES)

    assert rabbitmq["spec"]["replicas"] == 3
    # The operator's client Service is named after the RabbitmqCluster.
    for node in nodes(SECRET["RABBITMQ_URL"]):
        assert urlsplit(node).hostname == rabbitmq["metadata"]["name"]
        assert urlsplit(node).port == 5672
