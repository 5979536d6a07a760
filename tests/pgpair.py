"""A Postgres primary and a synchronous streaming standby of the test's own, on free
loopback ports or each on a host of its own (tests.hosts), made with the machine's own
binaries (initdb, pg_basebackup) and removed after: what a failover test kills and
promotes. The machine's Postgres is never touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.hosts import Host
from tests.support import free_port

VERSION = sorted(os.listdir("/usr/lib/postgresql"))[-1]
BIN = Path(f"/usr/lib/postgresql/{VERSION}/bin")
# Every commit waits for the standby: only then does a promoted standby hold every commit a
# client was told about.
SETTINGS = """
wal_level = replica
max_wal_senders = 4
hot_standby = on
synchronous_standby_names = '*'
"""


def as_postgres(*argv: str | Path, host: Host | None = None) -> None:
    """A server binary as the postgres user (the server refuses to run as root), on `host`."""
    command = ["/usr/sbin/runuser", "-u", "postgres", "--", *map(str, argv)]
    subprocess.run(
        host.argv(*command) if host else command,
        check=True,
        capture_output=True,
        timeout=120,
    )


@dataclass
class PostgresPair:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pgpair-")))
    primary_port: int = field(default_factory=free_port)
    standby_port: int = field(default_factory=free_port)
    on: tuple[Host, Host] | None = None  # the primary's host and the standby's; None: loopback
    fsync: bool = False  # a test's data need not survive the machine; a bench's costs may

    def __post_init__(self) -> None:
        if self.on:  # each on its own address, at Postgres's own port
            self.primary_port = self.standby_port = 5432

    @property
    def primary_address(self) -> str:
        return self.on[0].address if self.on else "127.0.0.1"

    @property
    def standby_address(self) -> str:
        return self.on[1].address if self.on else "127.0.0.1"

    @property
    def clients(self) -> str:
        """Whom the servers let in, replication included (trust: a test's own servers)."""
        return f"{self.on[0].address}/24" if self.on else "127.0.0.1/32"

    @property
    def primary(self) -> Path:
        return self.root / "primary"

    @property
    def standby(self) -> Path:
        return self.root / "standby"

    @property
    def hosts(self) -> dict[str, str]:
        """The settings that name both servers (servicekit.postgres)."""
        return {
            "POSTGRES_HOST": f"{self.primary_address},{self.standby_address}",
            "POSTGRES_PORT": f"{self.primary_port},{self.standby_port}",
        }

    def start(self) -> PostgresPair:
        shutil.chown(self.root, "postgres", "postgres")
        as_postgres(BIN / "initdb", "-D", self.primary, "-A", "trust", "-U", "postgres", "-N")
        with (self.primary / "postgresql.conf").open("a") as conf:
            conf.write(
                f"{SETTINGS}fsync = {'on' if self.fsync else 'off'}\n"
                f"listen_addresses = '{self.primary_address}'\n"
                f"port = {self.primary_port}\nunix_socket_directories = '{self.root}'\n"
            )
        with (self.primary / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.clients} trust\n")
            hba.write(f"host replication all {self.clients} trust\n")
        self._pg_ctl(self.primary, "start")
        as_postgres(
            BIN / "pg_basebackup",
            "-h", self.primary_address, "-p", str(self.primary_port), "-U", "postgres",
            "-D", self.standby, "-R", "-X", "stream",
            host=self.on[1] if self.on else None,
        )  # fmt: skip
        with (self.standby / "postgresql.auto.conf").open("a") as conf:
            conf.write(
                f"port = {self.standby_port}\nlisten_addresses = '{self.standby_address}'\n"
                f"unix_socket_directories = '{self.standby}'\n"
            )
        self._pg_ctl(self.standby, "start")
        self.wait_for_sync()
        return self

    def wait_for_sync(self) -> None:
        """Until the standby streams synchronously: a commit on the primary returns only
        once a synchronous standby has it (the test's own timeout bounds the wait)."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS replicated (at timestamptz DEFAULT now())")
            conn.execute("INSERT INTO replicated DEFAULT VALUES")

    def conninfo(self, *, standby: bool = False, dbname: str = "postgres") -> str:
        address, port = self.standby_address, self.standby_port
        if not standby:
            address, port = self.primary_address, self.primary_port
        return f"host={address} port={port} user=postgres dbname={dbname} connect_timeout=3"

    def kill_primary(self) -> None:
        """As a crash: no checkpoint, no goodbye to the clients."""
        self._pg_ctl(self.primary, "stop", "-m", "immediate")

    def promote(self) -> None:
        """The standby becomes the primary. It has no standby of its own, so it stops
        waiting for one, as failover tooling does: else every commit would wait forever."""
        self._pg_ctl(self.standby, "promote")
        with psycopg.connect(self.conninfo(standby=True), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
            conn.execute("SELECT pg_reload_conf()")

    def stop(self) -> None:
        for data in (self.standby, self.primary):
            if (data / "postmaster.pid").exists():
                self._pg_ctl(data, "stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl(self, data: Path, *args: str) -> None:
        host = (self.on[0] if data == self.primary else self.on[1]) if self.on else None
        log = data.with_suffix(".log")
        as_postgres(BIN / "pg_ctl", "-D", data, "-l", log, "-w", *args, host=host)
