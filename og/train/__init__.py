"""og.train: the OG-LLaVA training stages on `transformers.Trainer` (DeepSpeed optional).

`run_stage(stage, model, processor, data, output_dir, ...) -> TrainResult` trains one stage
in-process; `export_run(run_dir, out_dir)` / `export_model(model, processor, out_dir)` write a
standalone model directory. The stages table is `og.train.stages.STAGES`; the published
recipes per preset family (`og-llava`, `llava-1.5`) are `og.train.recipes.RECIPES`.
"""

from og.train.export import export_model, export_run
from og.train.recipes import RECIPES, Recipe, StageRecipe, get_recipe
from og.train.run import TrainResult, deepspeed_config, leave_process_group, run_stage, training_arguments
from og.train.stages import STAGES, LoraSettings, Stage, get_stage

__all__ = ["RECIPES", "STAGES", "LoraSettings", "Recipe", "Stage", "StageRecipe", "TrainResult", "deepspeed_config",
           "export_model", "export_run", "get_recipe", "get_stage", "leave_process_group", "run_stage",
           "training_arguments"]
