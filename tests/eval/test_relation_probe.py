"""The relation probe: pairs by the generator's rule, a reader that learns a readable answer, chance when shuffled."""

import pytest
import torch

from og.data.shapes import ShapesConfig, write_shapes
from og.eval.relation_probe import fit_relation, patch_features, relation_pairs, relation_probe, with_position
from og.registry import ENCODERS
from og.spec import EncoderSpec


def _obj(color: str, shape: str, box: list[int]) -> dict:
    return {"color": color, "shape": shape, "box": box}


def test_pairs_follow_the_generators_rule_on_both_axes():
    scene = {"objects": [_obj("red", "circle", [0, 0, 10, 10]), _obj("blue", "square", [20, 5, 30, 15])]}
    pairs, colors, shapes = relation_pairs([scene])
    assert colors == ["blue", "red"] and shapes == ["circle", "square"]
    # apart on x only (rows 5..10 overlap): (red, blue) red first, (blue, red) blue not first
    assert pairs.tolist() == [[0, 1, 0, 0, 1, 0, 1], [0, 0, 1, 1, 0, 0, 0]]
    below = {"objects": [_obj("red", "circle", [0, 0, 10, 10]), _obj("blue", "square", [0, 11, 10, 20])]}
    assert relation_pairs([below])[0][:, 5].tolist() == [1, 1]  # apart on y only


def test_one_hot_positions_are_appended_per_patch():
    out = with_position(torch.zeros(2, 6, 3), (2, 3))  # (I, h*w, D) on a 2 x 3 grid
    assert out.shape == (2, 6, 3 + 2 + 3)
    assert out[0, 4, 3:].tolist() == [0, 1, 0, 1, 0]  # patch 4: row 1, column 1


def _readable(n_images: int = 60):
    """One pair per image whose answer is written into every patch's first channel."""
    g = torch.Generator().manual_seed(0)
    answer = torch.randint(0, 2, (n_images,), generator=g)
    features = torch.randn(n_images, 4, 8, generator=g)
    features[:, :, 0] = answer[:, None].float() * 4 - 2
    pairs = torch.stack([torch.arange(n_images), *(torch.zeros(n_images, dtype=torch.long),) * 5, answer], 1)
    return features, pairs


def test_the_reader_learns_an_answer_the_tokens_hold_and_falls_to_chance_when_shuffled():
    features, pairs = _readable()
    real = fit_relation(features, pairs, 1, 1, steps=150, eval_every=50, seed=0)
    assert real["accuracy"] >= 0.9 and real["train_accuracy"] >= 0.9
    assert [s for s, _ in real["curve"]] == [50, 100, 150] and real["pairs"] == 60 and real["train_pairs"] == 48
    shuffled = fit_relation(features, pairs, 1, 1, steps=150, eval_every=150, seed=0, shuffle=True)
    assert shuffled["accuracy"] <= 0.75


def test_too_few_images_is_a_clear_error():
    features, pairs = _readable(1)
    with pytest.raises(ValueError, match="cannot be split"):
        fit_relation(features, pairs, 1, 1, steps=1)


def test_end_to_end_on_a_tiny_encoder(tmp_path):
    write_shapes(tmp_path, 24, 2, seed=1, config=ShapesConfig(min_objects=2, max_objects=3), return_masks=False)
    torch.manual_seed(0)
    encoder = ENCODERS.get("clip").from_spec(EncoderSpec("clip", "tiny"))
    report = relation_probe(encoder, tmp_path, images=24, steps=5, position=True)
    assert 0.0 <= report["accuracy"] <= 1.0 and report["images"] == 24 and report["position"]
    assert report["pairs"] > 24 and len(report["curve"]) == 1
    features = patch_features(encoder, tmp_path, [{"image": "images/train/000000.png"}])
    assert features.shape == (1, encoder.grid[0] * encoder.grid[1], encoder.dim)
