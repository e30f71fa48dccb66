"""og.model: the OG-LLaVA transformers model, its config and processor, chat templates, LoRA,
the `build` / `load` entry points and the llava-hf import.

Exports are resolved lazily, so importing `og.model.projector` (the PROJECTORS registry does)
does not pull in the whole model stack.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "OGLlavaConfig": "og.model.configuration",
    "OGLlavaForConditionalGeneration": "og.model.modeling",
    "OGLlavaPreTrainedModel": "og.model.modeling",
    "OGLlavaProcessor": "og.model.processing",
    "build": "og.model.factory",
    "load": "og.model.factory",
    "save": "og.model.factory",
    "apply_lora": "og.model.lora",
    "save_lora": "og.model.lora",
    "load_lora": "og.model.lora",
    "merge_lora": "og.model.lora",
    "convert_llava_hf": "og.model.convert",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'og.model' has no attribute {name!r}")
