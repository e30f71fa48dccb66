"""OGLlavaForConditionalGeneration on tiny random models: merge, loss, generation, round trip,
batch invariance, grouped rope positions, dtypes, checkpointing, error texts."""

from __future__ import annotations

import pytest
import torch

from og.model.factory import load, save

QUESTION = "<image>\nwhat is in the image ?"


def _batch(processor, samples, idx, question=QUESTION):
    return processor([processor.prompt(question)] * len(idx), [samples[i][0] for i in idx],
                     masks=[samples[i][1] for i in idx])


def test_merge_matches_naive_reference(make_model, samples):
    model, processor = make_model("masktoken")
    batch = _batch(processor, samples, [0, 2])
    with torch.no_grad():
        logits = model(**batch).logits
        feats = model.get_image_features(batch["pixel_values"], batch["layout"])  # (ΣT, Dl)
        embeds = model.get_input_embeddings()(batch["input_ids"]).clone()
        k = 0
        for b in range(embeds.shape[0]):  # naive: fill placeholders one by one in reading order
            for t in range(embeds.shape[1]):
                if batch["input_ids"][b, t] == model.config.image_token_id:
                    embeds[b, t] = feats[k]
                    k += 1
        assert k == feats.shape[0] == batch["layout"].total
        pos = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        ref = model.language_model(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                                   position_ids=pos).logits
    torch.testing.assert_close(logits, ref, rtol=0, atol=1e-6)


def test_loss_and_gradients_reach_the_connector(make_model, samples):
    model, processor = make_model("masktoken", "segment")
    model.train()
    for module in (model.encoder, model.language_model):
        module.requires_grad_(False)
    batch = processor([processor.prompt(QUESTION) + " a red circle"] * 2, [s[0] for s in samples[:2]],
                      masks=[s[1] for s in samples[:2]], padding_side="right")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    out = model(**batch, labels=labels)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for name in ("projector", "fusion", "position"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert grads and all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads), name
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is None for p in model.language_model.parameters())


def test_labels_at_placeholders_are_ignored(make_model, samples):
    model, processor = make_model("patches")
    batch = _batch(processor, samples, [0])
    ids = batch["input_ids"]
    with torch.no_grad():
        a = model(**batch, labels=ids).loss  # placeholders as labels: masked to -100 inside
        b = model(**batch, labels=ids.masked_fill(ids == model.config.image_token_id, -100)).loss
    assert torch.equal(a, b)


@pytest.mark.parametrize("fusion,position", [("patches", "none"), ("masktoken", "none"), ("masktoken", "grouped_rope")])
def test_generate_with_and_without_cache(make_model, samples, fusion, position):
    model, processor = make_model(fusion, position)
    batch = _batch(processor, samples, [0, 1, 2])
    kw = {"max_new_tokens": 6, "do_sample": False, "min_new_tokens": 6}
    cached = model.generate(**batch, use_cache=True, **kw)
    uncached = model.generate(**batch, use_cache=False, **kw)
    assert cached.shape == (3, batch["input_ids"].shape[1] + 6)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("fusion,position",
                         [("patches", "none"), ("masktoken", "segment"), ("masktoken", "grouped_rope")])
def test_batch_invariance(make_model, samples, fusion, position):
    """One image's logits and greedy answer are the same alone and inside a left-padded batch."""
    model, processor = make_model(fusion, position)
    alone = _batch(processor, samples, [0])
    mixed = processor([processor.prompt(QUESTION), processor.prompt(QUESTION), processor.prompt("what is red ?")],
                      [samples[1][0], samples[0][0], None], masks=[samples[1][1], samples[0][1], None])
    n = alone["input_ids"].shape[1]
    assert torch.equal(mixed["input_ids"][1, -n:], alone["input_ids"][0])
    if fusion != "patches":
        assert mixed["layout"].lengths.tolist()[0] != alone["layout"].lengths.tolist()[0]
    with torch.no_grad():
        a = model(**alone).logits[0]
        b = model(**mixed).logits[1, -n:]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    kw = {"max_new_tokens": 5, "min_new_tokens": 5, "do_sample": False}
    ga = model.generate(**alone, **kw)[0, n:]
    gb = model.generate(**mixed, **kw)[1, -5:]
    assert torch.equal(ga, gb)


