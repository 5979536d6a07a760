"""A Postgres primary and a synchronous streaming standby of the test's own, on free
loopback ports, made with the machine's own binaries (initdb, pg_basebackup) and removed
after: what a failover test kills and promotes. The machine's Postgres is never touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.support import free_port

VERSION = sorted(os.listdir("/usr/lib/postgresql"))[-1]
BIN = Path(f"/usr/lib/postgresql/{VERSION}/bin")
# Every commit waits for the standby: only then does a promoted standby hold every commit a
# client was told about.
SETTINGS = """
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 4
hot_standby = on
synchronous_standby_names = '*'
fsync = off
"""


def as_postgres(*argv: str | Path) -> None:
    """A server binary as the postgres user (the server refuses to run as root)."""
    subprocess.run(
        ["/usr/sbin/runuser", "-u", "postgres", "--", *map(str, argv)],
        check=True,
        capture_output=True,
        timeout=120,
    )


@dataclass
class PostgresPair:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pgpair-")))
    primary_port: int = field(default_factory=free_port)
    standby_port: int = field(default_factory=free_port)

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
            "POSTGRES_HOST": "127.0.0.1,127.0.0.1",
            "POSTGRES_PORT": f"{self.primary_port},{self.standby_port}",
        }

    def start(self) -> PostgresPair:
        shutil.chown(self.root, "postgres", "postgres")
        as_postgres(BIN / "initdb", "-D", self.primary, "-A", "trust", "-U", "postgres", "-N")
        with (self.primary / "postgresql.conf").open("a") as conf:
            conf.write(
                SETTINGS + f"port = {self.primary_port}\nunix_socket_directories = '{self.root}'\n"
            )
        with (self.primary / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        self._pg_ctl(self.primary, "start")
        as_postgres(
            BIN / "pg_basebackup",
            "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
            "-D", self.standby, "-R", "-X", "stream",
        )  # fmt: skip
        with (self.standby / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"port = {self.standby_port}\n")
        self._pg_ctl(self.standby, "start")
        self.wait_for_sync()
        return self

    def wait_for_sync(self) -> None:
        """Until the standby streams synchronously: a commit on the primary returns only
        once a synchronous standby has it (the test's own timeout bounds the wait)."""
        with psycopg.connect(self.conninfo(self.primary_port), autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS replicated (at timestamptz DEFAULT now())")
            conn.execute("INSERT INTO replicated DEFAULT VALUES")

    def conninfo(self, port: int, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={port} user=postgres dbname={dbname} connect_timeout=3"

    def kill_primary(self) -> None:
        """As a crash: no checkpoint, no goodbye to the clients."""
        self._pg_ctl(self.primary, "stop", "-m", "immediate")

    def promote(self) -> None:
        """The standby becomes the primary. It has no standby of its own, so it stops
        waiting for one, as failover tooling does: else every commit would wait forever."""
        self._pg_ctl(self.standby, "promote")
        with psycopg.connect(self.conninfo(self.standby_port), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
            conn.execute("SELECT pg_reload_conf()")

    def stop(self) -> None:
        for data in (self.standby, self.primary):
            if (data / "postmaster.pid").exists():
                self._pg_ctl(data, "stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl(self, data: Path, *args: str) -> None:
        as_postgres(BIN / "pg_ctl", "-D", data, "-l", data.with_suffix(".log"), "-w", *args)
