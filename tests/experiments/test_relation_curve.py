"""Relation learning curves: questions by the generator's rule, the probe's split, a model that learns,
the encoder left frozen, clear errors, and a run that resumes."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import og
from cli.main import app
from og.data.shapes import ShapesConfig, write_shapes
from og.data.shapes.io import read_texts, write_oracle_store
from og.data.tokenizer import train_tokenizer
from og.eval.probe import read_scenes
from og.eval.relation_probe import held_out_pairs, relation_pairs
from og.experiments.clip_pretrain import ClipPretrainConfig, pretrain_encoder
from og.experiments.relation_curve import (
    RelationBatcher,
    attribute_questions,
    center_questions,
    curve_questions,
    relation_curve,
    relation_questions,
)


def _obj(color: str, shape: str, box: list[int]) -> dict:
    return {"color": color, "shape": shape, "box": box}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A quickstart-like folder: data, tokenizer, a pretrained tiny encoder, oracle masks."""
    out = tmp_path_factory.mktemp("rel")
    files = write_shapes(out / "data", 24, 2, seed=3, config=ShapesConfig(min_objects=2, max_objects=3))
    write_oracle_store(out / "data", out / "masks" / "oracle", masks=files.masks)
    train_tokenizer(read_texts(out / "data")).save_pretrained(out / "tokenizer")
    pretrain_encoder(out / "data", out / "encoder", ClipPretrainConfig(steps=2, batch_size=8, warmup=1, save_every=5))
    return out


def _model(folder, fusion="patches"):
    torch.manual_seed(0)
    return og.build(f"clip:tiny+none+{fusion}+none+mlp2x_gelu+tiny-llama", tokenizer=str(folder / "tokenizer"),
                    encoder_path=str(folder / "encoder"), chat_template="tokenizer")


def test_questions_are_the_relation_pairs_asked_as_the_data_asks():
    scene = {"image": "images/train/0.png",
             "objects": [_obj("red", "circle", [0, 0, 10, 10]), _obj("blue", "square", [20, 5, 30, 15])]}
    questions = relation_questions([scene])
    assert [(q.question, q.words, q.answer) for q in questions] == [
        ("Is the red circle left or right of the blue square?", ("left", "right"), 0),
        ("Is the blue square left or right of the red circle?", ("left", "right"), 1)]
    assert len(questions) == len(relation_pairs([scene])[0])


def test_attribute_questions_name_each_object_by_the_other_attributes():
    objs = [{**_obj("red", "circle", [0, 0, 10, 10]), "size": "large"},
            {**_obj("red", "square", [20, 5, 30, 15]), "size": "small"},
            {**_obj("blue", "circle", [40, 5, 50, 15]), "size": "small"}]
    scene = {"image": "images/train/0.png", "objects": objs}
    shape = attribute_questions([scene], "shape")  # the two red objects share their name: only blue is asked
    assert [(q.question, q.words, q.answer) for q in shape] == [
        ("What shape is the blue object?", ("circle", "square"), 0)]
    color = attribute_questions([scene], "color")
    assert [(q.question, q.words[q.answer]) for q in color] == [("What color is the square?", "red")]
    size = attribute_questions([scene], "size")
    assert [(q.question, q.words[q.answer]) for q in size] == [
        ("What size is the red circle?", "large"), ("What size is the red square?", "small"),
        ("What size is the blue circle?", "small")]
    assert curve_questions([scene], "relation") == relation_questions([scene])
    with pytest.raises(ValueError, match="kind='count'; use one of"):
        curve_questions([scene], "count")


def test_center_questions_ask_each_object_on_one_side_of_each_centre_line():
    objs = [_obj("red", "circle", [0, 0, 9, 9]), _obj("blue", "square", [5, 12, 14, 19]),
            _obj("red", "cross", [10, 0, 19, 9])]
    got = [(q.question, q.words[q.answer]) for q in center_questions([{"image": "a.png", "objects": objs}], 20, 20)]
    assert got == [  # the square straddles x = 10 (pixels 5-14); pixels 0-9 lie above y = 10, 10-19 below
        ("Is the red circle left or right of the center?", "left"),
        ("Is the red circle above or below the center?", "above"),
        ("Is the blue square above or below the center?", "below"),
        ("Is the red cross left or right of the center?", "right"),
        ("Is the red cross above or below the center?", "above")]
    assert curve_questions([{"image": "a.png", "objects": objs}], "center", (20, 20)) == center_questions(
        [{"image": "a.png", "objects": objs}], 20, 20)


def test_center_questions_are_the_datas_own(folder):
    from og.data.shapes import ShapesDataset
    from og.data.shapes.text import CENTER_KINDS, every_question

    items = list(ShapesDataset(24, seed=3, split="train", config=ShapesConfig(min_objects=2, max_objects=3)))
    scenes = read_scenes(folder / "data", "train", 24)
    side = items[0].scene.image.shape[0]
    named = [len({(o.color, o.shape) for o in it.scene.objects}) == len(it.scene.objects) for it in items]
    data = sorted((i, qa.question, qa.answer) for i, it in enumerate(items) if named[i]
                  for qa in every_question(it.scene, np.random.default_rng(0)) if qa.kind in CENTER_KINDS)
    mine = sorted((q.scene, q.question, q.words[q.answer]) for q in center_questions(scenes, side, side)
                  if named[q.scene])
    assert mine == data and data


