"""Benchmarks registered in BENCHMARKS."""
