"""og.train: the OG-LLaVA training stages on `transformers.Trainer` (DeepSpeed optional).

`run_stage(stage, model, processor, data, output_dir, ...) -> TrainResult` trains one stage
in-process; `export_run(run_dir, out_dir)` / `export_model(model, processor, out_dir)` write a
standalone model directory. The stages table is `og.train.stages.STAGES`.
"""

from og.train.export import export_model, export_run
from og.train.run import TrainResult, deepspeed_config, run_stage, training_arguments
from og.train.stages import STAGES, LoraSettings, Stage, get_stage

__all__ = ["STAGES", "LoraSettings", "Stage", "TrainResult", "deepspeed_config", "export_model", "export_run",
           "get_stage", "run_stage", "training_arguments"]
