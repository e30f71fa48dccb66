"""ARO: the four subsets, seeded option order, macro accuracy without symmetric relations, crops."""

import json

import numpy as np
import pytest

from og.eval.base import LETTERS, BenchmarkFormatError, Item
from og.eval.benchmarks.aro import ARO, SYMMETRIC_RELATIONS
from og.eval.mask_source import MaskSource, crop_masks
from og.eval.runner import evaluate, load_image
from og.masks.masks import Masks


def vg(image, relation=None, attributes=None, box=(2, 3, 10, 8)):
    rec = {"image_path": image, "bbox_x": box[0], "bbox_y": box[1], "bbox_w": box[2], "bbox_h": box[3],
           "true_caption": f"the {relation or attributes[0]} truth", "false_caption": "the false caption"}
    return {**rec, "relation_name": relation} if relation else {**rec, "attributes": attributes}


def write_aro(root, image_writer):
    root.mkdir(parents=True, exist_ok=True)
    relation = [vg("r0.jpg", "on"), vg("r1.jpg", "on"), vg("r2.jpg", "to the left of"), vg("r3.jpg", "next to")]
    attribution = [vg("a0.jpg", attributes=["red", "blue"]), vg("a1.jpg", attributes=["red", "blue"]),
                   vg("a2.jpg", attributes=["big", "small"])]
    order = [{"image": f"o{i}.jpg", "correct_caption": f"a horse eats grass {i}",
              **{f"hard_text_{k}": f"grass eats a horse {i} {k}" for k in range(1, 5)}} for i in range(2)]
    (root / "visual_genome_relation.json").write_text(json.dumps(relation))
    (root / "visual_genome_attribution.json").write_text(json.dumps(attribution))
    (root / "coco_order.jsonl").write_text("\n".join(json.dumps(r) for r in order))
    for rec in relation + attribution:
        image_writer(root / "images" / rec["image_path"], seed=1)
    for rec in order:
        image_writer(root / "images" / rec["image"], seed=2)
    return root


RIGHT = {"vg_relation/0", "vg_relation/2", "vg_attribution/0", "vg_attribution/1", "coco_order/0"}


def script_for(items):
    """A letter per item: right for the ids in RIGHT, the first wrong option otherwise."""
    return {it.id: LETTERS[it.answer if it.id in RIGHT else (it.answer + 1) % len(it.options)] for it in items}


def test_scores(tmp_path, image_writer, scripted):
    bench = ARO()
    items = bench.read(write_aro(tmp_path / "aro", image_writer))
    assert {it.fields["subset"] for it in items} == {"vg_relation", "vg_attribution", "coco_order"}
    assert "next to" in SYMMETRIC_RELATIONS and "on" not in SYMMETRIC_RELATIONS
    run = evaluate(bench, items, scripted(script_for(items)), batch_size=3)
    s = run["scores"]
    assert s["vg_relation"] == pytest.approx(75.0)  # on 1/2, to the left of 1/1; "next to" excluded
    assert s["vg_relation/micro"] == pytest.approx(50.0) and s["vg_relation/relations"] == 2
    assert s["vg_attribution"] is None and s["vg_attribution/pairs_kept"] == 0  # no pair has 25 items
    assert s["vg_attribution/unfiltered_macro"] == pytest.approx(50.0)  # red_blue 2/2, big_small 0/1
    assert s["vg_attribution/pairs"] == 2
    assert s["vg_attribution/micro"] == pytest.approx(200 / 3)
    assert s["coco_order"] == pytest.approx(50.0)
    assert "flickr30k_order" not in s
    assert run["notes"]["seed"] == 0 and run["notes"]["subsets_absent"] == ["flickr30k_order"]


def test_option_order_is_seeded_per_item(tmp_path, image_writer):
    root = write_aro(tmp_path / "aro", image_writer)
    a, b = ARO().read(root), ARO().read(root)
    assert [it.options for it in a] == [it.options for it in b]
    for it in a:  # the right caption is where `answer` says
        assert it.options[it.answer].startswith(("the on", "the to", "the next", "the red", "the big", "a horse"))
    order = [it for it in a if it.fields["subset"] == "coco_order"]
    assert all(len(it.options) == 5 for it in order)
    positions = {it.answer for seed in range(6) for it in ARO().read(root, seed=seed)}
    assert len(positions) >= 3  # the right answer moves around
    limited = ARO().read(root, subsets="coco_order")  # an item's order does not depend on the others
    assert [it.options for it in limited] == [it.options for it in order]


def test_crop_applies_to_image_and_masks(tmp_path, image_writer):
    items = ARO().read(write_aro(tmp_path / "aro", image_writer), subsets="vg_relation")
    image, full = load_image(items[0])
    assert full == (24, 32) and image.size == (10, 8)  # (W, H) of bbox (2, 3, 10, 8)
    data = np.zeros((1, 24, 32), bool)
    data[0, 3:11, 2:12] = True  # exactly the box

    class Store(dict):
        def get(self, key):
            return self[key]

    source = MaskSource(store=Store({"r0.jpg": Masks(data, None)}))
    cropped = crop_masks(source.get("r0.jpg", image), items[0].crop, full, "r0.jpg")
    assert cropped.size == (8, 10) and cropped.data.all()


def test_missing_and_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="visual_genome_relation"):
        ARO().read(tmp_path)
    (tmp_path / "visual_genome_relation.json").write_text(json.dumps([{"image_path": "x.jpg", "caption": "c"}]))
    with pytest.raises(BenchmarkFormatError, match="expected columns image_path, bbox_x"):
        ARO().read(tmp_path)
    with pytest.raises(FileNotFoundError, match="coco_order"):
        ARO().read(tmp_path, subsets="coco_order")
    with pytest.raises(ValueError, match="unknown subset 'vgr'"):
        ARO().read(tmp_path, subsets="vgr")


def test_vg_attribution_skips_pairs_under_25_items_as_aro_does():
    """The issue's example: 30 right items of one pair and 1 wrong item of a rare pair."""
    def item(n, pair):
        return Item(id=f"vg_attribution/{n}", image="x.jpg", question="q", options=["a", "b"], answer=0,
                    fields={"subset": "vg_attribution", "group": pair})

    items = [item(n, "red_blue") for n in range(30)] + [item(30, "furry_striped")]
    predictions = {it.id: 0 if it.fields["group"] == "red_blue" else 1 for it in items}
    s = ARO().score(items, predictions)
    assert s["vg_attribution"] == pytest.approx(100.0)  # official: the rare pair is skipped
    assert s["vg_attribution/unfiltered_macro"] == pytest.approx(50.0)
    assert s["vg_attribution/pairs_kept"] == 1 and s["vg_attribution/pairs"] == 2
    assert s["vg_attribution/micro"] == pytest.approx(100 * 30 / 31)
