"""Comparing results: the grouped bar chart, the disagreement list and grid, the mask overlay."""

import json

import numpy as np
import pytest
from PIL import Image

from og.eval.compare import compare_chart, disagreements, examples_grid, overlay
from og.eval.suite import BenchRun, run_suite


def shapes_root(root, image_writer):
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"q{i}", "image": f"{i}.png", "type": ["attribute", "order"][i % 2], "question": f"Q{i}?",
             "options": ["red", "blue"], "answer": 0} for i in range(4)]
    (root / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    for i in range(4):
        image_writer(root / f"{i}.png", seed=i)
    return root


@pytest.fixture
def records(tmp_path, image_writer, scripted):
    root = shapes_root(tmp_path / "shapes", image_writer)
    # model a: right on q0, q1; model b: right on q0, q2; both wrong on q3 but with different outputs
    a = run_suite(scripted({"q0": "A", "q1": "A", "q2": "B", "q3": "B"}), [BenchRun("shapes", root)])
    b = run_suite(scripted({"q0": "A", "q1": "B", "q2": "A", "q3": "Both"}), [BenchRun("shapes", root)])
    return a, b


def test_disagreements_order(records):
    rows = disagreements(list(records))
    assert [(bench, preds[0]["id"]) for bench, preds in rows] == [("shapes", "q1"), ("shapes", "q2"),
                                                                  ("shapes", "q3")]
    assert [p["prediction"] for p in rows[2][1]] == [1, None]
    assert len(disagreements(list(records), limit=1)) == 1
    assert disagreements([records[0], records[0]]) == []


def test_chart_png(records, tmp_path):
    out = compare_chart(list(records), ["a", "b"], tmp_path / "charts" / "chart.png")
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > 300 and img.height > 200


def test_grid_png_with_masks(records, tmp_path):
    seen = []

    def lookup(pred, image, full):
        seen.append((pred["image_key"], image.size, full))
        mask = np.zeros((1, image.height, image.width), bool)
        mask[0, :5] = True
        return mask

    out = examples_grid(list(records), ["a", "b"], tmp_path / "grid.png", mask_lookup=lookup)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.height > img.width / 2
    assert [s[0] for s in seen] == ["1.png", "2.png", "3.png"] and seen[0][1] == (32, 24)
    with pytest.raises(ValueError, match="agree on every common item"):
        examples_grid([records[0], records[0]], ["a", "b"], tmp_path / "none.png")


def test_overlay_tints_only_masked_pixels():
    image = np.full((4, 5, 3), 100, np.uint8)
    masks = np.zeros((2, 4, 5), bool)
    masks[0, 0, 0] = masks[1, 3, 4] = True
    out = overlay(image, masks, alpha=0.5)
    assert (out[1:3] == 100).all() and not (out[0, 0] == 100).all() and not (out[3, 4] == 100).all()
    assert not np.array_equal(out[0, 0], out[3, 4])
    assert np.array_equal(overlay(image, None), image)
