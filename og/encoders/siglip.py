"""SigLIP vision towers (`transformers` SiglipVisionModel): no CLS token, mean/std 0.5.

Real weights: a local checkpoint directory of a SiglipVisionModel or a full SiglipModel
(e.g. google/siglip-so400m-patch14-384).
"""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import SiglipVisionConfig, SiglipVisionModel
from transformers.utils.constants import IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD

from og.encoders.hf_vision import HFVisionEncoder
from og.registry import ENCODERS


@ENCODERS.register("siglip")
class SiglipEncoder(HFVisionEncoder):
    """SigLIP ViT (transformers); variants so400m-384, b16-224, tiny, or a local checkpoint."""

    model_class = SiglipVisionModel
    config_class = SiglipVisionConfig
    default_mean = tuple(IMAGENET_STANDARD_MEAN)
    default_std = tuple(IMAGENET_STANDARD_STD)
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        "so400m-384": dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                           num_attention_heads=16, image_size=384, patch_size=14),
        "b16-224": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                        image_size=224, patch_size=16),
        "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     image_size=64, patch_size=8),
    }
