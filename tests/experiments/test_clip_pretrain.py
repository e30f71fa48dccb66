"""The stand-in for CLIP's pretraining: it learns, it resumes exactly, its checkpoint loads like a user's CLIP."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from og.data.shapes import ShapesConfig, write_shapes
from og.experiments.clip_data import hard_negatives
from og.experiments.clip_pretrain import ClipPretrainConfig, pretrain_encoder
from og.experiments.clip_towers import (
    TextTower,
    encode_words,
    phrase_loss,
    phrases,
    position_loss,
    similarities,
    word_loss,
)
from og.registry import ENCODERS
from og.spec import EncoderSpec

FAST = ClipPretrainConfig(steps=40, batch_size=24, warmup=4, save_every=8, lr=3e-3,
                          encoder=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=64, patch_size=8, projection_dim=32,
                                       hidden_act="quick_gelu"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    write_shapes(out, 48, 4, seed=1, config=ShapesConfig(min_objects=1, max_objects=3), return_masks=False)
    return out


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc")
    return out, pretrain_encoder(data, out, FAST)


def test_hard_negatives_change_a_shape_or_colour_word_only():
    rng = np.random.default_rng(0)
    caption = "a large red circle and a small blue square"
    for negative in hard_negatives(caption, 6, rng):
        old, new = caption.split(), negative.split()
        assert len(old) == len(new) and old != new
        changed = {w for a, b in zip(old, new, strict=True) if a != b for w in (a, b)}
        assert changed <= {"circle", "square", "triangle", "cross", "diamond", "red", "green", "blue", "yellow",
                           "purple", "cyan"}


def test_the_loss_falls(trained):
    _, report = trained
    assert report["steps"] == FAST.steps
    assert report["loss_last"] < report["loss_first"] - 0.3


def test_pretraining_raises_the_probe(trained, data, tmp_path):
    from og.eval.probe import probe_encoder

    pretrain_encoder(data, tmp_path / "one", dataclasses.replace(FAST, steps=1))  # the same start, one step
    read = {name: probe_encoder(ENCODERS.get("clip").from_spec(EncoderSpec("clip", "tiny"), path=str(folder)), data,
                                images=48)
            for name, folder in (("start", tmp_path / "one"), ("trained", trained[0]))}
    # the tiny tower does not separate colours at the start (linear 0.57); 40 steps do (0.96)
    assert read["trained"]["linear"]["color"] > read["start"]["linear"]["color"] + 0.2, read


def test_the_checkpoint_loads_through_the_local_weights_path(trained, data):
    out, _ = trained
    encoder = ENCODERS.get("clip").from_spec(EncoderSpec("clip", "tiny"), path=str(out))
    saved = load_file(str(out / "model.safetensors"))
    for name, tensor in encoder.model.state_dict().items():
        torch.testing.assert_close(tensor, saved[name])
    assert encoder.model.config.hidden_size == 32 and encoder.grid == (8, 8)
    assert json.loads((out / "preprocessor_config.json").read_text())["image_mean"] == list(encoder.mean)
    assert not (out / "state.safetensors").exists() and not (out / "progress.json").exists()  # resume state gone


def test_a_finished_run_is_read_back_and_another_config_refused(trained, data):
    out, report = trained
    assert pretrain_encoder(data, out, FAST) == json.loads(json.dumps(report))
    with pytest.raises(ValueError, match="another config"):
        pretrain_encoder(data, out, ClipPretrainConfig(steps=3))


def test_a_killed_run_resumes_to_the_same_weights(trained, data, tmp_path):
    out, _ = trained

    def stop(step, total, loss):
        if step == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain_encoder(data, tmp_path, FAST, on_step=stop)
    assert json.loads((tmp_path / "progress.json").read_text())["step"] == 8
    pretrain_encoder(data, tmp_path, FAST)
    a, b = load_file(str(out / "model.safetensors")), load_file(str(tmp_path / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)


def test_captions_split_into_noun_phrases():
    assert phrases("a large red circle, a small blue square and a green cross.") == [
        "a large red circle", "a small blue square", "a green cross"]
    assert phrases("a cyan diamond.") == ["a cyan diamond"]


def test_text_tower_encodes_each_text_as_it_would_alone():
    """Texts are encoded once per distinct row and without the columns no text reaches; each text's
    embedding and its gradient are what the text alone, padded to the full length, gives."""
    torch.manual_seed(0)
    text = TextTower(12, 16, 2, 8, max_len=6)
    ids = torch.tensor([[3, 4, 0, 0, 0, 0], [5, 6, 7, 0, 0, 0], [3, 4, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])  # (T, L)
    weights = torch.randn(4, 8)  # (T, E)
    (text(ids) * weights).sum().backward()
    batched = text.words.weight.grad.clone()
    text.zero_grad()
    alone = torch.stack([text(row[None])[0] for row in ids])  # (T, E)
    (alone * weights).sum().backward()
    torch.testing.assert_close(text(ids), alone)
    torch.testing.assert_close(batched, text.words.weight.grad)
    assert torch.equal(text(ids)[0], text(ids)[2]) and not text(ids)[3].any()  # repeated; no word at all: zero


def test_objects_similarity_is_each_phrases_best_mask_averaged():
    """Against a naive loop over (image, caption, phrase, mask); padded masks and phrases do not count."""
    torch.manual_seed(0)
    text, head = TextTower(12, 16, 1, 8, max_len=4), torch.nn.Linear(6, 8, bias=False)
    patches = torch.randn(3, 5, 6)  # (B, P, D)
    weights = torch.softmax(torch.randn(3, 2, 5), -1) * torch.tensor([[1, 1], [1, 0], [1, 1]])[..., None]  # (B, O, P)
    ids = torch.randint(2, 12, (4, 3, 4))
    ids[1, 2], ids[3, 1:] = 0, 0  # captions of 2 and 1 phrases
    i2t, t2i = similarities(patches, text, ids, head, "objects", weights)
    norm = torch.nn.functional.normalize
    expected = torch.zeros(3, 4)
    for b in range(3):
        objects = [norm(head(weights[b, o] @ patches[b]), dim=-1) for o in range(2) if weights[b, o].sum() > 0]
        for t in range(4):
            said = [norm(text(ids[t, q][None])[0], dim=-1) for q in range(3) if ids[t, q, 0] != 0]
            expected[b, t] = torch.stack([torch.stack([o @ p for o in objects]).max() for p in said]).mean()
    torch.testing.assert_close(i2t, expected, atol=1e-5, rtol=1e-5)
    assert t2i is i2t


def test_objects_pooling_learns_from_masks_and_leaves_excluded_images_out(data, tmp_path):
    from og.data.shapes import write_oracle_store
    from og.data.shapes.dataset import image_hash

    with pytest.raises(ValueError, match="needs the images' masks"):
        pretrain_encoder(data, tmp_path / "none", dataclasses.replace(FAST, pooling="objects"))
    write_oracle_store(data, tmp_path / "masks")
    first = sorted((data / "images" / "train").glob("*.png"))[:3]
    exclude = frozenset(image_hash(np.asarray(Image.open(p).convert("RGB"))) for p in first)
    report = pretrain_encoder(data, tmp_path / "enc", dataclasses.replace(FAST, pooling="objects"),
                              masks=tmp_path / "masks", exclude=exclude)
    assert report["excluded"] == 3 and report["images"] == 45
    assert report["loss_last"] < report["loss_first"] - 0.3


def test_phrase_loss_is_a_softmax_per_phrase_over_the_batchs_distinct_phrases():
    """Against a naive loop: each phrase of an image's caption is scored by the image's best mask
    against every distinct phrase text of the batch, the image's other phrases left out."""
    torch.manual_seed(0)
    vocab = {w: i + 2 for i, w in enumerate("a large small red blue green circle square cross".split())}
    text = TextTower(len(vocab) + 2, 16, 1, 8, max_len=4)
    objects = torch.nn.functional.normalize(torch.randn(2, 2, 8), dim=-1)  # (B, O, E)
    present = torch.tensor([[True, True], [True, False]])
    captions = ["a large red circle and a small blue square", "a large red circle"]
    negatives = ["a large red cross and a small blue square"]
    scale = torch.tensor(5.0)
    loss = phrase_loss(objects, present, captions, negatives, text, vocab, 4, scale)
    pool = ["a large red circle", "a large red cross", "a small blue square"]
    emb = torch.nn.functional.normalize(text(encode_words(pool, vocab, 4)), dim=-1)  # (3, E)
    terms = []
    for b, own in enumerate([[0, 2], [0]]):
        best = torch.stack([max(objects[b, o] @ emb[u] for o in range(2) if present[b, o]) for u in range(3)])
        for q in own:
            keep = [u for u in range(3) if u == q or u not in own]
            terms.append(-torch.log_softmax(scale * best[keep], 0)[keep.index(q)])
    torch.testing.assert_close(loss, torch.stack(terms).mean())


