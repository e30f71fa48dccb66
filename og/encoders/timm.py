"""timm ViT encoders: any ViT-style timm model name as the variant (vit_*, deit*, eva*, ...).

Real weights: a local timm-format state dict (a .safetensors / .bin / .pt file, or a folder
holding model.safetensors or pytorch_model.bin), loaded strictly; only the classifier head is
left out (og uses patch tokens). `timm:tiny` is a 2-block ViT with 2 register tokens.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from og.encoders.base import VisionEncoder
from og.encoders.layers import block_index
from og.registry import ENCODERS
from og.spec import EncoderSpec, SpecError

TINY: dict[str, Any] = {
    "model_name": "vit_base_patch16_224",
    "kwargs": {"img_size": 64, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 4,
               "mlp_ratio": 2.0, "reg_tokens": 2},
}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def weights_file(path: str) -> Path:
    """The checkpoint file at `path`, or the first of WEIGHT_FILES inside the folder `path`."""
    p = Path(path)
    if p.is_dir():
        p = next((p / f for f in WEIGHT_FILES if (p / f).is_file()), p / WEIGHT_FILES[0])
    if not p.is_file():
        raise FileNotFoundError(f"timm weights {str(p)!r} not found; give a local state dict file "
                                f"or a folder holding one of {', '.join(WEIGHT_FILES)}")
    return p


def load_weights(model: nn.Module, path: str) -> None:
    """Load a timm-format state dict strictly, leaving out the classifier head."""
    file = weights_file(path)
    state = timm.models.load_state_dict(str(file), weights_only=True)
    head = model.pretrained_cfg.get("classifier", "head")
    state = {k: v for k, v in state.items() if not (k == head or k.startswith(f"{head}."))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"timm weights {str(file)!r} do not match {model.default_cfg.get('architecture')!r}: "
            f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); "
            "give a timm-format state dict of the variant's model"
        )


@ENCODERS.register("timm")
class TimmEncoder(VisionEncoder):
    """timm ViT-style model; the variant is the timm model name, or tiny."""

    def __init__(self, spec: EncoderSpec, model: nn.Module, build: dict[str, Any]) -> None:
        super().__init__()
        if not all(hasattr(model, a) for a in ("patch_embed", "blocks", "forward_intermediates")):
            raise SpecError(f"timm model {build['model_name']!r} is not a ViT-style model (no patch_embed / "
                            "blocks); og reads patch tokens from vit_*, deit*, eva* and similar models")
        self.spec = spec
        self.model = model
        self.build = copy.deepcopy(build)
        self.grid = tuple(model.patch_embed.grid_size)
        self.image_size = tuple(model.patch_embed.img_size)
        self.dim = model.embed_dim
        self.block = block_index(spec, len(model.blocks))
        data = timm.data.resolve_model_data_config(model)
        self.mean = tuple(float(v) for v in build.get("mean", data["mean"]))
        self.std = tuple(float(v) for v in build.get("std", data["std"]))

    @classmethod
    def from_spec(cls, spec: EncoderSpec, path: str | None = None,
                  config: dict[str, Any] | None = None) -> TimmEncoder:
        build = config or (TINY if spec.variant == "tiny" else {"model_name": spec.variant, "kwargs": {}})
        name = build["model_name"]
        if not timm.is_model(name):
            close = difflib.get_close_matches(name, timm.list_models(), n=3)
            raise SpecError(f"unknown timm model {name!r}; close names: {', '.join(close) or 'none'} "
                            "(see timm.list_models('vit*'), or use variant 'tiny')")
        model = timm.create_model(name, pretrained=False, num_classes=0, **build["kwargs"])
        if path is not None:
            load_weights(model, path)
        return cls(spec, model, build)

    def config_dict(self) -> dict[str, Any]:
        return {**copy.deepcopy(self.build), "mean": list(self.mean), "std": list(self.std)}

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, h*w, D)
        pixels = pixels.to(self.model.patch_embed.proj.weight.dtype)  # (B, 3, H, W)
        feats = self.model.forward_intermediates(
            pixels, indices=[self.block], norm=False, stop_early=True, intermediates_only=True, output_fmt="NLC"
        )
        return feats[0]  # (B, h*w, D), prefix tokens (CLS, registers) dropped by timm
