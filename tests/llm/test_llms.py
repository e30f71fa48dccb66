"""LLM backends: hf from a local directory or a saved config, tiny-llama, LoRA targets."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from og.llm import lora_target_modules
from og.llm.hf import llm_config_dict
from og.registry import ENCODERS, LLMS
from og.spec import EncoderSpec, LLMSpec

IDS = torch.tensor([[1, 5, 9, 42, 7, 3]])


def tiny(vocab_size: int = 60, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return LLMS.get("tiny-llama").from_spec(LLMSpec("tiny-llama"), vocab_size=vocab_size, **kwargs).eval()


def logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_tiny_llama_config_and_vocab():
    model = tiny(vocab_size=77)
    cfg = model.config
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads,
            cfg.intermediate_size, cfg.max_position_embeddings) == (64, 2, 4, 2, 128, 2048)
    assert model.get_input_embeddings().num_embeddings == 77
    assert logits(model).shape == (1, IDS.shape[1], 77)


def test_tiny_llama_needs_a_vocab_size():
    with pytest.raises(ValueError, match="vocab_size"):
        LLMS.get("tiny-llama").from_spec(LLMSpec("tiny-llama"))


def test_hf_from_a_saved_directory_equals_the_original(tmp_path):
    original = tiny()
    original.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = LLMS.get("hf").from_spec(LLMSpec("hf", "tiny"), path=str(tmp_path)).eval()
    assert loaded.dtype == torch.float32  # the checkpoint's own dtype by default
    torch.testing.assert_close(logits(loaded), logits(original), rtol=0, atol=0)
    bf16 = LLMS.get("hf").from_spec(LLMSpec("hf"), path=str(tmp_path), dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16


@pytest.mark.parametrize("name", ["hf", "tiny-llama"])
def test_rebuild_from_the_config_dict(name):
    original = tiny()
    config = json.loads(json.dumps(llm_config_dict(original)))  # saved inside the og config
    again = LLMS.get(name).from_spec(LLMSpec(name), config=config).eval()
    again.load_state_dict(original.state_dict(), strict=True)
    torch.testing.assert_close(logits(again), logits(original), rtol=0, atol=0)


def test_vocab_grows_but_never_shrinks(tmp_path):
    original = tiny(vocab_size=60)
    original.save_pretrained(tmp_path)
    grown = LLMS.get("hf").from_spec(LLMSpec("hf"), path=str(tmp_path), vocab_size=64)
    rows = grown.get_input_embeddings().weight
    assert rows.shape[0] == grown.config.vocab_size == 64
    torch.testing.assert_close(rows[:60], original.get_input_embeddings().weight)
    kept = LLMS.get("hf").from_spec(LLMSpec("hf"), path=str(tmp_path), vocab_size=50)
    assert kept.get_input_embeddings().num_embeddings == 60


def test_hf_needs_a_path_or_a_config(tmp_path):
    with pytest.raises(ValueError, match="local checkpoint path"):
        LLMS.get("hf").from_spec(LLMSpec("hf"), config={"vocab_size": 10})
    with pytest.raises(FileNotFoundError, match="config.json"):
        LLMS.get("hf").from_spec(LLMSpec("hf"), path=str(tmp_path))


def test_lora_targets_every_linear_but_the_head():
    model = tiny()
    targets = lora_target_modules(model)
    linear = {n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert set(targets) == linear - {"lm_head"}
    assert len(targets) == 2 * 7  # q, k, v, o, gate, up, down in each of 2 layers


def test_lora_targets_stay_inside_the_llm_of_a_bigger_model():
    class Composite(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = ENCODERS.get("clip").from_spec(EncoderSpec("clip", "tiny"))  # has q_proj, fc1, ...
            self.language_model = tiny()

    model = Composite()
    targets = lora_target_modules(model.language_model, prefix="language_model.")
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=8, target_modules=targets), model)
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_modules() if n.endswith(".lora_A")}
    assert adapted == set(targets)
    assert not any(n.startswith("encoder.") for n in adapted)
