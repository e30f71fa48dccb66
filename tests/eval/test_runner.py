"""The runner: results keyed by id whatever the batching, masks by image key, missing images and
masks, and batch-size invariance with a real tiny og model (left padding)."""

import json

import numpy as np
import pytest
import torch

from og.eval.benchmarks.shapes import Shapes
from og.eval.mask_source import MaskSource
from og.eval.report import missing_images_warning
from og.eval.runner import evaluate, run_items
from og.eval.suite import BenchRun, run_suite
from og.masks.masks import Masks


def shapes_data(root, image_writer, n=7):
    root.mkdir(parents=True, exist_ok=True)
    kinds = ["attribute", "binding", "relation", "replace", "order"]
    rows = [{"id": f"q{i}", "image": f"img/{i % 4}.png", "type": kinds[i % 5],
             "question": "Which colour is the shape" + "?" * (i % 3 + 1) + " really" * (7 - i),
             "options": ["red", "green", "blue"][: 2 + i % 2], "answer": i % 2} for i in range(n)]
    (root / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    for k in range(4):
        image_writer(root / "img" / f"{k}.png", seed=k, size=(20 + 4 * k, 28))
    return root


class DictStore(dict):
    def get(self, key):
        if key not in self:
            raise KeyError(f"no masks for {key!r}")
        return self[key]


def test_results_keyed_by_id_for_any_batch_size(tmp_path, image_writer, scripted):
    items = Shapes().read(shapes_data(tmp_path / "s", image_writer))
    script = {it.id: "B" if int(it.id[1:]) % 3 else "A" for it in items}
    runs = [run_items(items, scripted(script), batch_size=b) for b in (1, 2, 3, 8)]
    assert all(r == runs[0] for r in runs)
    assert {i: r["prediction"] for i, r in runs[0].items()} == {k: 1 if v == "B" else 0 for k, v in script.items()}


def test_batches_sorted_by_length_but_masks_follow_keys(tmp_path, image_writer, scripted):
    items = Shapes().read(shapes_data(tmp_path / "s", image_writer))
    # each image key gets its own number of masks at its own size; the answerer checks what it receives
    store = DictStore({f"img/{k}.png": Masks(np.ones((k + 1, 20 + 4 * k, 28), bool), None) for k in range(4)})
    answerer = scripted({}, needs_masks=True)
    run_items(items, answerer, batch_size=3, masks=MaskSource(store=store))
    posed = [q for call in answerer.calls for q in call]
    assert [q.key for q in posed] != [it.id for it in items]  # reordered by prompt length ...
    by_id = {it.id: it for it in items}
    for q in posed:  # ... yet every query carries its own image's masks
        k = int(by_id[q.key].image_key[4])
        assert len(q.masks) == k + 1 and q.masks.size == (q.image.height, q.image.width)


def test_missing_masks_and_no_source(tmp_path, image_writer, scripted):
    items = Shapes().read(shapes_data(tmp_path / "s", image_writer))
    store = DictStore({"img/0.png": Masks(np.ones((1, 20, 28), bool), None)})
    with pytest.raises(KeyError, match=r"^3 images have no masks in store \(first: 'img/1.png'\)"):
        run_items(items, scripted({}, needs_masks=True), masks=MaskSource(store=store))
    with pytest.raises(ValueError, match="the model uses masks; pass a MaskStore"):
        run_items(items, scripted({}, needs_masks=True))


def test_missing_images_are_listed_and_wrong(tmp_path, image_writer, scripted):
    root = shapes_data(tmp_path / "s", image_writer)
    (root / "img" / "2.png").unlink()
    bench = Shapes()
    items = bench.read(root)
    run = evaluate(bench, items, scripted({it.id: "AB"[it.answer] for it in items}))
    lost = [it.id for it in items if it.image_key == "img/2.png"]
    assert run["missing_image_ids"] == lost and run["missing_images"] == len(lost) == 2
    assert run["scores"]["accuracy"] == pytest.approx(100 * (len(items) - 2) / len(items))
    assert all(p["missing_image"] for p in run["predictions"] if p["id"] in lost)
    assert run["missing_images_warning"].startswith("WARNING shapes: 2 of 7 items (28.6 %) have no image")


def test_more_than_5_percent_missing_images_is_a_warning(tmp_path, image_writer, scripted):
    assert missing_images_warning("b", 1, 20) is None and missing_images_warning("b", 0, 0) is None  # 5 %: not above
    assert missing_images_warning("b", 2, 20, "rebuild img/").endswith("(10.0 %) have no image and are scored as "
                                                                       "wrong; rebuild img/")
    root = shapes_data(tmp_path / "s", image_writer, n=24)  # 6 items per image
    record = run_suite(scripted({}), [BenchRun("shapes", root)])
    assert record["warnings"] == [] and record["benchmarks"]["shapes"]["missing_images_warning"] is None
    (root / "img" / "3.png").unlink()
    record = run_suite(scripted({}), [BenchRun("shapes", root)])
    assert record["warnings"] == [record["benchmarks"]["shapes"]["missing_images_warning"]]
    assert record["warnings"][0].startswith("WARNING shapes: 6 of 24 items (25.0 %)")


def test_suite_record(tmp_path, image_writer, scripted):
    root = shapes_data(tmp_path / "s", image_writer)
    record = run_suite(scripted({}), [BenchRun("shapes", root)], mode="likelihood", limit=3)
    run = record["benchmarks"]["shapes"]
    assert record["mode"] == "likelihood" and record["limit"] == 3 and run["n_items"] == 3
    data_file = str(root / "test.jsonl")
    assert list(run["data_files"]) == [data_file] and len(run["data_files"][data_file]) == 64
    assert record["model"] == {"name": "scripted"} and record["masks"] is None
    json.dumps(record)  # serialisable
    with pytest.raises(ValueError, match="answer mode 'beam'"):
        run_suite(scripted({}), [BenchRun("shapes", root)], mode="beam")


# ---- the real tiny og model -------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["tiny-llava", "tiny-og"])
def test_batch_size_invariance_with_tiny_og_model(tmp_path, image_writer, tiny_tokenizer, preset):
    import og
    from og.eval.og_answerer import OGAnswerer
    from og.eval.suite import mask_source_for

    torch.manual_seed(0)
    model, processor = og.build(preset, tokenizer=tiny_tokenizer())
    answerer = OGAnswerer(model, processor)
    masks = mask_source_for(answerer)
    assert (masks is None) == (preset == "tiny-llava")
    bench = Shapes()
    items = bench.read(shapes_data(tmp_path / "s", image_writer, n=5))
    for mode in ("generate", "likelihood"):
        one = run_items(items, answerer, mode, batch_size=1, masks=masks, max_new_tokens=4)
        many = run_items(items, answerer, mode, batch_size=4, masks=masks, max_new_tokens=4)
        assert {k: r["prediction"] for k, r in one.items()} == {k: r["prediction"] for k, r in many.items()}
        if mode == "generate":
            assert {k: r["output"] for k, r in one.items()} == {k: r["output"] for k, r in many.items()}
        else:
            for k in one:
                np.testing.assert_allclose(one[k]["scores"], many[k]["scores"], rtol=1e-4, atol=1e-4)
