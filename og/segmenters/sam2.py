"""`sam2`: SAM 2 / SAM 2.1 automatic mask generator (the `sam2` package), OG-LLaVA's segmenter.

Variants `VERSION-SIZE`: version 2 or 2.1, size tiny / small / base-plus / large (a bare size
means 2.1); the default is the published `2.1-large`. The hydra config shipped with the package
(`configs/sam2.1/sam2.1_hiera_l.yaml`, ...) builds the model; weights come from a local
checkpoint (e.g. `sam2.1_hiera_large.pt`). Knobs: see og.segmenters.amg; on CUDA the runtime
defaults are 64 prompts per batch, bfloat16 autocast and the image encoder compiled.
"""

from __future__ import annotations

from typing import Any

from og.registry import SEGMENTERS
from og.segmenters.amg import AmgSegmenter
from og.spec import Value

SIZES = {"tiny": "t", "small": "s", "base-plus": "b+", "large": "l"}
VERSIONS = ("2", "2.1")


def config_name(variant: str) -> str:
    """`2.1-large` -> `configs/sam2.1/sam2.1_hiera_l.yaml` (inside the sam2 package)."""
    version, size = variant.split("-", 1)
    tag = "sam2" if version == "2" else "sam2.1"
    return f"configs/{tag}/{tag}_hiera_{SIZES[size]}.yaml"


@SEGMENTERS.register("sam2")
class Sam2Segmenter(AmgSegmenter):
    """SAM 2 / 2.1 automatic mask generator (published: 2.1-large, pred_iou_thresh 0.9)."""

    variants = tuple(f"{v}-{s}" for v in VERSIONS for s in SIZES)
    default_variant = "2.1-large"
    auto_runtime = {"cuda": {"points_per_batch": 64, "bf16": True, "compile": "encoder"}}
    compile_targets = {"none": (), "encoder": ("image_encoder",), "all": ("image_encoder", "sam_mask_decoder")}

    @classmethod
    def resolve_variant(cls, variant: str) -> str:
        return super().resolve_variant(f"2.1-{variant}" if variant in SIZES else variant)

    def build_model(self, variant: str, image_size: int | None) -> Any:
        from sam2.build_sam import build_sam2

        overrides = [f"++model.image_size={image_size}"] if image_size else []
        return build_sam2(config_name(variant), ckpt_path=None, device="cpu", hydra_overrides_extra=overrides)

    def build_generator(self, model: Any, knobs: dict[str, Value]) -> Any:
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        generator = SAM2AutomaticMaskGenerator(model, output_mode="binary_mask", **knobs)
        size = model.image_size  # the predictor's feature sizes are written for 1024; derive them
        if hasattr(generator.predictor, "_bb_feat_sizes"):
            generator.predictor._bb_feat_sizes = [(size // 4, size // 4), (size // 8, size // 8),
                                                  (size // 16, size // 16)]
        return generator
