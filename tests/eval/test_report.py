"""Results files (write / read / bad input) and the printed table."""

import json

import pytest
from rich.console import Console

from og.eval.report import headline_scores, read_results, results_table, write_results

RECORD = {"model": {"name": "og", "spec": "clip:tiny+none+patches+none+mlp2x_gelu+tiny-llama"}, "mode": "generate",
          "benchmarks": {"mmvp": {"headline": ["pair_accuracy", "question_accuracy"], "n_items": 6,
                                  "missing_images": 1, "unanswered": 2,
                                  "scores": {"pair_accuracy": 100 / 3, "question_accuracy": None}}}}


def test_round_trip_and_headline(tmp_path):
    path = write_results(RECORD, tmp_path / "run")
    assert path.name == "results.json"
    assert read_results(tmp_path / "run") == read_results(path) == RECORD
    assert headline_scores(RECORD) == {"mmvp/pair_accuracy": 100 / 3, "mmvp/question_accuracy": None}


def test_table_text():
    console = Console(width=200, record=True)
    console.print(results_table(RECORD))
    text = console.export_text()
    assert "pair_accuracy" in text and "33.3" in text and "n/a" in text and "tiny-llama" in text


def test_bad_results_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.json written by `og eval`"):
        read_results(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(ValueError, match="is not JSON"):
        read_results(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"scores": {}}))
    with pytest.raises(ValueError, match="has no 'benchmarks'"):
        read_results(tmp_path / "y.json")
