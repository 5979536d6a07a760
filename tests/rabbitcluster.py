"""A RabbitMQ cluster of the test's own: three nodes of the machine's rabbitmq-server,
joined with rabbitmqctl, each with its own data directory, removed after. The nodes run on
free loopback ports, or each on a host of its own (tests.hosts), named by its address. The
machine's broker is never joined, stopped or changed: the nodes only share its Erlang
cookie (which is how nodes may talk to each other) and, on loopback, its epmd."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.hosts import Host
from tests.support import free_port

BIN = Path("/usr/lib/rabbitmq/bin")
HOME = "/var/lib/rabbitmq"  # where the rabbitmq user keeps the Erlang cookie


# The nodes share two cores with the rest of a test: one scheduler each, and no busy waiting.
ERL_ARGS = "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none"
# Clients on other hosts sign in as guest, which RabbitMQ otherwise allows from loopback only.
CONFIG = "loopback_users = none\n"
# What rabbitmqctl needs of a node's settings to find it.
CLI_SETTINGS = ("RABBITMQ_CONF_ENV_FILE", "RABBITMQ_USE_LONGNAME")


def rabbitmq(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 120, host: Host | None = None
) -> str:
    """A RabbitMQ script as the rabbitmq user, as the Debian package runs them (on `host`)."""
    command = ["/usr/sbin/runuser", "-u", "rabbitmq", "--", "/usr/bin/env", f"HOME={HOME}",
               *(f"{k}={v}" for k, v in (env or {}).items()), *argv]  # fmt: skip
    done = subprocess.run(
        host.argv(*command) if host else command,
        capture_output=True, text=True, timeout=timeout, check=False, cwd=HOME,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class Node:
    name: str  # short name; the node is <name>@<this machine>, or <name>@<its host's address>
    root: Path
    host: Host | None = None  # None: on loopback
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd: subprocess.Popen[bytes] | None = None  # a host's own (on loopback, the machine's)

    @property
    def node(self) -> str:
        return f"{self.name}@{self.host.address if self.host else socket.gethostname()}"

    @property
    def address(self) -> str:
        return self.host.address if self.host else "127.0.0.1"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.address}:{self.port}/"

    @property
    def pid_file(self) -> Path:
        return self.root / f"{self.name}.pid"

    def env(self) -> dict[str, str]:
        host_only = {  # not the machine's rabbitmq-env.conf, which keeps a node to loopback
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_USE_LONGNAME": "true",  # named by its address
        }
        return {
            **(host_only if self.host else {}),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": self.address,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / f"{self.name}-data"),
            "RABBITMQ_LOG_BASE": str(self.root / f"{self.name}-log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "plugins"),  # none: no ports
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": ERL_ARGS,
        }

    def start(self, within: int = 90) -> None:
        """Start the node, and wait (bounded) until it runs: `rabbitmqctl wait` waits for
        the pid file a detached node writes, then for the node to be up."""
        self._start_epmd()
        rabbitmq(str(BIN / "rabbitmq-server"), "-detached", env=self.env(), host=self.host)
        self.ctl("wait", str(self.pid_file), "--timeout", str(within))

    def _start_epmd(self, within: float = 30) -> None:
        """A host's Erlang port mapper, which a node needs before it starts (and which
        outlives a node killed), once it answers."""
        if self.host is None or (self.epmd is not None and self.epmd.poll() is None):
            return
        self.epmd = self.host.start("epmd", env={}, log=self.root / f"{self.name}-epmd.log")
        deadline = time.monotonic() + within
        while subprocess.run(self.host.argv("epmd", "-names"), capture_output=True).returncode:
            if time.monotonic() > deadline or self.epmd.poll() is not None:
                raise RuntimeError(f"epmd on {self.host.name} did not start")
            time.sleep(0.05)  # a new server's port: nothing to wait on but a connect

    def ctl(self, *args: str) -> str:
        env = self.env()
        names = {key: env[key] for key in CLI_SETTINGS if key in env}
        return rabbitmq(str(BIN / "rabbitmqctl"), "-n", self.node, *args, env=names, host=self.host)

    def kill(self) -> None:
        """kill -9 of the node's Erlang VM, by the pid it wrote when it started."""
        with contextlib.suppress(ProcessLookupError):  # dead already
            os.kill(int(self.pid_file.read_text().strip()), signal.SIGKILL)
        self.pid_file.unlink()

    def stop(self) -> None:
        if self.pid_file.exists():
            try:
                self.ctl("stop")
            except (RuntimeError, subprocess.TimeoutExpired):
                self.kill()


@dataclass
class RabbitCluster:
    size: int = 3
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rabbitcluster-")))
    nodes: list[Node] = field(default_factory=list)
    hosts: list[Host] = field(default_factory=list)  # a node on each, at AMQP's own ports

    @property
    def url(self) -> str:
        """RABBITMQ_URL listing every node (servicekit.brokers)."""
        return ",".join(node.url for node in self.nodes)

    def start(self) -> RabbitCluster:
        tag = os.urandom(3).hex()
        if self.hosts:
            self.nodes = [
                Node(f"t{tag}n{n}", self.root, host, 5672, 25672)
                for n, host in enumerate(self.hosts)
            ]
        else:
            self.nodes = [Node(f"t{tag}n{n}", self.root) for n in range(self.size)]
        (self.root / "plugins").write_text("[].\n")
        (self.root / "rabbitmq.conf").write_text(CONFIG)
        (self.root / "rabbitmq-env.conf").write_text("# the settings are each node's own\n")
        for path in (self.root, *self.root.iterdir()):
            shutil.chown(path, "rabbitmq", "rabbitmq")
        with ThreadPoolExecutor(len(self.nodes)) as starting:  # each boots its own VM
            for started in [starting.submit(node.start) for node in self.nodes]:
                started.result()
        first, *others = self.nodes
        for node in others:  # one at a time: a join changes the cluster's membership
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node)
            node.ctl("start_app")
        return self

    def running(self) -> set[str]:
        """The nodes the first living node counts as running."""
        for node in self.nodes:
            try:
                status = json.loads(node.ctl("cluster_status", "--formatter", "json"))
            except (RuntimeError, ValueError):
                continue
            return set(status["running_nodes"])
        return set()

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)
