"""LoRA through PEFT: targets only the LLM's linears, save / load / merge give the same logits."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel

from og.model.factory import load, save
from og.model.lora import apply_lora, load_lora, lora_targets, merge_lora, save_lora

Q = "<image>\nwhat is in the image ?"


def _perturb(peft_model):
    """LoRA's B starts at zero (a no-op); give every adapter weight random values."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


def _logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


def test_default_targets_are_every_llm_linear_but_the_head(make_model):
    model, _ = make_model("masktoken")
    targets = lora_targets(model)
    leaves = {t.rsplit(".", 1)[-1] for t in targets}
    assert leaves == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert all(t.startswith("language_model.") for t in targets)
    assert len(targets) == 7 * model.config.text_config.num_hidden_layers
    assert lora_targets(model, ["q_proj", "v_proj"]) == [t for t in targets if t.endswith(("q_proj", "v_proj"))]
    with pytest.raises(ValueError, match=r"\['fc1'\] are not linear layers of the language model"):
        lora_targets(model, ["fc1"])  # a CLIP layer name: never adapted


def test_adapters_sit_only_in_the_llm_and_train(make_model, samples):
    model, proc = make_model("masktoken")
    peft_model = apply_lora(model, r=4, alpha=8, dropout=0.0)
    lora_names = [n for n, _ in peft_model.named_parameters() if "lora_" in n]
    assert lora_names and all(".language_model." in n for n in lora_names)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable == set(lora_names)
    batch = proc([proc.prompt(Q) + " a red circle"], [samples[0][0]], masks=[samples[0][1]])
    loss = peft_model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    assert all(p.grad is not None for n, p in peft_model.named_parameters() if "lora_B" in n)


def test_save_load_and_merge_give_the_same_logits(make_model, samples, tmp_path):
    model, proc = make_model("masktoken", "segment")
    batch = proc([proc.prompt(Q)] * 2, [s[0] for s in samples[:2]], masks=[s[1] for s in samples[:2]])
    save(model, proc, tmp_path / "base")
    base_logits = _logits(model, batch)
    peft_model = apply_lora(model, r=4, alpha=8, dropout=0.0)
    _perturb(peft_model)
    adapted = _logits(peft_model, batch)
    assert (adapted - base_logits).abs().max() > 1e-3  # the adapters change the output
    save_lora(peft_model, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()

    fresh, _ = load(tmp_path / "base")
    reloaded = load_lora(fresh, tmp_path / "adapter")
    assert isinstance(reloaded, PeftModel)
    torch.testing.assert_close(_logits(reloaded, batch), adapted, rtol=0, atol=1e-6)

    merged = merge_lora(reloaded)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(_logits(merged, batch), adapted, rtol=0, atol=1e-5)
    save(merged, proc, tmp_path / "merged")
    exported, _ = load(tmp_path / "merged")
    torch.testing.assert_close(_logits(exported, batch), adapted, rtol=0, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="no adapter_config.json"):
        load_lora(exported, tmp_path / "merged")


def test_generate_through_the_peft_wrapper(make_model, samples):
    model, proc = make_model("patches")
    peft_model = apply_lora(model, r=2, alpha=4, dropout=0.0)
    batch = proc([proc.prompt(Q)], [samples[1][0]])
    out = peft_model.generate(**batch, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert torch.equal(out, model.generate(**batch, max_new_tokens=3, min_new_tokens=3, do_sample=False))
