"""Fail fast while Postgres is unreachable, instead of waiting out the library's retries.

The eventsourcing library retries every recorder call ten times on an OperationalError, and
each attempt waits up to the pool's timeout for a connection. With the database down, one
read took 52 s to fail. Here the library's pool is wrapped: a call that finds the pool's
connection attempts failing (or its connection lost) closes a gate, and while it is closed
calls fail at once with DatabaseUnavailableError (which the library does not retry, and the
APIs answer with a 503). One call per `probe_every` seconds is let through to try again;
its success opens the gate. A pool that is merely busy closes nothing.

`PERSISTENCE_MODULE=servicekit.failfast:PostgresFactory` selects it
(`PostgresSettings.eventsourcing_env` does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import psycopg
from eventsourcing import postgres
from eventsourcing.utils import Environment
from psycopg_pool import PoolTimeout

SHORT_WAIT = 0.25  # seconds between looks at the pool's count of failed connection attempts


class DatabaseUnavailableError(Exception):
    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(f"database unavailable: {reason}")
        self.retry_after = retry_after


class DatabaseGate:
    """Open while connections come; closed after a failure, with one probe per interval."""

    def __init__(
        self, *, probe_every: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.probe_every = probe_every
        self.clock = clock
        self._lock = threading.Lock()
        self._reason = ""  # why it closed; "" while open
        self._next_probe = 0.0

    @property
    def is_open(self) -> bool:
        return not self._reason

    def enter(self) -> None:
        """Return when the call may go to the database; raise DatabaseUnavailableError if not."""
        with self._lock:
            if not self._reason:
                return
            now = self.clock()
            if now >= self._next_probe:  # this call is the probe; the others keep failing
                self._next_probe = now + self.probe_every
                return
            raise DatabaseUnavailableError(self._reason, self._next_probe - now)

    def failed(self, reason: str) -> None:
        with self._lock:
            if not self._reason:
                self._next_probe = self.clock() + self.probe_every
            self._reason = reason or "no connection"

    def succeeded(self) -> None:
        with self._lock:
            self._reason = ""


class GuardedPool:
    """The library's pool behind a DatabaseGate: the methods its datastore calls, no more."""

    def __init__(self, pool: Any, gate: DatabaseGate) -> None:
        self.pool = pool
        self.gate = gate

    def open(self, wait: bool = False, timeout: float = 30.0) -> None:
        self.pool.open(wait, timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.pool.close(timeout)

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Any]:
        self.gate.enter()
        conn = self._getconn(self.pool.timeout if timeout is None else timeout)
        try:
            with conn:
                yield conn
        except psycopg.OperationalError:
            if conn.broken:  # the server went away mid-call: the library's retry will fail fast
                self.gate.failed("connection lost")
            raise
        else:
            self.gate.succeeded()
        finally:
            self.pool.putconn(conn)

    def _getconn(self, timeout: float) -> Any:
        """A connection within `timeout`; DatabaseUnavailableError when none comes.

        It asks in short waits, so that a failed connection attempt (the pool counts them)
        closes the gate at once rather than after the whole timeout. A pool merely busy
        refuses this call only, and leaves the gate open.
        """
        deadline = time.monotonic() + timeout
        errors = self.pool.get_stats().get("connections_errors", 0)
        while True:
            try:
                return self.pool.getconn(min(SHORT_WAIT, max(0.0, deadline - time.monotonic())))
            except PoolTimeout as exc:
                if self.pool.get_stats().get("connections_errors", 0) > errors:
                    self.gate.failed("cannot connect")
                    raise DatabaseUnavailableError("cannot connect", self.gate.probe_every) from exc
                if time.monotonic() >= deadline:
                    raise DatabaseUnavailableError("no free connection", 1.0) from None
            except psycopg.OperationalError as exc:
                self.gate.failed(str(exc))
                raise DatabaseUnavailableError(str(exc), self.gate.probe_every) from exc

    def __enter__(self) -> GuardedPool:
        self.pool.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.pool.__exit__(exc_type, exc_val, exc_tb)


class PostgresFactory(postgres.PostgresFactory):
    """The library's Postgres persistence, with its pool behind a DatabaseGate."""

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        self.datastore.pool = GuardedPool(self.datastore.pool, DatabaseGate())  # type: ignore[assignment]
