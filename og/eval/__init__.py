"""og.eval: benchmark readers with their official scoring, answering (generate / likelihood), the
batched runner, reports (tables, charts, example grids) and the lmms-eval adapter.

`BENCHMARKS.get("mmvp")()` is a `Benchmark`; `run_benchmark` poses its items through an `Answerer`.
"""
