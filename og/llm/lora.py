"""Which modules of a language model LoRA adapts: every linear layer except the output head.

That is LLaVA's and OG-LLaVA's default (`find_all_linear_names`). Names are the modules' full
names, so PEFT matches exactly these layers even when the LLM sits inside a bigger model whose
vision tower has linear layers with the same short names (q_proj, fc1, ...).
"""

from __future__ import annotations

from torch import nn


def lora_target_modules(model: nn.Module, prefix: str = "") -> list[str]:
    """Full names (with `prefix` prepended, e.g. "language_model.") of every nn.Linear in `model`
    except its output embeddings (the lm_head)."""
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    return [f"{prefix}{name}" for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and module is not head]
