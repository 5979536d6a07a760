"""Check that the servers the system needs answer, and say how to start the ones that do not."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg

from servicekit import brokers
from servicekit.env import env_str
from servicekit.postgres import PostgresSettings
from servicekit.settings import DEFAULT_RABBITMQ_URL

START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_RABBITMQ = "rabbitmq-server -detached"


@dataclass(frozen=True)
class Finding:
    server: str
    ok: bool
    detail: str
    remedy: str = ""


def check_postgres(settings: PostgresSettings) -> Finding:
    where = f"{settings.host}:{settings.port}"
    try:
        with psycopg.connect(settings.conninfo("postgres", connect_timeout=3)) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        return Finding("PostgreSQL", True, f"{where} (server {version[0] if version else '?'})")
    except psycopg.Error as exc:
        detail = f"{where}: {str(exc).strip().splitlines()[0]}"
        return Finding("PostgreSQL", False, detail, f"start it with: {START_POSTGRES}")


def check_rabbitmq(url: str) -> Finding:
    async def probe() -> None:
        connection = await brokers.connect(url, timeout=3)
        await connection.close()

    where = ", ".join(brokers.where(node) for node in brokers.nodes(url))  # no credentials
    try:
        asyncio.run(probe())
        return Finding("RabbitMQ", True, where)
    except Exception as exc:
        return Finding("RabbitMQ", False, f"{where}: {exc}", f"start it with: {START_RABBITMQ}")


def preflight(env: Mapping[str, str] = os.environ) -> list[Finding]:
    postgres = PostgresSettings.from_env(env, dbname_var="", dbname="postgres")
    rabbitmq = env_str(env, "RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    return [check_postgres(postgres), check_rabbitmq(rabbitmq)]


def report(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        mark = "ok     " if f.ok else "MISSING"
        lines.append(f"{mark} {f.server}: {f.detail}")
        if f.remedy:
            lines.append(f"        {f.remedy}")
    return "\n".join(lines)
