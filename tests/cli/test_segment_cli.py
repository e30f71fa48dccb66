"""`og segment IMAGE --segmenter NAME --out overlay.png`."""

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from og.segmenters import build_segmenter

runner = CliRunner()


def photo(path):
    from skimage import data

    Image.fromarray(data.chelsea()[::3, ::3]).save(path)  # 100 x 151
    return path


def test_segment_writes_an_overlay_and_prints_the_count(tmp_path):
    img = photo(tmp_path / "cat.png")
    result = runner.invoke(app, ["segment", str(img), "-s", "slic", "--option", "n_segments=12",
                                 "--out", str(tmp_path / "o" / "overlay.png")], terminal_width=200)
    assert result.exit_code == 0, result.output
    expected = len(build_segmenter("slic(n_segments=12)")(Image.open(img)))
    assert f"{expected} masks (slic(n_segments=12)" in result.output
    overlay = np.asarray(Image.open(tmp_path / "o" / "overlay.png"))
    original = np.asarray(Image.open(img).convert("RGB"))
    assert overlay.shape == original.shape and (overlay != original).mean() > 0.5  # masks are drawn


def test_segment_with_sam2_random_weights_warns(tmp_path):
    img = photo(tmp_path / "cat.png")
    opts = ["-o", "points_per_side=2", "-o", "image_size=256", "-o", "pred_iou_thresh=0",
            "-o", "stability_score_thresh=0", "-o", "box_nms_thresh=1.0"]
    result = runner.invoke(app, ["segment", str(img), "-s", "sam2", "--variant", "2.1-tiny", *opts,
                                 "--device", "cpu", "--out", str(tmp_path / "s.png")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "RANDOM weights, for tests only" in result.output and "masks (sam2:2.1-tiny(" in result.output
    assert (tmp_path / "s.png").is_file()


def test_segment_errors_are_clear(tmp_path):
    img = photo(tmp_path / "cat.png")
    result = runner.invoke(app, ["segment", str(img), "-s", "slic", "-o", "foo=1", "--out", str(tmp_path / "x.png")])
    assert "has no option 'foo'; valid options (defaults): n_segments=100" in str(result.exception)
    result = runner.invoke(app, ["segment", str(img), "-s", "slic", "-o", "n_segments", "--out", "x.png"])
    assert "--option 'n_segments' must look like key=value" in str(result.exception)
    result = runner.invoke(app, ["segment", str(tmp_path / "none.png"), "-s", "slic", "--out", "x.png"])
    assert "none.png does not exist" in str(result.exception)
    result = runner.invoke(app, ["segment", str(img), "-s", "sam2", "--checkpoint", str(tmp_path / "w.pt"),
                                 "--out", "x.png"])
    assert "--checkpoint" in str(result.exception) and "w.pt does not exist" in str(result.exception)
