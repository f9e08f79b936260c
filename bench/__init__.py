"""Benchmarks: each script measures against an in-run baseline and reports ratios (see bench/README.md)."""
