"""The whole system spread over hosts of a test's own (tests.hosts), on this machine.

    lb        HAProxy, in front of both app hosts' APIs (health-checked on /health/ready)
    app1/2    every process of the system, as `ordersystem run` starts them
    db1/2     a Postgres primary and its synchronous streaming standby (tests.pgpair)
    rabbit1-3 a three-node RabbitMQ cluster (tests.rabbitcluster)

Everything the bed starts it stops, the hosts too; it never touches the machine's own
Postgres and RabbitMQ. `python -m tests.bed` starts one and keeps it until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from servicekit.postgres import PostgresSettings
from tests.hosts import Host, Network
from tests.pgpair import PostgresPair
from tests.rabbitcluster import RabbitCluster
from tests.support import wait_until_ready

HOSTS = ("lb", "app1", "app2", "db1", "db2", "rabbit1", "rabbit2", "rabbit3")
APIS = {"orders": 3001, "customers": 3002, "payments": 3003}  # the services' own ports
PARTITIONS = 4  # the order log's, shared by the two app hosts' projectors

# What HAProxy answers itself, as problem details like every answer of the APIs.
REFUSALS = {
    502: ("Bad Gateway", "upstream_failed", "the API host failed before it answered"),
    503: ("Service Unavailable", "no_api_host", "no API host is up"),
    504: ("Gateway Timeout", "upstream_timeout", "the API host did not answer in time"),
}
HAPROXY = """global
    maxconn 4096
    log stdout format raw local0 info
defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 30s
    timeout server 5s
    timeout check 1s
    retries 2
    option redispatch
{errorfiles}
{proxies}
"""
PROXY = """frontend {name}
    bind {address}:{port}
    default_backend {name}
backend {name}
    option httpchk GET /health/ready
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
{servers}
"""


def haproxy_config(address: str, apps: Mapping[str, str], errors: Path) -> str:
    errorfiles = "\n".join(
        f"    errorfile {status} {errors / f'{status}.http'}" for status in REFUSALS
    )
    proxies = "".join(
        PROXY.format(
            name=name,
            address=address,
            port=port,
            servers="\n".join(f"    server {app} {at}:{port} check" for app, at in apps.items()),
        )
        for name, port in APIS.items()
    )
    return HAPROXY.format(errorfiles=errorfiles, proxies=proxies)


def write_errorfiles(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    for status, (title, code, detail) in REFUSALS.items():
        body = json.dumps(
            {
                "type": f"urn:ordersystem:problem:{code}",
                "title": title,
                "status": status,
                "code": code,
                "detail": detail,
            }
        )
        head = f"HTTP/1.1 {status} {title}\r\nContent-Type: application/problem+json\r\n"
        head += f"Cache-Control: no-cache\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
        (folder / f"{status}.http").write_text(head + "\r\n" + body)


def wait_ready(url: str, process: subprocess.Popen[bytes], within: float, log: Path) -> None:
    """tests.support.wait_until_ready, with the end of the process's log when it fails."""
    try:
        wait_until_ready(url, process, within)
    except (RuntimeError, TimeoutError) as failed:
        raise type(failed)(f"{failed}: {tail(log)}") from failed


def tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


