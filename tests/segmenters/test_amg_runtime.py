"""SAM2 runtime knobs (prompt batch, bf16 autocast, torch.compile): resolved per device, kept out
of the spec id, wired into the generator and the model; `og masks build` passes them on."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from og.segmenters import build_segmenter
from og.segmenters.amg import SHIPPED, RandomWeightsWarning, runtime_settings
from og.segmenters.sam2 import Sam2Segmenter
from og.spec import SpecError

SMALL = "points_per_side=2,pred_iou_thresh=0,stability_score_thresh=0,box_nms_thresh=1.0,image_size=256"
UNSET = {"points_per_batch": None, "bf16": None, "compile": None}


def _sam2(options: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return build_segmenter(f"sam2:2.1-tiny({SMALL},{options})" if options else f"sam2:2.1-tiny({SMALL})",
                               device="cpu")


def test_auto_is_the_shipped_setting_off_cuda_and_fast_on_cuda():
    assert runtime_settings(UNSET, "cpu", Sam2Segmenter.auto_runtime) == SHIPPED == {
        "points_per_batch": 6, "bf16": False, "compile": "none"}
    cuda = runtime_settings(UNSET, "cuda:1", Sam2Segmenter.auto_runtime)
    has_triton = importlib.util.find_spec("triton") is not None
    assert cuda == {"points_per_batch": 64, "bf16": True, "compile": "encoder" if has_triton else "none"}
    given = {"points_per_batch": 8, "bf16": False, "compile": "all"}
    assert runtime_settings(given, "cuda", Sam2Segmenter.auto_runtime) == given  # given values win


def test_knobs_reach_the_generator_and_the_model_and_not_the_id():
    seg = _sam2("points_per_batch=3,compile=all")
    assert seg.runtime == {"points_per_batch": 3, "bf16": False, "compile": "all"}
    assert seg.generator.points_per_batch == 3
    assert seg.model.image_encoder._compiled_call_impl is not None  # compiled in place (runs lazily)
    assert seg.model.sam_mask_decoder._compiled_call_impl is not None
    assert "image_encoder.trunk.patch_embed.proj.weight" in seg.model.state_dict()  # names unchanged
    plain = _sam2("")
    assert plain.spec.id == seg.spec.id and "compile" not in seg.spec.id and "points_per_batch" not in seg.spec.id
    assert plain.model.image_encoder._compiled_call_impl is None and plain.generator.points_per_batch == 6


def test_bf16_autocast_runs_on_cpu_and_keeps_the_masks_close():
    img = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    ref, fast = _sam2("")(img), _sam2("bf16=true,points_per_batch=4")(img)
    assert fast.size == ref.size == (64, 80) and len(fast) > 0
    assert abs(len(fast) - len(ref)) <= max(1, len(ref) // 2)


@pytest.mark.parametrize("options,message", [("compile=fast", "compile='fast'"), ("bf16=2", "bf16=2"),
                                             ("points_per_batch=0", "points_per_batch=0")])
def test_bad_runtime_values_are_named(options, message):
    with pytest.raises(SpecError, match=message):
        _sam2(options)


def test_masks_build_passes_the_runtime_options(tmp_path):
    from PIL import Image

    from cli.main import app

    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(tmp_path / "imgs" / "a.png")
    args = ["masks", "build", "--images", str(tmp_path / "imgs"), "-s", f"sam2:2.1-tiny({SMALL})",
            "--device", "cpu", "--out", str(tmp_path / "store"), "--points-per-batch", "2", "--no-bf16",
            "--compile", "none"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "runtime: points_per_batch=2, bf16=False, compile=none" in result.output
    bad = CliRunner().invoke(app, [*args[:-1], "fast"])
    assert bad.exit_code != 0
