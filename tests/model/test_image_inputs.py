"""Image inputs the model makes itself: a text-only training batch still runs the vision path
(zero gradients, unchanged loss), every table is read inside its module's forward (as ZeRO-3
needs), and a mask-free fusion plans its own layout when only pixel_values are given."""

from __future__ import annotations

import pytest
import torch

from og.registry import FUSIONS, POSITIONS

TEXT = ["what is red ?", "how many shapes are there ? one"]
VISION = ("encoder", "fusion", "position", "projector")


def _text_batch(processor):
    batch = processor([processor.prompt(t) for t in TEXT], padding_side="right")
    return {**batch, "labels": batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)}


def _with_grad(model):
    return {n for n, p in model.named_parameters() if p.grad is not None and n.split(".")[0] in VISION}


@pytest.mark.parametrize("fusion,position", [("masktoken", "learned2d"), ("maskpool", "segment"),
                                             ("patches", "sincos2d")])
def test_text_only_training_batch_runs_the_vision_path(make_model, samples, fusion, position):
    model, processor = make_model(fusion, position)
    batch = _text_batch(processor)
    with torch.no_grad():
        plain = model(**batch).loss  # eval mode: the LLM alone
    model.train()
    images = processor([processor.prompt("<image>\nwhat is in the image ?") + " one"] * 2,
                       [s[0] for s in samples[:2]], masks=[s[1] for s in samples[:2]], padding_side="right")
    model(**images, labels=images["input_ids"]).loss.backward()
    used = _with_grad(model)  # what an image batch trains (the encoder's last layer is not read: layer -2)
    assert {n.split(".")[0] for n in used} == {part for part in VISION if list(getattr(model, part).parameters())}
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    torch.testing.assert_close(loss, plain, rtol=0, atol=0)
    loss.backward()
    assert _with_grad(model) == used  # the same parameters take part in a text-only batch ...
    assert not any(p.grad.any() for n, p in model.named_parameters() if n in used)  # ... with zero gradients


def _partition_like_zero3(model: torch.nn.Module) -> None:
    """Each module's own parameters hold an empty shard except during its own forward (ZeRO-3)."""
    full = {}

    def gather(module, *args):
        for p in module.parameters(recurse=False):
            p.data = full[p]

    def release(module, *args):
        for p in module.parameters(recurse=False):
            p.data = torch.empty(0, dtype=p.dtype)

    for module in model.modules():
        if list(module.parameters(recurse=False)):
            full.update({p: p.data for p in module.parameters(recurse=False)})
            release(module)
            module.register_forward_pre_hook(gather)
            module.register_forward_hook(release)


@pytest.mark.parametrize("position", sorted(POSITIONS.list()))
@pytest.mark.parametrize("fusion", sorted(FUSIONS.list()))
def test_every_table_is_read_inside_its_modules_forward(make_model, samples, fusion, position):
    model, processor = make_model(fusion, position)
    batch = processor([processor.prompt("<image>\nwhat is in the image ?")] * 2, [s[0] for s in samples[:2]],
                      masks=[s[1] for s in samples[:2]])
    with torch.no_grad():
        ref = model.get_image_features(batch["pixel_values"], batch["layout"])  # (ΣT, Dl)
        _partition_like_zero3(model)
        out = model.get_image_features(batch["pixel_values"], batch["layout"])
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_mask_free_fusion_plans_its_own_layout(make_model, samples):
    model, processor = make_model("patches")
    batch = processor([processor.prompt("<image>\nwhat is in the image ?")] * 2, [s[0] for s in samples[:2]])
    bare = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
            "pixel_values": batch["pixel_values"]}
    kw = {"max_new_tokens": 5, "min_new_tokens": 5, "do_sample": False}
    with torch.no_grad():
        torch.testing.assert_close(model(**bare).logits, model(**batch).logits, rtol=0, atol=0)
    assert torch.equal(model.generate(**bare, **kw), model.generate(**batch, **kw))


def test_mask_fusion_without_layout_is_refused(make_model, samples):
    model, processor = make_model("masktoken")
    batch = processor([processor.prompt("<image>\nwhat is in the image ?")], [samples[0][0]], masks=[samples[0][1]])
    with pytest.raises(ValueError, match="fusion 'masktoken' plans each image's tokens from its masks.*layout="):
        model(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"])
    with pytest.raises(ValueError, match="a layout without pixel_values"):
        model(input_ids=batch["input_ids"], layout=batch["layout"])
