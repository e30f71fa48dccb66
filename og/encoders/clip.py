"""CLIP vision towers (`transformers` CLIPVisionModel): LLaVA-1.5's encoder.

`clip:l336` is ViT-L/14 at 336 px (24 blocks, hidden 1024): layer -2 without CLS gives the
(B, 576, 1024) features LLaVA-1.5 and OG-LLaVA use. Real weights: a local checkpoint
directory of a CLIPVisionModel or a full CLIPModel (e.g. openai/clip-vit-large-patch14-336).
"""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import CLIPVisionConfig, CLIPVisionModel
from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from og.encoders.hf_vision import HFVisionEncoder
from og.registry import ENCODERS


@ENCODERS.register("clip")
class CLIPEncoder(HFVisionEncoder):
    """CLIP ViT (transformers); variants l336, b16, tiny, or a local checkpoint."""

    model_class = CLIPVisionModel
    config_class = CLIPVisionConfig
    default_mean = tuple(OPENAI_CLIP_MEAN)
    default_std = tuple(OPENAI_CLIP_STD)
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        "l336": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                     image_size=336, patch_size=14, projection_dim=768, hidden_act="quick_gelu"),
        "b16": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    image_size=224, patch_size=16, projection_dim=512, hidden_act="quick_gelu"),
        "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     image_size=64, patch_size=8, projection_dim=32, hidden_act="quick_gelu"),
    }
