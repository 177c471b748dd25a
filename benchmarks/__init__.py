"""Benchmarks of nextstat against pyhf (not part of the installed package)."""
