"""Benchmarks (not tests): `make bench` measures the system side by side and writes docs."""
