"""Hosts of a test's own on this machine: each a Linux network namespace with one address,
joined by veth pairs to one bridge, and no route out.

A host reaches the other hosts (one /24, a connected route) and its own loopback, nothing
else: there is no default route, and the machine's own servers listen on its loopback,
which is not the hosts'. The test process reaches the hosts through the bridge's address.
`Network.remove` kills every process left in the hosts (which are the test's own: nothing
else runs in a namespace the test made), then removes the namespaces and the bridge.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import ROOT

IP = "/usr/sbin/ip"  # Debian's iproute2


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Host:
    name: str  # the namespace
    address: str
    link: str  # its veth's end on the bridge: down cuts the host off

    def argv(self, *command: str | Path) -> list[str]:
        """A command run on the host."""
        return [IP, "netns", "exec", self.name, *map(str, command)]

    def run(
        self, *command: str | Path, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """A command on the host, to its end; its output captured, its exit code checked."""
        done = subprocess.run(
            self.argv(*command),
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(map(str, command))}: {done.stderr}")
        return done

    def start(
        self, *command: str | Path, env: Mapping[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        """A long-running command on the host, in a session of its own, its output to `log`."""
        with log.open("ab") as out:
            return subprocess.Popen(
                self.argv(*command),
                env={**os.environ, **env},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def pids(self) -> list[int]:
        """Every process running on the host."""
        return [int(pid) for pid in ip("netns", "pids", self.name, check=False).split()]

    def kill_all(self) -> int:
        """kill -9 of every process on the host, as when it loses power; how many there were."""
        found = self.pids()
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(found)

    def cut(self) -> None:
        """Off the network: what it sends is lost, nothing reaches it."""
        ip("link", "set", self.link, "down")

    def restore(self) -> None:
        ip("link", "set", self.link, "up")

    def routes(self) -> list[str]:
        """Its routing table, every table (a route out could hide in any)."""
        lines = ip("-n", self.name, "route", "show", "table", "all").splitlines()
        return [line for line in lines if line.strip()]


@dataclass
class Network:
    """Hosts named `names` on one bridge; the test reaches them at `gateway`."""

    names: Sequence[str]
    tag: str = field(default_factory=lambda: os.urandom(2).hex())
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        """10.X.Y.0/24, X.Y from the tag: two beds at once do not share a subnet."""
        x = zlib.crc32(self.tag.encode()) & 0xFFFF
        return ipaddress.IPv4Network(f"10.{100 + x % 100}.{x >> 8}.0/24")

    @property
    def bridge(self) -> str:
        return f"bed{self.tag}"

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    def make(self) -> Network:
        prefix = self.subnet.prefixlen
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/{prefix}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for number, name in enumerate(self.names, start=10):
            address = str(self.subnet.network_address + number)
            host = Host(f"bed{self.tag}-{name}", address, f"bed{self.tag}h{number}")
            ip("netns", "add", host.name)
            self.hosts[name] = host
            ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", host.name)
            ip("link", "set", host.link, "master", self.bridge, "up")
            ip("-n", host.name, "addr", "add", f"{host.address}/{prefix}", "dev", "eth0")
            ip("-n", host.name, "link", "set", "eth0", "up")
            ip("-n", host.name, "link", "set", "lo", "up")
        return self

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def remove(self) -> None:
        for host in self.hosts.values():
            host.kill_all()
            ip("netns", "del", host.name, check=False)  # its veth pair goes with it
        ip("link", "del", self.bridge, check=False)
