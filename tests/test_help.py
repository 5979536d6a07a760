"""Every entry point explains itself with `--help`, and refuses an argument it does not know."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys

import pytest

from ordersystem.cli import main
from tests.support import ROOT, ordersystem


def helped(*argv: str) -> str:
    """What `ordersystem ARGV` prints before it exits, in this process: parsing imports no
    service and `--help` exits before any command runs."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit) as exited:
        main(list(argv))
    assert exited.value.code == 0
    return printed.getvalue()


SUBCOMMANDS = re.findall(r"^    ([a-z-]+)\b", helped("--help"), flags=re.MULTILINE)


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_command_line_lists_its_subcommands_in_its_help() -> None:
    shown = ordersystem("--help")  # once as an operator runs it

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == helped("--help")
    assert {"migrate", "run", "serve", "relay", "consume", "project"} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_each_subcommand_says_what_it_does(subcommand: str) -> None:
    shown = helped(subcommand, "--help")

    assert shown.startswith("usage: ")
    assert len(shown.splitlines()) >= 3  # a description beside the usage line


@pytest.mark.parametrize(
    ("module", "says"),
    [
        ("bench", "BENCH_QUICK"),
        ("bench.profile", "PROFILE_RATE"),
        ("bench.ab", "BASE"),
        ("bench.floor", "FLOOR_ORDERS"),
        ("bench.partitions", "PARTITIONS_EVENTS"),
    ],
)
def test_the_benchmarks_explain_themselves_and_start_nothing(module: str, says: str) -> None:
    shown = run("-m", module, "--help")

    assert shown.returncode == 0, shown.stderr
    assert says in shown.stdout


@pytest.mark.parametrize("module", ["bench", "bench.profile", "bench.floor", "bench.partitions"])
def test_a_benchmark_refuses_an_argument_it_does_not_know(module: str) -> None:
    refused = run("-m", module, "--bogus")

    assert refused.returncode == 2
    assert "unrecognized arguments: --bogus" in refused.stderr


@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        (("project", "orders-count"), "ORDER_PARTITIONS", "0"),
        (("relay",), "ORDER_PARTITIONS", "many"),
        (("relay",), "BATCH_INTERVAL", "soon"),
        (("rebuild", "orders-count"), "POSTGRES_PORT", "5432,x"),
    ],
)
def test_a_setting_that_cannot_be_read_is_named_without_a_traceback(
    command: tuple[str, ...], variable: str, value: str
) -> None:
    refused = ordersystem(*command, env={variable: value}, timeout=60)

    assert refused.returncode == 2
    assert variable in refused.stderr
    assert "Traceback" not in refused.stderr
