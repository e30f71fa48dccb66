"""`og predict`: the printed answer is the model's greedy answer; --show-tokens writes the picture;
masks from a segmenter spec or a MaskStore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from og.data.tokenizer import train_tokenizer
from og.masks.masks import Masks
from og.masks.store import MaskStore
from og.model.factory import build, load, save
from og.presets import preset

QUESTION = "what is in the image ?"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    tok = train_tokenizer(["what is in the image ? a red circle left of a blue square yes no"])
    torch.manual_seed(0)
    model, proc = build(preset("tiny-og").replace(segmenter="grid(k=2)"), tokenizer=tok)
    save(model, proc, root / "model")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(root / "cat.png")
    return root


def _expected(root, masks=None, segmenter_masks=True):
    model, proc = load(root / "model")
    img = Image.open(root / "cat.png").convert("RGB")
    masks = masks if masks is not None else proc.masks_for(img)
    batch = proc([proc.prompt(f"<image>\n{QUESTION}")], [img], masks=[masks])
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    return proc.decode(out[0, batch["input_ids"].shape[1]:]).strip(), len(proc.prepare_image(img, masks)[1])


def test_predict_prints_the_greedy_answer_and_draws_tokens(saved):
    out_png = saved / "tokens.png"
    result = CliRunner().invoke(app, ["predict", "--model", str(saved / "model"), str(saved / "cat.png"), QUESTION,
                                      "--max-new-tokens", "4", "--show-tokens", str(out_png)])
    assert result.exit_code == 0, result.output
    answer, n_tokens = _expected(saved)
    assert result.stdout.strip().splitlines()[0] == answer
    assert f"({n_tokens} visual tokens)" in result.output
    picture = Image.open(out_png)
    assert picture.width == 512 and picture.height > 512  # image upscaled to 512, token list below


def test_predict_with_a_segmenter_option_and_a_store(saved):
    img = Image.open(saved / "cat.png")
    data = np.zeros((1, img.height, img.width), bool)
    data[0, :20, :28] = True
    masks = Masks(data, np.ones(1, np.float32))
    with MaskStore.writer(saved / "store", "given") as writer:
        writer.add("cat.png", masks)
    base = ["predict", "--model", str(saved / "model"), str(saved / "cat.png"), QUESTION, "--max-new-tokens", "4"]
    result = CliRunner().invoke(app, base + ["--masks", str(saved / "store")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == _expected(saved, masks)[0]
    result = CliRunner().invoke(app, base + ["--segmenter", "whole"])
    assert result.exit_code == 0, result.output
    whole = Masks(np.ones((1, img.height, img.width), bool), np.ones(1, np.float32))
    assert result.stdout.strip() == _expected(saved, whole)[0]
    result = CliRunner().invoke(app, base + ["--masks", str(saved / "store"), "--key", "dog.png"])
    assert result.exit_code != 0 and "dog.png" in str(result.exception)
    result = CliRunner().invoke(app, base + ["--masks", str(saved / "store"), "--segmenter", "whole"])
    assert result.exit_code != 0


def test_predict_finds_an_image_given_by_path_in_a_built_store(saved, tmp_path, monkeypatch):
    """`og masks build --images ROOT` keys images by their path under ROOT (`test/000000.png`)."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    root = tmp_path / "data" / "images"
    for split, size in (("test", (40, 56)), ("train", (48, 48))):  # same file name, different images
        (root / split).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / split / "000000.png")
    built = CliRunner().invoke(app, ["masks", "build", "--images", "data/images", "-s", "grid(k=2)", "--out", "store"])
    assert built.exit_code == 0, built.output
    store = MaskStore("store")
    assert sorted(store.keys()) == ["test/000000.png", "train/000000.png"]
    image = "data/images/test/000000.png"
    base = ["predict", "--model", str(saved / "model"), image, QUESTION, "--max-new-tokens", "4", "--masks", "store"]
    model, proc = load(saved / "model")
    picture = Image.open(image).convert("RGB")
    batch = proc([proc.prompt(f"<image>\n{QUESTION}")], [picture], masks=[store.get("test/000000.png")])
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    expected = proc.decode(out[0, batch["input_ids"].shape[1]:]).strip()
    result = CliRunner().invoke(app, base)  # the key, relative to the store's recorded image root
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == expected
    moved = tmp_path / "elsewhere"  # the images moved: --image-root names where they are now
    (root.parent).rename(moved)
    args = [a if a != image else "elsewhere/images/test/000000.png" for a in base]
    result = CliRunner().invoke(app, args + ["--image-root", "elsewhere/images"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == expected
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(moved / "images" / "test" / "000001.png")
    args = [a if a != image else "elsewhere/images/test/000001.png" for a in base]
    result = CliRunner().invoke(app, args + ["--image-root", "elsewhere/images"])  # really not in the store
    assert result.exit_code != 0 and "'test/000001.png'" in str(result.exception)


def test_store_key_without_a_recorded_root():
    from cli.predict import store_key

    class Store(set):
        image_root = None

    store = Store({"test/000000.png", "000000.png"})
    path = Path("runs/quickstart/data/images/test/000000.png")
    assert store_key(path, store) == "test/000000.png"  # the longest tail of the path the store holds
    assert store_key(Path("x/y/000001.png"), store) == "000001.png"  # absent: the file name, named by the error
    root = Path("runs/quickstart/data/images")
    assert store_key(Path("runs/quickstart/data/images/test/000001.png"), store, root) == "test/000001.png"
