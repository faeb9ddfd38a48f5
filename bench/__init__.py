"""Benchmarks of the engine against its floor (issue #9); see bench/README.md."""
