"""`audit order ID`: an order's stream as a table, or the order as it was at a moment."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from order_service.usecases import HistoryEntry
from order_service.views import OrderView


def _compact(data: dict[str, Any]) -> str:
    return json.dumps(msgspec.to_builtins(data), separators=(", ", ": "), ensure_ascii=False)


def history_table(entries: list[HistoryEntry]) -> str:
    """One row per event: what happened, when, why, and the status it left the order in."""
    header = ("version", "occurred_at", "event", "status after", "correlation_id", "data")
    rows = [
        (
            str(e.version),
            e.occurred_at.isoformat(timespec="milliseconds"),
            e.type,
            e.status,
            e.correlation_id or "-",
            _compact(e.data),
        )
        for e in entries
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])

    return "\n".join([line(header), line(tuple("-" * w for w in [*widths, 4])), *map(line, rows)])


def state_block(view: OrderView) -> str:
    """The order's fields, one per line."""
    fields = msgspec.to_builtins(view)
    width = max(map(len, fields))
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in fields.items())