def test_word_loss_asks_every_token_of_the_phrases_best_mask_for_its_words():
    """Against a naive loop: each phrase's best mask (by the pooled similarity), then for each of its
    patches and each word of the phrase, -log softmax of that word against the words the phrase lacks,
    averaged over the phrase's words and weighted by the mask's patch weights."""
    torch.manual_seed(1)
    vocab = {w: i + 2 for i, w in enumerate("a large small red blue circle square".split())}
    text = TextTower(len(vocab) + 2, 16, 1, 8, max_len=4)
    tokens = torch.nn.functional.normalize(torch.randn(2, 3, 8), dim=-1)  # (B, P, E)
    objects = torch.nn.functional.normalize(torch.randn(2, 2, 8), dim=-1)  # (B, O, E)
    weights = torch.tensor([[[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]], [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])  # (B, O, P)
    captions = ["a large red circle and a small blue square", "a small red square"]
    scale = torch.tensor(4.0)
    loss = word_loss(tokens, objects, weights, captions, text, vocab, 4, scale)
    words = ["a", "blue", "circle", "large", "red", "small", "square"]
    emb = torch.nn.functional.normalize(text(encode_words(words, vocab, 1)), dim=-1)  # (V, E)
    terms = []
    for b, caption in enumerate(captions):
        for q in phrases(caption):
            said = torch.nn.functional.normalize(text(encode_words([q], vocab, 4)), dim=-1)[0]
            masks = [o for o in range(2) if weights[b, o].sum() > 0]
            o = max(masks, key=lambda m: float(objects[b, m] @ said))
            mine = q.split()
            lacks = [v for v, w in enumerate(words) if w not in mine]
            total = 0.0
            for p in range(3):
                logits = scale * emb @ tokens[b, p]  # (V,)
                nll = [-torch.log_softmax(logits[[words.index(w)] + lacks], 0)[0] for w in mine]
                total = total + weights[b, o, p] * torch.stack(nll).mean()
            terms.append(total)
    torch.testing.assert_close(loss, torch.stack(terms).mean())


def test_position_loss_asks_each_token_for_its_own_row_and_column():
    """Against a naive loop over a 2 x 3 grid: the mean over tokens of the row and column cross-entropies."""
    torch.manual_seed(2)
    patches, head = torch.randn(2, 6, 5), torch.nn.Linear(5, 2 + 3)  # (B, h*w, D); D -> h + w
    loss = position_loss(patches, head, (2, 3))
    terms = []
    for b in range(2):
        for p in range(6):
            row, col = divmod(p, 3)
            logits = head(patches[b, p])  # (h + w,)
            terms.append(0.5 * (-torch.log_softmax(logits[:2], 0)[row] - torch.log_softmax(logits[2:], 0)[col]))
    torch.testing.assert_close(loss, torch.stack(terms).mean())


def test_phrase_loss_needs_objects_pooling_and_region_is_checked(data, tmp_path):
    with pytest.raises(ValueError, match="phrase_loss=1.0 needs pooling='objects'"):
        pretrain_encoder(data, tmp_path, dataclasses.replace(FAST, phrase_loss=1.0))
    with pytest.raises(ValueError, match="word_loss=5.0 needs pooling='objects'"):
        pretrain_encoder(data, tmp_path, dataclasses.replace(FAST, word_loss=5.0))
    with pytest.raises(ValueError, match="lr_schedule='linear' is not one of"):
        pretrain_encoder(data, tmp_path, dataclasses.replace(FAST, lr_schedule="linear"))
    with pytest.raises(ValueError, match="region='disc' is not one of"):
        pretrain_encoder(data, tmp_path, dataclasses.replace(FAST, region="disc"))


def test_box_regions_with_the_phrase_loss_learn(data, tmp_path):
    """The quickstart's setting (phrases scored against the masks' bounding boxes) lowers its loss."""
    from og.data.shapes import write_oracle_store

    write_oracle_store(data, tmp_path / "masks")
    config = dataclasses.replace(FAST, pooling="objects", region="box", phrase_loss=1.0)
    report = pretrain_encoder(data, tmp_path / "enc", config, masks=tmp_path / "masks")
    assert report["loss_last"] < report["loss_first"] - 0.5


def test_the_quickstarts_setting_learns_and_resumes_with_its_position_head(data, tmp_path):
    """Word and position losses at a constant lr without clipping (the quickstart's stand-in) lower the
    loss, and a killed run resumes to the same weights (the position head's state included)."""
    from og.data.shapes import write_oracle_store

    write_oracle_store(data, tmp_path / "masks")
    config = dataclasses.replace(FAST, pooling="objects", region="box", phrase_loss=1.0, word_loss=5.0,
                                 position_loss=1.0, lr_schedule="constant", max_grad_norm=0.0)
    report = pretrain_encoder(data, tmp_path / "enc", config, masks=tmp_path / "masks")
    assert report["loss_last"] < report["loss_first"] - 1.0 and report["config"]["position_loss"] == 1.0

    def stop(step, total, loss):
        if step == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain_encoder(data, tmp_path / "again", config, masks=tmp_path / "masks", on_step=stop)
    assert "head.position.weight" in load_file(str(tmp_path / "again" / "state.safetensors"))
    pretrain_encoder(data, tmp_path / "again", config, masks=tmp_path / "masks")
    a = load_file(str(tmp_path / "enc" / "model.safetensors"))
    b = load_file(str(tmp_path / "again" / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)


def test_a_report_written_before_a_config_field_existed_is_read_back(trained, data, tmp_path):
    out, report = trained
    old = json.loads((out / "pretrain.json").read_text())
    del old["config"]["phrase_loss"]  # a field added later, at its default
    (tmp_path / "pretrain.json").write_text(json.dumps(old))
    assert pretrain_encoder(data, tmp_path, FAST)["steps"] == report["steps"]
    with pytest.raises(ValueError, match="another config"):
        pretrain_encoder(data, tmp_path, dataclasses.replace(FAST, phrase_loss=1.0, pooling="objects"))


def test_box_regions_pool_the_masks_bounding_boxes(data, tmp_path):
    from og.data.shapes import write_oracle_store
    from og.experiments.clip_data import training_set
    from og.fusion.coverage import PatchCoverage
    from og.masks.geometry import ImageTransform
    from og.masks.store import MaskStore

    write_oracle_store(data, tmp_path / "masks")
    encoder = ENCODERS.get("clip").from_spec(EncoderSpec("clip", "tiny"), config={"vision_config": {
        **FAST.encoder, "model_type": "clip_vision_model"}, "mean": [0.5] * 3, "std": [0.5] * 3})
    got = {region: training_set(data, encoder, tmp_path / "masks", region)[2] for region in ("mask", "box")}
    store, coverage = MaskStore(tmp_path / "masks"), PatchCoverage(ImageTransform.for_encoder(encoder), encoder.grid)
    key = json.loads((data / "stage1.json").read_text())[0]["image"]
    cover = coverage.for_downsampler(store.get(key).as_boxes(), "area").flatten(1)  # (M, P)
    torch.testing.assert_close(got["box"][0, : len(cover)], cover / cover.sum(1, keepdim=True))
    assert ((got["box"] > 0).sum(-1) >= (got["mask"] > 0).sum(-1)).all()
    assert not torch.equal(got["box"], got["mask"])
