"""Benchmarks (not tests): `make bench` measures the system side by side and writes docs."""

from __future__ import annotations

import argparse


def explain(doc: str | None, prog: str, argv: list[str] | None = None) -> None:
    """`--help` for an entry point with no options of its own: its module docstring, since
    environment variables choose the run; any other argument is refused."""
    parser = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)
