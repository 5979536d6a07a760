"""Serve an ASGI app factory with granian, the fastest server measured on this machine."""

from __future__ import annotations

import os
import tempfile

from granian import Granian
from granian.constants import Interfaces, Loops

# prometheus-client's own variable. Set before any worker imports it; this module must not
# import it either, or a forked worker would inherit the single-process mode.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def serve(target: str, *, host: str, port: int, workers: int = 1) -> None:
    """Block serving `target` ("package.module:factory") until SIGINT or SIGTERM.

    With more than one worker, each keeps its metrics in a directory of their own that
    `/metrics` sums (servicekit.metrics), made here before the workers start, removed after.
    """
    if workers > 1 and not os.environ.get(MULTIPROCESS_DIR):
        with tempfile.TemporaryDirectory(prefix="ordersystem-metrics-") as shared:
            os.environ[MULTIPROCESS_DIR] = shared  # the workers inherit it
            try:
                _serve(target, host=host, port=port, workers=workers)
            finally:
                del os.environ[MULTIPROCESS_DIR]
        return
    _serve(target, host=host, port=port, workers=workers)


def _serve(target: str, *, host: str, port: int, workers: int) -> None:
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
