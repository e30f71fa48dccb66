"""TrainCollator: right padding, packed layouts, truncation of the last turn only, skips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from og.data.collator import IGNORE_INDEX, TrainCollator, fit_length
from og.data.llava_dataset import LlavaDataset
from og.fusion.layout import PackedLayout

SPEC = "clip:tiny+none+masktoken+none+mlp2x_gelu+tiny-llama"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import og
    from og.data.tokenizer import train_tokenizer
    from og.masks.store import MaskStore
    from og.train.toy import write_toy_llava

    toy = write_toy_llava(tmp_path_factory.mktemp("toy"), n_images=6, seed=2)
    torch.manual_seed(0)
    model, processor = og.build(SPEC, tokenizer=train_tokenizer(toy.texts()))
    ds = LlavaDataset([str(toy.instruct)], processor, image_root=toy.image_root, mask_store=MaskStore(toy.store))
    return model.eval(), processor, ds


def test_pads_on_the_right_and_packs_the_layouts_of_the_image_samples(setup):
    model, processor, ds = setup
    toy_root = ds.image_root
    items = [ds[i] for i in range(len(ds))]  # six image samples, then two text-only
    batch = TrainCollator(processor.tokenizer.pad_token_id)(items)
    lengths = [len(it["input_ids"]) for it in items]
    assert batch["input_ids"].shape == (len(items), max(lengths))
    for i, (it, n) in enumerate(zip(items, lengths, strict=True)):
        assert torch.equal(batch["input_ids"][i, :n], it["input_ids"])
        assert torch.equal(batch["labels"][i, :n], it["labels"])
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (max(lengths) - n)
        assert (batch["input_ids"][i, n:] == processor.tokenizer.pad_token_id).all()
        assert (batch["labels"][i, n:] == IGNORE_INDEX).all()
    with_image = [it for it in items if it["layout"] is not None]
    assert len(with_image) == 6 and batch["pixel_values"].shape[0] == 6
    assert torch.equal(batch["pixel_values"], torch.stack([it["pixel_values"] for it in with_image]))
    ref = PackedLayout.pack([it["layout"] for it in with_image])
    assert torch.equal(batch["layout"].segment, ref.segment) and torch.equal(batch["layout"].lengths, ref.lengths)
    assert int((batch["input_ids"] == processor.image_token_id).sum()) == batch["layout"].total
    assert batch["image_keys"] == [str(toy_root / ds.samples[i][0].image) for i in range(6)]  # the images' paths
    assert all(Path(key).is_file() for key in batch["image_keys"])


def test_right_padding_leaves_each_samples_logits_unchanged(setup):
    model, processor, ds = setup
    collate = TrainCollator(processor.tokenizer.pad_token_id)
    items = [ds[0], ds[1], ds[len(ds) - 1]]  # two images of different token counts and a text-only sample
    events = collate(items).pop("og_events")
    assert events == []
    with torch.no_grad():
        batched = model(**{k: v for k, v in collate(items).items() if k != "og_events"}).logits
        for i, it in enumerate(items):
            alone = collate([it])
            alone.pop("og_events")
            n = len(it["input_ids"])
            torch.testing.assert_close(batched[i, :n], model(**alone).logits[0], rtol=1e-4, atol=1e-5)


def test_long_samples_lose_the_end_of_their_last_turn_only(setup):
    _, processor, ds = setup
    item = ds.encode(0)
    n, keep = len(item["input_ids"]), item["min_length"]
    assert keep < n
    cut, event = fit_length(item, keep)
    assert event[0] == "truncated" and torch.equal(cut["input_ids"], item["input_ids"][:keep])
    assert torch.equal(cut["labels"], item["labels"][:keep]) and cut["labels"][-1] != IGNORE_INDEX
    assert int((cut["input_ids"] == processor.image_token_id).sum()) == len(item["layout"])  # image intact
    skipped, event = fit_length(item, keep - 1)
    assert skipped is None and event[0] == "skipped_too_long" and f"needs >= {keep}" in event[1]
    assert fit_length(item, n) == (item, None)


def test_collator_counts_truncated_and_skipped_samples_and_refuses_an_empty_batch(setup):
    _, processor, ds = setup
    items = [ds.encode(i) for i in range(3)]
    limit = sorted(it["min_length"] for it in items)[1]  # one sample cannot fit, the others are cut or fit
    batch = TrainCollator(processor.tokenizer.pad_token_id, max_length=limit)(items)
    kinds = [k for k, _ in batch["og_events"]]
    assert kinds.count("skipped_too_long") == sum(it["min_length"] > limit for it in items) == 1
    assert kinds.count("truncated") == sum(it["min_length"] <= limit < len(it["input_ids"]) for it in items)
    assert batch["input_ids"].shape == (2, limit) and batch["pixel_values"].shape[0] == 2
    with pytest.raises(ValueError, match="every sample of this batch is longer than max_length=3"):
        TrainCollator(processor.tokenizer.pad_token_id, max_length=3)(items)


def test_dataset_replaces_a_sample_that_cannot_fit(setup):
    _, processor, ds = setup
    short = min(range(len(ds)), key=lambda i: ds.encode(i)["min_length"])
    limit = ds.encode(short)["min_length"]
    ds.max_length = limit
    try:
        long_index = next(i for i in range(len(ds)) if ds.encode(i)["min_length"] > limit)
        item = ds[long_index]
        assert item["id"] != ds.samples[long_index][0].id and len(item["input_ids"]) <= limit
        assert item["events"][0][0] == "skipped_too_long"
    finally:
        ds.max_length = None
