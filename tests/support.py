"""Test support: real servers or a loud failure in CI, fresh databases, real service processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

import aio_pika
import httpx
import pytest

from contracts.messaging import dead_letter_names
from order_service.application import Orders
from order_service.domain import Order
from ordersystem.cli import READ_MODELS
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


def ordersystem(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`ordersystem ARGS` as an operator runs it, on this checkout: the test's environment
    plus `env`, output captured, the exit code left to the caller."""
    return subprocess.run(
        [sys.executable, "-m", "ordersystem", *args],
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


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
        # A session of its own: granian's workers are its children, and a stop that has to
        # kill must take them too, not leave one running on its own.
        self.process = subprocess.Popen(
            argv, env={**os.environ, **self.env}, cwd=ROOT, start_new_session=True
        )
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
        with contextlib.suppress(ProcessLookupError):  # none left: the usual case
            os.killpg(self.process.pid, signal.SIGKILL)  # a worker that outlived the server


class LoopbackServer:
    """A test's stand-in server on loopback, run on its own event loop in a thread, so it
    answers whatever the test's own loop is doing. Subclasses say how it listens and closes."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def _call(self, step: Coroutine[Any, Any, None]) -> None:
        """Run `step` on the server's loop and wait for it."""
        asyncio.run_coroutine_threadsafe(step, self._loop).result(timeout=5)

    async def _listen(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError


class ScriptedPeer(LoopbackServer):
    """A real HTTP server on loopback whose behaviour a test sets: answer, fail, or hang.

    It stands in for a customer service that is slow or broken, which the real one cannot
    be made to be on demand.
    """

    def __init__(self) -> None:
        super().__init__()
        self.status = 200
        self.body = b'{"id":1,"customer_name":"Ada","address":"London","orders_count":0}'
        self.hang = False
        self.requests = 0
        self.last_head = b""  # the request line and headers of the latest request
        self._server: asyncio.Server | None = None
        self._release: asyncio.Event | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

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
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                self.last_head = head
                if self.hang:
                    await self._release.wait()
                    return
                reply = f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(self.body)}\r\n"
                writer.write(reply.encode() + b"Content-Type: application/json\r\n\r\n" + self.body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class Link(LoopbackServer):
    """A TCP forwarder to a real server that a test can cut and mend, like a network outage.

    Cut, it closes every forwarded connection and refuses new ones on the same port; mended,
    it forwards again.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        super().__init__()
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def mend(self) -> None:
        self._call(self._listen())

    def cut(self) -> None:
        self._call(self._close())

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
        self._writers -= {writer, upstream_writer}


AMQP_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


@dataclass(frozen=True)
class Delivery:
    body: bytes
    message_id: str | None
    type: str | None
    content_type: str | None
    correlation_id: str | None
    persistent: bool
    position: int


@dataclass
class Topology:
    """An exchange and a queue bound to it (`order.#`), named uniquely for this test run."""

    exchange: str
    queue: str

    @classmethod
    async def declare(cls, purpose: str, *, bound: bool = True) -> Topology:
        """The exchange, and unless `bound` is False, the queue bound to it."""
        name = f"t{RUN_ID}.{purpose}.{uuid.uuid4().hex[:6]}"
        topology = cls(exchange=f"{name}.orders", queue=f"{name}.q")
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            await channel.declare_exchange(
                topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
        if bound:
            await topology.bind()
        return topology

    @classmethod
    async def declare_on(cls, exchange: str, queue: str) -> Topology:
        """A queue of the test's own, bound to an exchange someone else declares."""
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        topology = cls(exchange=exchange, queue=queue)
        await topology.bind()
        return topology

    async def bind(self) -> None:
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(self.queue, durable=True)
            await queue.bind(self.exchange, "order.#")

    async def delete(self) -> None:
        await self.delete_queues()
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            await channel.exchange_delete(self.exchange)

    async def delete_queues(self) -> None:
        """The queue, and a dead-letter exchange and queue a projector may have declared."""
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            dlx, dlq = dead_letter_names(self.queue)
            await channel.queue_delete(self.queue)
            await channel.queue_delete(dlq)
            await channel.exchange_delete(dlx)

    async def collect(
        self, until: Callable[[list[Delivery]], bool], within: float = 30.0
    ) -> list[Delivery]:
        """Consume (and ack) messages until `until(received)` holds; fail after `within` s."""
        received: list[Delivery] = []
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=500)
            queue = await channel.get_queue(self.queue)
            async with asyncio.timeout(within), queue.iterator() as messages:
                if until(received):
                    return received
                async for message in messages:
                    await message.ack()
                    received.append(delivery(message))
                    if until(received):
                        break
        return received


def delivery(message: aio_pika.abc.AbstractIncomingMessage) -> Delivery:
    return Delivery(
        body=message.body,
        message_id=message.message_id,
        type=message.type,
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        persistent=message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT,
        position=int(message.headers["position"]),  # type: ignore[arg-type]
    )


def positions(deliveries: list[Delivery]) -> list[int]:
    return [d.position for d in deliveries]


@dataclass
class Worker:
    """A worker process of ours (`ordersystem relay`, `ordersystem project ...`).

    Real processes, so a test can kill -9 them.
    """

    command: tuple[str, ...]
    env: Mapping[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        """Start the process, unless it is running already."""
        if self.process is not None and self.process.poll() is None:
            return self
        argv = [sys.executable, "-m", "ordersystem", *self.command]
        self.process = subprocess.Popen(argv, env={**os.environ, **self.env}, cwd=ROOT)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no goodbye, no cleanup
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def relay_process(env: Mapping[str, str]) -> Worker:
    return Worker(("relay",), env)


def projector_process(env: Mapping[str, str]) -> Worker:
    """A projector keeping every read model, as `ordersystem run` starts it."""
    return Worker(("project", *READ_MODELS), env)


async def eventually(
    condition: Callable[[], Awaitable[bool] | bool], within: float = 10.0, what: str = ""
) -> None:
    """Wait (bounded) for a condition that has no signal of its own to await."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if result if isinstance(result, bool) else await result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {within}s: {what or condition}")
        await asyncio.sleep(0.01)


async def rabbitmqctl(*args: str) -> None:
    """Drive the local broker (fault tests stop and start it, and always start it again)."""
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, errors = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {errors.decode()}")


async def rabbitmqctl_rows(*args: str) -> list[list[str]]:
    """The rows of a `rabbitmqctl list_...` command (no headers), each split into its columns."""
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        "--quiet",
        *args,
        "--no-table-headers",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    rows, errors = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {errors.decode()}")
    return [line.split("\t") for line in rows.decode().splitlines() if line]


async def publish_raw(
    exchange: str, body: bytes, routing_key: str, headers: dict[str, int | str] | None = None
) -> None:
    """Put a message on an exchange as anyone could: copies, garbage, strangers' events."""
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange)
        message = aio_pika.Message(
            body, headers=dict(headers or {}), content_type="application/json"
        )
        await target.publish(message, routing_key=routing_key)


async def drain(queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message waiting in a queue (acknowledged), without waiting for new ones."""
    taken = []
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        source = await channel.get_queue(queue)
        while (message := await source.get(fail=False)) is not None:
            await message.ack()
            taken.append(message)
    return taken


def fill_orders(orders: Orders, count: int) -> list[int]:
    """Store `count` orders quickly (200 per transaction, customers 1..5); every position."""
    for start in range(0, count, 200):
        batch = [
            Order.place(
                order_id=uuid.uuid4(),
                customer_id=1 + n % 5,
                product_name="load",
                quantity=1,
                price=Decimal("1.00"),
            )
            for n in range(start, min(start + 200, count))
        ]
        orders.save_orders(*batch)
    return [n.id for n in orders.recorder.select_notifications(start=1, limit=10**7)]


async def queue_exists(name: str) -> bool:
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return False
    return True


async def queue_depth(name: str) -> int:
    """Messages ready in a queue (not counting those delivered and not yet acknowledged)."""
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return queue.declaration_result.message_count or 0


async def unfinished(queue: str) -> int:
    """Messages in a queue that its consumers have not finished: those waiting, plus those
    delivered and not yet acknowledged, as the broker counts them now.

    Our consumers acknowledge a message only after its handler returned (servicekit.consumer),
    however many handlers run at once; so while they keep running, 0 here means every message
    that reached the queue before (publish_raw returns once the broker confirmed it) has been
    handled. The waiting ones come from a passive declare, exact; the delivered ones from the
    channels consuming the queue (`rabbitmqctl list_consumers`, `list_channels`), exact too,
    and read after the waiting ones, so a message delivered in between is still counted. Not
    from `rabbitmqctl list_queues`: for a quorum queue (every consumer queue of ours) its
    counts are a sample refreshed every few seconds, and show 0 for messages just published.
    """
    waiting = await queue_depth(queue)
    consumers, channels = await asyncio.gather(
        rabbitmqctl_rows("list_consumers", "queue_name", "channel_pid"),
        rabbitmqctl_rows("list_channels", "pid", "messages_unacknowledged"),
    )
    consuming = {channel for name, channel in consumers if name == queue}
    return waiting + sum(int(count) for channel, count in channels if channel in consuming)


async def pg_ctlcluster(action: str) -> None:
    """Stop or start the local Postgres cluster; "start" when it runs already does nothing
    (a fault test that stops it always starts it again, whatever happened)."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
    if action == "start":
        status = await asyncio.create_subprocess_exec(
            *command, "status", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if await status.wait() == 0:
            return
    process = await asyncio.create_subprocess_exec(
        *command, action, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, errors = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"pg_ctlcluster {action}: {errors.decode()}")
