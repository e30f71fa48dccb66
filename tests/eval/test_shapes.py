"""shapes (the quickstart's synthetic benchmark): test.jsonl, accuracy per type and overall."""

import json

import pytest

from og.eval.base import BenchmarkFormatError
from og.eval.benchmarks.shapes import Shapes
from og.eval.runner import evaluate


def write_shapes(root, image_writer, rows, missing=()):
    root.mkdir(parents=True, exist_ok=True)
    (root / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    for r in rows:
        if r["id"] not in missing:
            image_writer(root / r["image"], seed=len(r["id"]))
    return root


def row(i, kind, answer=0, options=("red", "blue")):
    return {"id": f"s{i}", "image": f"images/{i}.png", "type": kind, "question": "What colour is the square?",
            "options": list(options), "answer": answer}


ROWS = [row(0, "attribute"), row(1, "attribute", 1), row(2, "binding"), row(3, "relation", 1, ("left", "right")),
        row(4, "relation"), row(5, "order", 2, ("a", "b", "c"))]
ROWS[0]["subtype"], ROWS[1]["subtype"] = "colour", "size"


def test_scores_per_type(tmp_path, image_writer, scripted):
    bench = Shapes()
    items = bench.read(write_shapes(tmp_path / "shapes", image_writer, ROWS, missing=("s4",)))
    script = {"s0": "A", "s1": "blue", "s2": "B", "s3": "right", "s4": "A", "s5": "(c)"}
    run = evaluate(bench, items, scripted(script))
    s = run["scores"]
    assert s["attribute"] == 100.0 and s["binding"] == 0.0 and s["relation"] == 50.0 and s["order"] == 100.0
    assert s["replace"] is None and s["accuracy"] == pytest.approx(100 * 4 / 6)
    assert s["subtype/attribute/colour"] == 100.0 and s["subtype/attribute/size"] == 100.0
    assert not any(k.startswith("subtype/relation") for k in s)
    assert run["missing_images"] == 1  # s4 said "A" (right) but its image is missing: wrong


def test_bad_rows(tmp_path, image_writer):
    root = write_shapes(tmp_path / "a", image_writer, [row(0, "colour")])
    with pytest.raises(BenchmarkFormatError, match="type 'colour' is not one of attribute, binding"):
        Shapes().read(root)
    root = write_shapes(tmp_path / "b", image_writer, [row(0, "order", 5)])
    with pytest.raises(BenchmarkFormatError, match="answer 5 must index one of the 2 options"):
        Shapes().read(root)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "test.jsonl").write_text("{not json}\n")
    with pytest.raises(BenchmarkFormatError, match="test.jsonl:1: not a JSON line"):
        Shapes().read(tmp_path / "c")
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError, match="generate the data first"):
        Shapes().read(tmp_path / "d")
