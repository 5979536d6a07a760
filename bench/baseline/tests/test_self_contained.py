"""The baseline imports nothing of ours: it stands for another team's system, not our design."""

from __future__ import annotations

import ast
from pathlib import Path

OURS = frozenset(
    {"contracts", "order_service", "customer_service", "payment_service", "projections"}
    | {"servicekit", "ordersystem", "tests"}
)
BASELINE = Path(__file__).resolve().parent.parent


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_baseline_imports_nothing_of_ours() -> None:
    modules = [p for p in BASELINE.rglob("*.py") if "tests" not in p.relative_to(BASELINE).parts]
    assert modules
    for module in modules:
        ours = {n for n in imported(module) if n.split(".")[0] in OURS}
        assert not ours, f"{module.name} imports {sorted(ours)}"
