"""llava-hf import: a tiny random LlavaForConditionalGeneration and its og conversion give the
same logits (fp32, max abs diff <= 1e-4), through the Python API and `og convert llava-hf`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
from typer.testing import CliRunner

from cli.main import app
from og.model.convert import convert_llava_hf
from og.model.factory import load


@pytest.fixture()
def llava_dir(tmp_path, tokenizer):
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                              image_size=32, patch_size=8, projection_dim=16)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=tokenizer.convert_tokens_to_ids("<image>"))
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(tmp_path / "llava")
    tokenizer.save_pretrained(tmp_path / "llava")
    (tmp_path / "llava" / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3]}))
    return tmp_path / "llava", model


def _compare(og_dir, llava):
    model, proc = load(og_dir)
    assert model.config.model_spec.fusion.name == "patches" and model.config.model_spec.projector.name == "mlp2x_gelu"
    assert proc.transform.mean == (0.5, 0.4, 0.3) and proc.grid == (4, 4)
    img = Image.fromarray(np.random.default_rng(7).integers(0, 256, (40, 30, 3), dtype=np.uint8))
    batch = proc([proc.prompt("<image>\nwhat is in the image ?"), proc.prompt("what is red ?")], [img, None])
    assert int((batch["input_ids"] == llava.config.image_token_id).sum()) == 16  # one per patch
    with torch.no_grad():
        ours = model(**batch).logits
        pos = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        ref = llava(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=pos,
                    pixel_values=batch["pixel_values"]).logits
    real = batch["attention_mask"].bool()
    assert (ours[real] - ref[real]).abs().max() <= 1e-4
    return ours


def test_convert_gives_the_same_logits(llava_dir, tmp_path):
    src, llava = llava_dir
    convert_llava_hf(src, tmp_path / "og")
    _compare(tmp_path / "og", llava)


def test_convert_cli(llava_dir, tmp_path):
    src, llava = llava_dir
    result = CliRunner().invoke(app, ["convert", "llava-hf", str(src), str(tmp_path / "og2"), "--chat-template",
                                      "plain"])
    assert result.exit_code == 0, result.output
    assert "converted" in result.output
    assert json.loads((tmp_path / "og2" / "og_processor.json").read_text())["chat_template"] == "plain"
    _compare(tmp_path / "og2", llava)


def test_convert_errors(llava_dir, tmp_path):
    src, _ = llava_dir
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        convert_llava_hf(tmp_path / "nothing", tmp_path / "x")
    config = json.loads((src / "config.json").read_text())
    config["vision_feature_select_strategy"] = "full"
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="vision_feature_select_strategy='full'"):
        convert_llava_hf(src, tmp_path / "x")


def test_converted_model_is_a_drop_in(llava_dir, tmp_path):
    """The transformers-Llava call, `model(input_ids=..., pixel_values=...)` with no layout, and
    `generate` with the same inputs: the model plans the patches layout itself."""
    src, llava = llava_dir
    convert_llava_hf(src, tmp_path / "og")
    model, proc = load(tmp_path / "og")
    rng = np.random.default_rng(3)
    images = [Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)) for _ in range(2)]
    batch = proc([proc.prompt("<image>\nwhat is in the image ?")] * 2, images)
    inputs = {"input_ids": batch["input_ids"], "pixel_values": batch["pixel_values"]}
    with torch.no_grad():
        ours, ref = model(**inputs).logits, llava(**inputs).logits
    assert (ours - ref).abs().max() <= 1e-4
    kw = {"max_new_tokens": 5, "min_new_tokens": 5, "do_sample": False}
    assert torch.equal(model.generate(**inputs, **kw), llava.generate(**inputs, **kw))