@contextlib.contextmanager
def stage(what: str) -> Iterator[None]:
    """Say what the bed is starting, and how long it took (a start takes half a minute)."""
    started = time.monotonic()
    print(f"bed: starting {what}", file=sys.stderr, flush=True)
    yield
    print(f"bed: {what} up in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)


@dataclass
class AppHost:
    """A host running every process of the system under `ordersystem run`."""

    host: Host
    env: Mapping[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def url(self, api: str) -> str:
        return f"http://{self.host.address}:{APIS[api]}"

    def start(self, within: float = 90) -> None:
        self.process = self.host.start(
            sys.executable, "-m", "ordersystem", "run", env=self.env, log=self.log
        )
        for api in APIS:
            wait_ready(f"{self.url(api)}/health/ready", self.process, within, self.log)

    def kill(self) -> int:
        """kill -9 of every process on the host; how many there were."""
        killed = self.host.kill_all()
        if self.process is not None:
            self.process.wait()
        return killed

    def stop(self) -> None:
        """As Ctrl-C does: the supervisor stops every process; whatever outlives it is killed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        self.kill()


@dataclass
class Bed:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bed-")))
    network: Network = field(default_factory=lambda: Network(HOSTS))
    postgres: PostgresPair | None = None
    rabbitmq: RabbitCluster | None = None
    apps: list[AppHost] = field(default_factory=list)
    haproxy: subprocess.Popen[bytes] | None = None

    @property
    def lb(self) -> Host:
        return self.network["lb"]

    def url(self, api: str) -> str:
        """Where clients reach an API: through HAProxy."""
        return f"http://{self.lb.address}:{APIS[api]}"

    def database(self, service: str) -> PostgresSettings:
        """A service's database, on whichever of db1 and db2 is the primary."""
        assert self.postgres is not None
        hosts = self.postgres.hosts
        return PostgresSettings(
            host=hosts["POSTGRES_HOST"], port=hosts["POSTGRES_PORT"], dbname=service
        )

    def env(self) -> dict[str, str]:
        """Every process's settings, on every app host (each reaches its own APIs on
        loopback, the others' through the hosts' network)."""
        assert self.postgres is not None
        assert self.rabbitmq is not None
        return {
            **self.postgres.hosts,
            "RABBITMQ_URL": self.rabbitmq.url,
            "ORDER_PARTITIONS": str(PARTITIONS),
            "ORDER_API_HOST": "0.0.0.0",  # its own address, for HAProxy
            "CUSTOMER_API_HOST": "0.0.0.0",
            "PAYMENT_API_HOST": "0.0.0.0",
            "METRICS_HOST": "0.0.0.0",
            "API_RATE_LIMIT": "100000",  # every request comes from HAProxy's one address
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }

    def start(self) -> Bed:
        self.root.chmod(0o755)  # the servers' own users keep their data below it
        try:
            with stage("hosts"):
                self.network.make()
            hosts = self.network
            with stage("Postgres primary and standby"):
                self.postgres = PostgresPair(
                    root=self.root / "postgres", on=(hosts["db1"], hosts["db2"])
                )
                self.postgres.root.mkdir()
                self.postgres.start()
            with stage("RabbitMQ cluster"):
                self.rabbitmq = RabbitCluster(
                    root=self.root / "rabbitmq", hosts=[hosts[f"rabbit{n}"] for n in (1, 2, 3)]
                )
                self.rabbitmq.root.mkdir()
                self.rabbitmq.start()
            self.apps = [
                AppHost(hosts[name], self.env(), self.root / f"{name}.log")
                for name in ("app1", "app2")
            ]
            for app in self.apps:  # one at a time: the first runs the migrations
                with stage(app.host.name.rsplit("-", 1)[-1]):
                    app.start()
            with stage("HAProxy"):
                self._start_haproxy()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_haproxy(self) -> None:
        write_errorfiles(self.root / "errors")
        config = self.root / "haproxy.cfg"
        apps = {app.host.name.rsplit("-", 1)[-1]: app.host.address for app in self.apps}
        config.write_text(haproxy_config(self.lb.address, apps, self.root / "errors"))
        log = self.root / "haproxy.log"
        self.haproxy = self.lb.start("haproxy", "-db", "-f", config, env={}, log=log)
        for api in APIS:
            wait_ready(f"{self.url(api)}/health/ready", self.haproxy, 30, log)

    def stop(self) -> None:
        if keep := os.environ.get("BED_LOGS"):  # every server's log, kept for a post-mortem
            for log in self.root.glob("**/*.log"):
                shutil.copy(log, Path(keep) / log.name)
        for app in self.apps:
            app.stop()
        if self.rabbitmq is not None:
            self.rabbitmq.stop()
        if self.postgres is not None:
            self.postgres.stop()
        self.network.remove()  # HAProxy, and whatever else was left on a host
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_bed() -> Iterator[Bed]:
    """A bed for the block, stopped after it however it ends. A SIGTERM (a CI runner that
    gives up, `timeout`) stops it at once, then interrupts as Ctrl-C does: a test runner
    interrupted may not get to its fixtures' teardown, and the hosts and servers must go."""
    bed = Bed()

    def stop_then_interrupt(signum: int, frame: object) -> None:
        bed.stop()
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop_then_interrupt)
    try:
        yield bed.start()
    finally:
        bed.stop()  # again after a SIGTERM: stopping what is stopped does nothing
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="make bed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    started = time.monotonic()
    with running_bed() as bed:
        print(f"bed up in {time.monotonic() - started:.0f} s; logs in {bed.root}")
        for api in APIS:
            print(f"  {api}: {bed.url(api)}")
        print(f"  Postgres: {bed.database('orders').conninfo()}")
        print(f"  RabbitMQ: {bed.env()['RABBITMQ_URL']}")
        print("Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
