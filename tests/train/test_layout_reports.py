"""What the fusion did to the images (masks dropped / empty, patches in no token, tokens per image)
is reported by training (a log line, TrainResult and og_train.json) and by `og train --dry-run`."""

from __future__ import annotations

import json
import logging

from typer.testing import CliRunner

BUDGET_SPEC = "clip:tiny+none+masktoken(max_tokens=6)+none+mlp2x_gelu+tiny-llama"


def test_training_logs_and_saves_the_layout_counts(tiny, fast, toy, store, tmp_path, caplog):
    from og.train.run import run_stage

    model, processor = tiny(BUDGET_SPEC)
    with caplog.at_level(logging.INFO, logger="og.train.run"):
        result = run_stage("pretrain", model, processor, [str(toy.captions)], tmp_path / "s1",
                           image_root=toy.image_root, mask_store=store, max_steps=2, per_device_train_batch_size=2,
                           **fast)
    s = result.layouts
    assert s["images"] == 4 and s["masks"] > 0 and s["masks_over_budget"] > 0 and s["tokens"]["max"] <= 6
    assert s["masks_dropped_pct"] == round(100 * (s["masks_empty"] + s["masks_over_budget"]) / s["masks"], 2)
    assert s["patches_uncovered_mean"] > 0
    assert json.loads((tmp_path / "s1" / "og_train.json").read_text())["layouts"] == s
    assert any("fusion layouts over 4 images" in r.getMessage() and "over the budget" in r.getMessage()
               for r in caplog.records)


def test_dry_run_reports_percent_of_masks_dropped(toy, tokenizer, tmp_path):
    from cli.main import app

    tokenizer.save_pretrained(tmp_path / "tok")
    args = ["train", "--dry-run", "--stage", "pretrain", "--spec", BUDGET_SPEC, "--tokenizer", str(tmp_path / "tok"),
            "--data", str(toy.captions), "--image-root", str(toy.image_root), "--masks", str(toy.store),
            "--output", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "masks dropped (% of masks given)" in x)
    assert "% of" in line and "over the budget" in line
    assert "patches in no token / image (mean)" in result.output
    assert "visual tokens / image (mean / p95 / max)" in result.output
