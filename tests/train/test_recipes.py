"""Training recipes: every published value per preset family and stage, as the stage and the
`TrainingArguments` it yields see it; which preset takes which recipe; run_stage and
`og train --dry-run` use and name it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app
from og.train.recipes import RECIPES, recipe_for, recipe_for_preset, recipe_for_spec, stage_with_recipe
from og.train.run import run_stage, training_arguments
from og.train.stages import STAGES, LoraSettings

SPEC = "clip:tiny+none+masktoken+none+mlp2x_gelu+tiny-llama"
# the published scripts, written out independently of og.train.recipes:
# (batch, accumulation, lr, connector lr, warmup ratio, max_grad_norm, template, pad to square, grouped)
FIELDS = ("batch", "accumulation", "lr", "connector_lr", "warmup", "max_grad_norm", "template", "pad_to_square",
          "grouped")
PUBLISHED = {
    ("og-llava", "pretrain"): (8, 4, 1e-3, 1e-3, 0.03, 1.0, "llama3", False, False),
    ("og-llava", "finetune"): (4, 4, 1e-4, 1e-4, 0.06, 0.3, "llama3", True, True),
    ("llava-1.5", "pretrain"): (32, 1, 1e-3, 1e-3, 0.03, 1.0, "plain", False, False),
    ("llava-1.5", "finetune"): (16, 1, 2e-4, 2e-5, 0.03, 1.0, None, True, True),
}


def observed(stage, tmp_path) -> dict:
    """The values a run of `stage` trains with."""
    args = training_arguments(stage, tmp_path)
    return {"batch": args.per_device_train_batch_size, "accumulation": args.gradient_accumulation_steps,
            "lr": args.learning_rate, "connector_lr": stage.connector_lr or args.learning_rate,
            "warmup": args.warmup_steps, "max_grad_norm": args.max_grad_norm, "template": stage.template,
            "pad_to_square": stage.pad_to_square, "grouped": stage.group_by_modality_length}


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("recipe,stage", sorted(PUBLISHED))
def test_each_published_value(recipe, stage, field, tmp_path):
    got = observed(stage_with_recipe(stage, recipe), tmp_path)
    assert got[field] == pytest.approx(dict(zip(FIELDS, PUBLISHED[recipe, stage], strict=True))[field])


@pytest.mark.parametrize("recipe", ["og-llava", "llava-1.5"])
def test_common_values_of_the_published_recipes(recipe, tmp_path):
    for name in ("pretrain", "finetune"):
        stage = stage_with_recipe(name, recipe)
        args = training_arguments(stage, tmp_path)
        assert (args.num_train_epochs, args.weight_decay, args.lr_scheduler_type.value) == (1, 0.0, "cosine")
        assert stage.recipe == recipe
    assert stage_with_recipe("finetune", recipe).lora == LoraSettings(r=128, alpha=256, dropout=0.05)
    assert stage_with_recipe("encoder", recipe) == STAGES["encoder"]  # no published encoder stage


def test_the_og_recipe_is_the_stages_table():
    for name, stage in STAGES.items():
        assert RECIPES["og"].apply(stage) == stage, name


def test_presets_take_their_familys_recipe():
    from og.presets import preset

    for name, recipe in [("og-llava", "og-llava"), ("og-llava-3b", "og-llava"), ("llava-1.5", "llava-1.5"),
                         ("llava-1.5-3b", "llava-1.5"), ("tiny-og", "og"), ("tiny-llava", "og"), (None, "og")]:
        assert recipe_for_preset(name).name == recipe, name
        if name is not None:
            assert recipe_for_spec(preset(name)).name == recipe, name
    assert recipe_for_spec(preset("og-llava").replace(fusion="maskpool")).name == "og"  # no preset is that spec
    assert recipe_for(None, "og-llava-3b", None).name == "og-llava"  # the command line: --preset
    assert recipe_for(None, None, None).name == "og-llava"  # og train's default preset
    assert recipe_for(None, None, "llava-1.5").name == "llava-1.5"  # --spec naming a preset
    assert recipe_for("llava-1.5", "og-llava", None).name == "llava-1.5"  # --recipe wins
    with pytest.raises(ValueError, match="unknown training recipe 'llava'; recipes: og-llava, llava-1.5, og"):
        recipe_for("llava", None, None)


def test_run_stage_trains_with_the_recipes_template_padding_and_grouping(tiny, fast, toy, store, tmp_path):
    model, processor = tiny()
    assert processor.transform.pad_to_square  # the processor pads; og-llava's stage 1 does not
    for name in ("pretrain", "finetune"):
        run_stage(name, model, processor, [str(toy.instruct)], tmp_path / name, image_root=toy.image_root,
                  mask_store=store, recipe="og-llava", max_steps=1, per_device_train_batch_size=2, **fast)
        info = json.loads((tmp_path / name / "og_train.json").read_text())
        assert (info["recipe"], info["template"]) == ("og-llava", "llama3")
        assert info["pad_to_square"] is info["group_by_modality_length"] is (name == "finetune")
    assert processor.transform.pad_to_square  # the caller's processor is left as it was


def test_dry_run_names_the_recipe_and_its_values(toy, tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    args = ["train", "--dry-run", "--stage", "finetune", "--spec", SPEC, "--recipe", "og-llava",
            "--tokenizer", str(tmp_path / "tokenizer"), "--data", str(toy.instruct),
            "--image-root", str(toy.image_root), "--masks", str(toy.store), "--output", str(tmp_path / "run"),
            "--dry-run-samples", "4"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "recipe og-llava (the OG-LLaVA authors' training script" in result.output
    assert "batch 4 x 4 per device" in result.output and "pad to square yes" in result.output
    assert "warmup_steps=0.06" in result.output and "max_grad_norm=0.3" in result.output
