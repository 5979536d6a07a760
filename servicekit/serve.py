"""Serve an ASGI app factory with granian, the fastest server measured on this machine."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from granian import Granian
from granian.constants import Interfaces, Loops

# prometheus-client's own variable. Set before any worker imports it; this module must not
# import it either, or a forked worker would inherit the single-process mode.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def serve(target: str, *, host: str, port: int, workers: int = 1) -> None:
    """Block serving `target` ("package.module:factory") until SIGINT or SIGTERM."""
    with _shared_metrics(workers):
        Granian(
            target,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            loop=Loops.uvloop,
            workers=workers,
            factory=True,
            log_access=False,
        ).serve()


@contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """With more than one worker, a directory the workers keep their metrics in, which
    `/metrics` sums (servicekit.metrics): made before they start, removed after."""
    if workers <= 1 or os.environ.get(MULTIPROCESS_DIR):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="ordersystem-metrics-") as shared:
        os.environ[MULTIPROCESS_DIR] = shared  # the workers inherit it
        try:
            yield
        finally:
            del os.environ[MULTIPROCESS_DIR]
