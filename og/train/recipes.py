"""Training recipes as data: each stage's published hyper-parameters, per preset family.

| recipe | stage | batch x accum | lr (connector) | warmup | max_grad_norm | template | pad to square | grouped |
|---|---|---|---|---|---|---|---|---|
| `og-llava` | pretrain | 8 x 4 | 1e-3 | 0.03 | 1.0 | `llama3` | no | no |
| `og-llava` | finetune | 4 x 4 | 1e-4 (1e-4) | 0.06 | 0.3 | `llama3` | yes | yes |
| `llava-1.5` | pretrain | 32 x 1 | 1e-3 | 0.03 | 1.0 | `plain` | no | no |
| `llava-1.5` | finetune | 16 x 1 | 2e-4 (2e-5) | 0.03 | 1.0 | the model's (`vicuna_v1`) | yes | yes |
| `og` | pretrain | 8 x 4 | 1e-3 | 0.03 | 1.0 | `plain` | the processor's | no |
| `og` | finetune | 8 x 4 | 1e-4 (= lr) | 0.03 | 1.0 | the model's | the processor's | no |

Every stage of every recipe: one epoch, cosine schedule, no weight decay, LoRA r 128 / alpha
256 / dropout 0.05 in finetuning (warmup is the ratio of the steps; batch is per device).
`og-llava` is the OG-LLaVA authors' training script, `llava-1.5` LLaVA-1.5's `pretrain.sh` and
`finetune_lora.sh` (og's finetune stage trains LoRA); `og` is og's own default for models no
preset names (the tiny random ones): the table `og.train.stages.STAGES` holds it. A connector lr of
None follows the stage's lr, also when `learning_rate` is overridden (`og`: projector and LoRA at one
rate); the published recipes name theirs (LLaVA-1.5's `mm_projector_lr` 2e-5) and keep it. Presets
`og-llava*` take `og-llava`, `llava-1.5*` take `llava-1.5`, every other spec `og`.
A recipe applies to a stage given by name; a `Stage` object is used as it is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from og.train.stages import LoraSettings, Stage, get_stage


@dataclass(frozen=True)
class StageRecipe:
    """One stage's hyper-parameters; `template` / `pad_to_square` None: the model's / processor's own."""

    lr: float
    connector_lr: float | None
    batch_size: int  # per device
    accumulation: int
    warmup: float  # ratio of the training steps
    max_grad_norm: float
    template: str | None
    pad_to_square: bool | None
    group_by_modality_length: bool
    lora: LoraSettings | None = None
    epochs: float = 1.0
    weight_decay: float = 0.0
    scheduler: str = "cosine"

    def training_arguments(self) -> dict[str, Any]:
        """The `TrainingArguments` this recipe sets."""
        return {"per_device_train_batch_size": self.batch_size, "gradient_accumulation_steps": self.accumulation,
                "warmup_steps": self.warmup, "max_grad_norm": self.max_grad_norm, "num_train_epochs": self.epochs,
                "weight_decay": self.weight_decay, "lr_scheduler_type": self.scheduler}


@dataclass(frozen=True)
class Recipe:
    """A named set of stage recipes and where its values come from."""

    name: str
    source: str
    stages: dict[str, StageRecipe] = field(default_factory=dict)

    def apply(self, stage: Stage) -> Stage:
        """The stage with this recipe's values (a stage the recipe does not name stays as it is)."""
        r = self.stages.get(stage.name)
        if r is None:
            return stage
        return dataclasses.replace(stage, lr=r.lr, connector_lr=r.connector_lr, template=r.template, lora=r.lora,
                                   pad_to_square=r.pad_to_square,
                                   group_by_modality_length=r.group_by_modality_length,
                                   defaults={**stage.defaults, **r.training_arguments()}, recipe=self.name)


_LORA = LoraSettings(r=128, alpha=256, dropout=0.05)
RECIPES: dict[str, Recipe] = {
    "og-llava": Recipe("og-llava", "the OG-LLaVA authors' training script (Nulli et al. 2025)", {
        "pretrain": StageRecipe(1e-3, None, 8, 4, 0.03, 1.0, "llama3", False, False),
        "finetune": StageRecipe(1e-4, 1e-4, 4, 4, 0.06, 0.3, "llama3", True, True, _LORA),
    }),
    "llava-1.5": Recipe("llava-1.5", "LLaVA-1.5's scripts/v1_5/pretrain.sh and finetune_lora.sh (Liu et al. 2024)", {
        "pretrain": StageRecipe(1e-3, None, 32, 1, 0.03, 1.0, "plain", False, False),
        "finetune": StageRecipe(2e-4, 2e-5, 16, 1, 0.03, 1.0, None, True, True, _LORA),
    }),
    "og": Recipe("og", "og's defaults for specs no preset names (no published recipe)", {
        "pretrain": StageRecipe(1e-3, None, 8, 4, 0.03, 1.0, "plain", None, False),
        "finetune": StageRecipe(1e-4, None, 8, 4, 0.03, 1.0, None, None, False, _LORA),
    }),
}
PRESET_FAMILIES = (("og-llava", "og-llava"), ("llava-1.5", "llava-1.5"))  # preset name prefix -> recipe
DEFAULT = "og"


def get_recipe(name: str | Recipe) -> Recipe:
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise ValueError(f"unknown training recipe {name!r}; recipes: {', '.join(RECIPES)}")
    return RECIPES[name]


def recipe_for_preset(preset: str | None) -> Recipe:
    """The recipe of a preset name (`og-llava*`, `llava-1.5*`), `og` for any other."""
    name = next((r for prefix, r in PRESET_FAMILIES if preset and preset.startswith(prefix)), DEFAULT)
    return RECIPES[name]


def recipe_for_spec(spec: Any) -> Recipe:
    """The recipe of the preset whose spec this is, `og` when no preset is."""
    from og.spec import PRESETS

    return recipe_for_preset(next((name for name, s in PRESETS.items() if s == spec), None))


def stage_with_recipe(stage: str | Stage, recipe: str | Recipe | None, spec: Any = None) -> Stage:
    """A stage by name with the recipe applied (None: the spec's preset's); a `Stage` as given."""
    if isinstance(stage, Stage):
        return stage
    chosen = get_recipe(recipe) if recipe is not None else recipe_for_spec(spec)
    return chosen.apply(get_stage(stage))


def recipe_for(recipe: str | None, preset: str | None, spec: str | None) -> Recipe:
    """The command line's recipe: `--recipe`, else `--preset`'s, else `--spec`'s, else og-llava's (the
    default preset)."""
    if recipe is not None:
        return get_recipe(recipe)
    if preset is not None or spec is None:
        return recipe_for_preset(preset or "og-llava")
    from og.spec import ModelSpec

    return recipe_for_spec(ModelSpec.parse(spec, validate=False))


def describe(stage: Stage) -> str:
    """One line: the stage's recipe, its source and the values it set."""
    recipe, d = RECIPES.get(stage.recipe), stage.defaults
    pad = {None: "the processor's", True: "yes", False: "no"}[stage.pad_to_square]
    template = stage.template or "the model's"
    return (f"{stage.recipe} ({recipe.source if recipe else 'custom'}): batch {d['per_device_train_batch_size']} x "
            f"{d['gradient_accumulation_steps']} per device, lr {stage.lr:g}, warmup {d['warmup_steps']:g}, "
            f"max_grad_norm {d['max_grad_norm']:g}, template {template}, "
            f"pad to square {pad}, grouped by modality {'yes' if stage.group_by_modality_length else 'no'}")
