"""Every entry point explains itself with `--help`, and refuses an argument it does not know."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support import ROOT, ordersystem


def subcommands() -> list[str]:
    """The subcommands, as `ordersystem --help` lists them, one per indented line."""
    return re.findall(r"^    ([a-z-]+)\b", ordersystem("--help").stdout, flags=re.MULTILINE)


SUBCOMMANDS = subcommands()


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_command_line_lists_its_subcommands_in_its_help() -> None:
    assert ordersystem("--help").returncode == 0
    assert {"migrate", "run", "serve", "relay", "consume", "project"} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_each_subcommand_says_what_it_does(subcommand: str) -> None:
    shown = ordersystem(subcommand, "--help")

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: ")
    assert len(shown.stdout.splitlines()) >= 3  # a description beside the usage line


@pytest.mark.parametrize(
    ("module", "says"),
    [("bench", "BENCH_QUICK"), ("bench.profile", "PROFILE_RATE"), ("bench.ab", "BASE")],
)
def test_the_benchmarks_explain_themselves_and_start_nothing(module: str, says: str) -> None:
    shown = run("-m", module, "--help")

    assert shown.returncode == 0, shown.stderr
    assert says in shown.stdout


@pytest.mark.parametrize("module", ["bench", "bench.profile"])
def test_a_benchmark_refuses_an_argument_it_does_not_know(module: str) -> None:
    refused = run("-m", module, "--bogus")

    assert refused.returncode == 2
    assert "unrecognized arguments: --bogus" in refused.stderr