def test_grouped_positions_by_hand():
    from og.fusion.layout import PackedLayout, TokenLayout
    from og.model.positions import grouped_position_ids

    def lay(groups):
        t = len(groups)
        z = torch.zeros(t, dtype=torch.long)
        return TokenLayout(grid=(2, 2), kind=z, patch=z - 1, mask=z - 1, segment=z, row=z - 1, col=z - 1,
                           group=torch.tensor(groups))

    packed = PackedLayout.pack([lay([0, 1, 1, 2]), lay([0, 1, 1])])
    im, t, p = 9, 5, 0  # image placeholder, text, pad ids
    ids = torch.tensor([[p, p, t, t, im, im, im, im, t, t],
                        [t, im, im, im, t, t, t, t, t, t],
                        [p, p, p, t, t, t, t, t, t, t]])
    mask = (ids != p).long()
    expected = torch.tensor([[0, 0, 0, 1, 2, 3, 3, 4, 5, 6],
                             [0, 1, 2, 2, 3, 4, 5, 6, 7, 8],
                             [0, 0, 0, 0, 1, 2, 3, 4, 5, 6]])
    assert torch.equal(grouped_position_ids(ids == im, mask, packed), expected)


def test_grouped_rope_positions_in_the_model_and_generation(make_model, samples):
    model, processor = make_model("masktoken", "grouped_rope")
    batch = _batch(processor, samples, [0, 2])
    seen = []
    hook = model.language_model.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["position_ids"].clone()), with_kwargs=True)
    try:
        out = model.generate(**batch, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    finally:
        hook.remove()
    groups = batch["layout"].group.tolist()
    # expected prefill positions, computed naively from the layout's groups
    ids, mask = batch["input_ids"], batch["attention_mask"]
    expected, k = [], 0
    for b in range(ids.shape[0]):
        pos, row, i = 0, [], 0
        while i < ids.shape[1]:
            if not mask[b, i]:
                row.append(0)
                i += 1
            elif ids[b, i] == model.config.image_token_id:
                n = batch["layout"].lengths[b].item()
                span = groups[k:k + n]
                row += [pos + g for g in span]
                pos += max(span) + 1
                k, i = k + n, i + n
            else:
                row.append(pos)
                pos += 1
                i += 1
        expected.append(row)
    expected = torch.tensor(expected)
    assert torch.equal(seen[0], expected)
    assert (seen[0] < (mask.cumsum(-1) - 1)).any()  # grouping really shortened the spans
    last = expected.amax(-1, keepdim=True)
    for step, pos in enumerate(seen[1:], start=1):  # decode steps continue after the last group
        assert torch.equal(pos, last + step)
    assert out.shape[1] == ids.shape[1] + 3


def test_grouped_rope_manual_decode_uses_the_stored_offset(make_model, samples):
    model, processor = make_model("masktoken", "grouped_rope")
    batch = _batch(processor, samples, [0, 2])
    seen = []
    hook = model.language_model.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["position_ids"].clone()), with_kwargs=True)
    with torch.no_grad():
        first = model(**batch, use_cache=True)
        nxt = first.logits[:, -1].argmax(-1, keepdim=True)
        mask = torch.cat([batch["attention_mask"], torch.ones_like(nxt)], 1)
        model(input_ids=nxt, attention_mask=mask, cache=first.cache, use_cache=True)
    hook.remove()
    assert torch.equal(seen[1], seen[0].amax(-1, keepdim=True) + 1)


