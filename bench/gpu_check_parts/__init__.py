"""The parts of `bench/gpu_check.py`: the model shapes and workload, one module per measured part
(training step, inference, DeepSpeed ZeRO through `og.train.run_stage`, SAM2 mask generation),
the time limits, and the report (one table + gpu_check.json)."""
