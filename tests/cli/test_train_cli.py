"""`og train` (dry run, a short real run, TrainingArguments passthrough) and `og export`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.main import app
from cli.train import parse_overrides, resolve_spec

SPEC = "clip:tiny+none+masktoken+none+mlp2x_gelu+tiny-llama"
runner = CliRunner()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from og.data.tokenizer import train_tokenizer
    from og.train.toy import write_toy_llava

    toy = write_toy_llava(tmp_path_factory.mktemp("toy"), n_images=6, seed=3)
    train_tokenizer(toy.texts()).save_pretrained(toy.root / "tokenizer")
    return toy


def common(toy, out: Path) -> list[str]:
    return ["--spec", SPEC, "--tokenizer", str(toy.root / "tokenizer"), "--data", str(toy.instruct),
            "--image-root", str(toy.image_root), "--masks", str(toy.store), "--output", str(out)]


def test_unknown_options_are_training_arguments_with_their_types():
    got = parse_overrides(["--learning_rate", "2e-4", "--save-steps=100", "--bf16", "--max_steps", "3",
                           "--lr_scheduler_type", "linear", "--dataloader_drop_last", "false"])
    assert got == {"learning_rate": 2e-4, "save_steps": 100, "bf16": True, "max_steps": 3,
                   "lr_scheduler_type": "linear", "dataloader_drop_last": False}
    with pytest.raises(typer.BadParameter, match="unknown option --learning_rat .*--learning_rate"):
        parse_overrides(["--learning_rat", "1"])
    with pytest.raises(typer.BadParameter, match="--bf16 'maybe': use true or false"):
        parse_overrides(["--bf16", "maybe"])


def test_spec_from_preset_with_parts_and_the_llm_folder_as_variant(tmp_path):
    spec = resolve_spec(None, "og-llava-3b", tmp_path / "Llama-3.2-3B-Instruct", {"fusion": "maskpool"})
    assert spec.fusion.name == "maskpool" and spec.llm.id == "hf:llama-3.2-3b-instruct"
    assert spec.encoder.id == "clip:l336"
    with pytest.raises(typer.BadParameter, match="--spec or --preset"):
        resolve_spec(SPEC, "og-llava", None, {})


def test_dry_run_prints_spec_stages_and_token_statistics(toy, tmp_path):
    result = runner.invoke(app, ["train", "--dry-run", "--stage", "finetune", *common(toy, tmp_path / "run"),
                                 "--max-length", "30", "--max_steps", "5"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"spec {SPEC}" in out and '"masktoken"' in out
    assert "finetune (this run)" in out and "r 128 / alpha 256 / dropout 0.05" in out
    assert "visual tokens / image (mean / p95 / max)" in out and "truncated by max_length=30" in out
    assert "skipped (cannot fit in 30)" in out and "max_steps=5" in out
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written


def test_train_then_export_gives_a_loadable_model(toy, tmp_path):
    import og

    run, exported = tmp_path / "run", tmp_path / "model"
    args = ["train", "--stage", "finetune", *common(toy, run), "--lora-r", "4", "--lora-alpha", "8",
            "--max_steps", "2", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
            "--activation_checkpointing", "false", "--save_strategy", "no", "--disable_tqdm", "true"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    # r 4 on q, k, v, o, gate, up, down of 2 layers: 4 * (64+64 + 64+32 + 64+32 + 64+64 + 3 * (64+128)) * 2
    assert "lora 8,192" in result.output and "first / last loss" in result.output
    info = json.loads((run / "og_train.json").read_text())
    assert info["stage"] == "finetune" and info["lora"]["r"] == 4 and info["spec"]["id"] == SPEC
    assert (run / "trainables.safetensors").is_file() and (run / "base" / "config.json").is_file()
    result = runner.invoke(app, ["export", str(run), str(exported)])
    assert result.exit_code == 0, result.output
    model, processor = og.load(exported)
    assert model.config.model_spec.id == SPEC and not any("lora_" in n for n, _ in model.named_parameters())


def test_resume_continues_from_the_last_checkpoint_on_the_saved_random_base(toy, tmp_path):
    from safetensors.torch import load_file

    def train(out: Path, steps: int, *extra: str):
        args = ["train", "--stage", "pretrain", *common(toy, out), "--data", str(toy.captions), "--max_steps",
                str(steps), "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
                "--activation_checkpointing", "false", "--save_steps", "2", "--lr_scheduler_type", "constant",
                "--warmup_steps", "0", "--disable_tqdm", "true", *extra]
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.output

    train(tmp_path / "straight", 4)
    train(tmp_path / "split", 2)
    assert (tmp_path / "split" / "checkpoint-2" / "trainables.safetensors").is_file()
    out = train(tmp_path / "split", 4, "--resume")
    assert "steps             │ 4" in out
    a = load_file(str(tmp_path / "straight" / "trainables.safetensors"))
    b = load_file(str(tmp_path / "split" / "trainables.safetensors"))
    assert set(a) == set(b)
    for key in a:
        assert (a[key] - b[key]).abs().max() < 1e-6, key
