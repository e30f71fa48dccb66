"""`og probe`: the table of probe accuracies and the JSON report."""

import json

from typer.testing import CliRunner

from cli.main import app
from og.data.shapes import ShapesConfig, write_shapes

runner = CliRunner()


def test_probe_prints_every_target_and_writes_json(tmp_path):
    write_shapes(tmp_path / "d", 40, 4, seed=2, config=ShapesConfig(min_objects=1, max_objects=3), return_masks=False)
    result = runner.invoke(app, ["probe", str(tmp_path / "d"), "--images", "40", "--out", str(tmp_path / "p.json")],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    for target in ("shape", "color", "size", "left_right", "above_below"):
        assert target in result.output
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["images"] == 40 and set(report["mlp"]) == set(report["linear"]) == set(report["majority"])
    assert report["pool"] == "box" and "box features" in result.output


def test_probe_token_pool_and_a_bad_pool(tmp_path):
    write_shapes(tmp_path / "d", 20, 2, seed=2, config=ShapesConfig(min_objects=1, max_objects=2), return_masks=False)
    result = runner.invoke(app, ["probe", str(tmp_path / "d"), "--images", "20", "--pool", "token",
                                 "--out", str(tmp_path / "p.json")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "token features" in result.output and json.loads((tmp_path / "p.json").read_text())["pool"] == "token"
    result = runner.invoke(app, ["probe", str(tmp_path / "d"), "--images", "20", "--pool", "mean"])
    assert result.exit_code != 0 and "pool='mean' is not one of" in str(result.exception)


def test_probe_relation_adds_both_relation_rows(tmp_path):
    write_shapes(tmp_path / "d", 30, 2, seed=4, config=ShapesConfig(min_objects=2, max_objects=3), return_masks=False)
    result = runner.invoke(app, ["probe", str(tmp_path / "d"), "--images", "30", "--relation", "--relation-steps", "4",
                                 "--out", str(tmp_path / "p.json")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "relation probe" in result.output and "features + one-hot" in result.output
    relation = json.loads((tmp_path / "p.json").read_text())["relation"]
    assert set(relation) == {"features", "with_position"} and relation["with_position"]["position"]
    assert relation["features"]["steps"] == 4 and relation["features"]["pairs"] == relation["with_position"]["pairs"]
