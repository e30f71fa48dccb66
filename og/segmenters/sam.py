"""`sam`: Segment Anything (v1, the `segment_anything` package) automatic mask generator.

Variants vit_b / vit_l / vit_h (default vit_h), weights from a local checkpoint
(`sam_vit_h_4b8939.pth`, read with weights_only=True). The model is built here with the
package's own modules and the shapes of its `build_sam.py`, so that `image_size` can be
smaller for random-weight tests (the package hard-codes 1024). Knobs: see og.segmenters.amg.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from og.registry import SEGMENTERS
from og.segmenters.amg import AmgSegmenter
from og.spec import Value

# variant -> (embed dim, depth, heads, global attention blocks), as segment_anything.build_sam
VITS = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}


def build_sam(variant: str, image_size: int = 1024) -> Any:
    """A `segment_anything.modeling.Sam` with random weights."""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    dim, depth, heads, global_blocks = VITS[variant]
    prompt_dim, patch = 256, 16
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=depth, embed_dim=dim, img_size=image_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=heads, patch_size=patch,
            qkv_bias=True, use_rel_pos=True, global_attn_indexes=global_blocks, window_size=14,
            out_chans=prompt_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim, image_embedding_size=(image_size // patch, image_size // patch),
            input_image_size=(image_size, image_size), mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_dim, mlp_dim=2048, num_heads=8),
            transformer_dim=prompt_dim, iou_head_depth=3, iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


@SEGMENTERS.register("sam")
class SamSegmenter(AmgSegmenter):
    """Segment Anything (v1) automatic mask generator: vit_b / vit_l / vit_h."""

    variants = tuple(VITS)
    default_variant = "vit_h"

    def build_model(self, variant: str, image_size: int | None) -> Any:
        return build_sam(variant, image_size or 1024)

    def build_generator(self, model: Any, knobs: dict[str, Value]) -> Any:
        from segment_anything import SamAutomaticMaskGenerator

        return SamAutomaticMaskGenerator(model, output_mode="binary_mask", **knobs)
