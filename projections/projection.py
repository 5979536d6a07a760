"""What a read model provides to the machinery: its tables, and how a batch changes them.

Every method takes a table `suffix`: the live tables have none; rebuild and verify build
copies (`_rebuild`, `_verify`) side by side through the very same code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from psycopg import AsyncCursor, sql

from projections.sequencer import Event


class Projection(Protocol):
    @property
    def name(self) -> str:
        """Its tracking row and the key of its lock."""

    @property
    def tables(self) -> Mapping[str, Sequence[str]]:
        """Each read-model table and its key columns (verify compares rows by key)."""

    def schema(self, suffix: str = "") -> sql.Composed:
        """The DDL of its tables (named with `suffix`), each created only if it does not
        exist: the schema step runs it for the live tables, a rebuild for its copies."""

    async def apply(self, cur: AsyncCursor[Any], events: Sequence[Event], suffix: str = "") -> None:
        """Apply a batch, in order; events of types it does not handle change nothing."""
