"""ARO COCO-Order / Flickr30k-Order: built from the Karpathy test split as ARO's code does (stand-in
tagger), read from the parquet copy with embedded images, and the message when spaCy is missing."""

import io
import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from og.eval.benchmarks.aro import ARO
from og.eval.runner import evaluate, missing_images
from og.eval.word_order import pre_caption

KARPATHY = [
    {"image": "val2014/COCO_val2014_000000000042.jpg", "image_id": 42,
     "caption": ["A small brown dog catches a green frisbee in the sunny park.", "A dog in a park."]},
    {"image": "val2014/COCO_val2014_000000000073.jpg", "image_id": 73,
     "caption": ["A man rides a horse on the beach!"]},
]


def write_karpathy(root, image_writer, name="coco_karpathy_test.json"):
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(KARPATHY))
    for k, ann in enumerate(KARPATHY):
        image_writer(root / ann["image"], seed=k)
    return root


def test_built_from_the_karpathy_split_as_aro_does(tmp_path, image_writer, stand_in_tagger):
    root = write_karpathy(tmp_path / "aro", image_writer)
    bench = ARO(tagger=stand_in_tagger)
    items = bench.read(root, root)
    assert [it.id for it in items] == ["coco_order/0", "coco_order/1", "coco_order/2"]  # one item per caption
    assert [it.image_key for it in items] == [KARPATHY[0]["image"]] * 2 + [KARPATHY[1]["image"]]
    assert not missing_images(items)
    for it, caption in zip(items, [c for ann in KARPATHY for c in ann["caption"]], strict=True):
        right = it.options[it.answer]
        assert right == pre_caption(caption) and len(it.options) == 5
        assert all(sorted(o.split()) == sorted(right.split()) for o in it.options)  # shuffles of its words
    assert bench.notes["sources"] == {"coco_order": "karpathy: coco_karpathy_test.json"}
    again = ARO(tagger=stand_in_tagger).read(root, root)
    assert [it.options for it in again] == [it.options for it in items]  # seeded
    other = ARO(tagger=stand_in_tagger).read(root, root, seed=1)
    assert [it.options for it in other] != [it.options for it in items]
    flickr = write_karpathy(tmp_path / "f", image_writer, "flickr30k_test.json")
    assert {it.fields["subset"] for it in ARO(tagger=stand_in_tagger).read(flickr, flickr)} == {"flickr30k_order"}


def test_missing_spacy_is_a_clear_error(tmp_path, image_writer, monkeypatch):
    root = write_karpathy(tmp_path / "aro", image_writer)
    monkeypatch.setitem(sys.modules, "spacy", None)
    with pytest.raises(ImportError, match=r"spaCy.*python -m spacy download en_core_web_sm"):
        ARO().read(root)


def _jpeg(seed):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def write_parquet(path, column="images", named=True):
    """The common copy: one row per caption, the image bytes embedded (repeated for each caption)."""
    images = [{"bytes": _jpeg(k // 2), "path": f"COCO_val2014_{k // 2:012d}.jpg" if named else None} for k in range(4)]
    table = pa.table({column: images, "correct_caption": [f"a horse eats grass {k}" for k in range(4)],
                      **{f"hard_text_{j}": [f"grass eats a horse {k} {j}" for k in range(4)] for j in range(1, 5)}})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=3)
    return path


@pytest.mark.parametrize("named", [True, False])
def test_parquet_copy_with_embedded_images(tmp_path, scripted, named):
    root = tmp_path / "aro"
    write_parquet(root / "coco_order" / "data" / "test-00000-of-00001.parquet", named=named)
    bench = ARO()
    items = bench.read(root)
    assert len(items) == 4 and not missing_images(items)
    keys = [it.image_key for it in items]
    assert keys[0] == keys[1] != keys[2] == keys[3]  # an image repeated per caption is written once
    if named:
        assert keys[0] == "coco_order/COCO_val2014_000000000000.jpg"
    assert all(k.startswith("coco_order/") and (root / "images" / k).is_file() for k in keys)
    assert len(list((root / "images" / "coco_order").iterdir())) == 2
    with Image.open(items[2].image) as img:
        assert img.size == (32, 24)
    assert items[0].options[items[0].answer] == "a horse eats grass 0"
    run = evaluate(bench, items, scripted({it.id: "ABCDE"[it.answer] for it in items}))
    assert run["scores"]["coco_order"] == pytest.approx(100.0) and run["missing_images"] == 0
    assert [it.image for it in ARO().read(root)] == [it.image for it in items]  # read again: same files


def test_parquet_table_with_the_column_renamed(tmp_path):
    root = tmp_path / "aro"
    write_parquet(root / "flickr30k_order.parquet", column="image")
    items = ARO().read(root, tmp_path / "extracted")
    assert len(items) == 4 and not missing_images(items)
    assert items[0].image == str(tmp_path / "extracted" / "flickr30k_order" / "COCO_val2014_000000000000.jpg")
