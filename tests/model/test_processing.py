"""OGLlavaProcessor: placeholders = layout lengths, lockstep geometry, padding, mask sources and
their fallbacks, errors, save / load."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from og.fusion import downsample, plan_layout
from og.fusion.layout import BOM
from og.masks.store import MaskStore
from og.model.processing import OGLlavaProcessor, prepare_tokenizer
from og.model.sources import LazySegmenter
from og.spec import SegmenterSpec

Q = "<image>\nwhat is in the image ?"


def test_placeholders_equal_layout_lengths(make_model, samples):
    _, proc = make_model("masktoken")
    batch = proc([proc.prompt(Q)] * 3, [s[0] for s in samples], masks=[s[1] for s in samples])
    counts = (batch["input_ids"] == proc.image_token_id).sum(1)  # (B,)
    assert counts.tolist() == batch["layout"].lengths.tolist()
    assert len(set(counts.tolist())) == 3  # the three images really differ
    for (img, masks), n in zip(samples, counts.tolist(), strict=True):
        assert len(proc.prepare_image(img, masks)[1]) == n
    assert batch["pixel_values"].shape == (3, 3, 64, 64)
    assert batch["image_sizes"].tolist() == [[40, 56], [48, 48], [32, 64]]


def test_prepare_image_is_the_lockstep_pipeline(make_model, samples):
    _, proc = make_model("masktoken")
    img, masks = samples[0]
    pixels, layout = proc.prepare_image(img, masks)
    ref_pixels, ref_masks = proc.transform.transform(img, masks)
    ref = plan_layout(proc.fusion, downsample(ref_masks, proc.grid), proc.grid, torch.as_tensor(masks.scores))
    assert torch.equal(pixels, ref_pixels)
    assert torch.equal(layout.kind, ref.kind) and torch.equal(layout.patch, ref.patch)
    # box rows 0-20, cols 0-28 of a 40x56 image, padded to 56x56 (8 rows on top), resized to 64:
    # rows 9.1-32 and cols 0-32 px, i.e. patch rows 1-3 (row 1 is 86% covered), columns 0-3
    mask_patches = layout.patch[(layout.mask == 0) & (layout.patch >= 0)]
    assert mask_patches.tolist() == [r * 8 + c for r in (1, 2, 3) for c in range(4)]


def test_patches_fusion_ignores_masks(make_model, samples):
    _, proc = make_model("patches")
    batch = proc([proc.prompt(Q)], [samples[0][0]])  # no masks, no mask source needed
    assert int((batch["input_ids"] == proc.image_token_id).sum()) == 64


def test_left_and_right_padding(make_model, samples):
    _, proc = make_model("masktoken")
    texts, images = [proc.prompt(Q), proc.prompt("what is red ?")], [samples[0][0], None]
    left = proc(texts, images, masks=[samples[0][1], None])
    right = proc(texts, images, masks=[samples[0][1], None], padding_side="right")
    short = int(left["attention_mask"][1].sum())
    assert left["attention_mask"][1, -short:].all() and not left["attention_mask"][1, :-short].any()
    assert right["attention_mask"][1, :short].all() and not right["attention_mask"][1, short:].any()
    assert torch.equal(left["input_ids"][1, -short:], right["input_ids"][1, :short])
    assert (left["input_ids"][1, :-short] == proc.tokenizer.pad_token_id).all()
    assert left["layout"].batch_size == 1  # the text-only sample has no layout


def test_marker_errors(make_model, samples):
    _, proc = make_model("patches")
    with pytest.raises(ValueError, match="text 0 has one image but contains 0 '<image>' markers"):
        proc(["no marker here"], [samples[0][0]])
    with pytest.raises(ValueError, match="text 0 has no image but contains 1 '<image>' markers"):
        proc([Q], [None])
    with pytest.raises(ValueError, match="2 texts but 1 images"):
        proc([Q, Q], [samples[0][0]])


def test_mask_fusion_without_masks_or_source_is_an_error(make_model, samples):
    _, proc = make_model("masktoken")
    proc.mask_source = None
    with pytest.raises(ValueError, match="fusion 'masktoken' needs masks"):
        proc([Q], [samples[0][0]])


@pytest.fixture()
def store(tmp_path, samples):
    with MaskStore.writer(tmp_path / "store", "grid(k=2)") as writer:
        writer.add("a.png", samples[0][1])
    return MaskStore(tmp_path / "store")


def test_masks_from_a_store_and_the_missing_policies(make_model, samples, store):
    _, proc = make_model("masktoken")
    img, masks = samples[0]
    proc.mask_source = store
    from_store = proc([Q], [img], keys=["a.png"])
    given = proc([Q], [img], masks=[masks])
    assert torch.equal(from_store["input_ids"], given["input_ids"])
    with pytest.raises(KeyError, match="'b.png' is not in mask store"):
        proc([Q], [img], keys=["b.png"])
    proc.on_missing_masks = "whole"
    whole = proc([Q], [img], keys=["b.png"])
    # one mask over the whole 40x56 image: after padding to square it covers patch rows 1-6
    assert whole["layout"].total == 1 + 1 + 6 * 8  # global mean, begin-of-mask, the image's patches
    proc.on_missing_masks = "skip"
    skipped = proc([Q], [img], keys=["b.png"])
    assert skipped["layout"].total == 1 + 1 + 64  # the fusion's no-mask fallback: one group of all patches
    assert proc.missing_masks == {"whole": 1, "skip": 1}


def test_masks_from_a_segmenter_on_the_fly(make_model, samples):
    _, proc = make_model("masktoken")
    proc.mask_source = LazySegmenter(SegmenterSpec("grid", options=(("k", 2),)))
    img = samples[1][0]
    batch = proc([Q], [img])
    masks = proc.mask_source(img)
    assert len(masks) == 4
    assert batch["layout"].total == len(proc.prepare_image(img, masks)[1])
    # mean + the quadrants (4x4 patches each, with their BOM) the fusion's token budget keeps
    lay = batch["layout"]
    kept = int((lay.kind == BOM).sum())
    assert kept + lay.n_dropped[0] == 4 and kept >= 3
    assert lay.total == 1 + kept * (1 + 16)


def test_save_and_load(make_model, samples, tmp_path):
    _, proc = make_model("masktoken")
    proc.save_pretrained(tmp_path / "p")
    again = OGLlavaProcessor.from_pretrained(tmp_path / "p")
    assert again.settings() == proc.settings() and again.image_token_id == proc.image_token_id
    a = proc([proc.prompt(Q)], [samples[2][0]], masks=[samples[2][1]])
    b = again([again.prompt(Q)], [samples[2][0]], masks=[samples[2][1]])
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["pixel_values"], b["pixel_values"])
    with pytest.raises(FileNotFoundError, match="has no og_processor.json"):
        OGLlavaProcessor.from_pretrained(tmp_path)


def test_chat_template_and_tokenizer_preparation(make_model):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    _, proc = make_model("masktoken")
    text = proc.apply_chat_template([{"role": "user", "content": Q}], add_generation_prompt=True)
    assert text == proc.prompt(Q) and "<image>" in text
    backend = Tokenizer(models.WordLevel({"<unk>": 0, "a": 1, "</s>": 2}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = prepare_tokenizer(PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="</s>"))
    assert tok.convert_tokens_to_ids("<image>") == 3 and "<image>" in tok.all_special_tokens
    assert tok.pad_token == "</s>"
    assert tok("a <image> a", add_special_tokens=False)["input_ids"] == [1, 3, 1]
    with pytest.raises(ValueError, match="on_missing_masks='drop'"):
        OGLlavaProcessor(tok, proc.transform, proc.fusion, proc.grid, on_missing_masks="drop")
    assert np.isfinite(proc.transform.mean).all()


def test_stored_masks_go_to_coverage_without_decoding(make_model, samples, store, monkeypatch):
    """A store source hands the processor RLE strings; coverage integrates their runs (no pixel
    masks), and the layout is the one of the decoded masks (exactly, here: 64 px = 8 x 8 px patches)."""
    from og.masks.masks import Masks
    from og.masks.rle import StoredMasks

    _, proc = make_model("masktoken")
    img, masks = samples[0]
    given = proc.prepare_image(img, masks)[1]
    proc.mask_source = store
    assert isinstance(proc.masks_for(img, "a.png", stored=True), StoredMasks)
    assert isinstance(proc.masks_for(img, "a.png"), Masks)  # the contract's default: decoded

    def no_decoding(*args, **kwargs):
        raise AssertionError("stored masks were decoded")

    monkeypatch.setattr(Masks, "from_counts", no_decoding)
    batch = proc([Q], [img], keys=["a.png"])
    assert torch.equal(batch["layout"].patch, given.patch) and torch.equal(batch["layout"].kind, given.kind)
    with pytest.raises(ValueError, match="masks are 40x56 but the image is 48x48"):
        proc.prepare_image(samples[1][0], store.read("a.png"))


def test_raster1d_keeps_the_reference_path(make_model, samples):
    _, proc = make_model("masktoken")
    proc.fusion = dataclasses.replace(proc.fusion, downsampler="raster1d")
    img, masks = samples[0]
    ref = plan_layout(proc.fusion, downsample(proc.transform.transform_masks(masks), proc.grid, "raster1d"),
                      proc.grid, torch.as_tensor(masks.scores))
    assert torch.equal(proc.prepare_image(img, masks)[1].patch, ref.patch)


@pytest.mark.parametrize("downsampler", ["area", "raster1d"])
def test_plan_stored_is_prepare_image_for_a_batch_of_stored_masks(make_model, samples, tmp_path, downsampler):
    """The batch path (one decode pass for every image's strings) plans what prepare_image plans,
    image by image, for images of different sizes; a fusion without masks has nothing to plan."""
    _, proc = make_model("masktoken")
    proc.fusion = dataclasses.replace(proc.fusion, downsampler=downsampler)
    with MaskStore.writer(tmp_path / "store", "given") as writer:
        for i, (_, masks) in enumerate(samples):
            writer.add(f"{i}.png", masks)
    store = MaskStore(tmp_path / "store")
    keys = [f"{i}.png" for i in range(len(samples))][::-1]
    layouts = proc.plan_stored([store.read(k) for k in keys], keys)
    for key, layout in zip(keys, layouts, strict=True):
        img, masks = samples[int(key[0])]
        expected = proc.prepare_image(img, store.read(key), key=key)[1]
        assert torch.equal(layout.patch, expected.patch) and torch.equal(layout.kind, expected.kind)
        assert layout.masks == expected.masks
        assert proc.prepare_image(img, store.read(key), key=key, layout=layout)[1] is layout
    _, patches = make_model("patches")
    with pytest.raises(ValueError, match="uses no masks"):
        patches.plan_stored([store.read(keys[0])], keys[:1])
