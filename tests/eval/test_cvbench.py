"""CV-Bench: the 2-D / 3-D jsonl files and the official formula ((ADE + COCO)/2 + Omni3D)/2."""

import json

import pytest

from og.eval.base import BenchmarkFormatError
from og.eval.benchmarks.cvbench import CVBench
from og.eval.runner import evaluate


def record(idx, source, answer="(A)", choices=("left", "right"), task="Relation"):
    kind = "3D" if source == "Omni3D" else "2D"
    prompt = "Where is it? Select from the following choices.\n" + "\n".join(
        f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
    return {"idx": idx, "type": kind, "task": task, "question": "Where is it?", "choices": list(choices),
            "answer": answer, "prompt": prompt, "filename": f"img/{kind}/{idx}.png", "source": source}


def write_cvbench(root, image_writer, records):
    root.mkdir(parents=True, exist_ok=True)
    for name, kind in (("test_2d.jsonl", "2D"), ("test_3d.jsonl", "3D")):
        rows = [r for r in records if r["type"] == kind]
        if rows:
            (root / name).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    for r in records:
        image_writer(root / r["filename"], seed=r["idx"])
    return root


RECORDS = [record(0, "ADE20K"), record(1, "ADE20K", "(B)"), record(2, "COCO", "(C)", ("1", "2", "3"), "Count"),
           record(3, "COCO"), record(4, "COCO"), record(5, "COCO"), record(6, "Omni3D", task="Depth"),
           record(7, "Omni3D", "(B)", task="Distance")]


def test_read(tmp_path, image_writer):
    items = CVBench().read(write_cvbench(tmp_path / "cv", image_writer, RECORDS))
    assert [it.id for it in items] == [str(i) for i in range(8)]
    assert items[2].options == ["1", "2", "3"] and items[2].answer == 2
    assert items[0].generate_prompt().endswith(
        "(B) right\nAnswer with the option's letter from the given choices directly.")
    assert items[6].fields == {"source": "Omni3D", "task": "Depth", "type": "3D"}


def test_official_formula(tmp_path, image_writer, scripted):
    bench = CVBench()
    items = bench.read(write_cvbench(tmp_path / "cv", image_writer, RECORDS))
    # ADE 1/2 = 50; COCO 3/4 = 75; Omni3D 1/2 = 50 -> ((50 + 75)/2 + 50)/2 = 56.25 (micro would be 5/8 = 62.5)
    script = {"0": "(A)", "1": "A", "2": "(C)", "3": "A", "4": "A", "5": "B", "6": "A", "7": "A"}
    s = evaluate(bench, items, scripted(script))["scores"]
    assert (s["ADE20K"], s["COCO"], s["Omni3D"]) == (50.0, 75.0, 50.0)
    assert s["2d"] == pytest.approx(62.5) and s["3d"] == pytest.approx(50.0)
    assert s["overall"] == pytest.approx(56.25) and s["accuracy"] == pytest.approx(62.5)
    assert s["task/2D/Count"] == 100.0


def test_missing_source_gives_no_overall(tmp_path, image_writer, scripted):
    bench = CVBench()
    items = bench.read(write_cvbench(tmp_path / "cv", image_writer, RECORDS[:2]))
    s = evaluate(bench, items, scripted({}))["scores"]
    assert s["overall"] is None and s["ADE20K"] == 0.0


def test_bad_input(tmp_path):
    (tmp_path / "test_2d.jsonl").write_text(json.dumps({"idx": 0, "prompt": "Q"}) + "\n")
    with pytest.raises(BenchmarkFormatError, match="expected columns idx, type, task, prompt, choices"):
        CVBench().read(tmp_path)
    (tmp_path / "test_2d.jsonl").write_text(json.dumps(record(0, "KITTI")) + "\n")
    with pytest.raises(BenchmarkFormatError, match="source 'KITTI' is not one of ADE20K, COCO, Omni3D"):
        CVBench().read(tmp_path)
    with pytest.raises(FileNotFoundError, match="no test_2d.jsonl"):
        (tmp_path / "empty").mkdir()
        CVBench().read(tmp_path / "empty")
