"""LoRA on the language model through PEFT (LLaVA-1.5 / OG-LLaVA: every linear layer of the LLM).

`apply_lora(model, r, alpha, dropout, target_modules)` wraps the whole OG-LLaVA model in a
`PeftModel` whose adapters sit only inside `model.language_model` (default targets: every
`nn.Linear` of the LLM except `lm_head`; the encoder and projector are never targeted). PEFT
freezes everything else; a training stage re-enables what it trains (projector, ...).
`save_lora` / `load_lora` write / read the adapters (safetensors), `merge_lora` folds them into
the weights and returns the plain model for export.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from og.llm.lora import lora_target_modules

LLM_PREFIX = "language_model."


def lora_targets(model: nn.Module, target_modules: list[str] | None = None) -> list[str]:
    """Full names of the LLM linear layers LoRA adapts: all but the lm_head, or those whose last
    name part is in `target_modules` (e.g. ["q_proj", "v_proj"])."""
    names = lora_target_modules(model.language_model, prefix=LLM_PREFIX)
    if target_modules is None:
        return names
    leaves = {n.rsplit(".", 1)[-1] for n in names}
    unknown = sorted(set(target_modules) - leaves)
    if unknown:
        raise ValueError(f"LoRA target modules {unknown} are not linear layers of the language model; "
                         f"available: {', '.join(sorted(leaves))}")
    return [n for n in names if n.rsplit(".", 1)[-1] in set(target_modules)]


def apply_lora(model: nn.Module, r: int = 128, alpha: int = 256, dropout: float = 0.05,
               target_modules: list[str] | None = None, **lora_kwargs: Any) -> PeftModel:
    """The model with fresh LoRA adapters on its language model (published defaults: r 128, alpha 256)."""
    if r < 1:
        raise ValueError(f"LoRA r={r}; use a positive rank")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=lora_targets(model, target_modules), bias="none", **lora_kwargs)
    return get_peft_model(model, config)


def save_lora(peft_model: PeftModel, path: str | Path) -> Path:
    """adapter_config.json + adapter_model.safetensors under `path`."""
    peft_model.save_pretrained(str(path), safe_serialization=True)
    return Path(path)


def load_lora(model: nn.Module, path: str | Path, trainable: bool = False) -> PeftModel:
    """The model with the adapters saved at `path` (frozen unless `trainable`)."""
    if not Path(path, "adapter_config.json").is_file():
        raise FileNotFoundError(f"{path} has no adapter_config.json; give a directory written by save_lora")
    return PeftModel.from_pretrained(model, str(path), is_trainable=trainable)


def merge_lora(peft_model: PeftModel) -> nn.Module:
    """Fold the adapters into the LLM weights; the plain OG-LLaVA model, ready for save_pretrained."""
    return peft_model.merge_and_unload()
