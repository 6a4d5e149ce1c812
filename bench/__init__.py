"""Benchmarks, outside the product packages: `backroom bench --help` runs them (or
`python -m bench.<name> --help`). Figures and their commands: docs/benchmarks.md."""
