"""What a read model provides to the machinery: its tables, and how a batch changes them.

Every method takes a table `suffix`: the live tables have none; rebuild and verify build
copies (`_rebuild`, `_verify`) side by side through the very same code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from psycopg import AsyncCursor

from projections.sequencer import Event


class Projection(Protocol):
    @property
    def name(self) -> str:
        """Its tracking row and the key of its lock."""

    @property
    def tables(self) -> Mapping[str, Sequence[str]]:
        """Each read-model table and its key columns (verify compares rows by key)."""

    async def create(self, cur: AsyncCursor[Any], suffix: str = "") -> None:
        """Create its tables (with `suffix`) if they do not exist."""

    async def apply(self, cur: AsyncCursor[Any], events: Sequence[Event], suffix: str = "") -> None:
        """Apply a batch, in order; events of types it does not handle change nothing."""
