"""A RabbitMQ cluster of the test's own: three nodes of the machine's rabbitmq-server on
free loopback ports, joined with rabbitmqctl, each with its own data directory, removed
after. The machine's broker is never joined, stopped or changed: the nodes only share its
Erlang cookie (which is how nodes of one machine may talk) and epmd."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import free_port

BIN = Path("/usr/lib/rabbitmq/bin")
HOME = "/var/lib/rabbitmq"  # where the rabbitmq user keeps the Erlang cookie


def rabbitmq(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """A RabbitMQ script as the rabbitmq user, as the Debian package runs them."""
    done = subprocess.run(
        ["/usr/sbin/runuser", "-u", "rabbitmq", "--", "/usr/bin/env", f"HOME={HOME}",
         *(f"{k}={v}" for k, v in (env or {}).items()), *argv],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=HOME,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class Node:
    name: str  # short name; the node is <name>@<host>
    root: Path
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)

    @property
    def node(self) -> str:
        return f"{self.name}@{socket.gethostname()}"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def pid_file(self) -> Path:
        return self.root / f"{self.name}.pid"

    def env(self) -> dict[str, str]:
        return {
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / f"{self.name}-data"),
            "RABBITMQ_LOG_BASE": str(self.root / f"{self.name}-log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "plugins"),  # none: no ports
            "RABBITMQ_CONFIG_FILE": str(self.root / "none"),
        }

    def start(self, within: int = 90) -> None:
        """Start the node, and wait (bounded) until it runs: `rabbitmqctl wait` waits for
        the pid file a detached node writes, then for the node to be up."""
        rabbitmq(str(BIN / "rabbitmq-server"), "-detached", env=self.env())
        self.ctl("wait", str(self.pid_file), "--timeout", str(within))

    def ctl(self, *args: str) -> str:
        return rabbitmq(str(BIN / "rabbitmqctl"), "-n", self.node, *args)

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

    @property
    def url(self) -> str:
        """RABBITMQ_URL listing every node (servicekit.brokers)."""
        return ",".join(node.url for node in self.nodes)

    def start(self) -> RabbitCluster:
        tag = os.urandom(3).hex()
        self.nodes = [Node(f"t{tag}n{n}", self.root) for n in range(self.size)]
        (self.root / "plugins").write_text("[].\n")
        shutil.chown(self.root, "rabbitmq", "rabbitmq")
        shutil.chown(self.root / "plugins", "rabbitmq", "rabbitmq")
        first, *others = self.nodes
        first.start()
        for node in others:
            node.start()
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
