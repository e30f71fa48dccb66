"""Loading real weights from local paths, saved with each library's own save function."""

from __future__ import annotations

import json

import open_clip
import pytest
import safetensors.torch
import timm
import torch
from timm.models import save_for_hf
from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

from og.encoders.clip import CLIPEncoder
from og.encoders.open_clip import TINY as OPEN_CLIP_TINY
from og.encoders.siglip import SiglipEncoder
from og.encoders.timm import TINY as TIMM_TINY
from og.registry import ENCODERS
from og.spec import EncoderSpec

TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=99)


def load(name: str, path, variant: str = "tiny", **kwargs) -> torch.nn.Module:
    return ENCODERS.get(name).from_spec(EncoderSpec(name, variant), path=str(path), **kwargs).eval()


def x_for(encoder) -> torch.Tensor:
    return torch.randn(2, 3, *encoder.image_size, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_hf_vision_checkpoint_dir(tmp_path, name):
    original = ENCODERS.get(name).from_spec(EncoderSpec(name, "tiny")).eval()
    original.model.save_pretrained(tmp_path)
    loaded = load(name, tmp_path, variant="b16")  # the checkpoint, not the variant, decides
    x = x_for(original)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), original(x), rtol=0, atol=0)


@pytest.mark.parametrize(("name", "encoder", "config", "model"), [
    ("clip", CLIPEncoder, CLIPConfig, CLIPModel),
    ("siglip", SiglipEncoder, SiglipConfig, SiglipModel),
])
def test_full_dual_encoder_checkpoint_dir(tmp_path, name, encoder, config, model):
    torch.manual_seed(0)
    full = model(config(vision_config=encoder.variants["tiny"], text_config=TEXT)).eval()
    full.save_pretrained(tmp_path)
    mean = [0.1, 0.2, 0.3]
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_mean": mean, "image_std": [1, 1, 1]}))
    loaded = load(name, tmp_path)
    assert loaded.mean == tuple(mean) and loaded.std == (1.0, 1.0, 1.0)
    x = x_for(loaded)
    n_prefix = 1 if name == "clip" else 0
    with torch.no_grad():
        expected = full.vision_model(pixel_values=x, output_hidden_states=True).hidden_states[-2][:, n_prefix:]
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)


def test_hf_dir_without_vision_weights_is_an_error(tmp_path):
    SiglipEncoder.from_spec(EncoderSpec("siglip", "tiny")).model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="lacks 3 vision weights and has 1 of another shape"):
        load("clip", tmp_path)  # a SigLIP tower has no CLIP class/position embedding keys


def test_hf_path_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load("clip", tmp_path)


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_open_clip_checkpoint_file(tmp_path, fmt):
    torch.manual_seed(0)
    full = open_clip.create_model(OPEN_CLIP_TINY["model_name"], **OPEN_CLIP_TINY["model_kwargs"]).eval()
    path = tmp_path / f"open_clip_model.{fmt}"
    if fmt == "safetensors":
        safetensors.torch.save_file(full.state_dict(), path)  # what open_clip's save_for_hf writes
    else:
        torch.save({"epoch": 1, "state_dict": full.state_dict()}, path)  # open_clip training checkpoint
    loaded = load("open_clip", path)
    x = x_for(loaded)
    with torch.no_grad():
        expected = full.visual.forward_intermediates(x, indices=[0], output_fmt="NLC", intermediates_only=True)
        torch.testing.assert_close(loaded(x), expected["image_intermediates"][0], rtol=0, atol=0)


def test_open_clip_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        load("open_clip", tmp_path / "missing.bin")


def test_timm_save_for_hf_folder_and_file(tmp_path):
    original = ENCODERS.get("timm").from_spec(EncoderSpec("timm", "tiny")).eval()
    save_for_hf(original.model, str(tmp_path), model_args=TIMM_TINY["kwargs"], safe_serialization=True)
    x = x_for(original)
    with torch.no_grad():
        for path in (tmp_path, tmp_path / "model.safetensors"):
            torch.testing.assert_close(load("timm", path)(x), original(x), rtol=0, atol=0)


def test_timm_checkpoint_with_a_classifier_head(tmp_path):
    torch.manual_seed(0)
    classifier = timm.create_model(TIMM_TINY["model_name"], num_classes=10, **TIMM_TINY["kwargs"]).eval()
    torch.save(classifier.state_dict(), tmp_path / "ckpt.pt")
    loaded = load("timm", tmp_path / "ckpt.pt")
    x = x_for(loaded)
    with torch.no_grad():
        feats = classifier.forward_intermediates(x, indices=[0], intermediates_only=True, output_fmt="NLC")
        torch.testing.assert_close(loaded(x), feats[0], rtol=0, atol=0)


def test_timm_weights_of_another_model_are_refused(tmp_path):
    other = timm.create_model(TIMM_TINY["model_name"], num_classes=0, **{**TIMM_TINY["kwargs"], "depth": 3})
    torch.save(other.state_dict(), tmp_path / "deeper.pt")
    with pytest.raises(ValueError, match="unexpected"):
        load("timm", tmp_path / "deeper.pt")
