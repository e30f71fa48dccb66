"""The object probe: features per object, probes that read what is there and fall to chance when it is not."""

import numpy as np
import pytest
import torch

from og.data.shapes import ShapesConfig, write_shapes
from og.eval.probe import TARGETS, fit_probes, object_features, probe_encoder, read_scenes
from og.registry import ENCODERS
from og.spec import EncoderSpec


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    write_shapes(out, 160, 8, seed=3, config=ShapesConfig(min_objects=1, max_objects=3), return_masks=False)
    return out


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return ENCODERS.get("clip").from_spec(EncoderSpec("clip", "tiny"))


def test_one_feature_per_object_and_labels_from_the_scenes(shapes_dir, encoder):
    scenes = read_scenes(shapes_dir, "train", 10)
    feats, labels, groups = object_features(encoder, shapes_dir, scenes, batch_size=4)
    n = sum(len(s["objects"]) for s in scenes)
    assert feats.shape == (n, encoder.dim) and set(labels) == set(TARGETS) and len(groups) == n
    first = scenes[0]["objects"][0]
    assert labels["shape"][0] == first["shape"] and labels["color"][0] == first["color"]
    assert labels["left_right"][0] == ("left" if first["cx"] < 32 else "right")


def test_a_box_mean_is_the_coverage_weighted_mean_of_its_patches(shapes_dir, encoder):
    scenes = read_scenes(shapes_dir, "train", 1)
    feats, _, _ = object_features(encoder, shapes_dir, scenes)
    from PIL import Image

    from og.masks.geometry import ImageTransform

    image = Image.open(shapes_dir / scenes[0]["image"]).convert("RGB")
    patches = encoder(ImageTransform.for_encoder(encoder).transform(image)[0][None])[0]  # (64, D)
    x0, y0, x1, y1 = scenes[0]["objects"][0]["box"]
    cover = np.zeros((64, 64))
    cover[y0:y1 + 1, x0:x1 + 1] = 1
    w = torch.tensor(cover.reshape(8, 8, 8, 8).mean((1, 3)).reshape(64), dtype=torch.float32)  # (64,) 8-px patches
    torch.testing.assert_close(feats[0], (w / w.sum()) @ patches, atol=1e-5, rtol=1e-4)


def test_the_probe_reads_colour_and_falls_to_chance_on_shuffled_labels(shapes_dir, encoder):
    real = probe_encoder(encoder, shapes_dir, images=160)
    assert real["mlp"]["color"] >= 0.9 and real["linear"]["color"] >= 0.9  # colour is in every pixel
    assert real["objects"] > 160 and real["split"] == "train" and real["images"] == 160
    feats, labels, groups = object_features(encoder, shapes_dir, read_scenes(shapes_dir, "train", 160))
    shuffled = fit_probes(feats, {"color": labels["color"]}, groups, shuffle=True)
    assert shuffled["mlp"]["color"] <= 0.45 and shuffled["linear"]["color"] <= 0.45  # 6 colours: chance 0.17


def test_probes_on_separable_features_and_a_clear_error_when_too_few_images():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = torch.tensor(np.eye(3)[y] + 0.1 * rng.normal(size=(300, 3)), dtype=torch.float32)
    report = fit_probes(x, {"shape": [str(v) for v in y]}, np.arange(300))
    assert report["linear"]["shape"] > 0.95 and report["mlp"]["shape"] > 0.95
    with pytest.raises(ValueError, match="cannot be split"):
        fit_probes(x[:2], {"shape": ["a", "b"]}, np.zeros(2, int))


def test_read_scenes_names_a_folder_that_is_not_shapes_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="scenes.jsonl"):
        read_scenes(tmp_path)


def test_a_token_feature_is_the_patch_holding_the_object_centre(shapes_dir, encoder):
    scenes = read_scenes(shapes_dir, "train", 2)
    feats, labels, groups = object_features(encoder, shapes_dir, scenes, pool="token")
    from PIL import Image

    from og.masks.geometry import ImageTransform

    k = 0
    for row in scenes:
        image = Image.open(shapes_dir / row["image"]).convert("RGB")
        patches = encoder(ImageTransform.for_encoder(encoder).transform(image)[0][None])[0]  # (64, D) 8 x 8 grid
        for o in row["objects"]:  # 64-px images, 8-px patches: the naive patch index of the centre pixel
            torch.testing.assert_close(feats[k], patches[int(o["cy"]) // 8 * 8 + int(o["cx"]) // 8])
            k += 1
    assert k == len(feats) == len(labels["shape"])
    with pytest.raises(ValueError, match="pool='mean' is not one of"):
        object_features(encoder, shapes_dir, scenes, pool="mean")


def test_the_token_probe_reads_colour_and_reports_its_pool(shapes_dir, encoder):
    report = probe_encoder(encoder, shapes_dir, images=160, pool="token")
    assert report["pool"] == "token" and report["mlp"]["color"] >= 0.9  # a patch holds its object's colour