def test_save_load_round_trip(make_model, samples, tmp_path):
    model, processor = make_model("masktoken", "sincos2d")
    batch = _batch(processor, samples, [0, 1])
    with torch.no_grad():
        before = model(**batch).logits
    save(model, processor, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()
    loaded, proc2 = load(tmp_path / "m")
    assert loaded.config.model_spec == model.config.model_spec
    assert torch.equal(loaded.position.table, model.position.table)  # non-persistent buffer rebuilt
    batch2 = _batch(proc2, samples, [0, 1])
    assert torch.equal(batch2["input_ids"], batch["input_ids"])
    with torch.no_grad():
        after = loaded(**batch2).logits
    assert torch.equal(before, after)


def test_token_count_mismatch_error(make_model, samples):
    model, processor = make_model("masktoken")
    batch = _batch(processor, samples, [0])
    ids = batch["input_ids"].clone()
    at = (ids[0] == model.config.image_token_id).nonzero()[0, 0]
    ids[0, at] = processor.tokenizer.convert_tokens_to_ids("red")
    n = batch["layout"].total
    with pytest.raises(ValueError, match=f"Image features and image tokens do not match: tokens: {n - 1}, "
                                         f"features: {n}"):
        model(**{**batch, "input_ids": ids})
    with pytest.raises(ValueError, match="fusion 'masktoken' plans each image's tokens from its masks"):
        model(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"])


def test_text_only_batch_is_the_plain_llm(make_model):
    model, processor = make_model("masktoken")
    batch = processor([processor.prompt("what is red ?"), processor.prompt("how many shapes are there ?")])
    assert "pixel_values" not in batch
    with torch.no_grad():
        ours = model(**batch).logits
        pos = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        ref = model.language_model(**batch, position_ids=pos).logits
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)


def test_bfloat16_forward(make_model, samples):
    model, processor = make_model("masktoken", "segment")
    model.to(torch.bfloat16)
    with torch.no_grad():
        out = model(**_batch(processor, samples, [0, 1]))
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.logits.float()).all()


def test_gradient_checkpointing_lives_in_the_llm(make_model, samples):
    model, processor = make_model("masktoken")
    model.train()
    batch = _batch(processor, samples, [0, 1])
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)

    def loss_and_grad():
        model.zero_grad()
        loss = model(**batch, labels=labels, use_cache=False).loss
        loss.backward()
        return loss.detach(), model.projector.linear_1.weight.grad.clone()

    ref_loss, ref_grad = loss_and_grad()
    model.activation_checkpointing_enable()
    flags = {n: m.gradient_checkpointing for n, m in model.named_modules() if hasattr(m, "gradient_checkpointing")}
    assert any(v for n, v in flags.items() if n.startswith("language_model"))
    assert not any(v for n, v in flags.items() if n.startswith("encoder"))
    loss, grad = loss_and_grad()
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(grad, ref_grad)


def test_beam_search_reuses_each_image(make_model, samples):
    """generate() repeats images for beams; the model encodes each once and the answers do not
    depend on the batch."""
    model, processor = make_model("masktoken", "grouped_rope")
    alone = _batch(processor, samples, [2])
    mixed = processor([processor.prompt("what is red ?"), processor.prompt(QUESTION), processor.prompt(QUESTION)],
                      [None, samples[0][0], samples[2][0]], masks=[None, samples[0][1], samples[2][1]])
    kw = {"max_new_tokens": 4, "min_new_tokens": 4, "num_beams": 3, "do_sample": False}
    a = model.generate(**alone, **kw)[0, -4:]
    b = model.generate(**mixed, **kw)[2, -4:]
    assert torch.equal(a, b)
    two = model.generate(**mixed, max_new_tokens=2, num_beams=2, num_return_sequences=2)
    assert two.shape[0] == 6
    with pytest.raises(ValueError, match="4 images in pixel_values but 2 layouts"):
        model.get_image_features(torch.randn(4, 3, 64, 64), mixed["layout"])