def test_the_model_learns_the_shapes_of_its_training_objects(folder):
    model, processor = _model(folder)
    report = relation_curve(model, processor, folder / "data", images=5, steps=150, batch=16, lr=1e-3,
                            eval_every=150, kind="shape")
    assert report["by_options"] == {}  # one answer set: no per-axis split
    assert report["kind"] == "shape" and report["pairs"] == len(attribute_questions(
        read_scenes(folder / "data", "train", 5), "shape"))
    assert report["train_accuracy"] >= 0.8  # about a dozen objects, 5 shapes: fitted (chance 0.2)


def test_the_model_learns_its_training_pairs_and_the_encoder_stays_frozen(folder):
    model, processor = _model(folder)
    encoder_before = [p.detach().clone() for p in model.encoder.parameters()]
    llm_before = next(model.language_model.parameters()).detach().clone()
    report = relation_curve(model, processor, folder / "data", images=5, steps=150, batch=16, lr=1e-3, eval_every=50)
    assert [p["step"] for p in report["curve"]] == [50, 100, 150]
    assert report["train_accuracy"] >= 0.8  # the ~20 training pairs are fitted (chance: 0.5)
    assert all(torch.equal(a, b) for a, b in zip(encoder_before, model.encoder.parameters(), strict=True))
    assert not torch.equal(llm_before, next(model.language_model.parameters()))
    # the held-out images are the relation probe's: same seed, same draw
    scenes = read_scenes(folder / "data", "train", 5)
    pairs = relation_pairs(scenes)[0]
    expected = int(held_out_pairs(pairs[:, 0].numpy(), 0.2, np.random.default_rng(0)).sum())
    assert report["held_out_pairs"] == expected and report["train_pairs"] == len(pairs) - expected
    axes = report["by_options"]  # per answer pair: their question-weighted mean is the held-out accuracy
    assert set(axes) == {"left/right", "above/below"}  # the held-out image has pairs apart on both axes
    assert sum(a["questions"] for a in axes.values()) == report["held_out_pairs"]
    weighted = sum(a["accuracy"] * a["questions"] for a in axes.values()) / report["held_out_pairs"]
    assert abs(weighted - report["accuracy"]) < 1e-3


def test_masktoken_reads_its_masks_and_answers_two_options(folder):
    from og.masks.store import MaskStore

    store = MaskStore(folder / "masks" / "oracle")
    model, processor = og.build("clip:tiny+given+masktoken+none+mlp2x_gelu+tiny-llama",
                                tokenizer=str(folder / "tokenizer"), encoder_path=str(folder / "encoder"),
                                chat_template="tokenizer", mask_store=store)
    batcher = RelationBatcher(processor, folder / "data", store)
    questions = relation_questions(read_scenes(folder / "data", "train", 4))[:3]
    assert batcher.option_logits(model, questions).shape == (3, 2)


def test_an_unknown_answer_word_is_refused(folder):
    _, processor = _model(folder)
    processor.tokenizer = train_tokenizer(["a b c"])  # no word for left / right
    with pytest.raises(ValueError, match="answer word .left. is not one known token"):
        RelationBatcher(processor, folder / "data")


def test_cli_prints_the_curve_and_resumes(folder, tmp_path):
    out = tmp_path / "qs"
    out.mkdir()
    for name in ("data", "tokenizer", "encoder", "masks"):
        (out / name).symlink_to(folder / name)
    args = ["relation", str(out), "--steps", "2", "--eval-every", "1", "--images", "24", "--batch", "4"]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "relation learning curve" in result.output and "masktoken+oracle" in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("patches, held-out by answer pair")]
    assert "left/right" in line and "above/below" in line  # each axis of the relation questions
    done = sorted(out.glob("relation/*/seed0.json"))
    assert len(done) == 2 and json.loads(done[0].read_text())["settings"]["steps"] == 2
    mtimes = [p.stat().st_mtime for p in done]
    again = CliRunner().invoke(app, args, terminal_width=200)
    assert again.exit_code == 0 and [p.stat().st_mtime for p in done] == mtimes  # read back, not retrained
    other = CliRunner().invoke(app, [*args[:3], "3", *args[4:]], terminal_width=200)
    assert other.exit_code != 0 and "was run with" in str(other.exception)


def test_only_must_name_a_variant(folder):
    result = CliRunner().invoke(app, ["relation", str(folder), "--only", "nope"], terminal_width=200)
    assert result.exit_code != 0 and "names no variant" in result.output
    result = CliRunner().invoke(app, ["relation", str(folder), "--kind", "count"], terminal_width=200)
    text = " ".join(result.output.replace("│", " ").split())  # the error panel wraps at 80 columns
    assert result.exit_code != 0 and "--kind 'count'; use one of relation, center, shape, color, size" in text
