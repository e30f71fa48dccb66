"""results.json says what the fusion did to each benchmark's images (`layouts`), each image once."""

import json

import torch

from og.eval.og_answerer import OGAnswerer
from og.eval.suite import BenchRun, run_suite


def test_results_carry_the_layout_counts_per_benchmark(tmp_path, image_writer, tiny_tokenizer):
    import og

    rows = [{"id": f"s{i}", "image": f"images/{i}.png", "type": "binding", "question": "What colour is it?",
             "options": ["red", "blue", "green"], "answer": 0} for i in range(3)]
    root = tmp_path / "shapes"
    root.mkdir()
    (root / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    for i in range(3):
        image_writer(root / f"images/{i}.png", seed=i)
    torch.manual_seed(0)
    model, processor = og.build(og.preset("tiny-llava").replace(fusion="patchpool(k=3)"), tokenizer=tiny_tokenizer())
    record = run_suite(OGAnswerer(model, processor), [BenchRun("shapes", root)], mode="likelihood", batch_size=2)
    counts = record["benchmarks"]["shapes"]["layouts"]
    assert counts["images"] == 3  # one per item, not one per option
    assert counts["tokens"] == {"mean": 9.0, "p95": 9.0, "max": 9.0} and counts["masks_dropped_pct"] == 0.0
