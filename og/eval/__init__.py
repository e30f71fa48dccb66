"""og.eval: benchmark readers with their official scoring, answering (generate / likelihood), the
batched runner, reports (tables, charts, example grids) and the lmms-eval adapter.

`BENCHMARKS.get("mmvp")()` is a `Benchmark`; `og.eval.suite.run_suite(answerer, [BenchRun(...)])`
poses its items through an `Answerer` (`og.eval.og_answerer.OGAnswerer` for og models) and
scores them; `og.eval.report.write_results` stores the record `og eval compare` reads.
"""
