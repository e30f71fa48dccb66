"""Benchmarks registered in BENCHMARKS: one module each, read from local files, scored officially."""

from og.eval.benchmarks import aro, conme, cvbench, mmvp, shapes, sugarcrepe  # noqa: F401
