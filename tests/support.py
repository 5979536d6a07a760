"""Test support: real servers or a loud failure in CI, fresh databases, real service processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ordersystem.preflight import Finding
from servicekit.postgres import PostgresSettings, drop_database, ensure_database

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = uuid.uuid4().hex[:8]


def require(finding: Finding) -> None:
    """Skip when a server is missing on a developer's machine; in CI (CI=true) fail instead."""
    if finding.ok:
        return
    message = f"{finding.server} is not reachable ({finding.detail}); {finding.remedy}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass
class Databases:
    """Databases made for this test run, all dropped at its end."""

    made: list[PostgresSettings] = field(default_factory=list)

    def fresh(self, purpose: str) -> PostgresSettings:
        settings = PostgresSettings(dbname=f"t{RUN_ID}_{purpose}_{len(self.made)}")
        ensure_database(settings)
        self.made.append(settings)
        return settings

    def drop_all(self) -> None:
        for settings in self.made:
            drop_database(settings)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll a readiness endpoint (bounded) until it answers 200; fail if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} was not ready within {timeout}s")


@dataclass
class ServiceProcess:
    """One of our services, started as a real process on a free port."""

    service: str
    env: Mapping[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        argv = [
            sys.executable,
            "-m",
            "ordersystem",
            "serve",
            self.service,
            "--port",
            str(self.port),
        ]
        self.process = subprocess.Popen(argv, env={**os.environ, **self.env}, cwd=ROOT)
        wait_until_ready(f"{self.url}/health/ready", self.process)
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ScriptedPeer:
    """A real HTTP server on loopback whose behaviour a test sets: answer, fail, or hang.

    It stands in for a customer service that is slow or broken, which the real one cannot
    be made to be on demand. It runs its own event loop in a thread, so it answers whatever
    the test's own loop is doing.
    """

    def __init__(self) -> None:
        self.status = 200
        self.body = b'{"id":1,"customer_name":"Ada","address":"London","orders_count":0}'
        self.hang = False
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._release: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> ScriptedPeer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=5)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    async def _listen(self) -> None:
        self._release = asyncio.Event()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def _close(self) -> None:
        assert self._server is not None
        assert self._release is not None
        self._release.set()
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._release is not None
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                if self.hang:
                    await self._release.wait()
                    return
                head = f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(self.body)}\r\n"
                writer.write(head.encode() + b"Content-Type: application/json\r\n\r\n" + self.body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
