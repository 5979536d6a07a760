"""Every process of ours runs its event loop on uvloop, the loop granian gives the APIs.

The profiles at everyday rates showed a large share of each worker's CPU in asyncio's own
machinery (the loop's run-once, handles, timers, the selector), per message and per wake-up;
uvloop does that work in C.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a process's main coroutine to the end on a new uvloop event loop."""
    return uvloop.run(main)
