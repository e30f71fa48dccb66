"""The `lmms_eval.models` entry point: the `ModelManifest` lmms-eval 0.7 reads to find og models.

Kept apart from `og.eval.lmms` so that listing entry points imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

MODEL_ID = "og_llava"
CLASS_PATH = "og.eval.lmms.OGLlavaLMMS"


def manifests() -> list[Any]:
    """[ModelManifest(og_llava -> og.eval.lmms.OGLlavaLMMS)] (lmms-eval must be installed)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=MODEL_ID, simple_class_path=CLASS_PATH, aliases=("og-llava",))]
