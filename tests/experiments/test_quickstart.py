"""`og quickstart --fast` end to end: data, masks, both stages per variant, evaluation, table,
results.json and the PNGs; and a killed run resumes without retraining finished variants."""

import json

import pytest
from typer.testing import CliRunner

from cli.main import app


def test_quickstart_fast_end_to_end(tmp_path, monkeypatch):
    from cli.quickstart import usable_cores

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the encoder stage then takes every core
    out = tmp_path / "qs"
    result = CliRunner().invoke(app, ["quickstart", "--fast", "--out", str(out)], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("results.json", "accuracy.png", "examples.png"):
        assert (out / name).stat().st_size > 0
    record = json.loads((out / "results.json").read_text())
    labels = [row["label"] for row in record["summary"]]
    assert labels == ["patches", "masktoken+oracle"]
    for row in record["summary"]:
        assert 0 <= row["test/accuracy"]["mean"] <= 100
        assert row["visual_tokens"] > 0
    runs = {r["label"]: r for r in record["runs"]}
    # patches: one token per patch of the tiny encoder's grid; masktoken: mean token + per mask bom + patches
    assert runs["patches"]["visual_tokens"]["max"] == 64
    assert runs["masktoken+oracle"]["visual_tokens"]["mean"] != 64
    for run in record["runs"]:
        assert run["steps"]["stage1"] > 0 and run["steps"]["stage2"] > 0
        assert all(loss == loss for loss in run["losses"]["stage2"])  # finite
    text = " ".join(result.output.split())
    assert "test accuracy" in text and "train accuracy" in text and "bind" in text
    assert ("encoder: contrastive pretraining (objects pooling over boxes, phrase loss 1, word loss 5, position loss 1)"
            " on 96 images, 20 steps (") in text and f"s on {usable_cores()} threads)" in text
    assert record["meta"]["encoder"]["threads"] == usable_cores()
    assert "one token (the object's centre patch): shape" in text  # the token probe beside the box probe
    probe = record["meta"]["encoder"]["probe"]
    assert probe["pool"] == "box" and probe["token"]["pool"] == "token"
    assert probe["token"]["objects"] == probe["objects"]  # the same objects, read from one token each

    # resume: a second call reads the finished runs back instead of training again
    mtimes = {p: p.stat().st_mtime for p in out.glob("runs/*/seed0/result.json")}
    again = CliRunner().invoke(app, ["quickstart", "--fast", "--out", str(out)], terminal_width=200)
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime for p in out.glob("runs/*/seed0/result.json")} == mtimes

    # the folder holds a --fast run: a default-size run there is refused, not mixed with it
    other = CliRunner().invoke(app, ["quickstart", "--out", str(out)], terminal_width=200)
    assert other.exit_code != 0
    assert "holds a quickstart of 'fast' size" in str(other.exception)


def test_a_folder_written_before_a_config_field_existed_is_still_the_same_run(tmp_path):
    from dataclasses import asdict, replace

    from og.experiments.quickstart import SCENES, SIZES, _claim

    size = SIZES["default"]
    identity = {"size": "default", **asdict(size), "scenes": asdict(SCENES)}  # as run_quickstart claims it
    older = json.loads(json.dumps(identity))
    del older["schedule"]["lora_r"]  # written before the field existed (the default size keeps its default)
    del older["questions_per_image"]  # a field of the size itself, too
    (tmp_path / "quickstart.json").write_text(json.dumps(older))
    _claim(tmp_path, identity)  # accepted: the added field keeps its default
    (tmp_path / "quickstart.json").write_text(json.dumps(older))
    other_rank = {**identity, "schedule": asdict(replace(size.schedule, lora_r=64))}
    with pytest.raises(ValueError, match="holds a quickstart of 'default' size"):
        _claim(tmp_path, other_rank)  # the missing field is its default, not whatever is asked now
    changed = {**older, "schedule": {**older["schedule"], "stage2_epochs": 24}}
    (tmp_path / "quickstart.json").write_text(json.dumps(changed))
    with pytest.raises(ValueError, match="holds a quickstart of 'default' size with another configuration"):
        _claim(tmp_path, identity)
