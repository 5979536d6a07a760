"""`run`: start every process of the system, restart any that dies, stop them all on Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from dataclasses import dataclass

import httpx

MAX_BACKOFF = 10.0
STOP_GRACE = 10.0


@dataclass(frozen=True)
class Process:
    name: str
    argv: tuple[str, ...]
    health_url: str | None = None


def command(*args: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "ordersystem", *args)


async def restarting(process: Process, stopping: asyncio.Event) -> None:
    """Run the process; whenever it exits before we stop, start it again after a backoff."""
    backoff = 0.5
    while not stopping.is_set():
        started = time.monotonic()
        child = await asyncio.create_subprocess_exec(*process.argv)
        waiting = asyncio.ensure_future(child.wait())
        stop = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            stop.cancel()
            await terminate(child, process.name)
            return
        stop.cancel()
        if time.monotonic() - started > 30:
            backoff = 0.5  # it ran for a good while: this is a fresh failure
        print(f"[run] {process.name} exited with {child.returncode}; restarting in {backoff:.1f}s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)


async def terminate(child: asyncio.subprocess.Process, name: str) -> None:
    if child.returncode is not None:
        return
    child.terminate()
    try:
        await asyncio.wait_for(child.wait(), STOP_GRACE)
    except TimeoutError:
        print(f"[run] {name} did not stop within {STOP_GRACE:.0f}s; killing it")
        child.kill()
        await child.wait()


async def announce_when_ready(processes: list[Process]) -> None:
    async with httpx.AsyncClient(timeout=1.0) as client:
        for process in processes:
            if process.health_url is None:
                continue
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(process.health_url)).status_code == 200:
                        break
                await asyncio.sleep(0.25)  # polling a process that offers no readiness signal
            base = process.health_url.removesuffix("/health/ready")
            print(f"[run] {process.name:<10} ready at {base}  (OpenAPI: {base}/schema)")
    print("[run] all processes ready; Ctrl-C stops them")


async def supervise(processes: list[Process]) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    ready = asyncio.ensure_future(announce_when_ready(processes))
    await asyncio.gather(*(restarting(p, stopping) for p in processes))
    ready.cancel()
    print("[run] stopped")
