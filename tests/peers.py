"""Stand-in servers on loopback: a scripted HTTP peer, and a TCP link a test can cut."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, Self

from tests.support import free_port


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
