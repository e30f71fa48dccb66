"""`og ablate`: the --vary grammar, the variant grid through the registry, and a tiny CLI run."""

import json
from pathlib import Path

import pytest
import torch
import transformers
from typer.testing import CliRunner

from cli.main import app
from og.experiments.ablate import grid, parse_vary
from og.presets import preset


def test_parse_vary():
    assert parse_vary(["fusion=masktoken,maskpool", "segmenter = oracle , slic"]) == {
        "fusion": ["masktoken", "maskpool"], "segmenter": ["oracle", "slic"]}
    assert parse_vary(["segmenter=slic(compactness=10,n_segments=12),grid(k=2)"]) == {
        "segmenter": ["slic(compactness=10,n_segments=12)", "grid(k=2)"]}
    with pytest.raises(ValueError, match="write part=value1,value2"):
        parse_vary(["fusion"])


def test_grid_is_the_product_and_segmenter_names_pick_stores():
    stores = {"oracle": Path("masks/oracle")}
    variants = grid(preset("tiny-og"), parse_vary(["fusion=masktoken,maskpool", "segmenter=oracle,grid(k=2)"]),
                    stores)
    assert [v.label for v in variants] == ["masktoken+oracle", "masktoken+grid(k=2)",
                                           "maskpool+oracle", "maskpool+grid(k=2)"]
    assert variants[0].masks == "oracle" and variants[0].spec.fusion.name == "masktoken"
    assert variants[1].masks == "grid(k=2)" and variants[1].spec.segmenter.name == "grid"
    assert variants[3].spec.fusion.name == "maskpool"
    patches = grid(preset("tiny-og"), {"fusion": ["patches"]}, stores)[0]
    assert patches.masks is None and not patches.spec.uses_masks


def test_unknown_part_is_a_clear_error():
    with pytest.raises(ValueError, match="no part 'fuson'"):
        grid(preset("tiny-og"), {"fuson": ["maskpool"]}, {})


def test_ablate_cli_runs_a_grid_and_builds_missing_stores(tmp_path):
    from og.data.shapes import read_texts, write_oracle_store, write_shapes
    from og.data.tokenizer import train_tokenizer

    data = tmp_path / "data"
    files = write_shapes(data, n_train=24, n_test=8, seed=1)
    write_oracle_store(data, tmp_path / "oracle", masks=files.masks)
    train_tokenizer(read_texts(data)).save_pretrained(tmp_path / "tok")
    out = tmp_path / "ablate"
    args = ["ablate", "--preset", "tiny-og", "--vary", "fusion=patches,masktoken",
            "--vary", "segmenter=oracle,grid(k=2)",
            "--masks", f"oracle={tmp_path / 'oracle'}", "--data", str(data), "--tokenizer", str(tmp_path / "tok"),
            "--batch-size", "8", "--out", str(out)]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "results.json").read_text())
    labels = [row["label"] for row in record["summary"]]
    assert labels == ["patches+oracle", "patches+grid(k=2)", "masktoken+oracle", "masktoken+grid(k=2)"]
    assert (out / "accuracy.png").stat().st_size > 0
    assert any(out.glob("masks/*"))  # the grid store was built over the images
    tokens = {r["label"]: r["visual_tokens"]["mean"] for r in record["runs"]}
    assert tokens["patches+oracle"] == 64  # patches ignores masks
    assert tokens["masktoken+grid(k=2)"] == 1 + 4 * (1 + 16)  # mean + 4 windows of 16 patches, each behind a bom

    # the same grid on two worker processes: the same runs, the same numbers (one thread each either way)
    parallel = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "par"), "--jobs", "2"], terminal_width=200)
    assert parallel.exit_code == 0, parallel.output
    again = json.loads((tmp_path / "par" / "results.json").read_text())
    assert [r["label"] for r in again["runs"]] == [r["label"] for r in record["runs"]]
    for a, b in zip(record["runs"], again["runs"], strict=True):
        assert a["scores"] == b["scores"] and a["losses"] == b["losses"], a["label"]


def test_stage_2_trains_lora_or_with_the_flag_the_whole_llm(tmp_path, monkeypatch):
    import og.train.run
    from og.data.shapes import read_texts, write_shapes
    from og.data.tokenizer import train_tokenizer

    data = tmp_path / "data"
    write_shapes(data, n_train=8, n_test=4, seed=2, questions_per_image=None)
    train_tokenizer(read_texts(data)).save_pretrained(tmp_path / "tok")
    made, real = [], og.train.run.training_arguments  # the arguments each stage's Trainer gets

    def recorded(stage, output_dir, deepspeed=None, **overrides):
        made.append((stage.name, args := real(stage, output_dir, deepspeed, **overrides)))
        return args

    monkeypatch.setattr(og.train.run, "training_arguments", recorded)
    trains = {}
    for name, flag in (("lora", []), ("full", ["--train-llm-stage2"]),
                       ("constant", ["--lr-scheduler2", "constant", "--max-grad-norm2", "0", "--accumulation2", "2",
                                     "--group-by-length2"])):
        out = tmp_path / name
        args = ["ablate", "--preset", "tiny-llava", "--data", str(data), "--tokenizer", str(tmp_path / "tok"),
                "--batch-size", "4", "--out", str(out), *flag]
        result = CliRunner().invoke(app, args, terminal_width=200)
        assert result.exit_code == 0, result.output
        (record,) = out.glob("runs/*/seed0/stage2/og_train.json")
        trains[name] = json.loads(record.read_text())
    assert "lora" in trains["lora"]["trains"] and trains["lora"]["lora"] is not None
    assert "llm" in trains["full"]["trains"] and "lora" not in trains["full"]["trains"]
    assert trains["full"]["lora"] is None and trains["full"]["trainable"]["llm"] > 0
    assert [trains[n]["group_by_modality_length"] for n in trains] == [False, False, True]
    assert all(t["cache_encoder_features"] for t in trains.values())  # the encoder is frozen in stage 2
    recipes = [(name, str(a.lr_scheduler_type.value), a.max_grad_norm, a.gradient_accumulation_steps)
               for name, a in made]
    assert recipes == [("pretrain", "cosine", 1.0, 1), ("finetune", "cosine", 1.0, 1)] * 2 + [
        ("pretrain", "cosine", 1.0, 1), ("finetune", "constant", 0.0, 2)]  # the flags change stage 2 only


