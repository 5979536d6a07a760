"""Progress for long work: a live line on a terminal, a line per tenth otherwise, a summary."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, label: str, out: TextIO = sys.stderr) -> None:
        self.label = label
        self.out = out
        self.started = time.monotonic()
        self.events = 0
        self.total: int | None = None
        self._shown = 0.0
        self._tenth = -1

    def advance(self, events: int, position: int, head: int | None) -> None:
        self.events += events
        self.total = head
        now = time.monotonic()
        share = position / head if head else 0.0
        if self.out.isatty():
            if now - self._shown >= 0.1:
                self._shown = now
                self.out.write(f"\r{self.label}: {self.events} events, {share:6.1%}   ")
        elif int(share * 10) > self._tenth:
            self._tenth = int(share * 10)
            self.out.write(f"{self.label}: {self.events} events ({share:.0%})\n")
        self.out.flush()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def summary(self, what: str) -> str:
        if self.out.isatty():
            self.out.write("\n")
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        return f"{what}: {self.events} events in {self.seconds:.2f} s ({rate:,.0f} events/s)"
