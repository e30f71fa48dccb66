"""LLaVA-format reading, checking and mixing; LlavaDataset samples, labels and bad input."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from og.data.collator import IGNORE_INDEX, TrainCollator
from og.data.llava import DataFormatError, DataSource, mix, read_llava
from og.data.llava_dataset import LlavaDataset, UnreadableImage
from og.masks.masks import Masks

SPEC = "clip:tiny+none+masktoken+none+mlp2x_gelu+tiny-llama"


def rec(i, image=None, turns=(("human", "<image>\nq"), ("gpt", "a"))):
    out = {"id": f"r{i}", "conversations": [{"from": f, "value": v} for f, v in turns]}
    if image is not None:
        out["image"] = image
    return out


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from og.train.toy import write_toy_llava

    return write_toy_llava(tmp_path_factory.mktemp("toy"), n_images=6, seed=1)


@pytest.fixture(scope="module")
def processor(toy):
    import og
    from og.data.tokenizer import train_tokenizer

    return og.build(SPEC, tokenizer=train_tokenizer(toy.texts()))[1]


@pytest.fixture(scope="module")
def store(toy):
    from og.masks.store import MaskStore

    return MaskStore(toy.store)


# ---- reading and checking ---------------------------------------------------------------------
def test_reads_json_and_jsonl_with_roles_system_and_image_marker(tmp_path):
    records = [rec(0, "a.png"), rec(1, "b.png", (("system", "be brief"), ("human", "q"), ("gpt", "a"))),
               rec(2, None, (("user", "hi"), ("assistant", "yo"), ("human", "more"), ("gpt", "ok")))]
    (tmp_path / "d.json").write_text(json.dumps(records))
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    for name in ("d.json", "d.jsonl"):
        convs = read_llava(tmp_path / name)
        assert [c.id for c in convs] == ["r0", "r1", "r2"]
        assert convs[0].turns == (("user", "<image>\nq"), ("assistant", "a")) and convs[0].has_image
        assert convs[1].turns[1] == ("user", "<image>\nq")  # marker put in front of the first user turn
        assert convs[1].turns[0] == ("system", "be brief")
        assert not convs[2].has_image and [r for r, _ in convs[2].turns] == ["user", "assistant"] * 2
    assert read_llava(tmp_path / "d.jsonl")[2].source.endswith("d.jsonl:3")


def test_malformed_json_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rec(0, "a.png")) + "\n{not json\n")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:2: malformed JSON line"):
        read_llava(bad)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"id": 1,\n  oops\n]')
    with pytest.raises(DataFormatError, match=r"broken\.json:3: malformed JSON"):
        read_llava(broken)


@pytest.mark.parametrize("record, message", [
    (rec(0, "a.png", (("human", "<image>q"), ("human", "again"))), "alternate human, gpt"),
    (rec(0, "a.png", (("human", "<image>q"),)), "end with gpt"),
    (rec(0, "a.png", (("robot", "<image>q"), ("gpt", "a"))), "role 'robot'"),
    (rec(0, None, (("human", "<image>q"), ("gpt", "a"))), "marker but no 'image'"),
    (rec(0, "a.png", (("human", "<image><image>q"), ("gpt", "a"))), "2 <image> markers"),
    (rec(0, ["a.png", "b.png"]), "one path string"),
    ({"id": "x"}, "no 'conversations'"),
])
def test_bad_records_are_errors_naming_file_record_and_rule(tmp_path, record, message):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataFormatError, match=message) as err:
        read_llava(path)
    assert "d.jsonl:1" in str(err.value)


def test_mixing_takes_weight_times_n_records_deterministically(tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(rec(f"{name}{i}", "x.png")) + "\n"
                                                        for i in range(10)))
    a, b = str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")
    assert DataSource.parse(f"{a}:0.5") == DataSource(a, 0.5) and DataSource.parse(a) == DataSource(a, 1.0)
    mixed = mix([f"{a}:0.5", f"{b}:2"], seed=3)
    ids = [c.id for c, _ in mixed]
    assert len(ids) == 25 and len({i for i in ids if i.startswith("ra")}) == 5  # a random half, no repeats
    assert all(ids.count(f"rb{i}") == 2 for i in range(10))
    assert ids == [c.id for c, _ in mix([f"{a}:0.5", f"{b}:2"], seed=3)]
    assert ids != [c.id for c, _ in mix([f"{a}:0.5", f"{b}:2"], seed=4)]
    one_and_half = [c.id for c, _ in mix([DataSource(a, 1.5)])]
    assert len(one_and_half) == 15 and set(one_and_half) == {f"ra{i}" for i in range(10)}
    with pytest.raises(DataFormatError, match="weight -1"):
        DataSource(a, -1)


# ---- samples ----------------------------------------------------------------------------------
def test_labels_are_the_assistant_tokens_of_the_tokenizers_chat_template(toy, processor, store):
    ds = LlavaDataset([str(toy.instruct)], processor, template="tokenizer", image_root=toy.image_root,
                      mask_store=store)
    tok, image_id = processor.tokenizer, processor.image_token_id
    for i in range(len(ds)):
        item, (conv, _) = ds.encode(i), ds.samples[i]
        messages = [{"role": r, "content": t} for r, t in conv.turns]
        ref = tok.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        ids, labels = item["input_ids"].tolist(), item["labels"].tolist()
        n = len(item["layout"]) if item["layout"] is not None else 0
        if n:  # collapse the expanded image span back to the template's single marker
            at = ids.index(image_id)
            assert ids[at: at + n] == [image_id] * n and all(x == IGNORE_INDEX for x in labels[at: at + n])
            ids, labels = ids[: at + 1] + ids[at + n:], labels[: at + 1] + labels[at + n:]
        assert ids == ref["input_ids"]
        assert [x != IGNORE_INDEX for x in labels] == [bool(m) for m in ref["assistant_masks"]]
        assert [x for x in labels if x != IGNORE_INDEX] == [t for t, m in zip(ids, ref["assistant_masks"],
                                                                             strict=True) if m]


def test_plain_template_trains_on_the_caption_only(toy, processor, store):
    ds = LlavaDataset([str(toy.captions)], processor, template="plain", image_root=toy.image_root, mask_store=store)
    item, (conv, _) = ds.encode(0), ds.samples[0]
    target = [x for x in item["labels"].tolist() if x != IGNORE_INDEX]
    assert target == processor.tokenizer(conv.turns[1][1] + "\n", add_special_tokens=False)["input_ids"]
    assert item["min_length"] == item["labels"].tolist().index(next(x for x in item["labels"].tolist()
                                                                    if x != IGNORE_INDEX)) + 1


def test_sample_equals_the_processor_on_the_rendered_conversation(toy, processor, store):
    ds = LlavaDataset([str(toy.instruct)], processor, image_root=toy.image_root, mask_store=store)
    for i in (0, 3):
        item, (conv, _) = ds.encode(i), ds.samples[i]
        text = processor.apply_chat_template(list(conv.turns))
        image = Image.open(toy.image_root / conv.image)
        ref = processor([text], [image], masks=[store.get(conv.image)], padding_side="right")
        assert item["input_ids"].tolist() == ref["input_ids"][0].tolist()
        assert torch.equal(item["pixel_values"], ref["pixel_values"][0])
        assert len(item["layout"]) == ref["layout"].total and item["image_size"] == (image.height, image.width)


def _same_items(a, b):
    assert a["id"] == b["id"] and a["events"] == b["events"] and torch.equal(a["input_ids"], b["input_ids"])
    assert (a["pixel_values"] is None) == (b["pixel_values"] is None)
    if a["layout"] is not None:
        assert torch.equal(a["pixel_values"], b["pixel_values"])
        for name in ("kind", "patch", "mask", "segment", "row", "col", "group"):
            assert torch.equal(getattr(a["layout"], name), getattr(b["layout"], name)), name
        assert a["layout"].masks == b["layout"].masks and a["layout"].n_dropped == b["layout"].n_dropped


def test_a_batch_planned_from_the_store_in_one_pass_equals_samples_one_by_one(toy, processor, store, tmp_path):
    """__getitems__ (what a DataLoader worker calls) plans the batch's layouts from the store in
    one decode pass; every item equals __getitem__'s, with a missing key, an unreadable image and
    a repeated index in the batch."""
    (tmp_path / "images").mkdir()
    (tmp_path / "images/0000.png").write_bytes(b"not a png")  # in the store, but unreadable here
    for name in ("0001.png", "0002.png", "0003.png"):
        Image.open(toy.image_root / "images" / name).save(tmp_path / "images" / name)
    Image.open(toy.image_root / "images/0004.png").save(tmp_path / "new.png")  # not in the store
    data = write(tmp_path, [rec(0, "images/0000.png"), rec(1, "images/0001.png"), rec(2, str(tmp_path / "new.png")),
                            rec(3, "images/0002.png"), rec(4, turns=(("human", "q"), ("gpt", "a"))),
                            rec(5, "images/0003.png")])
    ds = LlavaDataset(data, processor, image_root=tmp_path, mask_store=store)
    indices = [0, 1, 2, 3, 4, 5, 3]
    batch = ds.__getitems__(indices)
    assert ds._planned == {}  # nothing kept once the batch is made
    for index, item in zip(indices, batch, strict=True):
        _same_items(item, ds[index])
    assert [item["id"] for item in batch] == ["r1", "r1", "r2", "r3", "r4", "r5", "r3"]


def test_cached_samples_are_the_same_every_epoch(toy, processor, store):
    """cache_samples makes each sample once: every epoch's items (one by one and as batches) equal an
    uncached dataset's, and changing a served item's ids does not change what is served next."""
    plain = LlavaDataset([str(toy.instruct)], processor, template="tokenizer", image_root=toy.image_root,
                         mask_store=store)
    cached = LlavaDataset([str(toy.instruct)], processor, template="tokenizer", image_root=toy.image_root,
                          mask_store=store, cache_samples=True)
    indices = list(range(len(plain)))
    for epoch in range(2):
        served = cached.__getitems__(indices) if epoch else [cached[i] for i in indices]
        for i, a in zip(indices, served, strict=True):
            b = plain[i]
            _same_items(a, b)
            assert torch.equal(a["labels"], b["labels"]) and a["min_length"] == b["min_length"]
            a["input_ids"].zero_()
            a["events"].append(("x", "y"))
    assert len(cached._cache) == len(plain) and plain._cache is None


def test_text_only_sample_has_no_image_inputs(toy, processor, store):
    ds = LlavaDataset([str(toy.instruct)], processor, image_root=toy.image_root, mask_store=store)
    index = next(i for i, (c, _) in enumerate(ds.samples) if not c.has_image)
    item = ds[index]
    assert item["pixel_values"] is None and item["layout"] is None
    assert processor.image_token_id not in item["input_ids"].tolist()
    assert ds.modality_lengths[index] < 0 < ds.modality_lengths[0]


# ---- bad input --------------------------------------------------------------------------------
def write(tmp_path, records):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return [str(path)]


def test_missing_images_are_skipped_counted_and_named(toy, processor, store, tmp_path, caplog):
    data = write(tmp_path, [rec(0, "images/0000.png"), rec(1, "images/gone.png"), rec(2, "images/0001.png")])
    with caplog.at_level(logging.WARNING):
        ds = LlavaDataset(data, processor, image_root=toy.image_root, mask_store=store)
    assert len(ds) == 2 and ds.counts["image_missing"] == 1
    assert any("skipped 1 samples" in r.getMessage() and "gone.png" in r.getMessage() for r in caplog.records)
    with pytest.raises(FileNotFoundError, match="1 images do not exist.*gone.png"):
        LlavaDataset(data, processor, image_root=toy.image_root, mask_store=store, strict=True)


def test_unreadable_image_is_replaced_by_the_next_sample_with_an_event(toy, processor, store, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images/0000.png").write_bytes(b"not a png at all")  # a key the store has
    Image.open(toy.image_root / "images/0001.png").save(tmp_path / "images/0001.png")
    data = write(tmp_path, [rec(0, "images/0000.png"), rec(1, "images/0001.png")])
    ds = LlavaDataset(data, processor, image_root=tmp_path, mask_store=store)
    item = ds[0]
    assert item["id"] == "r1"
    assert [k for k, _ in item["events"]] == ["image_unreadable"] and "0000.png" in item["events"][0][1]
    with pytest.raises(UnreadableImage, match="0000.png"):
        LlavaDataset(data, processor, image_root=tmp_path, mask_store=store, strict=True)[0]


def test_masks_missing_from_the_store_fall_back_to_one_whole_image_mask(toy, processor, store, tmp_path, caplog):
    image = Image.open(toy.image_root / "images/0002.png")
    image.save(tmp_path / "new.png")
    data = write(tmp_path, [rec(0, str(tmp_path / "new.png")), rec(1, "images/0002.png")])
    with caplog.at_level(logging.WARNING):
        ds = LlavaDataset(data, processor, image_root=toy.image_root, mask_store=store)
    assert ds.counts["masks_missing"] == 1 and any("fallback 'whole'" in r.getMessage() for r in caplog.records)
    item = ds[0]
    assert item["events"] == [("masks_missing", (tmp_path / "new.png").as_posix())]
    whole = Masks(np.ones((1, image.height, image.width), bool), np.ones(1, np.float32))
    _, expected = processor.prepare_image(image, whole)
    assert torch.equal(item["layout"].kind, expected.kind) and torch.equal(item["layout"].patch, expected.patch)
    assert len(item["layout"]) != len(ds[1]["layout"]) or not torch.equal(item["layout"].mask, ds[1]["layout"].mask)
    with pytest.raises(KeyError, match="1 images have no masks.*new.png"):
        LlavaDataset(data, processor, image_root=toy.image_root, mask_store=store, strict=True)


def test_segmenter_runs_in_the_data_workers(toy, processor):
    from og.registry import SEGMENTERS
    from og.spec import SegmenterSpec

    segmenter = SEGMENTERS.get("grid").from_spec(SegmenterSpec.parse("grid(k=2)"))
    ds = LlavaDataset([str(toy.captions)], processor, template="plain", image_root=toy.image_root,
                      segmenter=segmenter)
    collate = TrainCollator(processor.tokenizer.pad_token_id)
    serial = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate)))
    workers = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate, num_workers=2)))
    assert torch.equal(serial["input_ids"], workers["input_ids"])
    assert torch.equal(serial["layout"].segment, workers["layout"].segment)
    image = Image.open(toy.image_root / ds.samples[0][0].image)
    _, expected = processor.prepare_image(image, segmenter(image))
    assert torch.equal(serial["layout"].segment[: len(expected)], expected.segment)


def test_a_fusion_with_masks_needs_a_mask_source(toy, processor):
    with pytest.raises(ValueError, match="needs masks"):
        LlavaDataset([str(toy.captions)], processor, image_root=toy.image_root)


def test_mask_store_given_as_a_path_is_opened(tmp_path):
    """A MaskStore directory path works like the MaskStore object (no silent whole-mask fallback)."""
    import json

    import numpy as np
    from PIL import Image

    import og
    from og.data.llava_dataset import LlavaDataset
    from og.data.tokenizer import train_tokenizer
    from og.masks.masks import Masks
    from og.masks.store import MaskStore
    from og.masks.writer import MaskStoreWriter

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "a.png")
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"id": "1", "image": "a.png", "conversations": [
        {"from": "human", "value": "<image>\nwhat is it?"}, {"from": "gpt", "value": "a square"}]}]))
    with MaskStoreWriter(tmp_path / "store", "whole") as writer:
        writer.add("a.png", Masks(np.ones((1, 32, 32), bool), None))
    tok = train_tokenizer(["what is it? a square"])
    model, processor = og.build("tiny-og", tokenizer=tok, chat_template="tokenizer")
    ds = LlavaDataset([str(data)], processor, image_root=tmp_path, mask_store=str(tmp_path / "store"))
    assert isinstance(ds.mask_store, MaskStore)
    assert ds.counts["masks_missing"] == 0