def test_ablate_cli_without_data_names_the_missing_options(tmp_path):
    result = CliRunner().invoke(app, ["ablate", "--vary", "fusion=patches", "--out", str(tmp_path)], terminal_width=300)
    assert result.exit_code == 2
    text = " ".join(result.output.replace("│", " ").split())  # the error panel wraps at 80 columns
    assert "give --data DIR or --stage1, --stage2, --image-root, --bench-data" in text


def test_chance_levels_follow_the_option_counts():
    from og.experiments.ablate_report import chance_levels

    rows = [{"type": "order", "options": list("abcde")}, {"type": "order", "options": list("abcd")},
            {"type": "relation", "options": ["left", "right"]}]
    levels = chance_levels(rows)
    assert levels["order"] == pytest.approx((20 + 25) / 2)
    assert levels["relation"] == pytest.approx(50)
    assert levels["accuracy"] == pytest.approx((20 + 25 + 50) / 3)


def test_a_finished_run_is_reused_only_for_the_same_schedule(tmp_path):
    import dataclasses

    from og.experiments.ablate import AblationData, Schedule, Variant, run_one

    schedule = Schedule()
    run_dir = tmp_path / "runs" / "v" / "seed0"
    run_dir.mkdir(parents=True)
    done = {"label": "v", "seed": 0, "schedule": dataclasses.asdict(schedule), "scores": {}}
    (run_dir / "result.json").write_text(json.dumps(done))
    data = AblationData(stage1=[], stage2=[], image_root=tmp_path, benches={})
    variant = Variant("v", preset("tiny-llava"))
    assert run_one(variant, data, schedule, 0, run_dir) == done  # read back, nothing trained
    with pytest.raises(ValueError, match="was trained with another schedule"):
        run_one(variant, data, dataclasses.replace(schedule, stage2_epochs=9.0), 0, run_dir)
    older = {**done, "schedule": {k: v for k, v in done["schedule"].items() if k != "train_llm_stage2"}}
    (run_dir / "result.json").write_text(json.dumps(older))  # written before the field existed: its default
    assert run_one(variant, data, schedule, 0, run_dir) == older
    with pytest.raises(ValueError, match="was trained with another schedule"):
        run_one(variant, data, dataclasses.replace(schedule, train_llm_stage2=True), 0, run_dir)


def test_the_lm_warm_up_is_the_same_for_every_variant_and_shared_through_its_cache(tmp_path):
    import og
    from og.experiments.ablate import warm_up
    from og.experiments.quickstart import SIZES, variants
    from og.experiments.quickstart_data import prepare_data

    size = SIZES["fast"]
    data = prepare_data(tmp_path / "qs", size)
    common = dict(image_root=data.image_root, max_length=size.schedule.max_length, seed=3,
                  per_device_train_batch_size=size.schedule.batch_size, save_strategy="no", report_to=[],
                  disable_tqdm=True, dataloader_num_workers=0, cache_samples=True)

    def warmed(variant, cache):
        transformers.set_seed(3)
        model, processor = og.build(variant.spec, tokenizer=data.tokenizer, encoder_path=data.encoder_path,
                                    chat_template="tokenizer")
        before = {k: v.clone() for k, v in model.language_model.state_dict().items()}
        model = warm_up(model, processor, data, size.schedule, 3, cache, lambda *a: None, common)
        after = model.language_model.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in after)  # it trained
        return after

    patches, grouped = variants(True)[0], variants(True)[-1]
    assert patches.spec.fusion != grouped.spec.fusion and grouped.spec.position.name == "grouped_rope"
    a, b = warmed(patches, tmp_path / "a"), warmed(grouped, tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)  # the warm-up does not depend on the fusion
    (key_file,) = (tmp_path / "a").glob("*/seed3/key.json")
    stamp = key_file.with_name("language_model.safetensors").stat().st_mtime_ns
    c = warmed(grouped, tmp_path / "a")  # read from patches' cache, not trained again
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert key_file.with_name("language_model.safetensors").stat().st_mtime_ns == stamp
    assert len(list((tmp_path / "a").glob("*/seed3"))) == 1
