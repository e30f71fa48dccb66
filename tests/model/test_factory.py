"""build / save / load entry points: presets by name, og.build / og.load, errors for checkpoints
naming components that are not available, tokenizer and template resolution."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import og
from og.model.factory import build, check_installed, default_template, load, save
from og.model.sources import LazySegmenter
from og.presets import preset
from og.spec import ModelSpec


def test_build_from_a_preset_name_and_the_og_entry_points(tokenizer, tmp_path):
    model, proc = og.build("tiny-og", tokenizer=copy.deepcopy(tokenizer), dtype="bfloat16")
    assert model.config.model_spec == preset("tiny-og")
    assert model.dtype == torch.bfloat16
    assert model.config.image_token_id == proc.image_token_id == tokenizer.convert_tokens_to_ids("<image>")
    assert model.language_model.get_input_embeddings().num_embeddings >= len(proc.tokenizer)
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    assert isinstance(proc.mask_source, LazySegmenter) and proc.mask_source.spec.name == "slic"
    save(model, proc, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model_type"] == "og_llava" and config["spec"]["id"] == preset("tiny-og").id
    loaded, proc2 = og.load(tmp_path / "m")
    assert loaded.dtype == torch.bfloat16 and proc2.settings() == proc.settings()


def test_checkpoint_naming_a_missing_component(tokenizer, tmp_path):
    model, proc = build("tiny-llava", tokenizer=copy.deepcopy(tokenizer))
    save(model, proc, tmp_path / "m")
    file = tmp_path / "m" / "config.json"
    config = json.loads(file.read_text())
    config["spec"]["id"] = config["spec"]["id"].replace("clip:tiny", "dinov9:tiny")
    file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"checkpoint .* needs encoder 'dinov9', which is not available here .*"
                                         r"unknown encoder 'dinov9'.* install the package that registers it"):
        load(tmp_path / "m")


def test_missing_library_names_the_package(monkeypatch):
    from og.registry import SEGMENTERS, RegistryError

    real_get = SEGMENTERS.get

    def get(name):
        if name == "sam2":
            raise RegistryError("unknown segmenter 'sam2'")
        return real_get(name)

    monkeypatch.setattr(SEGMENTERS, "get", get)
    with pytest.raises(ValueError, match=r"needs segmenter 'sam2'.*pip install sam2"):
        check_installed(preset("og-llava"))


def test_tokenizer_and_template_resolution(tokenizer):
    with pytest.raises(ValueError, match="llm 'tiny-llama' has no tokenizer of its own; pass tokenizer=PATH"):
        build("tiny-llava")
    assert default_template(preset("llava-1.5"), tokenizer) == "vicuna_v1"
    assert default_template(preset("og-llava"), tokenizer) == "llama3"
    assert default_template(preset("tiny-og"), tokenizer) == "tokenizer"  # it has a chat_template
    spec = ModelSpec.parse("clip:tiny+none+patches+none+linear+tiny-llama")
    model, proc = build(spec, tokenizer=copy.deepcopy(tokenizer), chat_template="plain")
    assert proc.chat_template == "plain" and proc.mask_source is None
    assert type(model.projector).__name__ == "LinearProjector"
    with pytest.raises(ValueError, match="dtype='float8'"):
        build(spec, tokenizer=copy.deepcopy(tokenizer), dtype="float8")


def test_llm_config_shapes_a_random_llm_and_survives_save_load(tmp_path):
    from og.data.tokenizer import train_tokenizer

    tok = train_tokenizer(["a red circle"])
    model, processor = build("tiny-llava", tokenizer=tok, llm_config={"hidden_size": 96, "num_hidden_layers": 3,
                                                                     "num_attention_heads": 4, "num_key_value_heads": 2,
                                                                     "intermediate_size": 192})
    llm = model.language_model.config
    assert (llm.hidden_size, llm.num_hidden_layers) == (96, 3)
    save(model, processor, tmp_path / "m")
    loaded, _ = load(tmp_path / "m")
    assert (loaded.language_model.config.hidden_size, loaded.language_model.config.num_hidden_layers) == (96, 3)
    with pytest.raises(ValueError, match="llm_config shapes a random LLM"):
        build("tiny-llava", tokenizer=tok, llm_path=str(tmp_path / "m"), llm_config={"hidden_size": 8})
