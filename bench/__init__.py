"""Benchmarks: measurements of the product, outside the product packages (`backroom bench ...`)."""
