"""Segmenters: the contract for every entry, sam2 / sam with random weights, checkpoints, knobs,
slic on a real photo, and the ablation controls (grid, random, whole, given)."""

import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from skimage.segmentation import slic

from og.masks.masks import Masks
from og.masks.store import MaskStoreWriter
from og.registry import SEGMENTERS
from og.segmenters import build_segmenter
from og.segmenters.amg import RandomWeightsWarning
from og.segmenters.sam2 import Sam2Segmenter, config_name
from og.spec import SegmenterSpec, SpecError

FAST = "points_per_side=2,points_per_batch=4,pred_iou_thresh=0,stability_score_thresh=0,box_nms_thresh=1.0"
SMALL = f"{FAST},image_size=256"  # random weights only: a 256-pixel model runs in about a second


def small_image(seed=0, h=64, w=64):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[(yy - h / 3) ** 2 + (xx - w / 3) ** 2 < (h / 5) ** 2] = (230, 40, 40)  # a red disc
    img[h // 2 :, w // 2 :] = (30, 60, 220)  # a blue square
    return img + np.random.default_rng(seed).integers(0, 10, img.shape, dtype=np.uint8)


def check_contract(masks, h, w):
    assert isinstance(masks, Masks) and masks.size == (h, w) and masks.data.dtype == bool
    assert masks.scores.dtype == np.float32 and masks.sorted() == masks  # canonical order


@pytest.fixture(scope="module")
def sam2_tiny():
    with pytest.warns(RandomWeightsWarning, match="RANDOM weights, for tests only"):
        return build_segmenter(f"sam2:2.1-tiny({SMALL})", device="cpu")


def test_sam2_random_weights_give_masks(sam2_tiny):
    img = small_image()
    masks = sam2_tiny(img)
    check_contract(masks, 64, 64)
    assert len(masks) > 0 and masks.areas.min() > 0
    assert sam2_tiny(img) == masks  # deterministic
    assert sam2_tiny.spec.id == ("sam2:2.1-tiny(box_nms_thresh=1.0,image_size=256,points_per_side=2,"
                                 "pred_iou_thresh=0.0,stability_score_thresh=0.0)")  # points_per_batch: speed only
    assert sam2_tiny.weights == "random(seed=0)" and sam2_tiny.device == "cpu"


def test_sam2_variants_and_configs():
    import sam2

    assert Sam2Segmenter.resolve_variant("large") == "2.1-large"
    assert Sam2Segmenter.default_variant == "2.1-large"
    for variant in Sam2Segmenter.variants:  # every variant names a config the package ships
        assert (Path(sam2.__file__).parent / config_name(variant)).is_file(), variant
    assert config_name("2-base-plus") == "configs/sam2/sam2_hiera_b+.yaml"
    with pytest.raises(SpecError, match="unknown variant 'huge'; valid: 2-tiny, 2-small"):
        Sam2Segmenter.resolve_variant("huge")


def test_sam2_published_defaults_and_canonical_id():
    from og.segmenters import canonical_id
    from og.segmenters.amg import AMG_KNOBS

    assert canonical_id("sam2") == canonical_id("sam2:large(pred_iou_thresh=0.9,points_per_batch=64)") == (
        "sam2:2.1-large")
    assert canonical_id("sam:vit_l(points_per_side=16)") == "sam:vit_l(points_per_side=16)"
    assert canonical_id("slic(n_segments=100,compactness=20)") == "slic(compactness=20.0)"
    assert canonical_id("none") == "none"

    assert {k: AMG_KNOBS[k] for k in ("points_per_side", "points_per_batch", "pred_iou_thresh",
                                      "stability_score_thresh", "box_nms_thresh", "crop_n_layers")} == {
        "points_per_side": 32, "points_per_batch": None, "pred_iou_thresh": 0.9, "stability_score_thresh": 0.95,
        "box_nms_thresh": 0.7, "crop_n_layers": 0}  # points_per_batch None: auto (the published 6 off CUDA)


def test_sam2_checkpoint_round_trip_and_mismatch(tmp_path):
    from safetensors.torch import save_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        first = build_segmenter("sam2:2.1-tiny", device="cpu")
    state = {k: v.clone() + 0.01 for k, v in first.model.state_dict().items()}
    torch.save({"model": state}, tmp_path / "w.pt")  # the sam2 release layout
    with warnings.catch_warnings():
        warnings.simplefilter("error", RandomWeightsWarning)  # a checkpoint: no random-weights warning
        loaded = build_segmenter("sam2:2.1-tiny", path=str(tmp_path / "w.pt"), device="cpu")
    got = loaded.model.state_dict()
    assert all(torch.equal(got[k], state[k]) for k in state)
    assert loaded.weights == f"w.pt:{(tmp_path / 'w.pt').stat().st_size}"
    partial = {k: v.contiguous() for k, v in list(state.items())[1:]}
    save_file(partial, tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match=r"bad.safetensors does not fit sam2:2.1-tiny: 1 missing keys"):
        build_segmenter("sam2:2.1-tiny", path=str(tmp_path / "bad.safetensors"), device="cpu")
    with pytest.raises(SpecError, match="image_size=256 with a checkpoint"):
        build_segmenter("sam2:2.1-tiny(image_size=256)", path=str(tmp_path / "w.pt"), device="cpu")
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        build_segmenter("sam2:2.1-tiny", path=str(tmp_path / "missing.pt"), device="cpu")


def test_sam_random_weights_give_masks():
    with pytest.warns(RandomWeightsWarning):
        seg = build_segmenter(f"sam:vit_b({SMALL})", device="cpu")
    img = small_image(1, 48, 80)
    masks = seg(img)
    check_contract(masks, 48, 80)
    assert len(masks) > 0 and seg(img) == masks
    assert seg.spec.variant == "vit_b"


def test_knob_errors_list_the_valid_knobs():
    with pytest.raises(SpecError, match=r"'sam2' has no option 'points'; valid options \(defaults\): "
                                        r"points_per_side=32, points_per_batch=none, pred_iou_thresh=0.9"):
        build_segmenter("sam2(points=3)")
    with pytest.raises(SpecError, match="points_per_side=1.5 must be a int"):
        build_segmenter("sam(points_per_side=1.5)")
    with pytest.raises(SpecError, match="'slic' has no option 'k'; valid options .*n_segments=100"):
        build_segmenter("slic(k=3)")
    with pytest.raises(SpecError, match="'grid' has no variants"):
        build_segmenter("grid:large")
    if importlib.util.find_spec("cv2") is None:
        with pytest.raises(SpecError, match="min_mask_region_area=10 needs OpenCV"):
            build_segmenter("sam2:2.1-tiny(min_mask_region_area=10)")
    with pytest.raises(KeyError, match="unknown segmenter 'sma2'. Did you mean 'sam2'"):
        build_segmenter("sma2")


def test_registry_import_stays_light():
    code = ("import sys; from og.registry import SEGMENTERS; names = SEGMENTERS.list(); "
            "print(names, [m for m in ('torch', 'sam2', 'segment_anything', 'hydra') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['given', 'grid', 'random', 'sam', 'sam2', 'slic', 'whole'] []"


def test_slic_on_astronaut_matches_skimage():
    img = data.astronaut()[::2, ::2]  # 256 x 256
    seg = build_segmenter("slic(n_segments=40)")
    masks = seg(img)
    check_contract(masks, 256, 256)
    assert np.array_equal(masks.data.sum(0), np.ones((256, 256)))  # a partition of the image
    labels = slic(img, n_segments=40, compactness=10.0, start_label=0)
    ref = sorted((labels == i).sum() for i in np.unique(labels))[::-1]
    assert masks.areas.tolist() == ref and np.all(masks.scores == 1)  # ordered by area
    assert 10 <= len(masks) <= 60


def test_grid_tiles_the_image():
    masks = build_segmenter("grid(k=3)")(np.zeros((10, 11, 3), np.uint8))
    check_contract(masks, 10, 11)
    assert len(masks) == 9 and np.array_equal(masks.data.sum(0), np.ones((10, 11)))
    for m in masks.data:  # every window is a filled rectangle
        ys, xs = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        assert m[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1].all()
    assert sorted(masks.areas.tolist()) == sorted(a * b for a in (3, 4, 3) for b in (4, 3, 4))
    with pytest.raises(ValueError, match="grid k=5 needs 1 <= k <= the image's shorter side; the image is 4x9"):
        build_segmenter("grid(k=5)")(np.zeros((4, 9, 3), np.uint8))


def test_random_blobs_differ_per_mask_and_per_image():
    seg = build_segmenter("random(count=6)")
    img = np.zeros((40, 50, 3), np.uint8)
    a, a2, b = seg(img, key="a.jpg"), seg(img, key="a.jpg"), seg(img, key="b.jpg")
    check_contract(a, 40, 50)
    assert a == a2 and len(a) == 6 and a.areas.min() > 0
    flat = {m.tobytes() for m in a.data}
    assert len(flat) == 6  # never two identical masks
    assert not flat & {m.tobytes() for m in b.data}  # another image, other blobs
    assert seg(img + 1) != seg(img)  # without a key: seeded by the image content
    assert build_segmenter("random(count=6,seed=1)")(img, key="a.jpg") != a
    assert len(build_segmenter("random(count=0)")(img, key="a.jpg")) == 0
    with pytest.raises(ValueError, match="could not draw 20 distinct blobs on a 1x1 image"):
        build_segmenter("random(count=20)")(np.zeros((1, 1, 3), np.uint8), key="x")


def test_whole_is_one_full_mask():
    masks = build_segmenter("whole")(np.zeros((5, 7, 3), np.uint8))
    check_contract(masks, 5, 7)
    assert len(masks) == 1 and masks.data.all()


def test_given_reads_a_store_and_coco(tmp_path):
    rng = np.random.default_rng(0)
    ref = Masks(rng.random((3, 6, 8)) < 0.5, np.array([0.2, 0.9, 0.5]))
    with MaskStoreWriter(tmp_path / "store", "oracle") as w:
        w.add("dir/a.png", ref)
    seg = build_segmenter(f"given(path={tmp_path / 'store'})")
    img = np.zeros((6, 8, 3), np.uint8)
    assert seg(img, key="dir/a.png") == ref.sorted()
    with pytest.raises(ValueError, match="are 6x8 but the image is 7x8"):
        seg(np.zeros((7, 8, 3), np.uint8), key="dir/a.png")
    with pytest.raises(KeyError, match="'dir/b.png' is not in mask store"):
        seg(img, key="dir/b.png")
    with pytest.raises(ValueError, match="reads masks by image key"):
        seg(img)
    coco = {"images": [{"id": 7, "file_name": "a.png", "height": 6, "width": 8}],
            "annotations": [{"image_id": 7, "segmentation": [[1, 1, 5, 1, 5, 4, 1, 4]]},
                            {"image_id": 7, "segmentation": ref.to_rle()[0], "iscrowd": 1}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    from_coco = SEGMENTERS.get("given").from_spec(SegmenterSpec("given"), path=str(tmp_path / "coco.json"))
    masks = from_coco(img, key="dir/a.png")  # matched by base name
    check_contract(masks, 6, 8)
    assert len(masks) == 2 and any(np.array_equal(m, ref.data[0]) for m in masks.data)
    assert masks.data[np.argmax(masks.areas != ref.data[0].sum())][1:4, 1:5].all()
    with pytest.raises(ValueError, match="needs a source"):
        build_segmenter("given")


@pytest.mark.parametrize("name", ["slic", "grid", "random", "whole"])
def test_contract_for_weightless_segmenters(name):
    from PIL import Image

    seg = SEGMENTERS.get(name).from_spec(SegmenterSpec(name))
    img = small_image(2, 33, 47)
    for image in (img, Image.fromarray(img), img[:, :, 0]):  # array, PIL, grey
        check_contract(seg(image, key="k"), 33, 47)
    assert seg(img, key="k") == seg(img, key="k")
    assert seg.spec == SegmenterSpec(name) and seg.weights is None
