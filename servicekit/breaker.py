"""A circuit breaker: after repeated failures, fail fast for a while instead of timing out."""

from __future__ import annotations

import time
from collections.abc import Callable

from servicekit import metrics

STATES = {"closed": 0, "half-open": 1, "open": 2}  # the values of its metric


class CircuitOpenError(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"circuit open, retry in {retry_after:.1f}s")
        self.retry_after = retry_after


class CircuitBreaker:
    """Closed → (threshold consecutive failures) → open → (reset_after) → half-open.

    Half-open lets calls through; the first success closes the circuit, the first failure
    opens it again for another `reset_after` seconds.
    """

    def __init__(
        self,
        *,
        threshold: int = 5,
        reset_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        name: str | None = None,  # names its metric; unnamed, it has none
    ) -> None:
        self._metric = metrics.BREAKER_STATE.labels(name) if name else None
        if self._metric is not None:
            self._metric.set(STATES["closed"])
        self.threshold = threshold
        self.reset_after = reset_after
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "open" if self._remaining() > 0 else "half-open"

    def before_call(self) -> None:
        """Raise CircuitOpenError while the circuit is open."""
        if self.opened_at is not None:
            if (remaining := self._remaining()) > 0:
                raise CircuitOpenError(remaining)
            self._show("half-open")

    def record_success(self) -> None:
        self.failures = 0
        if self.opened_at is not None:
            self.opened_at = None
            self._show("closed")

    def record_failure(self) -> None:
        self.failures += 1
        if self.opened_at is not None or self.failures >= self.threshold:
            self.opened_at = self.clock()
            self._show("open")

    def _show(self, state: str) -> None:
        if self._metric is not None:
            self._metric.set(STATES[state])

    def _remaining(self) -> float:
        assert self.opened_at is not None
        return self.opened_at + self.reset_after - self.clock()
