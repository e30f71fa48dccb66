"""`og masks build | info | show | merge` on a small folder of images and a LLaVA json."""

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from og.masks.store import MaskStore
from og.segmenters import build_segmenter

runner = CliRunner()


def image_folder(root):
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True)
    names = ["a.png", "b.jpg", "sub/c.png"]
    for i, name in enumerate(names):
        Image.fromarray(rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)).save(root / name)
    (root / "broken.jpg").write_bytes(b"not an image")
    (root / "notes.txt").write_text("ignored")
    return names


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], terminal_width=200)


def test_build_info_show_and_resume(tmp_path):
    names = image_folder(tmp_path / "imgs")
    out = tmp_path / "store"
    result = invoke("masks", "build", "--images", tmp_path / "imgs", "-s", "grid", "-o", "k=2", "--out", out)
    assert result.exit_code == 0, result.output
    assert "4 images under" in result.output and "3 written, 0 already there, 1 failed, 12 masks" in result.output
    assert "failed broken.jpg: unreadable image" in result.output and "index written" in result.output
    store = MaskStore(out)
    seg = build_segmenter("grid(k=2)")
    assert store.keys() == sorted(names) and store.spec == "grid(k=2)"
    for name in names:
        assert store.get(name) == seg(Image.open(tmp_path / "imgs" / name))
    again = invoke("masks", "build", "--images", tmp_path / "imgs", "-s", "grid", "-o", "k=2", "--out", out)
    assert again.exit_code == 0 and "0 written, 4 already there" in again.output
    info = invoke("masks", "info", out)
    assert info.exit_code == 0, info.output
    for text in ("grid(k=2)", "images", "│ 3 ", "masks / image", "min 4  median 4", "1-4: 3", "failures",
                 "failed broken.jpg"):
        assert text in info.output, text
    show = invoke("masks", "show", out, "sub/c.png", "--out", tmp_path / "show.png")
    assert show.exit_code == 0 and "4 masks ->" in show.output
    drawn = np.asarray(Image.open(tmp_path / "show.png"))
    assert drawn.shape == (22, 30, 3) and not np.array_equal(drawn, np.asarray(Image.open(tmp_path / "imgs/sub/c.png")))
    missing = invoke("masks", "show", out, "zzz.png", "--out", tmp_path / "x.png")
    assert "'zzz.png' is not in mask store" in str(missing.exception)
    mixed = invoke("masks", "build", "--images", tmp_path / "imgs", "-s", "whole", "--out", out)
    assert "holds masks of segmenter 'grid(k=2)', not 'whole'; refusing to mix" in str(mixed.exception)


def test_build_from_llava_json_in_parts_then_merge(tmp_path):
    names = image_folder(tmp_path / "imgs")
    records = [{"id": str(i), "image": name, "conversations": []} for i, name in enumerate(names * 2)]
    records.append({"id": "t", "conversations": []})  # text-only
    (tmp_path / "data.json").write_text(json.dumps(records))
    out = tmp_path / "store"
    for part in ("0/2", "1/2"):
        result = invoke("masks", "build", "--data", tmp_path / "data.json", "--image-root", tmp_path / "imgs",
                        "-s", "whole", "--out", out, "--shard", part, "--batch", "2")
        assert result.exit_code == 0, result.output
        assert "3 images in" in result.output and "1 text-only" in result.output
        assert "og masks merge" in result.output
    merged = invoke("masks", "merge", out)
    assert merged.exit_code == 0 and "3 images, 0 failures, 0 duplicates dropped" in merged.output
    assert MaskStore(out).keys() == sorted(names)
    bad = invoke("masks", "build", "--data", tmp_path / "data.json", "-s", "whole", "--out", out)
    assert bad.exit_code != 0 and "--image-root" in bad.output
    bad = invoke("masks", "build", "--images", tmp_path / "imgs", "-s", "whole", "--out", out, "--shard", "2")
    assert bad.exit_code != 0 and "use i/n" in bad.output
